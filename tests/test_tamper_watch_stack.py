"""Template assertions for the tamper watch: every rule's pattern (event names, resource matching,
region), targets and input transformer, the trail and its bucket, the warning when config names a
trail, both regions and us-east-1, the cross-account sites, and the daily monitor's wiring."""

from __future__ import annotations

import json

import pytest
from aws_cdk import Stack
from aws_cdk.assertions import Match, Template

from backup_constructs.tamper_watch import (
    ALARM_EVENTS,
    ALL_MANAGEMENT_EVENTS,
    ASSUME_EVENTS,
    BUCKET_EVENTS,
    KEY_EVENTS,
    event_pattern,
    forwarded_pattern,
)
from tavari_dr.alerts.router import parse_message
from tests.conftest import EXISTING_TRAIL_ARN, XACCT, alarm_runbook_sections
from tests.event_patterns import transform
from tests.test_tamper_patterns import ROLE_ARN, delivered, kms

ACCOUNT = "123456789012"


def rules_of(template: dict) -> dict[str, dict]:
    """Rule name -> its properties."""
    return {r["Properties"]["Name"]: r["Properties"] for r in template["Resources"].values()
            if r["Type"] == "AWS::Events::Rule"}


def watch_stacks(env):
    return [(stack, env.templates[stack.stack_name]) for stack in env.built.tamper_watch.stacks]


@pytest.mark.parametrize("env_name", ["dev", "prod", "prod-xacct", "dev-trail"])
def test_every_deployed_pattern_is_the_constructs_pattern_of_its_protected_resources(synthesized, env_name):
    env = synthesized[env_name]
    watch = env.built.tamper_watch
    prefix = watch.primary.protected.rule_prefix
    for stack, template in watch_stacks(env):
        rules = rules_of(template)
        expected_names = {prefix + kind for kind in stack.rules}
        assert set(rules) == expected_names, stack.stack_name
        for key in stack.rules:
            if key.startswith("forwarded-"):
                continue
            assert rules[prefix + key]["EventPattern"] == stack.resolve(
                event_pattern(key, stack.protected, stack.region)), (stack.stack_name, key)
            assert rules[prefix + key]["EventPattern"]["region"] == [stack.region]


def test_the_primary_rules_name_every_protected_resource(prod):
    built = prod.built
    primary = built.tamper_watch.primary
    resolve = primary.resolve
    p = primary.protected
    keys = {json.dumps(resolve(k), sort_keys=True) for k in p.keys}
    for key in (built.storage.invoices.key, built.secrets.config_secrets.key, built.backups.backups.key,
                built.backups.signing_key, built.backups.change_signing_key, built.backups.reports.key,
                primary.trail.key):
        assert json.dumps(resolve(key.key_arn), sort_keys=True) in keys
    buckets = {json.dumps(resolve(b), sort_keys=True) for b in p.buckets}
    for bucket in (built.storage.invoices.bucket, built.backups.backups.bucket, built.backups.reports.bucket,
                   primary.trail.bucket):
        assert json.dumps(resolve(bucket.bucket_name), sort_keys=True) in buckets
    assert resolve(list(p.backup_buckets)) == [resolve(built.backups.backups.bucket.bucket_name)]
    assert resolve(list(p.secrets)) == [resolve(s.secret_arn) for s in built.secrets.config_secrets.secrets.values()]
    assert resolve(list(p.trails)) == [resolve(primary.trail_arn), "tavari-prod-tamper-trail"]
    assert resolve(p.break_glass_role_arn) == {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"},
                                                                 ":iam::123456789012:role/tavari-break-glass"]]}


def test_the_dr_region_watches_the_replicas(prod):
    built = prod.built
    (dr,) = [s for s in built.tamper_watch.remote if s.region == "eu-central-1"]
    resolve = dr.resolve
    p = dr.protected
    assert resolve(list(p.keys)) == [resolve(built.replica.replica.key.key_arn),
                                     resolve(built.backups_replica.backups.key.key_arn),
                                     resolve(built.secrets_replica_key.key.key_arn)]
    assert resolve(list(p.buckets)) == [resolve(built.replica.replica.bucket.bucket_name),
                                        resolve(built.backups_replica.backups.bucket.bucket_name)]
    assert resolve(list(p.backup_buckets)) == [resolve(built.backups_replica.backups.bucket.bucket_name)]
    assert set(dr.rules) == {"keys", "buckets", "objects", "watch", "break-glass"}


def test_event_names_listed_in_the_templates(prod):
    rules = rules_of(prod.templates["Tavari-Prod-TamperWatch"])
    p = "tavari-prod-tamper-"
    assert rules[p + "keys"]["EventPattern"]["detail"]["eventName"] == list(KEY_EVENTS)
    assert {"PutBucketPolicy", "DeleteBucketPolicy", "PutBucketVersioning", "PutBucketLifecycle",
            "PutBucketReplication", "PutBucketEncryption", "PutBucketPublicAccessBlock",
            "PutObjectLockConfiguration", "DeleteBucket"} <= set(rules[p + "buckets"]["EventPattern"]["detail"]
                                                                  ["eventName"])
    assert rules[p + "buckets"]["EventPattern"]["detail"]["eventName"] == list(BUCKET_EVENTS)
    objects = rules[p + "objects"]["EventPattern"]["detail"]
    assert objects["$or"][0] == {"eventName": ["DeleteObject", "DeleteObjects"]}
    assert {b["requestParameters"].popitem()[0] for b in json.loads(json.dumps(objects["$or"][1:]))} == {
        "x-amz-bypass-governance-retention", "bypassGovernanceRetention"}
    secrets = rules[p + "secrets"]["EventPattern"]["detail"]
    assert secrets["eventName"] == ["DeleteSecret", "PutResourcePolicy", "DeleteResourcePolicy",
                                    "RemoveRegionsFromReplication"]
    watch = rules[p + "watch"]["EventPattern"]["$or"]
    assert watch[0]["detail"]["eventName"] == ["StopLogging", "DeleteTrail", "UpdateTrail", "PutEventSelectors"]
    assert watch[1]["detail"]["eventName"] == ["DeleteRule", "DisableRule", "RemoveTargets", "PutRule", "PutTargets"]
    assert [w["detail"]["requestParameters"] for w in watch[1:3]] == [
        {"name": [{"prefix": p}]}, {"rule": [{"prefix": p}]}]
    # The alarms of the app's stacks (CloudFormation names them after the stack): re-declared, deleted, silenced.
    assert [w["detail"]["eventName"] for w in watch[3:]] == [list(ALARM_EVENTS)] * 2
    assert [w["detail"]["requestParameters"] for w in watch[3:]] == [
        {"alarmName": [{"prefix": "Tavari-Prod-"}]}, {"alarmNames": [{"prefix": "Tavari-Prod-"}]}]


@pytest.mark.parametrize("env_name", ["dev", "prod"])
def test_break_glass_is_watched_in_every_region_that_records_sts(synthesized, env_name):
    env = synthesized[env_name]
    regions = {}
    for stack, template in watch_stacks(env):
        rule = rules_of(template)[f"tavari-{env_name}-tamper-break-glass"]
        regions[stack.region] = rule
        assert rule["State"] == ALL_MANAGEMENT_EVENTS
        detail = rule["EventPattern"]["detail"]
        assert detail["eventName"] == list(ASSUME_EVENTS)
        assert stack.resolve(detail["requestParameters"]["roleArn"]) == [
            stack.resolve(stack.protected.break_glass_role_arn)]
    # us-east-1: STS calls to the global endpoint from outside AWS (an operator's laptop) are recorded there.
    assert set(regions) == ({"eu-west-1", "us-east-1"} if env_name == "dev" else
                            {"eu-west-1", "eu-central-1", "us-east-1"})


def test_primary_rules_publish_a_readable_message_to_the_alert_topic(prod):
    built = prod.built
    topic = built.tamper_watch.primary.resolve(built.monitoring.monitoring.topic.topic_arn)
    rules = rules_of(prod.templates["Tavari-Prod-TamperWatch"])
    assert len(rules) == 6 + 5  # six local kinds, five forwarded from eu-central-1 and us-east-1
    for name, rule in rules.items():
        (target,) = rule["Targets"]
        assert target["Arn"] == topic, name
        paths = target["InputTransformer"]["InputPathsMap"]
        assert {"$.detail.userIdentity.arn", "$.detail.eventName", "$.detail.eventTime", "$.detail.awsRegion",
                "$.account"} <= set(paths.values()), name
    # The message the topic gets for a realistic event, rendered as EventBridge would, read by the router.
    event = kms("ScheduleKeyDeletion", "1234abcd-12ab-34cd-56ef-1234567890ab",
                "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab")
    message = transform(rules["tavari-prod-tamper-keys"]["Targets"][0]["InputTransformer"], event)
    body = json.loads(message)
    assert body["time"] == "2026-03-23T18:58:30Z"
    alert = parse_message(message, environment="prod")
    assert alert.state == "ALARM"
    text = alert.text()
    assert "TAMPERING: ScheduleKeyDeletion" in text
    assert "who arn:aws:iam::123456789012:user/Alice" in text
    assert "key=1234abcd-12ab-34cd-56ef-1234567890ab" in text
    assert "where eu-west-1 in account 123456789012" in text
    assert text.endswith("/runbooks/alarms/#tampering-keys")


def test_a_forwarded_break_glass_assumption_is_readable_too(prod):
    rules = rules_of(prod.templates["Tavari-Prod-TamperWatch"])
    forwarded = rules["tavari-prod-tamper-forwarded-break-glass"]
    assert forwarded["EventPattern"] == forwarded_pattern("break-glass", ["eu-central-1", "us-east-1"], [ACCOUNT])
    assert forwarded["State"] == ALL_MANAGEMENT_EVENTS
    event = delivered({"eventSource": "sts.amazonaws.com", "eventName": "AssumeRole",
                       "eventTime": "2026-03-23T19:00:00Z",
                       "requestParameters": {"roleArn": ROLE_ARN, "roleSessionName": "oncall-alice"}},
                      region="us-east-1")
    text = parse_message(transform(forwarded["Targets"][0]["InputTransformer"], event), environment="prod").text()
    assert f"role={ROLE_ARN} session=oncall-alice" in text and "where us-east-1" in text
    assert "#break-glass" in text


def test_other_regions_forward_to_the_primary_bus(prod):
    bus = "arn:aws:events:eu-west-1:123456789012:event-bus/default"
    for stack in prod.built.tamper_watch.remote:
        template = Template.from_json(prod.templates[stack.stack_name])
        for name, rule in rules_of(prod.templates[stack.stack_name]).items():
            (target,) = rule["Targets"]
            assert stack.resolve(target["Arn"]) == {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"},
                                                                      ":events:eu-west-1:123456789012:"
                                                                      "event-bus/default"]]}, name
            assert "InputTransformer" not in target  # the primary region's rule formats it
            assert "RoleArn" in target
        template.has_resource_properties("AWS::IAM::Policy", {"PolicyDocument": {"Statement": [{
            "Action": "events:PutEvents", "Effect": "Allow",
            "Resource": {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, bus.removeprefix("arn:aws")]]}}]}})


def test_the_trail(prod):
    template = Template.from_json(prod.templates["Tavari-Prod-TamperWatch"])
    trail = prod.built.tamper_watch.primary.trail
    resolve = Stack.of(trail).resolve
    template.has_resource_properties("AWS::CloudTrail::Trail", {
        "TrailName": "tavari-prod-tamper-trail", "IsMultiRegionTrail": True, "EnableLogFileValidation": True,
        "IncludeGlobalServiceEvents": True, "IsLogging": True, "KMSKeyId": resolve(trail.key.key_arn),
        "S3BucketName": resolve(trail.bucket.bucket_name), "EventSelectors": [],
        "AdvancedEventSelectors": [
            {"Name": "Every management event",
             "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}]},
            {"Name": "Write data events on the database backup buckets", "FieldSelectors": [
                {"Field": "eventCategory", "Equals": ["Data"]},
                {"Field": "resources.type", "Equals": ["AWS::S3::Object"]},
                {"Field": "readOnly", "Equals": ["false"]},
                {"Field": "resources.ARN", "StartsWith": [
                    {"Fn::Join": ["", ["arn:aws:s3:::", resolve(prod.built.backups.backups.bucket.bucket_name), "/"]]},
                    # The DR replica (another region): a multi-region trail logs it because the selector names it.
                    "arn:aws:s3:::" + resolve(prod.built.backups_replica.backups.bucket.bucket_name) + "/"]}]}]})
    template.has_resource_properties("AWS::S3::Bucket", {
        "BucketName": Match.absent(), "ObjectLockEnabled": True,
        "ObjectLockConfiguration": {"ObjectLockEnabled": "Enabled",
                                    "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 365}}},
        "VersioningConfiguration": {"Status": "Enabled"},
        "LoggingConfiguration": {"DestinationBucketName": resolve(trail.access_logs.bucket.bucket_name),
                                 "LogFilePrefix": "trail-bucket/"},
        "BucketEncryption": {"ServerSideEncryptionConfiguration": [{
            "BucketKeyEnabled": True, "ServerSideEncryptionByDefault": {
                "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": resolve(trail.key.key_arn)}}]}})
    template.has_resource_properties("AWS::S3::BucketPolicy", {
        "Bucket": resolve(trail.bucket.bucket_name), "PolicyDocument": {"Statement": Match.array_with([
            Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}),
            Match.object_like({"Action": "s3:PutObject", "Principal": {"Service": "cloudtrail.amazonaws.com"}})])}})
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True, "KeyPolicy": {
        "Statement": Match.array_with([Match.object_like({
            "Sid": "CloudTrailEncryptsThisTrailsLogs", "Action": "kms:GenerateDataKey*",
            "Condition": {"StringEquals": {"aws:SourceArn": resolve(trail.trail_arn)},
                          "StringLike": Match.any_value()}})])}})


def test_a_named_trail_creates_none_and_warns_what_it_must_log(synthesized):
    env = synthesized["dev-trail"]
    template = env.templates["Tavari-Dev-TamperWatch"]
    assert not [r for r in template["Resources"].values() if r["Type"] == "AWS::CloudTrail::Trail"]
    (warning,) = [w for w in env.warnings if "security.trail_arn" in w]
    assert EXISTING_TRAIL_ARN in warning and "write data events" in warning
    assert "Tavari-Dev-TamperWatch" not in " ".join(w for w in synthesized["dev"].warnings if "trail_arn" in w)
    watch = rules_of(template)["tavari-dev-tamper-watch"]["EventPattern"]["$or"][0]
    assert watch["detail"]["requestParameters"]["name"] == [EXISTING_TRAIL_ARN, "org-trail"]
    assert template["Outputs"]["TrailArn"]["Value"] == EXISTING_TRAIL_ARN
    expectation = env.built.tamper_watch.expectation
    assert expectation["trail_arn"] == EXISTING_TRAIL_ARN and expectation["trail_created"] is False


def test_cross_account_replicas_are_watched_in_the_backup_account(synthesized):
    env = synthesized["prod-xacct"]
    stacks = {s.stack_name: s for s in env.built.tamper_watch.stacks}
    backup_dr, backup_global = stacks["Tavari-Prod-TamperWatchBackupDr"], stacks["Tavari-Prod-TamperWatchBackupGlobal"]
    assert (backup_dr.account, backup_dr.region, backup_global.account, backup_global.region) == (
        XACCT, "eu-central-1", XACCT, "us-east-1")
    # No organization trail named: the backup account gets its own, logging the backup replica's writes.
    assert backup_dr.trail is not None
    assert set(backup_dr.rules) == {"keys", "buckets", "objects", "watch", "break-glass"}
    assert backup_dr.resolve(backup_dr.protected.break_glass_role_arn)["Fn::Join"][1][-1].startswith(
        f":iam::{XACCT}:role/")
    # The primary account's DR region keeps the secret replicas' key only.
    dr = stacks["Tavari-Prod-TamperWatchDr"]
    assert dr.resolve(list(dr.protected.keys)) == [dr.resolve(env.built.secrets_replica_key.key.key_arn)]
    primary = Template.from_json(env.templates["Tavari-Prod-TamperWatch"])
    primary.has_resource_properties("AWS::Events::EventBusPolicy", {
        "EventBusName": "default", "Statement": Match.object_like({
            "Effect": "Allow", "Action": "events:PutEvents",
            "Principal": {"AWS": f"arn:aws:iam::{XACCT}:root"},
            "Resource": f"arn:aws:events:eu-west-1:{ACCOUNT}:event-bus/default"})})
    forwarded = rules_of(env.templates["Tavari-Prod-TamperWatch"])["tavari-prod-tamper-forwarded-objects"]
    assert sorted(forwarded["EventPattern"]["account"]) == sorted([ACCOUNT, XACCT])
    # The daily monitor (primary account) checks only what it can read.
    assert set(env.built.tamper_watch.expectation["rules"]) == {"eu-west-1", "eu-central-1", "us-east-1"}


def test_the_daily_monitor_checks_the_tamper_watch(prod):
    backups = prod.templates["Tavari-Prod-DatabaseBackups"]
    daily = prod.built.backups.verification.functions["daily_monitor"]
    resolve = Stack.of(daily.function).resolve
    (function,) = [r for r in backups["Resources"].values() if r["Type"] == "AWS::Lambda::Function"
                   and r["Properties"].get("Description") == "Backup verification: daily_monitor"]
    variables = function["Properties"]["Environment"]["Variables"]
    assert "TAVARI_TAMPER_WATCH" in variables
    expectation = prod.built.tamper_watch.expectation
    assert expectation["rules"]["eu-west-1"][0] == "tavari-prod-tamper-keys"
    assert expectation["rules"]["eu-central-1"] == [f"tavari-prod-tamper-{k}" for k in
                                                   ("keys", "buckets", "objects", "watch", "break-glass")]
    statements = [s for r in backups["Resources"].values() if r["Type"] == "AWS::IAM::Policy"
                  and r["Properties"]["Roles"] == [resolve(daily.role.role_name)]
                  for s in r["Properties"]["PolicyDocument"]["Statement"]]
    (rules,) = [s for s in statements if s["Action"] == ["events:DescribeRule", "events:ListTargetsByRule"]]
    assert len(rules["Resource"]) == sum(len(names) for names in expectation["rules"].values())
    assert all("*" not in json.dumps(r) for r in rules["Resource"])
    (trail,) = [s for s in statements if s["Action"] == ["cloudtrail:GetEventSelectors", "cloudtrail:GetTrailStatus"]]
    assert trail["Resource"] == resolve(expectation["trail_arn"])


def test_every_tamper_alert_links_a_runbook_section_that_exists(prod):
    anchors = alarm_runbook_sections()
    linked = {json.loads(rule["Targets"][0]["InputTransformer"]["InputTemplate"].replace("<detail-eventTime>", '""'))
              ["runbook"].split("#")[1] for rule in rules_of(prod.templates["Tavari-Prod-TamperWatch"]).values()}
    assert linked == {"tampering-keys", "tampering-buckets", "tampering-objects", "tampering-secrets",
                      "tampering-watch", "break-glass"}
    assert linked | {"tampering"} <= anchors
