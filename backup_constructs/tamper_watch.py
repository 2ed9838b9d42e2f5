"""Tamper alarms: CloudTrail's record of a change to a protected resource, matched by EventBridge
within minutes and sent to the alert topic (or, from another region, to the primary region's bus).

The event patterns are plain functions of what is protected, so the tests can feed CloudTrail's
own event shapes through exactly the patterns the stacks deploy.

Where each protected resource appears in CloudTrail's record (the AWS docs' example events):
- KMS: ``requestParameters.keyId`` is whatever the caller passed (often the bare key ID), so the
  rules match ``resources[].ARN``, which CloudTrail fills with the key ARN.
- S3 (bucket configuration and object data events): ``requestParameters.bucketName``.
- Secrets Manager: ``responseElements.arn`` (``aRN`` before February 2024) is the full ARN;
  ``requestParameters.secretId`` is what the caller passed (matched too, for callers that pass the ARN).
- CloudTrail: ``requestParameters.name`` (trail name or ARN); EventBridge: ``requestParameters.name``
  (DeleteRule, DisableRule, PutRule) or ``requestParameters.rule`` (RemoveTargets, PutTargets).
- STS: ``requestParameters.roleArn``.
- CloudWatch alarms: ``requestParameters.alarmName`` (PutMetricAlarm, PutCompositeAlarm) or
  ``requestParameters.alarmNames`` (DeleteAlarms, DisableAlarmActions), matched on the prefix every
  alarm of the app's stacks has (CloudFormation names them ``<stack name>-<logical ID>-<suffix>``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudtrail as cloudtrail
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct

from backup_constructs.access_log_bucket import AccessLogBucket
from backup_constructs.keys import customer_managed_key
from backup_constructs.nag import acknowledge
from backup_constructs.secure_bucket import locked_down

API_CALL = "AWS API Call via CloudTrail"
# EventBridge's rule state that also matches read-only management events: whether CloudTrail
# classifies AssumeRole as read-only is not something this project could confirm, and with this
# state the break-glass rule matches it either way (its pattern names one role, so volume is nil).
ALL_MANAGEMENT_EVENTS = "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"
ENABLED_STATES = ("ENABLED", ALL_MANAGEMENT_EVENTS)

KEY_EVENTS = ("DisableKey", "ScheduleKeyDeletion", "PutKeyPolicy")
# CloudTrail records PutBucketLifecycleConfiguration calls under the event name PutBucketLifecycle
# (a capture of the Go SDK v2's PutBucketLifecycleConfiguration shows eventName PutBucketLifecycle);
# the API's own name is listed as well so a renamed event still matches. The Delete* twins undo a
# protection as surely as a Put* weakens it.
BUCKET_EVENTS = (
    "PutBucketPolicy", "DeleteBucketPolicy", "PutBucketVersioning",
    "PutBucketLifecycle", "PutBucketLifecycleConfiguration", "DeleteBucketLifecycle",
    "PutBucketReplication", "DeleteBucketReplication", "PutBucketEncryption", "DeleteBucketEncryption",
    "PutBucketPublicAccessBlock", "DeleteBucketPublicAccessBlock", "PutObjectLockConfiguration",
    "PutBucketLogging", "DeleteBucket",
)
# Nothing in the project deletes from a backup bucket (lifecycle expiry is S3-internal and not a
# CloudTrail event), so every delete alarms: a version delete (the s3:DeleteObjectVersion permission
# is exercised by the DeleteObject API with a versionId), a delete under dumps/, one carrying the
# governance bypass, and a multi-object DeleteObjects.
OBJECT_DELETES = ("DeleteObject", "DeleteObjects")
# The nightly job calls PutObjectRetention on every upload (s3sink), without the bypass header, so
# only a retention change that carries the bypass alarms. How CloudTrail records the
# x-amz-bypass-governance-retention header is not documented in what this project could read; both
# request-parameter spellings seen in the wild are matched. The delete that follows a shortened
# retention alarms whatever the spelling.
BYPASS_FIELDS = ("x-amz-bypass-governance-retention", "bypassGovernanceRetention")
SECRET_EVENTS = ("DeleteSecret", "PutResourcePolicy", "DeleteResourcePolicy", "RemoveRegionsFromReplication")
TRAIL_EVENTS = ("StopLogging", "DeleteTrail", "UpdateTrail", "PutEventSelectors")
RULE_EVENTS = ("DeleteRule", "DisableRule", "RemoveTargets", "PutRule", "PutTargets")
# An alarm re-declared (another threshold, no actions), deleted, or silenced: a tamperer's quiet way past
# every other alarm. SetAlarmState is not watched: it changes no definition, and the alarm's next
# evaluation (one period later) puts it back in the state its data says, running its actions on the way.
ALARM_EVENTS = ("PutMetricAlarm", "PutCompositeAlarm", "DeleteAlarms", "DisableAlarmActions")
ASSUME_EVENTS = ("AssumeRole", "AssumeRoleWithSAML", "AssumeRoleWithWebIdentity")

KINDS = ("keys", "buckets", "objects", "secrets", "watch", "break-glass")
# What each kind is, for the alert's title, and the runbook section it links.
TITLES = {
    "keys": "a protected KMS key was disabled, scheduled for deletion or re-policied",
    "buckets": "a protected bucket's policy, versioning, lifecycle, replication, encryption or lock changed",
    "objects": "an object in a backup bucket was deleted or its lock bypassed",
    "secrets": "a configuration secret was deleted or re-policied",
    "watch": "the trail, a tamper rule or an alarm was stopped, changed, silenced or removed",
    "break-glass": "the break-glass role was assumed",
}
SECTIONS = {kind: ("break-glass" if kind == "break-glass" else f"tampering-{kind}") for kind in KINDS}
# The event fields that name the resource, per kind (absent fields render empty).
RESOURCE_FIELDS: dict[str, dict[str, str]] = {
    "keys": {"key": "$.detail.requestParameters.keyId"},
    "buckets": {"bucket": "$.detail.requestParameters.bucketName"},
    "objects": {"bucket": "$.detail.requestParameters.bucketName", "key": "$.detail.requestParameters.key",
                "version": "$.detail.requestParameters.versionId"},
    "secrets": {"secret": "$.detail.requestParameters.secretId"},
    "watch": {"name": "$.detail.requestParameters.name", "rule": "$.detail.requestParameters.rule",
              "alarm": "$.detail.requestParameters.alarmName", "alarms": "$.detail.requestParameters.alarmNames"},
    "break-glass": {"role": "$.detail.requestParameters.roleArn",
                    "session": "$.detail.requestParameters.roleSessionName"},
}


@dataclass(frozen=True)
class Protected:
    """What one region of one account holds that the tamper rules watch.

    keys: KMS key ARNs. buckets: bucket names whose configuration is watched. backup_buckets: bucket
    names whose objects are watched (the trail must log their write data events). secrets: secret
    ARNs. trails: trail ARNs and names (only where the trail's home region is). rule_prefix: the
    tamper rules' names. break_glass_role_arn: the role whose every assumption alarms. alarm_prefix:
    the names of the alarms declared here start so (the stacks' name prefix); empty: none are watched.
    """

    rule_prefix: str
    break_glass_role_arn: str
    keys: tuple[str, ...] = ()
    buckets: tuple[str, ...] = ()
    backup_buckets: tuple[str, ...] = ()
    secrets: tuple[str, ...] = ()
    trails: tuple[str, ...] = ()
    alarm_prefix: str = ""

    def kinds(self) -> tuple[str, ...]:
        """The rules this region needs: one per kind that has something to watch."""
        present = {"keys": self.keys, "buckets": self.buckets, "objects": self.backup_buckets,
                   "secrets": self.secrets, "watch": True, "break-glass": True}
        return tuple(kind for kind in KINDS if present[kind])


def _api_call(source: str, region: str, detail: dict[str, Any]) -> dict[str, Any]:
    return {"source": [source], "detail-type": [API_CALL], "region": [region], "detail": detail}


def event_pattern(kind: str, protected: Protected, region: str) -> dict[str, Any]:
    """The pattern of ``kind``'s rule in ``region`` (only events that happened in that region: the
    primary region's bus also receives the other regions' forwarded events)."""
    p = protected
    if kind == "keys":
        return _api_call("aws.kms", region, {"eventSource": ["kms.amazonaws.com"], "eventName": list(KEY_EVENTS),
                                             "resources": {"ARN": list(p.keys)}})
    if kind == "buckets":
        return _api_call("aws.s3", region, {"eventSource": ["s3.amazonaws.com"], "eventName": list(BUCKET_EVENTS),
                                            "requestParameters": {"bucketName": list(p.buckets)}})
    if kind == "objects":
        bypass = [{"eventName": ["PutObjectRetention"], "requestParameters": {name: ["true", True]}}
                  for name in BYPASS_FIELDS]
        return _api_call("aws.s3", region, {
            "eventSource": ["s3.amazonaws.com"], "requestParameters": {"bucketName": list(p.backup_buckets)},
            "$or": [{"eventName": list(OBJECT_DELETES)}, *bypass]})
    if kind == "secrets":
        arns = list(p.secrets)
        return _api_call("aws.secretsmanager", region, {
            "eventSource": ["secretsmanager.amazonaws.com"], "eventName": list(SECRET_EVENTS),
            "$or": [{"responseElements": {"arn": arns}}, {"responseElements": {"aRN": arns}},
                    {"requestParameters": {"secretId": arns}}]})
    if kind == "watch":
        rules = [{"source": ["aws.events"], "detail": {"eventSource": ["events.amazonaws.com"],
                                                       "eventName": list(RULE_EVENTS),
                                                       "requestParameters": {field: [{"prefix": p.rule_prefix}]}}}
                 for field in ("name", "rule")]
        trails = [{"source": ["aws.cloudtrail"], "detail": {"eventSource": ["cloudtrail.amazonaws.com"],
                                                           "eventName": list(TRAIL_EVENTS),
                                                           "requestParameters": {"name": list(p.trails)}}}
                  ] if p.trails else []
        alarms = [{"source": ["aws.monitoring"], "detail": {"eventSource": ["monitoring.amazonaws.com"],
                                                            "eventName": list(ALARM_EVENTS),
                                                            "requestParameters": {field: [{"prefix": p.alarm_prefix}]}}}
                  for field in ("alarmName", "alarmNames")] if p.alarm_prefix else []
        return {"detail-type": [API_CALL], "region": [region], "$or": [*trails, *rules, *alarms]}
    if kind == "break-glass":
        return _api_call("aws.sts", region, {"eventSource": ["sts.amazonaws.com"], "eventName": list(ASSUME_EVENTS),
                                             "requestParameters": {"roleArn": [p.break_glass_role_arn]}})
    raise ValueError(f"unknown tamper rule kind {kind!r}; choose from {', '.join(KINDS)}")


FORWARDED_SOURCES = {"keys": ("aws.kms",), "buckets": ("aws.s3",), "objects": ("aws.s3",),
                     "secrets": ("aws.secretsmanager",), "watch": ("aws.events", "aws.cloudtrail", "aws.monitoring"),
                     "break-glass": ("aws.sts",)}
FORWARDED_NAMES = {"keys": KEY_EVENTS, "buckets": BUCKET_EVENTS, "objects": (*OBJECT_DELETES, "PutObjectRetention"),
                   "secrets": SECRET_EVENTS, "watch": (*TRAIL_EVENTS, *RULE_EVENTS, *ALARM_EVENTS),
                   "break-glass": ASSUME_EVENTS}


def forwarded_pattern(kind: str, regions: Sequence[str], accounts: Sequence[str]) -> dict[str, Any]:
    """In the primary region: ``kind``'s events forwarded by the other regions' rules (which already
    matched the protected resources there). Events on a region's default bus carry that region, so
    ``region`` tells a forwarded event from a local one."""
    return {"source": list(FORWARDED_SOURCES[kind]), "detail-type": [API_CALL], "region": list(regions),
            "account": list(accounts), "detail": {"eventName": list(FORWARDED_NAMES[kind])}}


def alert_input(kind: str, *, environment: str, runbook_url: str) -> events.RuleTargetInput:
    """What reaches the alert topic: who, what, which resource, when, where; in the shape the alert
    router renders for the project's own events (``source: tavari``)."""
    def at(path: str) -> str:
        return events.EventField.from_path(path)

    resource = " ".join(f"{name}={at(path)}" for name, path in RESOURCE_FIELDS[kind].items())
    return events.RuleTargetInput.from_object({
        "source": "tavari",
        "kind": "tampering",
        "environment": environment,
        "job": "tamper-watch",
        "check": kind,
        "title": f"TAMPERING: {at('$.detail.eventName')}: {TITLES[kind]}",
        "detail": (f"who {at('$.detail.userIdentity.arn')} (principal {at('$.detail.userIdentity.principalId')}, "
                   f"from {at('$.detail.sourceIPAddress')}); what {at('$.detail.eventName')} "
                   f"({at('$.detail.eventSource')}); resource {resource}; "
                   f"where {at('$.detail.awsRegion')} in account {at('$.account')}; "
                   f"error {at('$.detail.errorCode')}"),
        "time": at("$.detail.eventTime"),
        "runbook": f"{runbook_url}#{SECTIONS[kind]}",
    })


def tamper_rule(scope: Construct, construct_id: str, *, name: str, kind: str, pattern: dict[str, Any],
                target: events.IRuleTarget, description: str) -> events.Rule:
    """One rule with its pattern written out whole: the L2 pattern type has no top-level ``$or``, and a
    property override would deep-merge into the L2's placeholder, so the L1 property is replaced."""
    rule = events.Rule(scope, construct_id, rule_name=name, description=description,
                       event_pattern=events.EventPattern(detail_type=[API_CALL]), targets=[target])
    cfn = rule.node.default_child
    cfn.event_pattern = pattern  # type: ignore[union-attr]
    if kind == "break-glass":
        cfn.add_property_override("State", ALL_MANAGEMENT_EVENTS)  # type: ignore[union-attr]
    return rule


def topic_target(topic: sns.ITopic, kind: str, *, environment: str, runbook_url: str) -> events.IRuleTarget:
    # EventBridge retries a failed publish for 24 hours (185 attempts) by default; that stays.
    return targets.SnsTopic(topic, message=alert_input(kind, environment=environment, runbook_url=runbook_url))


@dataclass(frozen=True)
class TrailSettings:
    """A trail this app creates: its name, the buckets whose write data events it logs (names, in
    any region: a multi-region trail logs a bucket elsewhere when its selector names it), how long
    its log files are locked and kept."""

    name: str
    data_event_buckets: Sequence[str]
    retention: Duration
    removal_policy: RemovalPolicy


class TamperTrail(Construct):
    """A multi-region trail (global service events, log file validation, KMS-encrypted) into its own
    Object-Lock bucket (GOVERNANCE default retention, TLS only, access-logged), logging every
    management event and the write data events of the backup buckets (advanced event selectors)."""

    def __init__(self, scope: Construct, construct_id: str, *, settings: TrailSettings) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        days = int(settings.retention.to_days())
        self.trail_arn = stack.format_arn(service="cloudtrail", resource="trail", resource_name=settings.name)
        self.key = customer_managed_key(self, "Key", description="Tamper-watch trail log files",
                                        removal_policy=settings.removal_policy)
        cloudtrail_principal = iam.ServicePrincipal("cloudtrail.amazonaws.com")
        # The statements CloudTrail needs (AWS: "Configure AWS KMS key policies for CloudTrail"),
        # pinned to this trail by its ARN, which the fixed name makes known before the trail exists.
        self.key.add_to_resource_policy(iam.PolicyStatement(
            sid="CloudTrailEncryptsThisTrailsLogs", principals=[cloudtrail_principal],
            actions=["kms:GenerateDataKey*"], resources=["*"],
            conditions={"StringEquals": {"aws:SourceArn": self.trail_arn},
                        "StringLike": {"kms:EncryptionContext:aws:cloudtrail:arn":
                                       f"arn:{stack.partition}:cloudtrail:*:{stack.account}:trail/*"}}))
        self.key.add_to_resource_policy(iam.PolicyStatement(
            sid="CloudTrailDescribesTheKey", principals=[cloudtrail_principal], actions=["kms:DescribeKey"],
            resources=["*"], conditions={"StringEquals": {"aws:SourceArn": self.trail_arn}}))
        self.access_logs = AccessLogBucket(self, "AccessLogs", retention=Duration.days(365),
                                           removal_policy=settings.removal_policy)
        self.bucket = s3.Bucket(
            self, "Bucket", **locked_down(self.key, self.access_logs.bucket, "trail-bucket/"),
            object_lock_enabled=True,
            # GOVERNANCE: only a principal with s3:BypassGovernanceRetention (the break-glass role, whose
            # assumption alarms) can delete a log file before its retention ends.
            object_lock_default_retention=s3.ObjectLockRetention.governance(Duration.days(days)),
            lifecycle_rules=[s3.LifecycleRule(id="ExpireLogFiles", expiration=Duration.days(days + 1),
                                              noncurrent_version_expiration=Duration.days(1),
                                              abort_incomplete_multipart_upload_after=Duration.days(1))],
            removal_policy=settings.removal_policy)
        acknowledge(self.bucket, "The trail's log files are the audit record of events the tamper rules already "
                                 "acted on within minutes; they are Object-Locked where they are, and a "
                                 "cross-region copy is not part of this design.",
                    "NIST.800.53.R5-S3BucketReplicationEnabled")
        self.trail = cloudtrail.Trail(self, "Trail", trail_name=settings.name, bucket=self.bucket,
                                      encryption_key=self.key, enable_file_validation=True,
                                      is_multi_region_trail=True, include_global_service_events=True,
                                      send_to_cloud_watch_logs=False)
        acknowledge(self.trail, "The alarms read this trail's events through EventBridge within minutes; a "
                                "CloudWatch Logs copy would add cost and no alarm.",
                    "NIST.800.53.R5-CloudTrailCloudWatchLogsEnabled")
        self.data_event_bucket_arns = [f"arn:{stack.partition}:s3:::{name}" for name in settings.data_event_buckets]
        selectors: list[dict[str, Any]] = [
            # Read and write: the break-glass rule's AssumeRole must be in the trail whatever its class.
            {"Name": "Every management event",
             "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}]}]
        if self.data_event_bucket_arns:
            selectors.append({
                "Name": "Write data events on the database backup buckets",
                "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Data"]},
                                   {"Field": "resources.type", "Equals": ["AWS::S3::Object"]},
                                   {"Field": "readOnly", "Equals": ["false"]},
                                   {"Field": "resources.ARN",
                                    "StartsWith": [f"{arn}/" for arn in self.data_event_bucket_arns]}]})
        cfn = self.trail.node.default_child
        cfn.add_property_override("AdvancedEventSelectors", selectors)  # type: ignore[union-attr]
