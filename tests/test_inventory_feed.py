"""The invoice bucket's S3 Inventory, change feed, Athena tables and canary as synthesized, in every
cdk.json environment (docs/formats/inventory-and-feed.md is the contract these hold the templates to)."""

from __future__ import annotations

import copy
import json

import pytest

from tavari_dr.core import metrics, outputs
from tavari_dr.core.config import load_environment
from tests.conftest import alarm_runbook_sections, cdk_context
from tests.event_patterns import matches, transform
from tests.policy_eval import Request, bucket_arn, bucket_policies, decide, key_policies

ENVIRONMENTS = list(cdk_context()["environments"])
STORAGE = outputs.INVOICE_STORAGE
INVOICES = "InvoicesBucketB61C805D"
OPS = "RestoreOpsManifestsBucket3B1C06F8"
OPS_KEY = "RestoreOpsManifestsKey94061A12"
ACCOUNT, REGION = "123456789012", "eu-west-1"


def storage(synthesized, env_name):
    return synthesized[env_name].templates[synthesized[env_name].stack(STORAGE)]


def of_type(template, kind):
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def settings(env_name):
    return load_environment({**cdk_context(), "env": env_name}).inventory


def feed_rules(template):
    rules = {}
    for rule in of_type(template, "AWS::Events::Rule").values():
        description = rule["Properties"].get("Description", "")
        if description.startswith("Change feed of the invoice bucket: "):
            rules[description.split(": ", 1)[1].split(" ")[0]] = rule["Properties"]
    return rules


def s3_event(detail_type, obj, deletion_type=None, bucket="tavari-invoices"):
    """An S3 event as EventBridge delivers it (S3 User Guide, "EventBridge event message structure")."""
    detail = {"version": "0", "bucket": {"name": bucket}, "object": obj, "request-id": "N4N7GDK58NMKJ12R",
              "requester": ACCOUNT, "source-ip-address": "1.2.3.4",
              "reason": "PutObject" if detail_type == "Object Created" else "DeleteObject"}
    if deletion_type:
        detail["deletion-type"] = deletion_type
    return {"version": "0", "id": "17793124-05d4-b198-2fde-7ededc63b103", "detail-type": detail_type,
            "source": "aws.s3", "account": ACCOUNT, "time": "2026-12-01T17:40:12Z", "region": REGION,
            "resources": [f"arn:aws:s3:::{bucket}"], "detail": detail}


# A key a JSON template could break on: quotes, a backslash, a plus and a space.
AWKWARD_KEY = 'invoices/2026/"quoted" back\\slash a+b.pdf'
EVENTS = {
    "put": s3_event("Object Created", {"key": AWKWARD_KEY, "size": 5, "etag": "b1946ac92492d2347c6235b4d2611184",
                                       "version-id": "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
                                       "sequencer": "617f08299329d189"}),
    "delete_marker": s3_event("Object Deleted", {"key": AWKWARD_KEY, "version-id": "1QW9g1Z99LUNbvaaYVpW9xDlOLU.qxgF",
                                                 "sequencer": "617f0837b476e463"}, "Delete Marker Created"),
    "permanent_delete": s3_event("Object Deleted", {"key": AWKWARD_KEY,
                                                    "version-id": "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
                                                    "sequencer": "617f0837b476e46300"}, "Permanently Deleted"),
}


def resolved_pattern(rule):
    """The rule's pattern with the invoice bucket's Ref as the sample events' bucket name."""
    text = json.dumps(rule["EventPattern"]).replace(json.dumps({"Ref": INVOICES}), '"tavari-invoices"')
    return json.loads(text)


@pytest.mark.parametrize("env_name", ENVIRONMENTS)
def test_the_invoice_bucket_inventories_every_version_daily_in_parquet_into_the_restore_ops_bucket(
        synthesized, env_name):
    bucket = storage(synthesized, env_name)["Resources"][INVOICES]["Properties"]
    (inventory,) = bucket["InventoryConfigurations"]
    account = load_environment({**cdk_context(), "env": env_name}).account
    assert inventory == {
        "Id": outputs.INVENTORY_CONFIGURATION_ID, "Enabled": True, "IncludedObjectVersions": "All",
        "ScheduleFrequency": "Daily", "OptionalFields": ["Size", "LastModifiedDate", "ETag", "StorageClass",
                                                         "IsMultipartUploaded"],
        "Destination": {"BucketArn": {"Fn::GetAtt": [OPS, "Arn"]}, "Format": "Parquet", "Prefix": "inventory",
                        "BucketAccountId": account or {"Ref": "AWS::AccountId"}}}
    assert bucket["NotificationConfiguration"] == {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}


@pytest.mark.parametrize("env_name", ENVIRONMENTS)
def test_s3_may_deliver_the_inventory_of_this_bucket_only_and_encrypt_it_with_the_restore_ops_key(
        synthesized, env_name):
    template = storage(synthesized, env_name)
    policy = bucket_policies(template, account=ACCOUNT, region=REGION)[OPS]
    delivery = Request("s3.amazonaws.com", "s3:PutObject",
                       f"{bucket_arn(OPS)}/inventory/tavari-invoices/all-versions/data/x.parquet",
                       {"aws:SourceArn": bucket_arn(INVOICES), "aws:SourceAccount": ACCOUNT,
                        "s3:x-amz-acl": "bucket-owner-full-control"})
    service = [s for s in policy["Statement"] if s.get("Principal") == {"Service": "s3.amazonaws.com"}]
    assert len(service) == 1 and decide({"Statement": service}, delivery) == "allow"
    for other in ({**delivery.context, "aws:SourceArn": "arn:aws:s3:::someone-elses"},
                  {**delivery.context, "aws:SourceAccount": "999999999999"}):
        assert decide({"Statement": service}, Request(delivery.principal_arn, delivery.action, delivery.resource,
                                                      other)) == "implicit"
    elsewhere = Request(delivery.principal_arn, delivery.action, f"{bucket_arn(OPS)}/feed/x", delivery.context)
    assert decide({"Statement": service}, elsewhere) == "implicit"
    key = key_policies(template, account=ACCOUNT, region=REGION)[OPS_KEY]
    (grant,) = [s for s in key["Statement"] if s.get("Sid") == "AllowS3InventoryEncryption"]
    assert grant["Principal"] == {"Service": "s3.amazonaws.com"} and grant["Action"] == "kms:GenerateDataKey"
    assert grant["Condition"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT}


@pytest.mark.parametrize("env_name", ENVIRONMENTS)
def test_one_rule_per_kind_matches_exactly_its_events(synthesized, env_name):
    rules = feed_rules(storage(synthesized, env_name))
    assert set(rules) == {"put", "delete_marker", "permanent_delete"}
    for kind, rule in rules.items():
        pattern = resolved_pattern(rule)
        for other, event in EVENTS.items():
            assert matches(pattern, event) == (other == kind), (kind, other)
        assert not matches(pattern, {**EVENTS[kind], "detail": {**EVENTS[kind]["detail"],
                                                                "bucket": {"name": "another-bucket"}}})
        restore = s3_event("Object Restore Completed", EVENTS["put"]["detail"]["object"])
        assert not matches(pattern, restore)


@pytest.mark.parametrize("env_name", ENVIRONMENTS)
def test_each_rule_writes_the_documented_flat_line_whatever_the_key_holds(synthesized, env_name):
    common = {"event_id": "17793124-05d4-b198-2fde-7ededc63b103", "event_time": "2026-12-01T17:40:12Z",
              "bucket": "tavari-invoices", "key": AWKWARD_KEY}
    expected = {
        "put": {**common, "version_id": "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e", "sequencer": "617f08299329d189",
                "kind": "put", "size": 5, "etag": "b1946ac92492d2347c6235b4d2611184"},
        "delete_marker": {**common, "version_id": "1QW9g1Z99LUNbvaaYVpW9xDlOLU.qxgF",
                          "sequencer": "617f0837b476e463", "kind": "delete_marker", "size": None, "etag": None},
        "permanent_delete": {**common, "version_id": "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
                             "sequencer": "617f0837b476e46300", "kind": "permanent_delete", "size": None,
                             "etag": None},
    }
    for kind, rule in feed_rules(storage(synthesized, env_name)).items():
        (target,) = rule["Targets"]
        line = transform(target["InputTransformer"], EVENTS[kind])
        assert "\n" not in line  # one line: Firehose appends the delimiter
        record = json.loads(line)
        assert record == expected[kind]
        assert list(record) == ["event_id", "event_time", "bucket", "key", "version_id", "sequencer", "kind",
                                "size", "etag"]


@pytest.mark.parametrize("env_name", ENVIRONMENTS)
def test_rules_deliver_to_firehose_with_retries_and_a_dead_letter_queue(synthesized, env_name):
    template = storage(synthesized, env_name)
    (stream_id,) = of_type(template, "AWS::KinesisFirehose::DeliveryStream")
    queues = of_type(template, "AWS::SQS::Queue")
    for rule in feed_rules(template).values():
        (target,) = rule["Targets"]
        assert target["Arn"] == {"Fn::GetAtt": [stream_id, "Arn"]}
        assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 86400, "MaximumRetryAttempts": 185}
        dlq = target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
        assert dlq in queues and queues[dlq]["Properties"]["SqsManagedSseEnabled"] is True


@pytest.mark.parametrize("env_name", ENVIRONMENTS)
def test_firehose_writes_gzip_json_lines_under_feed_by_day_with_the_restore_ops_key(synthesized, env_name):
    template = storage(synthesized, env_name)
    (stream,) = of_type(template, "AWS::KinesisFirehose::DeliveryStream").values()
    s3 = stream["Properties"]["ExtendedS3DestinationConfiguration"]
    assert s3["BucketARN"] == {"Fn::GetAtt": [OPS, "Arn"]}
    assert s3["Prefix"] == "feed/dt=!{timestamp:yyyy-MM-dd}/"
    assert not s3["ErrorOutputPrefix"].startswith(outputs.FEED_KEY_PREFIX)  # errors are not feed lines
    assert s3["CompressionFormat"] == "GZIP"
    assert s3["ProcessingConfiguration"] == {"Enabled": True, "Processors": [{"Type": "AppendDelimiterToRecord"}]}
    assert s3["EncryptionConfiguration"] == {"KMSEncryptionConfig": {"AWSKMSKeyARN": {"Fn::GetAtt": [OPS_KEY,
                                                                                                     "Arn"]}}}
    assert s3["CloudWatchLoggingOptions"]["Enabled"] is True
    # The bucket's S3 Bucket Key is on: S3 asks KMS with the bucket's ARN as encryption context, so a
    # condition naming object ARNs only would refuse every delivery.
    assert template["Resources"][OPS]["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
        "BucketKeyEnabled"] is True
    role_id = s3["RoleARN"]["Fn::GetAtt"][0]
    (kms,) = [st for p in of_type(template, "AWS::IAM::Policy").values() if {"Ref": role_id} in p["Properties"]["Roles"]
              for st in p["Properties"]["PolicyDocument"]["Statement"] if "kms:GenerateDataKey" in st["Action"]]
    assert {"Fn::GetAtt": [OPS, "Arn"]} in kms["Condition"]["StringLike"]["kms:EncryptionContext:aws:s3:arn"]


@pytest.mark.parametrize("env_name", ENVIRONMENTS)
def test_the_feed_is_append_only(synthesized, env_name):
    """Nobody but the Firehose role writes under feed/ and nobody deletes there; where the environment
    retains its data, not even a version (a destroyable one can still be emptied)."""
    template = storage(synthesized, env_name)
    policy = bucket_policies(template, account=ACCOUNT, region=REGION)[OPS]
    (role_id,) = [k for k in of_type(template, "AWS::IAM::Role") if k.startswith("InventoryFeedDeliveryRole")]
    firehose = f"arn:aws:iam::{ACCOUNT}:role/{role_id}"
    admin = f"arn:aws:iam::{ACCOUNT}:role/Admin"
    obj = f"{bucket_arn(OPS)}/feed/dt=2026-12-01/stream-1-2026-12-01-17-40-00-uuid.gz"
    context = {"aws:SecureTransport": "true", "s3:TlsVersion": "1.3"}
    assert decide(policy, Request(firehose, "s3:PutObject", obj, context)) != "deny"
    assert decide(policy, Request(admin, "s3:PutObject", obj, context)) == "deny"
    for principal in (firehose, admin):
        assert decide(policy, Request(principal, "s3:DeleteObject", obj, context)) == "deny"
    retain = env_name != "dev"
    assert (decide(policy, Request(admin, "s3:DeleteObjectVersion", obj, context)) == "deny") is retain
    errors = f"{bucket_arn(OPS)}/feed-errors/x"
    assert decide(policy, Request(admin, "s3:PutObject", errors, context)) == "deny"
    # Restore jobs beside it are untouched.
    assert decide(policy, Request(admin, "s3:DeleteObject", f"{bucket_arn(OPS)}/restore-jobs/x", context)) != "deny"


@pytest.mark.parametrize("env_name", ENVIRONMENTS)
def test_retention_follows_the_inventory_section(synthesized, env_name):
    template = storage(synthesized, env_name)
    cfg = settings(env_name)
    rules = {r["Prefix"]: r for r in template["Resources"][OPS]["Properties"]["LifecycleConfiguration"]["Rules"]
             if "Prefix" in r}
    assert {p: r["ExpirationInDays"] for p, r in rules.items()} == {
        "restore-jobs/": 90, "inventory/": cfg.retention_days, "feed/": cfg.feed_retention_days,
        "feed-errors/": cfg.feed_retention_days, "athena-results/": 7}
    invoice_rules = template["Resources"][INVOICES]["Properties"]["LifecycleConfiguration"]["Rules"]
    canary, markers = [r for r in invoice_rules if r.get("Prefix") == outputs.CANARY_KEY_PREFIX]
    assert canary["ExpirationInDays"] == 1 and canary["NoncurrentVersionExpiration"] == {"NoncurrentDays": 1}
    assert markers["ExpiredObjectDeleteMarker"] is True  # or every canary key's marker stays for ever


@pytest.mark.parametrize("env_name", ENVIRONMENTS)
def test_athena_workgroup_and_glue_tables(synthesized, env_name):
    template = storage(synthesized, env_name)
    (workgroup,) = of_type(template, "AWS::Athena::WorkGroup").values()
    config = workgroup["Properties"]["WorkGroupConfiguration"]
    assert config["EnforceWorkGroupConfiguration"] is True
    assert config["BytesScannedCutoffPerQuery"] == settings(env_name).athena_scan_limit_gb * 1024 ** 3
    result = config["ResultConfiguration"]
    assert result["EncryptionConfiguration"] == {"EncryptionOption": "SSE_KMS",
                                                 "KmsKey": {"Fn::GetAtt": [OPS_KEY, "Arn"]}}
    assert result["OutputLocation"] == {"Fn::Join": ["", ["s3://", {"Ref": OPS}, "/athena-results/"]]}
    tables = {t["Properties"]["TableInput"]["Name"]: t["Properties"]["TableInput"]
              for t in of_type(template, "AWS::Glue::Table").values()}
    assert set(tables) == {"inventory", "change_feed"}
    inventory, feed = tables["inventory"], tables["change_feed"]
    assert [c["Name"] for c in inventory["StorageDescriptor"]["Columns"]] == [
        "bucket", "key", "version_id", "is_latest", "is_delete_marker", "size", "last_modified_date", "e_tag",
        "storage_class", "is_multipart_uploaded"]
    assert inventory["StorageDescriptor"]["InputFormat"] == "org.apache.hadoop.hive.ql.io.SymlinkTextInputFormat"
    assert inventory["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"].endswith("ParquetHiveSerDe")
    assert inventory["Parameters"]["projection.dt.format"] == "yyyy-MM-dd-HH-mm"
    assert [c["Name"] for c in feed["StorageDescriptor"]["Columns"]] == [
        "event_id", "event_time", "bucket", "key", "version_id", "sequencer", "kind", "size", "etag"]
    assert feed["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"] == "org.openx.data.jsonserde.JsonSerDe"
    assert feed["Parameters"]["projection.dt.format"] == "yyyy-MM-dd"
    assert feed["Parameters"]["storage.location.template"] == {
        "Fn::Join": ["", ["s3://", {"Ref": OPS}, "/feed/dt=${dt}/"]]}
    for table in tables.values():
        assert table["PartitionKeys"] == [{"Name": "dt", "Type": "string"}]
        assert table["Parameters"]["projection.enabled"] == "true"


@pytest.mark.parametrize("env_name", ENVIRONMENTS)
def test_outputs_name_what_the_planner_reads(synthesized, env_name):
    found = storage(synthesized, env_name)["Outputs"]
    for key in (outputs.INVENTORY_WORKGROUP, outputs.INVENTORY_DATABASE, outputs.INVENTORY_PREFIX,
                outputs.FEED_PREFIX):
        assert key in found, key
    assert found[outputs.FEED_PREFIX]["Value"] == "feed/"
    assert found[outputs.INVENTORY_PREFIX]["Value"] == {
        "Fn::Join": ["", ["inventory/", {"Ref": INVOICES}, "/all-versions/"]]}


@pytest.mark.parametrize("env_name", ENVIRONMENTS)
def test_the_canary_writes_only_under_its_prefix_on_its_schedule(synthesized, env_name):
    template = storage(synthesized, env_name)
    (schedule,) = [s for s in of_type(template, "AWS::Scheduler::Schedule").values()
                   if "canary" in s["Properties"]["Description"].lower()]
    minutes = settings(env_name).canary_minutes
    hours = minutes // 60
    every = f"{minutes} minutes" if minutes % 60 else ("1 hour" if hours == 1 else f"{hours} hours")
    assert schedule["Properties"]["ScheduleExpression"] == f"rate({every})"
    (fn,) = [f for f in of_type(template, "AWS::Lambda::Function").values()
             if "Inventory canary" in f["Properties"]["Description"]]
    env = fn["Properties"]["Environment"]["Variables"]
    assert env["TAVARI_FEED_PREFIX"] == "feed/" and env["TAVARI_INVOICE_BUCKET"] == {"Ref": INVOICES}
    role_id = fn["Properties"]["Role"]["Fn::GetAtt"][0]
    writes = [s for p in of_type(template, "AWS::IAM::Policy").values()
              if {"Ref": role_id} in p["Properties"]["Roles"]
              for s in p["Properties"]["PolicyDocument"]["Statement"] if "s3:PutObject" in s["Action"]]
    assert writes and all(s["Resource"] == {"Fn::Join": ["", [{"Fn::GetAtt": [INVOICES, "Arn"]}, "/_canary/*"]]}
                          for s in writes)


@pytest.mark.parametrize("env_name", ENVIRONMENTS)
def test_alarms_on_a_late_inventory_a_silent_feed_and_failed_delivery(synthesized, env_name):
    env = synthesized[env_name]
    cfg = settings(env_name)
    alarms = {k: v["Properties"] for k, v in
              of_type(env.templates[env.stack(outputs.MONITORING)], "AWS::CloudWatch::Alarm").items()}

    def one(prefix):
        (found,) = [v for k, v in alarms.items() if k.startswith(f"Monitoring{prefix}")]
        return found

    late = one("InventoryLate")
    assert late["MetricName"] == metrics.INVENTORY_AGE_HOURS and late["Threshold"] == cfg.late_after_hours
    assert late["TreatMissingData"] == "breaching" and late["Period"] == 2 * cfg.canary_minutes * 60
    silent = one("FeedSilent")
    assert silent["MetricName"] == "DeliveryToS3.Records" and silent["Namespace"] == "AWS/Firehose"
    assert silent["Period"] == cfg.feed_silence_minutes * 60 and silent["TreatMissingData"] == "breaching"
    assert silent["ComparisonOperator"] == "LessThanThreshold" and silent["Threshold"] == 1
    assert one("FeedDeliveryFailed")["MetricName"] == "DeliveryToS3.Success"
    rules = one("FeedRuleFailures")
    assert sum(1 for m in rules["Metrics"] if "MetricStat" in m) == 3
    assert one("FeedDeadLetters")["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert one("InventoryCanaryErrors")["MetricName"] == "Errors"
    missing = one("InventoryCanaryMissingRun")
    assert missing["Dimensions"] == [{"Name": "Job", "Value": metrics.INVENTORY_CANARY}]
    assert missing["TreatMissingData"] == "breaching"
    anchors = alarm_runbook_sections()
    for props in (late, silent, rules, missing):
        assert props["AlarmDescription"].split("#")[-1] in anchors


def _storage_only(overrides):
    """The InvoiceStorage stack alone (no nag, no other stack) for a dev config changed by ``overrides``."""
    from aws_cdk import App, Environment, RemovalPolicy

    from stacks.invoice_storage import InvoiceStorageStack

    context = copy.deepcopy({**cdk_context(), "env": "dev"})
    for section, values in overrides.items():
        context["environments"]["dev"].setdefault(section, {}).update(values)
    config = load_environment(context)
    app = App(context={k: v for k, v in context.items() if k not in ("env", "environments")})  # feature flags
    InvoiceStorageStack(app, "Storage", env=Environment(account=ACCOUNT, region=REGION),
                        settings=config.invoice_bucket, removal_policy=RemovalPolicy.DESTROY,
                        inventory=config.inventory)
    return app.synth().get_stack_by_name("Storage").template


def test_disabled_inventory_leaves_the_bucket_and_restore_ops_as_they_were():
    template = _storage_only({"inventory": {"enabled": False}})
    bucket = template["Resources"][INVOICES]["Properties"]
    assert "InventoryConfigurations" not in bucket and "NotificationConfiguration" not in bucket
    for kind in ("AWS::KinesisFirehose::DeliveryStream", "AWS::Athena::WorkGroup", "AWS::Glue::Table",
                 "AWS::Events::Rule"):
        assert not of_type(template, kind), kind
    (rule,) = template["Resources"][OPS]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert rule["Id"] == "Expire" and rule["ExpirationInDays"] == 90 and "Prefix" not in rule
    assert outputs.FEED_PREFIX not in template["Outputs"]


def test_an_adopted_bucket_is_named_in_the_key_policy_too():
    template = _storage_only({"invoice_bucket": {"existing_bucket_name": "tavari-invoices-legacy"}})
    assert template["Resources"][INVOICES]["Properties"]["BucketName"] == "tavari-invoices-legacy"
    assert template["Resources"][INVOICES]["Properties"]["NotificationConfiguration"] == {
        "EventBridgeConfiguration": {"EventBridgeEnabled": True}}
    key = key_policies(template, account=ACCOUNT, region=REGION)[OPS_KEY]
    (grant,) = [s for s in key["Statement"] if s.get("Sid") == "AllowS3InventoryEncryption"]
    assert grant["Condition"]["ArnLike"] == {"aws:SourceArn": "arn:aws:s3:::tavari-invoices-legacy"}
