"""`db stream`'s base-reset dump (issue 27): the deployed capture asks ECS to run the nightly backup job's
task (that job's identity signs and writes the dump, with the reason overridden); taking it in the
capture's own process is an explicit local choice, never a fallback. The capture itself signs with the
change signing key only."""

from __future__ import annotations

import json

import boto3
import pytest
from click.testing import CliRunner

from tavari_dr.changes import capture as capture_lib
from tavari_dr.cli import main
from tavari_dr.database import backup as db_lib
from tavari_dr.database import dump_task
from tests.backups import Signing, backup_s3

pytestmark = pytest.mark.moto
REGION = "eu-west-1"
BUCKET = "tavari-db-backups"
REASON = "base-reset slot lost (the server removed WAL it still needed)"


class ResetsAtOnce:
    """In place of the capture (whose base reset calls ``fresh_dump``, tested with PostgreSQL in
    test_changes_capture): records what `db stream` gave it and resets its base once."""

    made: list[ResetsAtOnce] = []

    def __init__(self, url, s3, bucket, signer, verifier, settings, *, fresh_dump, **_kwargs) -> None:
        self.signer, self.verifier, self.fresh_dump = signer, verifier, fresh_dump
        self.segments_written, self.confirmed = 0, 0
        ResetsAtOnce.made.append(self)

    def run(self, stop) -> None:
        self.fresh_dump(REASON)


@pytest.fixture
def aws(monkeypatch):
    with backup_s3(BUCKET, REGION) as s3:
        ResetsAtOnce.made = []
        monkeypatch.setattr(capture_lib, "Capture", ResetsAtOnce)
        yield s3, Signing(), Signing()


def nightly_task() -> dict:
    """The nightly job's cluster and task definition on moto, as the stack passes them (--dump-task)."""
    ecs = boto3.client("ecs", region_name=REGION)
    cluster = ecs.create_cluster(clusterName="backups")["cluster"]["clusterArn"]
    definition = ecs.register_task_definition(
        family="nightly", requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu="1024", memory="2048",
        containerDefinitions=[{"name": "Job", "image": "job", "cpu": 0, "memory": 2048, "environment": [
            {"name": dump_task.REASON_ENV, "value": "nightly"}]}])["taskDefinition"]["taskDefinitionArn"]
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})  # as the stack's VPC (CDK's default)
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="jobs", Description="jobs", VpcId=vpc)["GroupId"]
    return {"cluster": cluster, "task_definition": definition, "container": "Job", "subnets": [subnet],
            "security_groups": [group]}


def stream(manifests: Signing, changes: Signing, *extra: str):
    return CliRunner().invoke(main, ["db", "stream", "--database-url", "postgresql://postgres@localhost:1/src",
                                     "--bucket", BUCKET, "--region", REGION, "--signing-key", manifests.arn,
                                     "--change-signing-key", changes.arn, *extra])


def test_a_base_reset_runs_the_nightly_task_with_its_reason_and_dumps_nothing_itself(aws, monkeypatch):
    s3, manifests, changes = aws
    monkeypatch.setattr(db_lib, "run_backup", lambda *a, **k: pytest.fail("the capture took the dump itself"))
    task = nightly_task()
    done = stream(manifests, changes, "--dump-task", json.dumps(task))
    assert done.exit_code == 0, done.output
    (capture,) = ResetsAtOnce.made
    assert capture.signer.key_id == changes.arn and capture.verifier.key_id == changes.arn  # never the manifests'
    ecs = boto3.client("ecs", region_name=REGION)
    (arn,) = ecs.list_tasks(cluster=task["cluster"])["taskArns"]
    assert f"the nightly backup task {arn} takes it" in done.output
    (ran,) = ecs.describe_tasks(cluster=task["cluster"], tasks=[arn])["tasks"]
    assert ran["taskDefinitionArn"] == task["task_definition"] and ran["startedBy"] == dump_task.STARTED_BY
    assert ran["overrides"]["containerOverrides"] == [
        {"name": "Job", "environment": [{"name": dump_task.REASON_ENV, "value": REASON}]}]
    assert not s3.list_objects_v2(Bucket=BUCKET).get("KeyCount")


def test_a_task_ecs_cannot_run_stops_the_capture_with_one_line(aws):
    _, manifests, changes = aws
    task = {**nightly_task(), "task_definition": "arn:aws:ecs:eu-west-1:123456789012:task-definition/gone:1"}
    done = stream(manifests, changes, "--dump-task", json.dumps(task))
    assert done.exit_code == 1 and "the nightly backup task" in done.output and "Traceback" not in done.output, \
        done.output


def test_how_the_dump_is_taken_is_named_never_assumed(aws):
    _, manifests, changes = aws
    for extra in ((), ("--dump-in-process", "--dump-task", json.dumps(nightly_task()))):
        done = stream(manifests, changes, *extra)
        assert done.exit_code == 2 and "name how a base reset's fresh dump is taken" in done.output, done.output
    bad = stream(manifests, changes, "--dump-task", '{"cluster": "c"}')
    assert bad.exit_code == 2 and "--dump-task lacks task_definition, container, subnets, security_groups" in \
        bad.output, bad.output
    assert ResetsAtOnce.made == []


def test_in_process_is_the_local_choice_signed_with_the_manifest_key(aws, monkeypatch):
    _, manifests, changes = aws
    taken = []
    monkeypatch.setattr(db_lib, "run_backup", lambda s3, bucket, url, *, reason, signer, **_k: taken.append(
        (url, reason, signer.key_id)) or db_lib.Manifest.__new__(db_lib.Manifest))
    monkeypatch.setattr(db_lib.Manifest, "backup_id", "x", raising=False)
    done = stream(manifests, changes, "--dump-in-process")
    assert done.exit_code == 0, done.output
    assert taken == [("postgresql://postgres@localhost:1/src", REASON, manifests.arn)]
    assert ResetsAtOnce.made[0].signer.key_id == changes.arn


def test_the_nightly_task_reason_comes_from_its_environment(aws, monkeypatch):
    """`db backup` reads the reason the base reset's run overrides (TAVARI_BACKUP_REASON); --reason wins."""
    _, manifests, _ = aws
    reasons = []

    def recorded(*_a, reason, **_k):
        reasons.append(reason)
        raise db_lib.BackupError("recorded; no dump in this test")

    monkeypatch.setattr(db_lib, "run_backup", recorded)
    args = ["db", "backup", "--database-url", "postgresql://postgres@localhost:1/src", "--bucket", BUCKET,
            "--region", REGION, "--signing-key", manifests.arn]
    CliRunner().invoke(main, args, env={dump_task.REASON_ENV: REASON})
    CliRunner().invoke(main, [*args, "--reason", "manual"], env={dump_task.REASON_ENV: REASON})
    assert reasons == [REASON, "manual"]
