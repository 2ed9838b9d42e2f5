"""The verification jobs end to end on moto: handlers with a fake context, reports and metrics as evidence."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from tavari_dr.changes.segment import Base, write_base
from tavari_dr.core.aws import EMULATOR_CONFIG
from tavari_dr.core.config import VerificationConfig
from tavari_dr.verification import jobs as v
from tests.backups import Signing, write_backup
from tests.lambda_logs import FakeContext
from tests.test_checks import (
    SupabaseApi,
    backups_body,
    configure_like_the_stack,
    guard_like_a_dev_stack,
    lock_like_a_dev_stack,
)
from tests.test_tamper_drift import install as install_tamper_watch

pytestmark = pytest.mark.moto
REGION = "eu-west-1"


@pytest.fixture
def world(monkeypatch):
    monkeypatch.setenv("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required")
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION, config=EMULATOR_CONFIG)
        for name in ("invoices", "replica", "reports", "scratch"):
            s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        s3.create_bucket(Bucket="backups", CreateBucketConfiguration={"LocationConstraint": REGION},
                         ObjectLockEnabledForBucket=True)
        lock_like_a_dev_stack(s3, "backups")
        for i in range(6):
            for version in range(2):
                s3.put_object(Bucket="invoices", Key=f"inv/{i}.pdf", Body=f"v{version} {i}".encode())
        signing = Signing()
        write_backup(s3, "backups", signing.signer, finished=datetime.now(UTC) - timedelta(hours=2))
        # The capture's base record, signed with its own key (the weekly change_chain check reads it).
        changes = Signing()
        write_base(s3, "backups", Base(base_id=f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{0x1000000:016X}",
                                       slot="tavari_backup", publication="tavari_backup",
                                       created_at=datetime.now(UTC).isoformat(), start_lsn="0/1000000",
                                       reason="first start", schema_fingerprint="f", schema={},
                                       identity={"system_identifier": "1", "timeline": 1, "database": "postgres",
                                                 "database_oid": 5}), changes.signer)
        # A change segment the continuous capture just wrote (filed under this UTC hour).
        s3.put_object(Bucket="backups", Key=f"changes/segments/{datetime.now(UTC):%Y/%m/%d/%H}/"
                                            f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-0000000001000000-0000000001000100.seg",
                      Body=b"segment")
        # The policies last: moto refuses object writes under a Deny whatever its conditions say.
        configure_like_the_stack(s3)
        guard_like_a_dev_stack(s3, "backups", "reports")
        sm = boto3.client("secretsmanager", region_name=REGION)
        url = sm.create_secret(Name="url", SecretString="https://abcd.supabase.co")["ARN"]
        token = sm.create_secret(Name="token", SecretString="sbp_token")["ARN"]
        api = SupabaseApi(*[(200, {}, backups_body(hours_old=-(datetime.now(UTC) - datetime(2026, 11, 25, 12,
                                                                                              tzinfo=UTC)).total_seconds()
                                                   / 3600 + 2), 0)] * 4)
        targets = {"invoice_bucket": "invoices", "invoice_key_arn": "arn:aws:kms:key/1", "archive_after_days": 90,
                   "archive_storage_class": "GLACIER_IR", "backup_bucket": "backups", "reports_bucket": "reports",
                   "scratch_bucket": "scratch", "replica_bucket": None, "signing_key_arn": signing.arn,
                   "supabase_url_secret": url,
                   "supabase_token_secret": token, "invoice_access_log_bucket": "invoice-access-logs",
                   "backup_lock_mode": "GOVERNANCE", "backup_default_retention_days": 7, "protected_keys": {},
                   "custodian_arns": [], "changes_enabled": True, "changes_max_lag_seconds": 180,
                   "change_signing_key_arn": changes.arn}
        settings = VerificationConfig(supabase_api_url=api.url, integrity_sample_size=5, restore_test_sample_size=3)
        monkeypatch.setenv("TAVARI_VERIFICATION", json.dumps(asdict(settings)))
        monkeypatch.setenv("TAVARI_TARGETS", json.dumps(targets))
        monkeypatch.setenv("TAVARI_RPO_HOURS", "24")
        monkeypatch.setenv("TAVARI_DR_REGION", "")
        monkeypatch.setenv("TAVARI_TAMPER_WATCH", json.dumps(install_tamper_watch()))
        try:
            yield s3
        finally:
            api.close()


def run_handler(job, monkeypatch, event=None):
    import importlib
    import sys

    from tests.conftest import ROOT

    monkeypatch.syspath_prepend(str(ROOT / "lambdas" / job))
    sys.modules.pop("handler", None)
    try:
        return importlib.import_module("handler").handler(event or {"source": "aws.scheduler"}, FakeContext())
    finally:
        sys.modules.pop("handler", None)


def emf_lines(capsys):
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    return [line for line in lines if "_aws" in line]


def test_daily_monitor_leaves_reports_and_metrics(world, monkeypatch, capsys):
    summary = run_handler("daily_monitor", monkeypatch)
    assert summary["job"] == "daily_monitor"
    assert summary["results"] == {"supabase_backups": "PASS", "bucket_drift": "PASS", "backup_drift": "PASS",
                                  "replication_health": "PASS", "offsite_freshness": "PASS", "tamper_watch": "PASS",
                                  "change_freshness": "PASS"}
    keys = sorted(o["Key"] for o in world.list_objects_v2(Bucket="reports")["Contents"])
    assert [k.split("/")[1] for k in keys] == sorted(summary["results"])
    report = json.loads(world.get_object(Bucket="reports", Key=keys[0])["Body"].read())
    assert {"check", "at", "job", "status", "measured", "details", "duration_seconds"} <= set(report)
    metrics = emf_lines(capsys)
    passed = [m for m in metrics if "CheckPassed" in m]
    assert len(passed) == 7 and all(m["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Check"], []]
                                    for m in passed)
    ages = {m["Source"]: m["BackupAgeHours"] for m in metrics if "BackupAgeHours" in m}
    assert set(ages) == {"supabase", "offsite"} and ages["offsite"] < 3
    assert any(m.get("JobSucceeded") == 1 and m.get("Job") == "daily_monitor" for m in metrics)


def test_a_failing_check_is_reported_and_counted_not_raised(world, monkeypatch, capsys):
    world.put_bucket_versioning(Bucket="invoices", VersioningConfiguration={"Status": "Suspended"})
    summary = run_handler("daily_monitor", monkeypatch)
    assert summary["results"]["bucket_drift"] == "FAIL"
    failed = [m for m in emf_lines(capsys) if "CheckFailed" in m]
    assert [m["Check"] for m in failed] == ["bucket_drift"]


def test_weekly_and_monthly_jobs(world, monkeypatch, capsys):
    # They read invoice objects, which moto would refuse under the TLS-only policy (it ignores conditions).
    world.delete_bucket_policy(Bucket="invoices")
    cw = boto3.client("cloudwatch", region_name=REGION)
    for name, storage in (("BucketSizeBytes", "StandardStorage"), ("NumberOfObjects", "AllStorageTypes")):
        cw.put_metric_data(Namespace="AWS/S3", MetricData=[{
            "MetricName": name, "Value": 1000, "Timestamp": datetime.now(UTC) - timedelta(hours=3),
            "Dimensions": [{"Name": "BucketName", "Value": "invoices"}, {"Name": "StorageType", "Value": storage}]}])
    weekly = run_handler("weekly_integrity", monkeypatch)
    assert weekly["results"] == {"integrity_sample": "PASS", "sizes": "PASS", "offsite_sha256": "PASS",
                                 "change_chain": "PASS"}  # a base, no dump it covers yet: nothing to replay
    assert world.get_object(Bucket="reports", Key="baselines/invoices.json")  # baselines kept as evidence too
    monthly = run_handler("monthly_restore_test", monkeypatch)
    assert monthly["results"] == {"s3_restore_test": "PASS"}
    durations = [m for m in emf_lines(capsys) if "RestoreTestDurationSeconds" in m]
    assert durations and durations[-1]["Source"] == "bucket"


def test_a_second_run_the_same_day_is_harmless(world, monkeypatch):
    run_handler("daily_monitor", monkeypatch)
    run_handler("daily_monitor", monkeypatch)
    keys = [o["Key"] for o in world.list_objects_v2(Bucket="reports")["Contents"]]
    assert len(keys) == 7  # same keys, new versions


def test_unknown_check_names_are_refused():
    with pytest.raises(ValueError, match="unknown check"):
        v.run_checks(("nope",), clients=None, targets=None, settings=VerificationConfig(), rpo_hours=24,
                     now=datetime.now(UTC))


def test_cli_verify_runs_the_same_checks_and_exits_1_on_failure(world, monkeypatch):
    from click.testing import CliRunner

    from tavari_dr.cli import main
    from tavari_dr.core import outputs
    from tavari_dr.core.config import load_environment
    from tests.conftest import ROOT, cdk_context

    monkeypatch.chdir(ROOT)
    config = load_environment(cdk_context(), "dev")
    sm = boto3.client("secretsmanager", region_name=REGION)
    secret_outputs = {outputs.secret_output_key(e.name): sm.create_secret(Name=f"dev-{e.name}", SecretString="x")["ARN"]
                      for e in config.secrets.all_entries}
    cfn = boto3.client("cloudformation", region_name=REGION)
    for purpose, values in (
            (outputs.INVOICE_STORAGE, {outputs.INVOICE_BUCKET_NAME: "invoices",
                                       outputs.INVOICE_KEY_ARN: "arn:aws:kms:key/1"}),
            (outputs.DATABASE_BACKUPS, {outputs.BACKUP_BUCKET_NAME: "backups", outputs.REPORTS_BUCKET_NAME: "reports",
                                        outputs.RESTORE_TEST_BUCKET_NAME: "scratch",
                                        outputs.MANIFEST_SIGNING_KEY_ARN: json.loads(
                                            os.environ["TAVARI_TARGETS"])["signing_key_arn"]}),
            (outputs.SECRETS, secret_outputs)):
        cfn.create_stack(StackName=config.stack_name(purpose), TemplateBody=json.dumps({
            "Resources": {"Anchor": {"Type": "AWS::SNS::Topic"}},
            "Outputs": {k: {"Value": val} for k, val in values.items()}}))
    runner = CliRunner()
    result = runner.invoke(main, ["verify", "--env", "dev", "--check", "bucket_drift", "--check", "offsite_freshness",
                                  "--check", "backup_drift"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "all 3 checks passed" in result.output and "bucket_drift" in result.output
    world.delete_bucket_lifecycle(Bucket="invoices")
    result = runner.invoke(main, ["verify", "--env", "dev", "--check", "bucket_drift"], catch_exceptions=False)
    assert result.exit_code == 1 and "FAIL" in result.output and "bucket_drift" in result.output
    world.delete_bucket_policy(Bucket="backups")
    result = runner.invoke(main, ["verify", "--env", "dev", "--check", "backup_drift"], catch_exceptions=False)
    assert result.exit_code == 1 and "DenyUnconditionalBackupWrites: missing" in result.output
    assert runner.invoke(main, ["verify", "--env", "dev", "--check", "nope"]).exit_code == 2


def test_cli_expects_the_custodians_only_where_data_is_retained():
    from tavari_dr.cli.verify import custodian_arns
    from tavari_dr.core.aws import AwsTarget
    from tavari_dr.core.config import load_environment
    from tests.conftest import cdk_context

    target = AwsTarget(region="eu-central-1")  # a --region override does not move the deploy role
    assert custodian_arns(load_environment(cdk_context(), "dev"), target) == ()
    assert custodian_arns(load_environment(cdk_context(), "prod"), target) == (
        "arn:aws:iam::123456789012:role/cdk-hnb659fds-cfn-exec-role-123456789012-eu-west-1",
        "arn:aws:iam::123456789012:role/tavari-break-glass")


def test_targets_refuse_a_half_named_custodian_pair():
    targets = v.Targets("i", None, 90, "GLACIER_IR", "b", "r", "s", backup_lock_mode="GOVERNANCE",
                        backup_default_retention_days=7, custodian_arns=("arn:aws:iam::1:role/only-one",))
    with pytest.raises(ValueError, match="deploy and the break-glass role"):
        targets.backup_expectation()
    with pytest.raises(ValueError, match="not configured"):
        v.Targets("i", None, 90, "GLACIER_IR", "b", "r", "s").backup_expectation()
