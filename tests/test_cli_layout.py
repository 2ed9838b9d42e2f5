"""The CLI's shape: shared options on every command (--format and its envelope: tests/test_cli_contract.py)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import boto3
import click
import pytest
from click.testing import CliRunner
from moto import mock_aws

from tavari_dr.cli import main
from tavari_dr.core import metrics

SHARED = {"env_name", "cdk_json", "region", "dr_region", "endpoint_url"}
# Commands that never talk to AWS take --env and --cdk-json only (no region or endpoint to point anywhere).
OFFLINE = {("config", "show")}


def commands(group: click.Group = main, path: tuple[str, ...] = ()):
    """The tree as click's help walks it (the top group loads its commands lazily)."""
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))
        else:
            yield (*path, name), command


def test_every_command_takes_the_shared_options():
    walked = list(commands())
    assert len(walked) >= 29
    for path, command in walked:
        names = {p.name for p in command.params}
        assert names >= (SHARED - {"region", "dr_region", "endpoint_url"} if path in OFFLINE else SHARED), path


def test_the_local_drill_refuses_an_endpoint_it_would_not_use():
    result = CliRunner().invoke(main, ["drill", "--local", "--endpoint-url", "http://127.0.0.1:5000"])
    assert result.exit_code == 2 and "--endpoint-url: the local drill starts its own emulator" in result.output
    # The same variable in the environment is not the operator's choice for the drill: it is not refused.
    result = CliRunner().invoke(main, ["drill", "--local", "--cdk-out", "/nonexistent"],
                                env={"TAVARI_DR_ENDPOINT_URL": "http://127.0.0.1:5000"})
    assert result.exit_code == 2 and "synthesize first" in result.output


@pytest.mark.moto
def test_bucket_restore_answers_in_json_for_the_dry_run_and_the_result(tmp_path):
    with mock_aws():
        s3 = boto3.client("s3", region_name="eu-west-1")
        s3.create_bucket(Bucket="invoices", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        s3.put_bucket_versioning(Bucket="invoices", VersioningConfiguration={"Status": "Enabled"})
        s3.put_object(Bucket="invoices", Key="a.pdf", Body=b"1")
        time.sleep(1.1)  # S3 times have a resolution of one second
        to = datetime.now(UTC).isoformat(timespec="seconds")
        time.sleep(1.1)
        s3.put_object(Bucket="invoices", Key="a.pdf", Body=b"ransom")
        # The erasure ledger's bucket (an erased account's invoices never come back): here it holds no entry.
        s3.create_bucket(Bucket="backups", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        args = ["bucket", "restore", "--bucket", "invoices", "--region", "eu-west-1", "--format", "json",
                "--to", to, "--state-dir", str(tmp_path), "--backup-bucket", "backups"]
        dry = CliRunner().invoke(main, args, catch_exceptions=False)
        assert dry.exit_code == 0, dry.output
        answer = json.loads(dry.stdout)["result"]
        assert answer["applied"] is False and answer["keys_in_scope"] == 1 and "result" not in answer
        s3.create_bucket(Bucket="reports", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        done = CliRunner().invoke(main, [*args, "--apply", "--report-bucket", "reports"], catch_exceptions=False)
        assert done.exit_code == 0, done.output
        answer = json.loads(done.stdout)["result"]
        result = answer["result"]
        assert result["counts"] == {"done": 1} and result["problems"] == [] and result["report"].endswith(".jsonl")
        assert answer["audit_record"]["outcome"] == "restored"
        assert answer["audit_record"]["record"].startswith("s3://reports/audit/bucket_restore/")


def test_one_outcome_shape_for_emf_and_put_metric_data():
    """publish_outcome through EMF (the Lambdas) and through PutMetricData (the CLI and the Fargate jobs)."""
    lines: list[dict] = []
    metrics.publish_outcome("db_verify_quick", checks={"db_verify_quick": False}, succeeded=False,
                            emit=lambda values, dims=None, aggregate=False: lines.append(
                                json.loads(metrics.emf_line(values, dims, aggregate=aggregate))))

    class CloudWatch:
        calls: list[tuple] = []

        def put_metric_data(self, Namespace, MetricData):  # noqa: N803 - boto3's names
            self.calls += [(d["MetricName"], tuple((x["Name"], x["Value"]) for x in d["Dimensions"]))
                           for d in MetricData]

    cloudwatch = CloudWatch()
    metrics.publish_outcome("db_verify_quick", checks={"db_verify_quick": False}, succeeded=False,
                            emit=metrics.cloudwatch_emitter(cloudwatch))
    assert cloudwatch.calls == [("CheckFailed", (("Check", "db_verify_quick"),)), ("CheckFailed", ()),
                                ("JobFailed", (("Job", "db_verify_quick"),))]
    assert [line["_aws"]["CloudWatchMetrics"][0]["Dimensions"] for line in lines] == [[["Check"], []], [["Job"]]]
