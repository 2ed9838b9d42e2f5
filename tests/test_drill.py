"""The local disaster-recovery drill and its deployer, end to end (moto server + real PostgreSQL)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import replace
from datetime import UTC, datetime

import boto3
import jsonschema
import pytest
from click.testing import CliRunner

from tavari_dr.cli import main
from tavari_dr.core import evidence
from tavari_dr.core.config import load_environment
from tavari_dr.drill.context import Sizes
from tavari_dr.drill.emulator import MotoServer
from tavari_dr.drill.local_deploy import LocalDeployer
from tavari_dr.drill.runner import LocalDrill
from tavari_dr.drill.state import emulate_crr, state_difference
from tests.conftest import ROOT, cdk_context

pytestmark = [pytest.mark.drill]
SMALL = Sizes(businesses=3, calls=20, messages=60, invoice_versions=3, pdf_bytes=20_000)


def run_drill(synthesized, env_name, tmp_path, **kwargs):
    # Judged at the environment's own production sizes: the cost model prices counts, so toy data
    # stands for any size (no timer noise is scaled up).
    config = load_environment(cdk_context(), env_name)
    lines = []
    drill = LocalDrill(config, synthesized[env_name].outdir, tmp_path / "report", sizes=SMALL,
                       progress=lines.append, cdk_json=kwargs.pop("cdk_json", ROOT / "cdk.json"), **kwargs)
    return drill.run(), lines, tmp_path / "report"


def validate(report):
    jsonschema.validate(report, evidence.report_schema())


def test_the_drill_plays_every_scenario_and_passes(synthesized, tmp_path, monkeypatch):
    env_name = "prod"
    # The drill runs from any directory, reads only the cdk.json it is given, and leaves the
    # caller's environment alone (a profile that does not exist would break every AWS call).
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cdk_json = tmp_path / "config" / "cdk.json"
    cdk_json.parent.mkdir()
    cdk_json.write_text((ROOT / "cdk.json").read_text())
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "planted.txt").write_text("not the drill's")  # must not be sealed as evidence
    report, lines, out = run_drill(synthesized, env_name, tmp_path, cdk_json=cdk_json, operator="auditor@tavari")
    assert report["passed"], report["failures"]
    assert os.environ["AWS_PROFILE"] == "no-such-profile"
    assert list(report["scenarios"]) == ["1 database corruption", "2 complete system failure", "3 data breach",
                                         "4 region outage"]
    for data in report["scenarios"].values():
        for kind in ("rto_critical", "rto_non-critical"):
            assert data[kind]["met"] and data[kind]["projected_seconds"] >= data[kind]["measured_seconds"]
        # The window is the drill's timing (incident minus restore point, clamped at 0): it may be 0.0 when
        # the log's last commit and the incident fall in the same second. What the capture proves is below.
        assert data["rpo"]["met"] and data["rpo"]["data_loss_window_seconds"] >= 0
        assert data["rpo"]["restore_point"] <= data["rpo"]["incident"]
        assert data["rpo"]["worst_case_seconds"] == report["rpo_worst_case"]["worst_case_seconds"]
    worst = report["rpo_worst_case"]  # 13 h between 13:00 and 01:00 across the autumn switch, + a dump + lag
    assert worst["longest_interval_seconds"] == 13 * 3600 and worst["replication_lag_objective_seconds"] == 900
    # The capture bounds it (its lag alarm + replication lag); a dead one is alarmed within minutes, and the
    # dumps' worst case is what remains until it is back.
    assert worst["met"] and worst["dumps_only_seconds"] > 13 * 3600
    assert worst["worst_case_seconds"] == worst["capture_max_lag_seconds"] + 900
    assert worst["dead_capture_noticed_within_seconds"] <= 15 * 60
    steps = {(s["scenario"], s["name"]): s for s in report["steps"]}
    # 2: the restore held exactly the probe transactions committed by its restore point (the verify step
    # compares the probe rows with their commit times), and the loss counted is what the kill cut off.
    lost = report["scenarios"]["2 complete system failure"]["rpo"]["lost"]
    assert lost["of"] > 0 and 0 <= lost["transactions"] <= lost["of"]
    probes = steps[("2 complete system failure", "verify integrity (row counts and content hashes)")]
    assert probes["ok"] and "probe rows, those committed by then" in probes["detail"]
    restore = steps[("2 complete system failure", "restore the database from the off-site backup")]
    assert restore["command"].startswith("tavari-dr db restore --env " + env_name) and " --to " in restore["command"]
    # the manifest + 13 artifacts: roles, schema, internal schema, data/toc.dat and one file per table's data;
    # then the change log's base record and its segments (restore --to, ADR 0020)
    assert restore["kind"] == "db_restore" and restore["counts"]["requests"]["get"] > 14
    assert restore["model"]["parts"]["replay change log"] > 0
    assert restore["model"]["inputs"]["dump_bytes"] == 2e9 and restore["projected_seconds"] > 60
    # Every command the drill started read the cdk.json it was given (`verify` a copy of it whose only
    # change is the stand-in Management API URL), never the project's own.
    commands = report["evidence"]["commands"]
    assert commands and all("--cdk-json " in c for c in commands if "--env" in c)
    assert not [c for c in commands if str(ROOT / "cdk.json") in c]
    assert sum(f"--cdk-json {cdk_json}" in c for c in commands) == len([c for c in commands if "--env" in c]) - 1
    assert report["checks"] and set(report["checks"].values()) == {"PASS"}
    commands = {s["command"].split(" --")[0] for s in report["steps"] if s["command"]}
    assert {"tavari-dr secrets push", "tavari-dr secrets check", "tavari-dr secrets pull", "tavari-dr db backup",
            "tavari-dr db list", "tavari-dr db restore", "tavari-dr db verify", "tavari-dr bucket restore"} <= commands
    runbook_commands = set()
    for runbook in (ROOT / "docs" / "runbooks").glob("*.md"):
        runbook_commands |= set(re.findall(r"tavari-dr (?:verify|(?:secrets|db|bucket|export|failover|breach) [a-z]+)",
                                           runbook.read_text()))
    exercised = {c for s in report["steps"] if s["command"] for c in re.findall(
        r"tavari-dr (?:verify|(?:secrets|db|bucket|export|failover|breach) [a-z]+)", s["command"])}
    # Batch Operations jobs do not exist in the drill's emulator (moto has no S3 Control jobs):
    # `bucket jobs` is proven against the documented API shapes in tests/test_bucket_jobs.py instead.
    not_emulated = {"tavari-dr bucket jobs"}
    assert runbook_commands and runbook_commands - not_emulated <= exercised, runbook_commands - exercised
    bucket = steps[("2 complete system failure", "restore the invoice bucket into a new bucket")]
    assert "DR replica" in bucket["detail"] and bucket["toy_actions"] == len(bucket_keys(out, 2))
    breach = steps[("3 data breach", "restore the invoice bucket to before the breach")]
    assert breach["model"]["inputs"]["actions"] == 10_000  # 10 % of prod's 100,000 invoices
    markdown = (out / "drill-report.md").read_text()
    assert markdown.startswith("# Disaster-recovery drill (emulated") and "PASSED" in markdown
    assert "| 2 complete system failure |" in markdown and "operator auditor@tavari" in markdown
    health = steps[("3 data breach", "verify health endpoints")]["detail"]
    assert "https://app.tavari.example/api/health (emulated: stand-in http://127.0.0.1:" in health
    scoped = steps[("3 data breach", "scope the breach: accounts touched, from the data and the logs (tavari-dr "
                                     "breach scope)")]
    assert scoped["ok"] and f"{SMALL.businesses} account(s) named" in scoped["detail"]
    # 4: with the primary region down, the failover ran from the DR region alone (every command met the outage).
    outage = report["scenarios"]["4 region outage"]["steps"]
    assert "region eu-west-1 is down" in outage[0]["detail"]
    failover = steps[("4 region outage", "fail over: the database from the backups' DR replica and its change log, "
                                         "the configuration from the secret replicas")]
    assert failover["command"].startswith("tavari-dr failover apply --env prod") and failover["kind"] == "db_restore"
    assert "--change-signing-public-key" in failover["command"] and "and the change log to " in failover["detail"]
    # The replicated log was replayed: the failover held exactly the probes the DR region's log holds, and the
    # loss counted is what the region's loss cut off (not the time since the dump).
    held = steps[("4 region outage", "verify integrity (row counts and content hashes)")]
    assert held["ok"] and "probe rows (those the replicated log holds)" in held["detail"]
    lost = report["scenarios"]["4 region outage"]["rpo"]["lost"]
    assert lost["of"] > 0 and 0 <= lost["transactions"] <= lost["of"]
    recaptured = steps[("2 complete system failure", "point the change capture at the recovered database (a new "
                                                     "base, a fresh dump)")]
    assert recaptured["ok"] and "a new base of this database" in recaptured["detail"]
    stored = json.loads((out / "drill-report.json").read_text())
    assert stored["passed"] is True and stored["emulated"] is True and stored["kind"] == "local"
    validate(stored)
    for broken in ({**stored, "failures": ["RPO missed"]},  # passed, yet a failure
                   {**stored, "scenarios": {k: v for k, v in stored["scenarios"].items() if k[0] != "2"}},
                   {**stored, "rpo_worst_case": {**stored["rpo_worst_case"], "met": "yes"}},
                   {**stored, "title": "Disaster-recovery drill — prod: PASSED"},  # not marked emulated
                   {**stored, "model": None}):
        with pytest.raises(jsonschema.ValidationError):
            validate(broken)
    ev = stored["evidence"]
    assert re.fullmatch(r"[0-9a-f]{40}", ev["commit"]) and isinstance(ev["dirty"], bool)
    assert ev["operator"] == "auditor@tavari" and ev["versions"]["moto"] and ev["versions"]["postgresql-server"]
    assert ev["versions"]["aws-cdk-lib"] and ev["host"]["name"]
    # Sealed: SHA256SUMS covers the report and the per-key restore reports, as sha256sum -c reads it.
    sums = (out / "SHA256SUMS").read_text().splitlines()
    assert {line.split("  ", 1)[1] for line in sums} >= {"drill-report.json", "drill-report.md"}
    assert any(line.endswith(".report.jsonl") for line in sums)
    assert not any("planted" in line for line in sums)  # only what the drill wrote is sealed
    subprocess.run(["sha256sum", "--check", "--quiet", "SHA256SUMS"], cwd=out, check=True)
    assert any("verify health endpoints: ok" in line for line in lines)  # progress while it runs


def bucket_keys(out, scenario):
    return [line for path in (out / f"bucket-restore-scenario-{scenario}").glob("*.report.jsonl")
            for line in path.read_text().splitlines()]


def test_without_a_replica_a_lost_bucket_is_lost_and_the_drill_says_so(synthesized, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    report, _, out = run_drill(synthesized, "dev", tmp_path)
    assert not report["passed"]
    assert report["failures"] == [
        "2 complete system failure: restore the invoice bucket into a new bucket: DrillFailed: the invoice bucket "
        "cannot be recovered: it is gone with every version, and dev keeps no replica (replication.enabled is false)"]
    # Scenarios 1 and 3 ran before it, and passed.
    for name in ("1 database corruption", "3 data breach"):
        assert all(s["ok"] for s in report["scenarios"][name]["steps"])
    validate(report)


def test_a_broken_backup_fails_the_drill_at_the_restore_step(synthesized, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    report, _, out = run_drill(synthesized, "dev", tmp_path, fault="corrupt-backup")
    assert not report["passed"]
    assert report["failures"][0].startswith("1 database corruption: restore the database from the off-site backup")
    # The fault overwrites a data/ file: a second version, which the signed manifest does not record.
    assert re.search(r"was tampered with: data/\d+\.dat\.gz: 2 versions", report["failures"][0])
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
        for inventory in properties.get("InventoryConfigurations", []):  # ADR 0022: into the restore-ops bucket
            inventory["Destination"]["BucketArn"] = "arn:aws:s3:::independent-logs"
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
        "Alarm": {"Type": "AWS::CloudWatch::Alarm", "Properties": {
            "Namespace": "Tavari/Backup", "MetricName": "CheckFailed", "Statistic": "Sum", "Period": 3600,
            "EvaluationPeriods": 1, "Threshold": 0, "ComparisonOperator": "GreaterThanThreshold",
            "AlarmDescription": {"Fn::Sub": "checks in ${AWS::Region}"}}},
        "Board": {"Type": "AWS::CloudWatch::Dashboard", "Properties": {"DashboardBody": "{}"}}},
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
        # The alarm is put as declared and listed under its name as CloudFormation lists it (ADR 0025).
        listed = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in cfn.list_stack_resources(
            StackName="Producer")["StackResourceSummaries"] if r["ResourceType"] == "AWS::CloudWatch::Alarm"}
        alarms = boto3.client("cloudwatch", endpoint_url=moto.url, aws_access_key_id="t", aws_secret_access_key="t",
                              region_name="eu-west-1").describe_alarms(AlarmNames=[listed["Alarm"]])["MetricAlarms"]
    assert registered == producer_out  # what the CLI's discovery reads
    assert producer_out["Answer"] == "42"
    assert producer_out["Where"].startswith(f"eu-west-1/{bucket}/arn:aws:kms:eu-west-1:")
    consumer_out = deployment.outputs("Consumer")
    assert consumer_out["Imported"] == bucket and consumer_out["Cross"] == "42"
    assert consumer_out["Picked"].startswith("consumer-queue")
    report = deployment.stacks["Producer"]
    reasons = {item["type"]: item["reason"] for item in report.not_applied}
    assert "its Lambda did not run" in reasons["custom resource handler"]
    assert reasons["AWS::CloudWatch::Dashboard"] == "presentation only"
    assert [(a["MetricName"], a["Threshold"], a["AlarmDescription"]) for a in alarms] == [
        ("CheckFailed", 0.0, "checks in eu-west-1")]
    assert "AWS::CloudWatch::Alarm" not in reasons and not report.errors
    assert "AWS::S3::Bucket.VersioningConfiguration" in report.moto_would_ignore
    assert "AWS::S3::Bucket.BucketEncryption" not in report.moto_would_ignore


def test_the_verdict_comes_from_counts_never_from_wall_time(tmp_path):
    from tavari_dr.core.costmodel import Counts
    from tavari_dr.drill.context import CRITICAL, NON_CRITICAL, Step

    config = load_environment(cdk_context(), "dev")
    config = replace(config, drill=replace(config.drill, database_gb=1.0, invoice_count=1000, invoice_gb=1.0))
    drill = LocalDrill(config, tmp_path, tmp_path / "report", progress=lambda _: None, cdk_json=ROOT / "cdk.json")
    drill.started = datetime.now(UTC)

    def steps(wall):
        return [
            Step("1 database corruption", "restore the database from the off-site backup", seconds=wall,
                 recovery=CRITICAL, kind="db_restore", counts=Counts(requests={"api": 1, "list": 1, "get": 5},
                                                                    processes=1)),
            Step("1 database corruption", "identify the last good backup", seconds=wall, recovery=CRITICAL,
                 kind="cli", counts=Counts(requests={"api": 1, "list": 1}, processes=1)),
            Step("1 database corruption", "restore the invoice bucket", seconds=wall, recovery=NON_CRITICAL,
                 kind="bucket_restore", counts=Counts(requests={"head": 4, "copy": 4, "list": 1}, processes=1),
                 toy_actions=4),
        ]

    drill.steps = steps(0.5)
    quiet = drill._report(None)
    drill.steps = steps(50.0)  # the same work on a machine a hundred times busier
    busy = drill._report(None)
    assert [s["projected_seconds"] for s in quiet["steps"]] == [s["projected_seconds"] for s in busy["steps"]]
    assert quiet["scenarios"]["1 database corruption"]["rto_critical"]["projected_seconds"] == \
        busy["scenarios"]["1 database corruption"]["rto_critical"]["projected_seconds"]
    restore = quiet["steps"][0]
    assert restore["model"]["inputs"]["dump_bytes"] == 1e9 and restore["model"]["parts"]["pg_restore data"] > 0
    # download, then each section of the restore in the order it runs (ADR 0014), then the change log's
    # replay up to the second (ADR 0020: a day of drill.changes_per_day)
    assert list(restore["model"]["parts"])[2:] == ["download artifacts", "roles", "pg_restore pre-data",
                                                   "pg_restore data", "pg_restore post-data", "row counts",
                                                   "replay change log"]
    for report in (quiet, busy):  # (only one scenario played: the drill as a whole is not passed)
        assert report["scenarios"]["1 database corruption"]["rto_critical"]["met"]
        assert report["scenarios"]["1 database corruption"]["rto_non-critical"]["met"]
    drill.config = replace(config, drill=replace(config.drill, database_gb=500.0))  # 500 GB: hours to restore
    drill.steps = steps(0.5)
    missed = drill._report(None)
    assert not missed["passed"]
    assert any("projected RTO (critical)" in f for f in missed["failures"])


def test_a_daily_dump_cannot_meet_a_24_hour_rpo_and_the_drill_says_so(tmp_path):
    config = load_environment(cdk_context(), "prod")
    config = replace(config, database_backups=replace(config.database_backups, schedule="cron(0 1 * * ? *)"))
    drill = LocalDrill(config, tmp_path, tmp_path / "report", progress=lambda _: None, cdk_json=ROOT / "cdk.json")
    drill.started = datetime(2027, 3, 1, tzinfo=UTC)
    report = drill._report(None)
    worst = report["rpo_worst_case"]
    # 25 h across the night the clocks fall back, + one dump, + the replication lag objective.
    assert worst["longest_interval_seconds"] == 25 * 3600 and not worst["met"]
    assert any(f.startswith("RPO: the configuration allows 25.") for f in report["failures"])
