"""Realistic CloudTrail events (the shapes of the AWS docs' example log entries, delivered by
EventBridge as "AWS API Call via CloudTrail") through the tamper rules' patterns: every listed
event on a protected resource matches; the same event on an unrelated one does not."""

from __future__ import annotations

import copy

import pytest

from backup_constructs.tamper_watch import (
    ALARM_EVENTS,
    ASSUME_EVENTS,
    BUCKET_EVENTS,
    KEY_EVENTS,
    RULE_EVENTS,
    SECRET_EVENTS,
    TRAIL_EVENTS,
    Protected,
    event_pattern,
    forwarded_pattern,
)
from tests.event_patterns import matches

ACCOUNT = "123456789012"
REGION = "eu-west-1"
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{KEY_ID}"
OTHER_KEY_ID = "0987dcba-09ba-43dc-65fe-0987654321ba"
BUCKET, BACKUPS, OTHER_BUCKET = "tavari-invoices-x1", "tavari-backups-x1", "someone-elses-bucket"
SECRET_ARN = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:SupabaseUrl-AbCdEf"
OTHER_SECRET_ARN = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:unrelated-ZyXwVu"
TRAIL_ARN = f"arn:aws:cloudtrail:{REGION}:{ACCOUNT}:trail/tavari-prod-tamper-trail"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/tavari-break-glass"
PREFIX = "tavari-prod-tamper-"

PROTECTED = Protected(rule_prefix=PREFIX, break_glass_role_arn=ROLE_ARN, keys=(KEY_ARN,),
                      buckets=(BUCKET, BACKUPS), backup_buckets=(BACKUPS,), secrets=(SECRET_ARN,),
                      trails=(TRAIL_ARN, "tavari-prod-tamper-trail"), alarm_prefix="Tavari-Prod-")
ALARM = "Tavari-Prod-Monitoring-BackupAgeAlarmA1B2C3D4-1A2B3C4D5E6F"
ALICE = {"type": "IAMUser", "principalId": "EX_PRINCIPAL_ID", "arn": f"arn:aws:iam::{ACCOUNT}:user/Alice",
         "accountId": ACCOUNT, "accessKeyId": "EXAMPLE_KEY_ID", "userName": "Alice"}


def delivered(detail: dict, *, region: str = REGION, account: str = ACCOUNT) -> dict:
    """CloudTrail's record as EventBridge delivers it (source aws.<service>, the record as detail)."""
    return {"version": "0", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718", "detail-type": "AWS API Call via CloudTrail",
            "source": "aws." + detail["eventSource"].split(".")[0], "account": account,
            "time": detail["eventTime"], "region": region, "resources": [],
            "detail": {"eventVersion": "1.08", "userIdentity": ALICE, "eventTime": "2026-03-23T18:58:30Z",
                       "awsRegion": region, "sourceIPAddress": "192.0.2.0", "userAgent": "aws-cli/2",
                       "requestID": "ee408f36-ea01-422b-ac14-b0f147c68334",
                       "eventID": "3c4226b0-1e81-48a8-a333-7fa5f3cbd118", "eventType": "AwsApiCall",
                       "recipientAccountId": account, "managementEvent": True, "eventCategory": "Management",
                       **detail}}


def kms(name: str, key_id: str, key_arn: str) -> dict:
    # The AWS docs' ScheduleKeyDeletion entry: keyId as the caller passed it (the bare ID), the ARN in resources.
    parameters = {"keyId": key_id, **({"pendingWindowInDays": 20} if name == "ScheduleKeyDeletion" else {}),
                  **({"policyName": "default", "policy": "{}"} if name == "PutKeyPolicy" else {})}
    return delivered({"eventSource": "kms.amazonaws.com", "eventName": name, "eventTime": "2026-03-23T18:58:30Z",
                      "requestParameters": parameters, "responseElements": None, "readOnly": False,
                      "resources": [{"accountId": ACCOUNT, "type": "AWS::KMS::Key", "ARN": key_arn}]})


def s3_bucket_call(name: str, bucket: str) -> dict:
    return delivered({"eventSource": "s3.amazonaws.com", "eventName": name, "eventTime": "2026-03-23T18:58:30Z",
                      "requestParameters": {"bucketName": bucket, "Host": f"{bucket}.s3.{REGION}.amazonaws.com"},
                      "responseElements": None, "readOnly": False,
                      "resources": [{"accountId": ACCOUNT, "type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{bucket}"}],
                      "additionalEventData": {"SignatureVersion": "SigV4", "AuthenticationMethod": "AuthHeader"}})


def s3_object_call(name: str, bucket: str, key: str, **parameters: object) -> dict:
    event = delivered({"eventSource": "s3.amazonaws.com", "eventName": name, "eventTime": "2026-03-23T18:58:30Z",
                       "requestParameters": {"bucketName": bucket, "Host": f"{bucket}.s3.{REGION}.amazonaws.com",
                                             "key": key, **parameters},
                       "responseElements": None, "readOnly": False,
                       "resources": [{"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{key}"},
                                     {"accountId": ACCOUNT, "type": "AWS::S3::Bucket",
                                      "ARN": f"arn:aws:s3:::{bucket}"}],
                       "additionalEventData": {"SignatureVersion": "SigV4", "bytesTransferredIn": 0}})
    event["detail"].update(managementEvent=False, eventCategory="Data")
    return event


def secret_call(name: str, arn: str, *, spelling: str = "arn") -> dict:
    return delivered({"eventSource": "secretsmanager.amazonaws.com", "eventName": name,
                      "eventTime": "2026-03-23T18:58:30Z",
                      "requestParameters": {"secretId": arn.rsplit(":", 1)[-1][:-7], "recoveryWindowInDays": 7},
                      "responseElements": {spelling: arn, "name": arn.rsplit(":", 1)[-1][:-7]}, "readOnly": False})


def named_call(source: str, name: str, field: str, value: str) -> dict:
    return delivered({"eventSource": source, "eventName": name, "eventTime": "2026-03-23T18:58:30Z",
                      "requestParameters": {field: value}, "responseElements": None, "readOnly": False})


def assume(name: str, role_arn: str, *, region: str = REGION) -> dict:
    return delivered({"eventSource": "sts.amazonaws.com", "eventName": name, "eventTime": "2026-03-23T18:58:30Z",
                      "requestParameters": {"roleArn": role_arn, "roleSessionName": "oncall-alice",
                                            "durationSeconds": 3600},
                      "responseElements": {"assumedRoleUser": {"arn": f"{role_arn}/oncall-alice"}},
                      "readOnly": True}, region=region)


def pattern(kind: str) -> dict:
    return event_pattern(kind, PROTECTED, REGION)


@pytest.mark.parametrize("name", KEY_EVENTS)
def test_key_events_match_the_protected_key_by_its_arn_in_resources(name):
    assert matches(pattern("keys"), kms(name, KEY_ID, KEY_ARN))
    assert not matches(pattern("keys"), kms(name, OTHER_KEY_ID, f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{OTHER_KEY_ID}"))
    assert not matches(pattern("keys"), kms("EnableKey", KEY_ID, KEY_ARN))


@pytest.mark.parametrize("name", BUCKET_EVENTS)
def test_bucket_configuration_events_match_protected_buckets(name):
    assert matches(pattern("buckets"), s3_bucket_call(name, BUCKET))
    assert matches(pattern("buckets"), s3_bucket_call(name, BACKUPS))
    assert not matches(pattern("buckets"), s3_bucket_call(name, OTHER_BUCKET))


def test_lifecycle_puts_match_under_cloudtrails_event_name():
    # CloudTrail names a PutBucketLifecycleConfiguration call PutBucketLifecycle.
    assert matches(pattern("buckets"), s3_bucket_call("PutBucketLifecycle", BUCKET))
    assert not matches(pattern("buckets"), s3_bucket_call("GetBucketLifecycle", BUCKET))


@pytest.mark.parametrize(("case", "event"), [
    ("version delete (s3:DeleteObjectVersion)", s3_object_call("DeleteObject", BACKUPS, "manifests/x.json",
                                                              versionId="3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY")),
    ("delete under dumps/", s3_object_call("DeleteObject", BACKUPS, "dumps/daily/20260323T0100/data.dump")),
    ("delete with the governance bypass", s3_object_call(
        "DeleteObject", BACKUPS, "dumps/daily/x/data.dump", versionId="v1",
        **{"x-amz-bypass-governance-retention": "true"})),
    ("multi-object delete", s3_object_call("DeleteObjects", BACKUPS, "", delete="")),
    # The continuous capture's segments beside the dumps are watched the same way (no prefix filter).
    ("delete marker over a change segment", s3_object_call(
        "DeleteObject", BACKUPS, "changes/segments/2027/03/01/00/20270301T000000Z-0000000001000000-1.seg")),
    ("version delete of a change segment", s3_object_call(
        "DeleteObject", BACKUPS, "changes/segments/2027/03/01/00/20270301T000000Z-0000000001000000-1.seg",
        versionId="v1")),
    ("retention shortened with the bypass header", s3_object_call(
        "PutObjectRetention", BACKUPS, "dumps/daily/x/data.dump", retention="",
        **{"x-amz-bypass-governance-retention": "true"})),
    ("retention with the SDK's parameter name", s3_object_call(
        "PutObjectRetention", BACKUPS, "dumps/daily/x/data.dump", bypassGovernanceRetention=True)),
])
def test_object_tampering_in_a_backup_bucket_matches(case, event):
    assert matches(pattern("objects"), event), case
    other = copy.deepcopy(event)
    other["detail"]["requestParameters"]["bucketName"] = OTHER_BUCKET
    assert not matches(pattern("objects"), other), case
    # Object events in the invoice bucket are not the backup buckets' (its configuration is watched).
    other["detail"]["requestParameters"]["bucketName"] = BUCKET
    assert not matches(pattern("objects"), other), case


def test_the_nightly_jobs_own_writes_do_not_alarm():
    nightly_retention = s3_object_call("PutObjectRetention", BACKUPS, "dumps/daily/x/data.dump", retention="")
    assert not matches(pattern("objects"), nightly_retention)
    assert not matches(pattern("objects"), s3_object_call("PutObject", BACKUPS, "dumps/daily/x/data.dump"))
    assert not matches(pattern("objects"), s3_object_call("CompleteMultipartUpload", BACKUPS, "dumps/d/x.dump"))


@pytest.mark.parametrize("name", SECRET_EVENTS)
@pytest.mark.parametrize("spelling", ["arn", "aRN"])
def test_secret_events_match_the_projects_secrets(name, spelling):
    assert matches(pattern("secrets"), secret_call(name, SECRET_ARN, spelling=spelling))
    assert not matches(pattern("secrets"), secret_call(name, OTHER_SECRET_ARN, spelling=spelling))


def test_a_denied_secret_call_by_arn_still_matches():
    denied = secret_call("DeleteSecret", SECRET_ARN)
    denied["detail"].update(errorCode="AccessDenied", responseElements=None)
    denied["detail"]["requestParameters"]["secretId"] = SECRET_ARN
    assert matches(pattern("secrets"), denied)


@pytest.mark.parametrize("name", TRAIL_EVENTS)
@pytest.mark.parametrize("value", [TRAIL_ARN, "tavari-prod-tamper-trail"])
def test_trail_events_on_the_trail_match(name, value):
    assert matches(pattern("watch"), named_call("cloudtrail.amazonaws.com", name, "name", value))
    assert not matches(pattern("watch"), named_call("cloudtrail.amazonaws.com", name, "name", "another-trail"))


@pytest.mark.parametrize("name", RULE_EVENTS)
def test_rule_events_on_the_tamper_rules_match(name):
    field = "rule" if name in ("RemoveTargets", "PutTargets") else "name"
    assert matches(pattern("watch"), named_call("events.amazonaws.com", name, field, PREFIX + "keys"))
    assert matches(pattern("watch"), named_call("events.amazonaws.com", name, field, PREFIX + "watch"))
    assert not matches(pattern("watch"), named_call("events.amazonaws.com", name, field, "someone-elses-rule"))


def alarm_call(name: str, alarm: str) -> dict:
    # CloudTrail's request parameters: one alarmName for the Put* calls, a list alarmNames for the others.
    parameters = {"alarmName": alarm, "threshold": 1e12, "alarmActions": [], "comparisonOperator":
                  "GreaterThanThreshold", "evaluationPeriods": 1, "period": 300} if name.startswith("Put") \
        else {"alarmNames": ["another-alarm", alarm]}
    return delivered({"eventSource": "monitoring.amazonaws.com", "eventName": name,
                      "eventTime": "2026-03-23T18:58:30Z", "requestParameters": parameters,
                      "responseElements": None, "readOnly": False})


@pytest.mark.parametrize("name", ALARM_EVENTS)
def test_alarm_changes_on_the_apps_alarms_match(name):
    assert matches(pattern("watch"), alarm_call(name, ALARM))
    assert not matches(pattern("watch"), alarm_call(name, "Tavari-Dev-Monitoring-BackupAgeAlarm-X"))
    assert not matches(pattern("watch"), alarm_call(name, "someone-elses-alarm"))
    forwarded = alarm_call(name, ALARM)
    forwarded.update(region="us-east-1")
    assert matches(forwarded_pattern("watch", ["us-east-1"], [ACCOUNT]), forwarded)


def test_an_alarm_state_set_by_hand_does_not_match():
    # SetAlarmState changes no definition: the next evaluation puts the alarm back (and runs its actions).
    event = delivered({"eventSource": "monitoring.amazonaws.com", "eventName": "SetAlarmState",
                       "eventTime": "2026-03-23T18:58:30Z", "requestParameters": {
                           "alarmName": ALARM, "stateValue": "OK", "stateReason": "test"},
                       "responseElements": None, "readOnly": False})
    assert not matches(pattern("watch"), event)
    # A site without alarms (alarm_prefix empty) watches none.
    assert not matches(event_pattern("watch", Protected(rule_prefix=PREFIX, break_glass_role_arn=ROLE_ARN), REGION),
                       alarm_call("DeleteAlarms", ALARM))


@pytest.mark.parametrize("name", ASSUME_EVENTS)
def test_every_assumption_of_the_break_glass_role_matches(name):
    assert matches(pattern("break-glass"), assume(name, ROLE_ARN))
    assert not matches(pattern("break-glass"), assume(name, f"arn:aws:iam::{ACCOUNT}:role/tavari-app"))


def test_a_rule_matches_only_its_own_regions_events():
    # The primary bus also receives the other regions' forwarded events: they must not match twice.
    assert not matches(pattern("break-glass"), assume("AssumeRole", ROLE_ARN, region="eu-central-1"))
    forwarded = forwarded_pattern("break-glass", ["eu-central-1", "us-east-1"], [ACCOUNT])
    assert matches(forwarded, assume("AssumeRole", ROLE_ARN, region="us-east-1"))
    assert not matches(forwarded, assume("AssumeRole", ROLE_ARN, region=REGION))


def test_forwarded_events_keep_their_kind():
    forwarded = forwarded_pattern("keys", ["eu-central-1"], [ACCOUNT])
    event = kms("ScheduleKeyDeletion", KEY_ID, KEY_ARN)
    event.update(region="eu-central-1")
    assert matches(forwarded, event)
    assert not matches(forwarded_pattern("buckets", ["eu-central-1"], [ACCOUNT]), event)
    event.update(account="999999999999")
    assert not matches(forwarded, event)


def test_the_matcher_itself_can_say_no():
    assert matches({"a": {"b": ["x"]}}, {"a": [{"b": "y"}, {"b": "x"}]})
    assert not matches({"a": {"b": ["x"]}}, {"a": [{"b": "y"}]})
    assert not matches({"a": ["true"]}, {"a": True})
    assert matches({"a": [{"exists": False}]}, {"b": 1})
    assert not matches({"a": [{"prefix": "ab"}]}, {"a": "xab"})
    assert not matches({"$or": [{"a": ["1"]}, {"b": ["2"]}], "c": ["3"]}, {"a": "1", "c": "4"})
    with pytest.raises(NotImplementedError):
        matches({"a": [{"suffix": "x"}]}, {"a": "x"})
