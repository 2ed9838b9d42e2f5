"""The daily monitor's tamper_watch check on moto: the trail logs (and logs the backup buckets' write
data events), every tamper rule is enabled with its target, in both regions."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from tavari_dr.core.config import VerificationConfig
from tavari_dr.verification import checks
from tavari_dr.verification import jobs as v

pytestmark = pytest.mark.moto
ACCOUNT = "123456789012"  # moto's default account
PRIMARY, DR = "eu-west-1", "eu-central-1"
PREFIX = "tavari-prod-tamper-"
TOPIC_PREFIX = f"arn:aws:sns:{PRIMARY}:{ACCOUNT}:"
BUS_ARN = f"arn:aws:events:{PRIMARY}:{ACCOUNT}:event-bus/default"
BACKUPS, REPLICA = "tavari-backups", "tavari-backups-replica"
SELECTORS = [
    {"Name": "Every management event", "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}]},
    {"Name": "Write data events on the database backup buckets",
     "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Data"]},
                        {"Field": "resources.type", "Equals": ["AWS::S3::Object"]},
                        {"Field": "readOnly", "Equals": ["false"]},
                        {"Field": "resources.ARN", "StartsWith": [f"arn:aws:s3:::{BACKUPS}/",
                                                                 f"arn:aws:s3:::{REPLICA}/"]}]},
]
PRIMARY_RULES = [PREFIX + k for k in ("keys", "buckets", "objects", "secrets", "watch", "break-glass",
                                      "forwarded-keys", "forwarded-break-glass")]
DR_RULES = [PREFIX + k for k in ("keys", "buckets", "objects", "watch", "break-glass")]


def client(service: str, region: str):
    return boto3.client(service, region_name=region)


def install() -> dict:
    """Inside mock_aws: the tamper watch as the stacks leave it (a logging multi-region trail with its
    selectors, the primary rules on the alert topic, the DR rules on the primary region's bus); returns
    the expectation the TamperWatch stack would give the daily monitor."""
    s3 = client("s3", PRIMARY)
    s3.create_bucket(Bucket="trail-logs", CreateBucketConfiguration={"LocationConstraint": PRIMARY})
    trails = client("cloudtrail", PRIMARY)
    arn = trails.create_trail(Name="tavari-prod-tamper-trail", S3BucketName="trail-logs",
                              IsMultiRegionTrail=True, EnableLogFileValidation=True)["TrailARN"]
    trails.put_event_selectors(TrailName=arn, AdvancedEventSelectors=SELECTORS)
    trails.start_logging(Name="tavari-prod-tamper-trail")  # moto starts and stops by name only
    topic = client("sns", PRIMARY).create_topic(Name="alerts")["TopicArn"]
    for region, names, target in ((PRIMARY, PRIMARY_RULES, topic), (DR, DR_RULES, BUS_ARN)):
        events = client("events", region)
        for name in names:
            state = checks.ENABLED_RULE_STATES[1] if name.endswith("break-glass") else "ENABLED"
            events.put_rule(Name=name, EventPattern=json.dumps({"source": ["aws.kms"]}), State=state)
            events.put_targets(Rule=name, Targets=[{"Id": "Target0", "Arn": target}])
    return {"rule_prefix": PREFIX, "primary_region": PRIMARY, "rules": {PRIMARY: PRIMARY_RULES, DR: DR_RULES},
            "targets": {PRIMARY: TOPIC_PREFIX, DR: BUS_ARN}, "trail_arn": arn, "trail_created": True,
            "data_event_bucket_arns": [f"arn:aws:s3:::{BACKUPS}", f"arn:aws:s3:::{REPLICA}"]}


@pytest.fixture
def deployed():
    with mock_aws():
        yield install()


def run(expect):
    return checks.run_check("tamper_watch", lambda r: checks.tamper_watch(r, client=client, expect=expect))


def test_an_intact_tamper_watch_passes(deployed):
    result = run(deployed)
    assert result.status == checks.PASS, result.details
    assert result.measured == {"trail": deployed["trail_arn"], "trail_logging": True,
                               "rules_checked": len(PRIMARY_RULES) + len(DR_RULES)}


def test_a_stopped_trail_fails(deployed):
    client("cloudtrail", PRIMARY).stop_logging(Name="tavari-prod-tamper-trail")
    result = run(deployed)
    assert result.status == checks.FAIL
    assert result.details == [f"trail {deployed['trail_arn']} is not logging: no tamper rule sees anything"]


def test_selectors_that_drop_a_backup_bucket_fail(deployed):
    narrowed = json.loads(json.dumps(SELECTORS))
    narrowed[1]["FieldSelectors"][3]["StartsWith"] = [f"arn:aws:s3:::{BACKUPS}/"]
    client("cloudtrail", PRIMARY).put_event_selectors(TrailName=deployed["trail_arn"], AdvancedEventSelectors=narrowed)
    result = run(deployed)
    assert result.status == checks.FAIL
    assert result.details == [f"trail {deployed['trail_arn']} does not log write data events of "
                              f"arn:aws:s3:::{REPLICA}"]


def test_selectors_without_management_events_fail(deployed):
    client("cloudtrail", PRIMARY).put_event_selectors(TrailName=deployed["trail_arn"],
                                                      AdvancedEventSelectors=SELECTORS[1:])
    assert "no longer logs management events" in run(deployed).details[0]


def test_a_named_trail_is_only_checked_for_logging(deployed):
    # An organization trail's selectors are not this app's: only IsLogging is read.
    client("cloudtrail", PRIMARY).put_event_selectors(TrailName=deployed["trail_arn"],
                                                      AdvancedEventSelectors=SELECTORS[:1])
    assert run({**deployed, "trail_created": False}).status == checks.PASS


def test_disabled_deleted_or_retargeted_rules_fail_in_either_region(deployed):
    client("events", DR).disable_rule(Name=PREFIX + "objects")
    client("events", PRIMARY).remove_targets(Rule=PREFIX + "keys", Ids=["Target0"])
    client("events", DR).remove_targets(Rule=PREFIX + "watch", Ids=["Target0"])
    client("events", DR).delete_rule(Name=PREFIX + "watch")
    client("events", PRIMARY).put_targets(Rule=PREFIX + "buckets", Targets=[
        {"Id": "Target0", "Arn": f"arn:aws:sqs:{PRIMARY}:{ACCOUNT}:elsewhere"}])
    result = run(deployed)
    assert result.status == checks.FAIL
    assert sorted(result.details) == sorted([
        f"rule {PREFIX}objects ({DR}) is DISABLED",
        f"rule {PREFIX}keys ({PRIMARY}) targets nothing, not {TOPIC_PREFIX}",
        f"rule {PREFIX}watch ({DR}) does not exist",
        f"rule {PREFIX}buckets ({PRIMARY}) targets ['arn:aws:sqs:{PRIMARY}:{ACCOUNT}:elsewhere'], not {TOPIC_PREFIX}",
    ])


def test_a_missing_trail_is_an_error_not_a_pass(deployed):
    result = run({**deployed, "trail_arn": f"arn:aws:cloudtrail:{PRIMARY}:{ACCOUNT}:trail/gone"})
    assert result.status == checks.ERROR


def test_basic_event_selectors_count_too():
    assert checks._logs_object_writes({"EventSelectors": [{"ReadWriteType": "WriteOnly", "DataResources": [
        {"Type": "AWS::S3::Object", "Values": [f"arn:aws:s3:::{BACKUPS}/"]}]}]}, f"arn:aws:s3:::{BACKUPS}")
    assert not checks._logs_object_writes({"EventSelectors": [{"ReadWriteType": "ReadOnly", "DataResources": [
        {"Type": "AWS::S3::Object", "Values": [f"arn:aws:s3:::{BACKUPS}/"]}]}]}, f"arn:aws:s3:::{BACKUPS}")
    # A selector for one prefix does not log the whole bucket.
    assert not checks._logs_object_writes({"AdvancedEventSelectors": [{"FieldSelectors": [
        {"Field": "eventCategory", "Equals": ["Data"]}, {"Field": "resources.type", "Equals": ["AWS::S3::Object"]},
        {"Field": "resources.ARN", "StartsWith": [f"arn:aws:s3:::{BACKUPS}/dumps/"]}]}]}, f"arn:aws:s3:::{BACKUPS}")


def test_the_daily_monitor_runs_it_and_an_unconfigured_expectation_is_an_error(deployed):
    targets = v.Targets(invoice_bucket="i", invoice_key_arn=None, archive_after_days=90,
                        archive_storage_class="GLACIER_IR", backup_bucket="b", reports_bucket="r", scratch_bucket="s",
                        tamper_watch=json.dumps(deployed))
    clients = v.Clients(s3=None, replica_s3=None, cloudwatch=None, secretsmanager=None, regional=client)
    assert "tamper_watch" in v.JOBS["daily_monitor"]
    (result,) = v.run_checks(("tamper_watch",), clients=clients, targets=targets, settings=VerificationConfig(),
                             rpo_hours=24, now=None)
    assert result.status == checks.PASS, result.details
    (missing,) = v.run_checks(("tamper_watch",), clients=clients, targets=v.Targets(**{**targets.__dict__,
                                                                                      "tamper_watch": None}),
                              settings=VerificationConfig(), rpo_hours=24, now=None)
    assert missing.status == checks.ERROR and "TAVARI_TAMPER_WATCH" in missing.details[0]
