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
from tavari_dr.drill.emulator import MotoServer, free_port
from tavari_dr.drill.local_deploy import LocalDeployer
from tavari_dr.status import board as board_lib
from tavari_dr.status import sources
from tavari_dr.verification import jobs as verification

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
    backup_id = f"{now - timedelta(hours=2):%Y%m%dT%H%M%SZ}-nightly"
    # An artifact and the manifest, as every backup has (and moto needs: given a KeyMarker that is not a
    # key, it drops the first version after it, which S3 returns).
    for name in ("data/toc.dat", "manifest.json"):
        s3.put_object(Bucket=out(emulator, outputs.DATABASE_BACKUPS, outputs.BACKUP_BUCKET_NAME),
                      Key=f"dumps/daily/{backup_id}/{name}", Body=b"{}", ChecksumAlgorithm="SHA256")
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


def status(env, *args):
    result = CliRunner(mix_stderr=False).invoke(main, ["status", "--env", "prod", "--cdk-json", str(ROOT / "cdk.json"),
                                       "--endpoint-url", env["url"], "--drill-report", str(env["drill"]), *args])
    assert not (result.exception and not isinstance(result.exception, SystemExit)), result.exception
    return result


def rows(result):
    return {(r["section"], r["item"]): r for r in json.loads(result.stdout)["rows"]}


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
    requests = json.loads(result.stdout)["requests"]
    entries = len(CONFIG.secrets.all_entries)
    assert requests["stacks"] == 3  # DescribeStacks per region
    assert requests["alarms"] == stacks + 1  # ListStackResources per stack, one DescribeAlarms (< 100 alarms)
    assert requests["backups"] == 3  # ListObjectVersions per tier, over its window
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
        assert alarmed["data"]["runbook"].startswith("https://") and "alarms.md#" in alarmed["data"]["runbook"]
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
    result = CliRunner(mix_stderr=False).invoke(main, ["status", "--env", "prod", "--cdk-json", str(ROOT / "cdk.json"),
                                       "--endpoint-url", closed])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]  # one source (the stacks), one line
    assert result.stderr.startswith("could not read stacks: Could not connect to the endpoint URL")
    assert "Traceback" not in result.output + result.stderr


def sources_no_retries():
    from tavari_dr.cli.status import NO_RETRIES

    return NO_RETRIES


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
