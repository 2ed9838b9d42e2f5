"""The local disaster-recovery drill and its deployer, end to end (moto server + real PostgreSQL)."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime

import boto3
import pytest
from click.testing import CliRunner

from tavari_dr.cli import main
from tavari_dr.config import load_environment
from tavari_dr.drill import LocalDrill, Sizes, emulate_crr, state_difference
from tavari_dr.emulator import MotoServer
from tavari_dr.local_deploy import LocalDeployer
from tests.conftest import ROOT, cdk_context

pytestmark = [pytest.mark.drill]
SMALL = Sizes(businesses=3, calls=20, messages=60, invoice_versions=3, pdf_bytes=20_000)
# Toy data this small cannot stand for prod's sizes (the projection would be timer noise scaled
# up a million times); the tests judge it against sizes a few orders of magnitude above it.
TEST_SIZES = {"database_gb": 0.05, "invoice_count": 1000, "invoice_gb": 0.2}


def run_drill(synthesized, env_name, tmp_path, **kwargs):
    config = load_environment(cdk_context(), env_name)
    config = replace(config, drill=replace(config.drill, **TEST_SIZES))
    lines = []
    drill = LocalDrill(config, synthesized[env_name].outdir, tmp_path / "report", sizes=SMALL,
                       progress=lines.append, **kwargs)
    return drill.run(), lines, tmp_path / "report"


@pytest.mark.parametrize("env_name", ["prod", "dev"])
def test_the_drill_plays_every_scenario_and_passes(synthesized, tmp_path, monkeypatch, env_name):
    monkeypatch.chdir(ROOT)
    report, lines, out = run_drill(synthesized, env_name, tmp_path)
    assert report["passed"], report["failures"]
    assert list(report["scenarios"]) == ["1 database corruption", "2 complete system failure", "3 data breach"]
    for data in report["scenarios"].values():
        for kind in ("rto_critical", "rto_non-critical"):
            assert data[kind]["met"] and data[kind]["projected_seconds"] >= data[kind]["measured_seconds"]
        assert data["rpo"]["met"] and data["rpo"]["data_loss_window_seconds"] > 0
    steps = {(s["scenario"], s["name"]): s for s in report["steps"]}
    restore = steps[("2 complete system failure", "restore the database from the off-site backup")]
    assert restore["command"].startswith("tavari-dr db restore --env " + env_name)
    assert restore["projected_seconds"] > restore["seconds"]  # scaled to the production size
    assert report["checks"] and set(report["checks"].values()) == {"PASS"}
    commands = {s["command"].split(" --")[0] for s in report["steps"] if s["command"]}
    assert {"tavari-dr secrets push", "tavari-dr secrets check", "tavari-dr secrets pull", "tavari-dr db backup",
            "tavari-dr db list", "tavari-dr db restore", "tavari-dr db verify", "tavari-dr bucket restore"} <= commands
    runbook_commands = set()
    for runbook in (ROOT / "docs" / "runbooks").glob("*.md"):
        runbook_commands |= set(re.findall(r"tavari-dr (?:verify|(?:secrets|db|bucket|export) [a-z]+)",
                                           runbook.read_text()))
    exercised = {c for s in report["steps"] if s["command"] for c in re.findall(
        r"tavari-dr (?:verify|(?:secrets|db|bucket|export) [a-z]+)", s["command"])}
    assert runbook_commands and runbook_commands <= exercised, runbook_commands - exercised
    bucket = steps[("2 complete system failure", "restore the invoice bucket into a new bucket")]["detail"]
    assert ("DR replica" in bucket) == (env_name == "prod")
    markdown = (out / "drill-report.md").read_text()
    assert "PASSED" in markdown and "| 2 complete system failure |" in markdown
    assert json.loads((out / "drill-report.json").read_text())["passed"] is True
    assert any("verify health endpoints: ok" in line for line in lines)  # progress while it runs


def test_a_broken_backup_fails_the_drill_at_the_restore_step(synthesized, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    report, _, out = run_drill(synthesized, "dev", tmp_path, fault="corrupt-backup")
    assert not report["passed"]
    assert report["failures"][0].startswith("1 database corruption: restore the database from the off-site backup")
    assert "sha256" in report["failures"][0]
    assert "FAILED" in (out / "drill-report.md").read_text()


def test_the_deployer_reports_exactly_what_motos_cloudformation_ignores(synthesized, tmp_path):
    """Independently of the deployer: deploy the project's invoice bucket through moto's own
    CloudFormation and read back which of its properties survived."""
    prod = synthesized["prod"]
    with MotoServer(tmp_path / "moto.log") as moto:
        deployment = LocalDeployer(moto.url).deploy(prod.outdir)
        template = prod.templates["Tavari-Prod-InvoiceStorage"]
        (bucket,) = [r for k, r in template["Resources"].items()
                              if r["Type"] == "AWS::S3::Bucket" and k.startswith("InvoicesBucket")]
        properties = json.loads(json.dumps(bucket["Properties"]))
        properties["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"][
            "KMSMasterKeyID"] = "arn:aws:kms:eu-west-1:123456789012:key/independent"
        properties["LoggingConfiguration"]["DestinationBucketName"] = "independent-logs"
        properties["ReplicationConfiguration"] = {"Role": "arn:aws:iam::123456789012:role/independent", "Rules": [
            {"Id": "r", "Status": "Enabled", "Priority": 0, "Filter": {"Prefix": ""},
             "DeleteMarkerReplication": {"Status": "Enabled"},
             "Destination": {"Bucket": "arn:aws:s3:::independent-replica"}}]}
        properties["BucketName"] = "independent-invoices"
        kw = dict(endpoint_url=moto.url, aws_access_key_id="t", aws_secret_access_key="t", region_name="eu-west-1")
        s3 = boto3.client("s3", **kw)
        s3.create_bucket(Bucket="independent-logs", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        boto3.client("cloudformation", **kw).create_stack(StackName="Independent", TemplateBody=json.dumps(
            {"Resources": {"B": {"Type": "AWS::S3::Bucket", "Properties": properties}}}))
        kept = {
            "VersioningConfiguration": s3.get_bucket_versioning(Bucket="independent-invoices").get("Status")
            == "Enabled",
            "LifecycleConfiguration": _answers(lambda: s3.get_bucket_lifecycle_configuration(
                Bucket="independent-invoices")),
            "ReplicationConfiguration": _answers(lambda: s3.get_bucket_replication(Bucket="independent-invoices")),
            "PublicAccessBlockConfiguration": _answers(lambda: s3.get_public_access_block(
                Bucket="independent-invoices")),
            "OwnershipControls": _answers(lambda: s3.get_bucket_ownership_controls(Bucket="independent-invoices")),
            "LoggingConfiguration": "LoggingEnabled" in s3.get_bucket_logging(Bucket="independent-invoices"),
            "BucketEncryption": "independent" in json.dumps(s3.get_bucket_encryption(Bucket="independent-invoices")),
            "Tags": _answers(lambda: s3.get_bucket_tagging(Bucket="independent-invoices")["TagSet"]),
        }
        secrets_listed = boto3.client("secretsmanager", **kw).list_secrets()["SecretList"]
    ignored = {p for p, survived in kept.items() if not survived}
    report = deployment.stacks["Tavari-Prod-InvoiceStorage"].moto_would_ignore
    reported = {item.split(".", 1)[1] for item in report if item.startswith("AWS::S3::Bucket.")}
    assert reported == ignored
    assert {"VersioningConfiguration", "LifecycleConfiguration", "ReplicationConfiguration"} <= ignored
    # Secrets: moto's CloudFormation creates none; the deployer created every one, and says moto would not have.
    secrets_report = deployment.stacks["Tavari-Prod-Secrets"]
    assert "AWS::SecretsManager::Secret" in secrets_report.moto_would_ignore
    assert len([a for a in secrets_report.applied if a["type"] == "AWS::SecretsManager::Secret"]) == len(
        [r for r in synthesized["prod"].templates["Tavari-Prod-Secrets"]["Resources"].values()
         if r["Type"] == "AWS::SecretsManager::Secret"])
    listed = {s["ARN"] for s in secrets_listed}
    assert {a["physical_id"] for a in secrets_report.applied if a["type"] == "AWS::SecretsManager::Secret"} <= listed
    # Everything not applied says why; nothing failed.
    for stack in deployment.stacks.values():
        assert not stack.errors
        assert all(item["reason"] for item in stack.not_applied)


def _answers(call) -> bool:
    try:
        return bool(call())
    except Exception:
        return False


def test_emulated_crr_copies_each_version_once_in_write_order(tmp_path):
    with MotoServer(tmp_path / "moto.log") as moto:
        s3 = boto3.client("s3", endpoint_url=moto.url, aws_access_key_id="t", aws_secret_access_key="t",
                          region_name="us-east-1")
        for bucket in ("src", "dst"):
            s3.create_bucket(Bucket=bucket)
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        for body in (b"1", b"2", b"3"):  # all within one second: order must come from the listing
            s3.put_object(Bucket="src", Key="k", Body=body)
        s3.put_object(Bucket="src", Key="gone", Body=b"x")
        s3.delete_object(Bucket="src", Key="gone")
        done = set()
        assert emulate_crr(s3, "src", "dst", done) == 5  # three versions, one version and its delete marker
        assert emulate_crr(s3, "src", "dst", done) == 0
        assert s3.get_object(Bucket="dst", Key="k")["Body"].read() == b"3"
        assert "Contents" not in s3.list_objects_v2(Bucket="dst", Prefix="gone")


def test_state_difference_names_what_differs():
    assert state_difference({"a": "1", "c": "9"}, {"a": "2", "b": "1"}) == (
        "1 missing ['b'], 1 unexpected ['c'], 1 with other bytes ['a']")


def test_cli_needs_local_and_a_synthesized_app(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(main, ["drill", "--env", "dev"])
    assert result.exit_code == 2 and "only --local runs here" in result.output
    result = CliRunner().invoke(main, ["drill", "--local", "--env", "dev", "--cdk-out", str(tmp_path)])
    assert result.exit_code == 2 and "synthesize first" in result.output


def test_deployer_resolves_intrinsics_across_stacks_and_custom_resources(tmp_path):
    """A two-stack cloud assembly written by hand: every intrinsic the project's templates use, a
    custom resource (resolved by the deployer, reported), and an unhandled type (reported)."""
    producer = {"Resources": {
        "Key": {"Type": "AWS::KMS::Key", "Properties": {"Description": "k"}},
        "Data": {"Type": "AWS::S3::Bucket", "Properties": {
            "VersioningConfiguration": {"Status": "Enabled"},
            "BucketEncryption": {"ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {
                "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": {"Fn::GetAtt": ["Key", "Arn"]}}}]}}},
        "Lookup": {"Type": "Custom::Lookup", "Properties": {"ServiceToken": "arn:aws:lambda:x", "Answer": "42"}},
        "Alarm": {"Type": "AWS::CloudWatch::Alarm", "Properties": {}}},
        "Outputs": {"DataName": {"Value": {"Ref": "Data"}, "Export": {"Name": "data-name"}},
                    "Answer": {"Value": {"Fn::GetAtt": ["Lookup", "Answer"]}},
                    "Where": {"Value": {"Fn::Sub": "${AWS::Region}/${Data}/${Key.Arn}"}}}}
    consumer = {"Resources": {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {}}},
                "Outputs": {
                    "Imported": {"Value": {"Fn::ImportValue": "data-name"}},
                    "Cross": {"Value": {"Fn::GetStackOutput": {"StackName": "Producer", "OutputName": "Answer",
                                                               "Region": "eu-west-1"}}},
                    "Picked": {"Value": {"Fn::Select": [1, {"Fn::Split": ["/", {"Fn::Join": [
                        "/", ["a", {"Fn::GetAtt": ["Queue", "QueueName"]}]]}]}]}}}}
    for name, template in (("Producer", producer), ("Consumer", consumer)):
        (tmp_path / f"{name}.template.json").write_text(json.dumps(template))
    (tmp_path / "manifest.json").write_text(json.dumps({"artifacts": {
        "Consumer": {"type": "aws:cloudformation:stack", "environment": "aws://123456789012/eu-west-1",
                     "properties": {"templateFile": "Consumer.template.json"}, "dependencies": ["Producer"]},
        "Producer": {"type": "aws:cloudformation:stack", "environment": "aws://123456789012/eu-west-1",
                     "properties": {"templateFile": "Producer.template.json"}}}}))
    with MotoServer(tmp_path / "moto.log") as moto:
        deployment = LocalDeployer(moto.url).deploy(tmp_path)
        s3 = boto3.client("s3", endpoint_url=moto.url, aws_access_key_id="t", aws_secret_access_key="t",
                          region_name="eu-west-1")
        producer_out = deployment.outputs("Producer")
        bucket = producer_out["DataName"]
        assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"  # applied although moto ignores it
        cfn = boto3.client("cloudformation", endpoint_url=moto.url, aws_access_key_id="t",
                           aws_secret_access_key="t", region_name="eu-west-1")
        registered = {o["OutputKey"]: o["OutputValue"] for o in cfn.describe_stacks(StackName="Producer")[
            "Stacks"][0]["Outputs"]}
    assert registered == producer_out  # what the CLI's discovery reads
    assert producer_out["Answer"] == "42"
    assert producer_out["Where"].startswith(f"eu-west-1/{bucket}/arn:aws:kms:eu-west-1:")
    consumer_out = deployment.outputs("Consumer")
    assert consumer_out["Imported"] == bucket and consumer_out["Cross"] == "42"
    assert consumer_out["Picked"].startswith("consumer-queue")
    report = deployment.stacks["Producer"]
    reasons = {item["type"]: item["reason"] for item in report.not_applied}
    assert "its Lambda did not run" in reasons["custom resource handler"]
    assert "alarms" in reasons["AWS::CloudWatch::Alarm"]
    assert "AWS::S3::Bucket.VersioningConfiguration" in report.moto_would_ignore
    assert "AWS::S3::Bucket.BucketEncryption" not in report.moto_would_ignore


def test_projection_scales_only_the_variable_part_and_misses_are_failures(tmp_path):
    from tavari_dr.drill import CRITICAL, NON_CRITICAL, Step

    config = load_environment(cdk_context(), "dev")
    config = replace(config, drill=replace(config.drill, database_gb=1.0, invoice_count=1000, invoice_gb=1.0))
    drill = LocalDrill(config, tmp_path, tmp_path / "report", progress=lambda _: None)
    drill.started = datetime.now(UTC)
    drill.steps = [
        Step("1 database corruption", "restore the database from the off-site backup", seconds=3.0,
             recovery=CRITICAL, scales_with="database", volume=1e6, fixed_seconds=2.0),
        Step("1 database corruption", "identify the last good backup", seconds=0.5, recovery=CRITICAL),
        Step("1 database corruption", "restore the invoice bucket", seconds=10.0, recovery=NON_CRITICAL,
             scales_with="bucket", volume=10, fixed_seconds=0.0),
    ]
    report = drill._report(None)
    steps = report["scenarios"]["1 database corruption"]["steps"]
    assert steps[0]["projected_seconds"] == 2.0 + 1.0 * 1000  # fixed + variable x (1 GB / 1 MB)
    assert steps[1]["projected_seconds"] == 0.5  # does not grow with data
    assert steps[2]["projected_seconds"] == 10.0 * 100  # 1000 invoices / 10
    rto = report["scenarios"]["1 database corruption"]
    assert rto["rto_critical"]["projected_seconds"] == 1002.5 and rto["rto_critical"]["met"]
    assert rto["rto_non-critical"]["projected_seconds"] == 2002.5 and rto["rto_non-critical"]["met"]
    drill.steps[0].volume = 1e3  # a thousand times less data measured: 1000 s x 1000 is over an hour
    report = drill._report(None)
    assert not report["passed"]
    assert any("projected RTO (critical)" in f for f in report["failures"])
