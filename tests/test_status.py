"""`tavari-dr status`: the one screen from stored evidence, on the emulator the drill uses (the synthesized
prod app deployed by the local deployer into the project's moto server), plus S3 Control on a Stubber
(moto models no Batch Operations jobs)."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import boto3
import click
import pytest
from click.testing import CliRunner

from tavari_dr.cli import main
from tavari_dr.core import metrics, outputs, reports
from tavari_dr.core.config import load_from_file
from tavari_dr.core.outputs import secret_output_key
from tavari_dr.database.manifest import MANIFEST
from tavari_dr.database.signing import KmsSigner
from tavari_dr.drill.emulator import MotoServer, free_port
from tavari_dr.drill.local_deploy import LocalDeployer
from tavari_dr.status import board as board_lib
from tavari_dr.status import sources
from tavari_dr.verification import jobs as verification

from . import backups
from .conftest import ROOT

REGION = "eu-west-1"
CONFIG = load_from_file("prod", ROOT / "cdk.json")


@pytest.fixture(scope="module")
def emulator(synthesized, tmp_path_factory):
    prod = synthesized["prod"]
    with MotoServer(tmp_path_factory.mktemp("moto") / "moto.log") as moto:
        deployment = LocalDeployer(moto.url).deploy(prod.outdir)
        kw = {"endpoint_url": moto.url, "aws_access_key_id": "t", "aws_secret_access_key": "t", "region_name": REGION}
        yield {"url": moto.url, "deployment": deployment, "kw": kw, "templates": prod.templates,
               "work": tmp_path_factory.mktemp("status")}


def out(env, stack, key):
    return env["deployment"].outputs(CONFIG.stack_name(stack))[key]


@pytest.fixture(scope="module")
def seeded(emulator):
    """Everything a healthy environment has: secrets set, a fresh backup, a report from every check, a
    passed quarterly and local drill, one audited restore."""
    kw, now = emulator["kw"], datetime.now(UTC)
    s3 = boto3.client("s3", **kw)
    sm = boto3.client("secretsmanager", **kw)
    secrets = emulator["deployment"].outputs(CONFIG.stack_name(outputs.SECRETS))
    for entry in CONFIG.secrets.all_entries:
        if entry.required:
            sm.put_secret_value(SecretId=secrets[secret_output_key(entry.name)], SecretString=f"value-of-{entry.name}")
    # A backup as the job writes it: its artifacts, and the manifest pinning them, signed with the stack's key.
    backup_id = write_signed_backup(emulator, now - timedelta(hours=2))
    bucket = out(emulator, outputs.DATABASE_BACKUPS, outputs.REPORTS_BUCKET_NAME)
    for check in (*verification.CHECKS, metrics.DB_VERIFY_QUICK, metrics.DB_RESTORE_TEST):
        reports.write_report(s3, bucket, check, {"status": "PASS", "details": []}, now=now - timedelta(hours=1))
    quarterly = {"passed": True, "environment": "prod", "finished": (now - timedelta(days=3)).isoformat(),
                 "rto_critical": {"achieved_seconds": 1500, "objective_seconds": 3600},
                 "rto_non_critical": {"achieved_seconds": 5000, "objective_seconds": 14400}}
    s3.put_object(Bucket=bucket, Key=f"reports/quarterly_drill/{now - timedelta(days=3):%Y-%m-%d}.json",
                  Body=json.dumps(quarterly).encode())
    s3.put_object(Bucket=bucket, Key=f"audit/db_restore/{now:%Y/%m/%d}/{now:%Y%m%dT%H%M%SZ}-abc.json", Body=json.dumps({
        "action": "db_restore", "caller": "arn:aws:iam::123456789012:user/ops", "outcome": "restored",
        "source": {"backup": backup_id}, "finished_at": now.isoformat()}).encode())
    # The capture's own metrics, as a running `db stream --publish-metrics` publishes them.
    cloudwatch = boto3.client("cloudwatch", **kw)
    for name, value in ((metrics.REPLICATION_LAG_SECONDS, 3.0), (metrics.CHANGE_SEGMENT_AGE_SECONDS, 0.0)):
        cloudwatch.put_metric_data(Namespace=metrics.NAMESPACE, MetricData=[{
            "MetricName": name, "Value": value, "Unit": "Seconds", "Timestamp": now - timedelta(minutes=1),
            "Dimensions": [{"Name": "Source", "Value": "changes"}]}])
    drill = emulator["work"] / "drill-report.json"
    drill.write_text(json.dumps({"environment": "prod", "passed": True, "finished": now.isoformat(),
                                 "objectives": {"rto_critical_seconds": 3600},
                                 "scenarios": {"1-database": {"rto_critical": {"projected_seconds": 900}}},
                                 "rpo_worst_case": {"worst_case_seconds": 48000, "objective_seconds": 86400}}))
    return {**emulator, "drill": drill, "backup_id": backup_id}


def write_signed_backup(env, finished, tier="daily", bucket=None):
    s3 = boto3.client("s3", **env["kw"])
    bucket = bucket or out(env, outputs.DATABASE_BACKUPS, outputs.BACKUP_BUCKET_NAME)
    signer = KmsSigner(boto3.client("kms", **env["kw"]), out(env, outputs.DATABASE_BACKUPS,
                                                              outputs.MANIFEST_SIGNING_KEY_ARN))
    prefix = f"dumps/{tier}/{backups.backup_id(finished)}"
    manifest = backups.manifest_for(prefix, finished, backups.put_artifacts(s3, bucket, prefix), tier)
    s3.put_object(Bucket=bucket, Key=f"{prefix}/{MANIFEST}", Body=backups.signed_body(manifest, signer))
    return manifest.backup_id


def status(env, *args):
    result = CliRunner().invoke(main, ["status", "--env", "prod", "--cdk-json", str(ROOT / "cdk.json"),
                                       "--endpoint-url", env["url"], "--drill-report", str(env["drill"]), *args])
    assert not (result.exception and not isinstance(result.exception, SystemExit)), result.exception
    return result


def rows(result):
    return {(r["section"], r["item"]): r for r in json.loads(result.stdout)["result"]["rows"]}


def board_at(env, now, make_client=None):
    def client(service, region):
        return boto3.client(service, **{**env["kw"], "region_name": region or REGION})

    ev = sources.Evidence(config=CONFIG, now=now, client=client, drill_report=env["drill"], emulator=True)
    return sources.collect(ev, make_client or client, board_lib.Board("prod", now.isoformat()))


def test_a_healthy_environment_is_green_from_bounded_reads_without_retries(seeded, monkeypatch):
    def no_sleep(seconds):
        raise AssertionError(f"status slept {seconds} s: a retry or a wait")

    monkeypatch.setattr(time, "sleep", no_sleep)
    result = status(seeded, "--format", "json")
    assert result.exit_code == 0, result.output
    envelope = json.loads(result.stdout)  # the one CLI contract (tests/test_cli_contract.py)
    assert {k: envelope[k] for k in ("command", "env", "ok", "errors")} == {
        "command": "status", "env": "prod", "ok": True, "errors": []}
    found = rows(result)
    assert found["backups", "newest"]["level"] == "ok" and seeded["backup_id"] in found["backups", "newest"]["summary"]
    assert all(found["checks", c]["level"] == "ok" for c in verification.CHECKS)
    assert found["drills", "quarterly (AWS)"]["level"] == "ok"
    assert found["drills", "local"]["level"] == "ok"
    assert found["restores", "db_restore"]["summary"].startswith("restored")
    alarms = sum(1 for t in seeded["templates"].values() for r in t["Resources"].values()
                 if r["Type"] == "AWS::CloudWatch::Alarm")
    assert found["alarms", "declared"]["summary"].startswith(f"{alarms} declared") and alarms > 40
    # The bound on time, as a count of calls (each source's calls, every attempt counted): with 12
    # stacks, 3 regions, 3 tiers, 12 report kinds and 11 secret entries.
    stacks = len(seeded["templates"])
    requests = json.loads(result.stdout)["result"]["requests"]
    entries = len(CONFIG.secrets.all_entries)
    assert requests["stacks"] == 3  # DescribeStacks per region
    with_alarms = sum(1 for t in seeded["templates"].values()
                      if any(r["Type"] in sources.ALARM_TYPES for r in t["Resources"].values()))
    # ListStackResources per stack, one DescribeAlarms (< 100 alarms), one GetTemplate per stack that declares
    # an alarm (each alarm compared with its declaration): 12 + 1 + 1 here.
    assert requests["alarms"] == stacks + 1 + with_alarms
    # ListObjectVersions per tier, over its window; then, as `db verify --quick` opens it, the newest backup
    # of each tier that has one (daily only here): one GetObject of its manifest and one kms:Verify.
    assert requests["backups"] == 3 + 2
    assert requests["verification reports"] == 2 * (len(verification.CHECKS) + 2)  # a listing, a read each
    assert requests["quarterly drill report"] == 2
    assert requests["metrics"] == 1  # one GetMetricData (the replication metrics; no capture alarm deployed)
    assert requests["secrets"] == 2 * entries
    assert requests["audit records"] == len(sources.RESTORE_ACTIONS) + 1
    assert sum(requests.values()) < 100


def test_an_alarm_declared_but_missing_from_the_account_is_red(seeded):
    cloudwatch = boto3.client("cloudwatch", **seeded["kw"])
    name = next(a["physical_id"] for a in seeded["deployment"].stacks[CONFIG.stack_name(outputs.MONITORING)].applied
                if a["type"] == "AWS::CloudWatch::Alarm" and "ReplicationLatency" in a["logical_id"])
    alarm = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]
    cloudwatch.delete_alarms(AlarmNames=[name])
    try:
        result = status(seeded, "--format", "json")
        assert result.exit_code == 1
        (missing,) = [r for r in rows(result).values() if r["section"] == "alarms" and r["level"] == "red"]
        assert "missing from the account" in missing["summary"] and name in missing["summary"]
        text = status(seeded)
        assert text.exit_code == 1 and "missing from the account" in text.output
    finally:
        keep = ("AlarmName", "AlarmDescription", "AlarmActions", "OKActions", "MetricName", "Namespace", "Statistic",
                "Dimensions", "Period", "EvaluationPeriods", "Threshold", "ComparisonOperator", "TreatMissingData")
        cloudwatch.put_metric_alarm(**{k: alarm[k] for k in keep if k in alarm})
    assert status(seeded).exit_code == 0


def test_an_alarm_in_alarm_is_red_with_its_runbook(seeded):
    cloudwatch = boto3.client("cloudwatch", **seeded["kw"])
    name = seeded["deployment"].stacks[CONFIG.stack_name(outputs.MONITORING)].applied
    name = next(a["physical_id"] for a in name if a["type"] == "AWS::CloudWatch::Alarm")
    cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="Threshold Crossed: 1 datapoint")
    try:
        result = status(seeded, "--format", "json")
        assert result.exit_code == 1
        (alarmed,) = [r for r in rows(result).values() if r["section"] == "alarms" and r["level"] == "red"]
        assert alarmed["summary"].startswith("ALARM: Threshold Crossed")
        assert alarmed["data"]["runbook"].startswith("https://") and "/runbooks/alarms/#" in alarmed["data"]["runbook"]
    finally:
        cloudwatch.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="test over")


def test_a_backup_older_than_the_rpo_is_red(seeded):
    board = board_at(seeded, datetime.now(UTC) + timedelta(hours=CONFIG.monitoring.rpo_hours))
    found = {(r.section, r.item): r for r in board.rows}
    assert found["backups", "newest"].level == "red"
    assert "older than the RPO of 24 h" in found["backups", "newest"].summary
    assert found["backups", "newest"].age_seconds > CONFIG.monitoring.rpo_hours * 3600
    assert board.exit_code == 1
    # and now, the same backup is within it
    fresh = {(r.section, r.item): r for r in board_at(seeded, datetime.now(UTC)).rows}
    assert fresh["backups", "newest"].level == "ok"


def test_a_failed_or_overdue_check_report_is_red(seeded):
    later = {(r.section, r.item): r for r in board_at(seeded, datetime.now(UTC) + timedelta(days=2)).rows}
    daily = later["checks", "supabase_backups"]
    assert daily.level == "red" and "overdue" in daily.summary
    assert later["checks", "sizes"].level == "ok"  # weekly: not due yet
    s3 = boto3.client("s3", **seeded["kw"])
    bucket = out(seeded, outputs.DATABASE_BACKUPS, outputs.REPORTS_BUCKET_NAME)
    reports.write_report(s3, bucket, "bucket_drift", {"status": "FAIL", "details": ["versioning is Suspended"]})
    try:
        now = {(r.section, r.item): r for r in board_at(seeded, datetime.now(UTC)).rows}
        assert now["checks", "bucket_drift"].level == "red"
        assert now["checks", "bucket_drift"].summary == "FAIL: versioning is Suspended"
    finally:
        reports.write_report(s3, bucket, "bucket_drift", {"status": "PASS", "details": []})


def test_a_placeholder_secret_is_red(seeded):
    sm = boto3.client("secretsmanager", **seeded["kw"])
    arn = seeded["deployment"].outputs(CONFIG.stack_name(outputs.SECRETS))[secret_output_key("ALERT_WEBHOOK_URL")]
    sm.put_secret_value(SecretId=arn, SecretString=outputs.PLACEHOLDER_TEMPLATE)
    try:
        found = {(r.section, r.item): r for r in board_at(seeded, datetime.now(UTC)).rows}
        assert found["secrets", "entries"].level == "red"
        assert "ALERT_WEBHOOK_URL (placeholder)" in found["secrets", "entries"].summary
    finally:
        sm.put_secret_value(SecretId=arn, SecretString="https://hooks.example/1")


def test_sources_that_cannot_be_read_are_one_line_each_exit_2_and_one_attempt(seeded, monkeypatch):
    closed = f"http://127.0.0.1:{free_port()}"

    def broken_s3(service, region):
        url = closed if service == "s3" else seeded["url"]
        return boto3.client(service, **{**seeded["kw"], "endpoint_url": url, "region_name": region or REGION},
                            config=sources_no_retries())

    board = board_at(seeded, datetime.now(UTC), make_client=broken_s3)
    unreadable = {u.source: u.reason for u in board.unreadable}
    assert set(unreadable) == {"backups", "verification reports", "quarterly drill report", "audit records"}
    assert all("\n" not in reason and "Could not connect" in reason for reason in unreadable.values())
    assert board.requests["backups"] == 1 and board.requests["audit records"] == 1  # one attempt, then given up
    assert board.exit_code == 2

    monkeypatch.setattr(time, "sleep", lambda s: (_ for _ in ()).throw(AssertionError(f"slept {s}")))
    result = CliRunner().invoke(main, ["status", "--env", "prod", "--cdk-json", str(ROOT / "cdk.json"),
                                       "--endpoint-url", closed])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]  # one source (the stacks), one line
    assert result.stderr.startswith("could not read stacks: Could not connect to the endpoint URL")
    assert "Traceback" not in result.output + result.stderr


def sources_no_retries():
    from tavari_dr.cli.status import no_retries

    return no_retries()


def test_the_capture_row_is_red_without_data_and_green_with_a_fresh_lag(seeded):
    """changes.enabled and a declared alarm on the capture's lag: its newest datapoint of 15 minutes."""
    cloudwatch = boto3.client("cloudwatch", **seeded["kw"])

    def client(service, region):
        return boto3.client(service, **{**seeded["kw"], "region_name": region or REGION})

    # A day on: the seeded environment's capture has published nothing in the 15 minutes before then.
    ev = sources.Evidence(config=CONFIG, now=datetime.now(UTC) + timedelta(days=1), client=client,
                          drill_report=seeded["drill"],
                          alarms=[{"AlarmName": "lag", "Namespace": metrics.NAMESPACE,
                                   "MetricName": metrics.REPLICATION_LAG_SECONDS}])
    sources.stacks(ev)
    found = {(r.section, r.item): r for r in sources.metric_rows(ev)}
    assert found["changes", metrics.REPLICATION_LAG_SECONDS].level == "red"
    assert "no data in the last 15 min" in found["changes", metrics.REPLICATION_LAG_SECONDS].summary
    for name, value in ((metrics.REPLICATION_LAG_SECONDS, 12.0), (metrics.CHANGE_SEGMENT_AGE_SECONDS, 40.0)):
        cloudwatch.put_metric_data(Namespace=metrics.NAMESPACE, MetricData=[{
            "MetricName": name, "Value": value, "Unit": "Seconds",
            "Dimensions": [{"Name": "Source", "Value": "changes"}],
            "Timestamp": datetime.now(UTC) - timedelta(minutes=1)}])
    found = {(r.section, r.item): r for r in sources.metric_rows(replace(ev, now=datetime.now(UTC)))}
    assert found["changes", metrics.REPLICATION_LAG_SECONDS].level == "ok"
    assert found["changes", metrics.REPLICATION_LAG_SECONDS].summary.startswith("12 s (limit")
    assert found["changes", metrics.CHANGE_SEGMENT_AGE_SECONDS].level == "ok"
    # Without the capture's alarm deployed, changes.enabled alone is not red: nothing publishes yet.
    bare = replace(ev, alarms=[])
    assert {(r.section, r.item): r.level for r in sources.metric_rows(bare)}[("changes", "capture")] == "warn"


def test_the_table_has_colours_only_where_wanted(seeded, monkeypatch):
    board = board_lib.Board("prod", "now", rows=[board_lib.Row("backups", "newest", "red", "too old", 90000.0)])
    coloured = list(board_lib.lines(board, style=click.style))
    assert "\x1b[31m" in coloured[-1] and "25.0 h" in coloured[-1]
    assert "\x1b[" not in "".join(board_lib.lines(board))
    monkeypatch.setenv("NO_COLOR", "1")
    from tavari_dr.cli import status as status_cli

    assert status_cli.colour_wanted() is False
    result = status(seeded)  # not a terminal: no escape codes
    assert result.exit_code == 0 and "\x1b[" not in result.output
    assert result.output.splitlines()[-1].startswith("all green")


def test_the_local_deployer_applies_every_alarm_and_the_emulator_lists_them_as_cloudformation_does(emulator):
    kw = emulator["kw"]
    monitoring = CONFIG.stack_name(outputs.MONITORING)
    template = emulator["templates"][monitoring]
    declared = {k for k, r in template["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    listed = boto3.client("cloudformation", **kw).get_paginator("list_stack_resources").paginate(StackName=monitoring)
    listed = {r["LogicalResourceId"]: r["PhysicalResourceId"] for page in listed
              for r in page["StackResourceSummaries"] if r["ResourceType"] == "AWS::CloudWatch::Alarm"}
    assert set(listed) == declared
    alarms = boto3.client("cloudwatch", **kw).describe_alarms(AlarmNames=list(listed.values()))["MetricAlarms"]
    assert len(alarms) == len(declared)
    by_name = {a["AlarmName"]: a for a in alarms}
    logical = next(k for k in declared if "BackupSizeDrop" in k)
    applied = by_name[listed[logical]]
    properties = template["Resources"][logical]["Properties"]
    assert applied["Metrics"] and applied["Threshold"] == float(properties["Threshold"])
    assert applied["AlarmDescription"] == properties["AlarmDescription"]
    report = emulator["deployment"].stacks[monitoring]
    assert not [n for n in report.not_applied if n["type"] == "AWS::CloudWatch::Alarm"]
    assert "AWS::CloudWatch::Alarm" in report.moto_would_ignore


def scratch_evidence(env, now, **replaced_outputs):
    """Evidence whose DatabaseBackups outputs name scratch buckets: what a test writes there cannot turn
    the module's healthy environment red."""
    def client(service, region):
        return boto3.client(service, **{**env["kw"], "region_name": region or REGION})

    ev = sources.Evidence(config=CONFIG, now=now, client=client, drill_report=env["work"] / "none.json", emulator=True)
    sources.stacks(ev)
    name = CONFIG.stack_name(outputs.DATABASE_BACKUPS)
    ev.stacks[name] = replace(ev.stacks[name], outputs={**ev.stacks[name].outputs, **replaced_outputs})
    return ev


def scratch_bucket(env, name):
    boto3.client("s3", **env["kw"]).create_bucket(Bucket=name, ObjectLockEnabledForBucket=True,
                                                  CreateBucketConfiguration={"LocationConstraint": REGION})
    return name


def backup_rows(ev):
    return {(r.section, r.item): r for r in sources.backups(ev)}


def test_the_newest_backup_s_signature_and_recorded_versions_are_checked(seeded):
    """As `db verify --quick` opens a backup: a second version of an artifact, a junk manifest, an unsigned
    one written after the signing key existed — each red, named, without reading any artifact."""
    now = datetime.now(UTC)
    s3 = boto3.client("s3", **seeded["kw"])
    bucket = scratch_bucket(seeded, "status-second-version")
    ev = scratch_evidence(seeded, now, **{outputs.BACKUP_BUCKET_NAME: bucket})
    signing = out(seeded, outputs.DATABASE_BACKUPS, outputs.MANIFEST_SIGNING_KEY_ARN)
    signer = KmsSigner(boto3.client("kms", **seeded["kw"]), signing)
    finished = now - timedelta(hours=1)
    prefix = f"dumps/daily/{backups.backup_id(finished)}"
    manifest = backups.manifest_for(prefix, finished, backups.put_artifacts(s3, bucket, prefix), "daily")
    s3.put_object(Bucket=bucket, Key=f"{prefix}/{MANIFEST}", Body=backups.signed_body(manifest, signer))
    found = backup_rows(ev)
    assert found["backups", "daily"].level == "ok" and found["backups", "newest"].level == "ok"
    s3.put_object(Bucket=bucket, Key=f"{prefix}/roles.sql", Body=b"-- someone else's roles")
    found = backup_rows(ev)
    for item in ("newest", "daily"):
        assert found["backups", item].level == "red", found["backups", item]
        summary = found["backups", item].summary
        assert "tampered" in summary and "roles.sql: 2 versions" in summary

    for bucket, body, said in (
            ("status-junk-manifest", b"{}", "is not a manifest of a known format"),
            ("status-unsigned-manifest", backups.legacy_body(manifest), "is unsigned but was written at")):
        scratch_bucket(seeded, bucket)
        ev = scratch_evidence(seeded, now, **{outputs.BACKUP_BUCKET_NAME: bucket})
        backups.put_artifacts(s3, bucket, prefix)
        s3.put_object(Bucket=bucket, Key=f"{prefix}/{MANIFEST}", Body=body)
        found = backup_rows(ev)
        assert found["backups", "newest"].level == "red" and said in found["backups", "newest"].summary, bucket
        assert found["backups", "daily"].level == "red" and said in found["backups", "daily"].summary


def test_evidence_dated_in_the_future_is_red_and_never_the_newest(seeded, tmp_path):
    """A folder dated 2099 does not hide three days without dumps; a PASS report dated 2099 does not hide
    today's FAIL; a drill report from 2099 is not a drill."""
    now = datetime.now(UTC)
    s3 = boto3.client("s3", **seeded["kw"])
    dumps = scratch_bucket(seeded, "status-future-dumps")
    reports_bucket = scratch_bucket(seeded, "status-future-reports")
    ev = scratch_evidence(seeded, now, **{outputs.BACKUP_BUCKET_NAME: dumps,
                                          outputs.REPORTS_BUCKET_NAME: reports_bucket})
    real = write_signed_backup(seeded, now - timedelta(days=3, hours=1), bucket=dumps)
    write_signed_backup(seeded, datetime(2099, 1, 1, 2, tzinfo=UTC), bucket=dumps)
    found = backup_rows(ev)
    future = found["backups", "future daily"]
    assert future.level == "red" and "20990101T020000Z" in future.summary
    assert found["backups", "newest"].level == "red" and real in found["backups", "newest"].summary
    assert "older than the RPO" in found["backups", "newest"].summary and found["backups", "newest"].age_seconds > 0
    assert found["backups", "daily"].level == "red" and real in found["backups", "daily"].summary

    reports.write_report(s3, reports_bucket, "bucket_drift", {"status": "FAIL", "details": ["versioning is Suspended"]},
                         now=now)
    reports.write_report(s3, reports_bucket, "bucket_drift", {"status": "PASS", "details": []},
                         now=datetime(2099, 1, 1, tzinfo=UTC))
    (row,) = sources.check_reports(ev, ["bucket_drift"])
    assert row.level == "red" and row.summary.startswith("FAIL: versioning is Suspended")
    assert "reports/bucket_drift/2099-01-01.json dated after now" in row.summary
    # Today's key, but a time inside it from 2099: red too.
    reports.write_report(s3, reports_bucket, "sizes", {"status": "PASS", "details": []}, now=now)
    body = json.loads(s3.get_object(Bucket=reports_bucket, Key=reports.report_key("sizes", now))["Body"].read())
    s3.put_object(Bucket=reports_bucket, Key=reports.report_key("sizes", now),
                  Body=json.dumps({**body, "at": "2099-01-01T00:00:00+00:00"}).encode())
    (row,) = sources.check_reports(ev, ["sizes"])
    assert row.level == "red" and "after now" in row.summary

    quarterly = {"passed": True, "environment": "prod", "finished": "2099-01-01T00:00:00+00:00",
                 "rto_critical": {"achieved_seconds": 1500, "objective_seconds": 3600},
                 "rto_non_critical": {"achieved_seconds": 5000, "objective_seconds": 14400}}
    s3.put_object(Bucket=reports_bucket, Key="reports/quarterly_drill/2099-01-01.json",
                  Body=json.dumps(quarterly).encode())
    (row,) = sources.quarterly_drill(ev)
    assert row.level == "red" and "2099-01-01" in row.summary
    drill = tmp_path / "drill-report.json"
    drill.write_text(json.dumps({**json.loads(seeded["drill"].read_text()), "finished": "2099-01-01T00:00:00+00:00"}))
    (row,) = sources.local_drill(replace(ev, drill_report=drill))
    assert row.level == "red" and "after now" in row.summary


def replication_alarm(env):
    return next(a["physical_id"] for a in env["deployment"].stacks[CONFIG.stack_name(outputs.MONITORING)].applied
                if a["type"] == "AWS::CloudWatch::Alarm" and "ReplicationLatency" in a["logical_id"])


def alarm_rows(env):
    return [r for r in board_at(env, datetime.now(UTC)).rows if r.section == "alarms" and r.level == "red"]


def test_an_alarm_whose_actions_are_disabled_or_that_was_redeclared_toothless_is_red(seeded):
    cloudwatch = boto3.client("cloudwatch", **seeded["kw"])
    name = replication_alarm(seeded)
    alarm = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]
    keep = ("AlarmName", "AlarmDescription", "AlarmActions", "OKActions", "MetricName", "Namespace", "Statistic",
            "Dimensions", "Period", "EvaluationPeriods", "Threshold", "ComparisonOperator", "TreatMissingData")
    assert alarm["AlarmActions"] and alarm["ActionsEnabled"]
    try:
        # Its actions disabled (what DisableAlarmActions does; moto's server answers that call with a 500).
        cloudwatch.put_metric_alarm(**{k: alarm[k] for k in keep if k in alarm}, ActionsEnabled=False)
        (row,) = alarm_rows(seeded)
        assert name in row.summary and "ActionsEnabled False (declared True)" in row.summary
        # Re-declared in place: the same name, no actions, a threshold nothing reaches.
        cloudwatch.put_metric_alarm(**{**{k: alarm[k] for k in keep if k in alarm}, "AlarmActions": [],
                                       "OKActions": [], "Threshold": 1e12})
        (row,) = alarm_rows(seeded)
        assert name in row.summary and row.data["name"] == name
        fields = {d.split(" ", 1)[0] for d in row.data["differences"]}
        assert fields == {"AlarmActions", "OKActions", "Threshold"}, row.data["differences"]
        assert "Threshold 1000000000000.0 (declared" in row.summary
        result = status(seeded)
        assert result.exit_code == 1 and "not as declared" in result.output
    finally:
        cloudwatch.put_metric_alarm(**{k: alarm[k] for k in keep if k in alarm})
    assert not alarm_rows(seeded)


def test_every_alarm_the_prod_templates_declare_resolves_for_the_comparison(seeded):
    """In AWS, GetTemplate answers the template as synthesized (Ref, Fn::GetAtt, Fn::GetStackOutput...): every
    alarm property of the prod app resolves from what status reads (the stacks' resources and outputs)."""
    ev = scratch_evidence(seeded, datetime.now(UTC))
    checked = 0
    for stack_name, template in seeded["templates"].items():
        physical = {logical: f"https://sqs.eu-west-1.amazonaws.com/1/{logical}" for logical in template["Resources"]}
        stack = ev.stacks.get(stack_name) or sources.Stack(stack_name, REGION, datetime.now(UTC), {})
        for resource in template["Resources"].values():
            if resource["Type"] in sources.ALARM_TYPES:
                resolved = sources._resolve(resource["Properties"], stack, ev, physical)
                assert "Ref" not in json.dumps(resolved) and "Fn::" not in json.dumps(resolved)
                assert not sources.differences(resolved, {**resolved, "ActionsEnabled": True})
                checked += 1
    assert checked > 40
