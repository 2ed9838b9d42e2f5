"""`tavari-dr failover plan|apply` and the drill's region outage: the primary region refuses every request
that touches it (by the resource's region, not only the client's), and a failover completes from the DR
region alone — against the drill's moto server and real PostgreSQL."""

from __future__ import annotations

import json
import stat

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from botocore.stub import Stubber
from click.testing import CliRunner

from tavari_dr.cli import main
from tavari_dr.core import aws, outputs
from tavari_dr.core.config import load_environment
from tavari_dr.core.envfile import parse
from tavari_dr.database import backup as db_lib
from tavari_dr.database.signing import KmsSigner, PublicKeyVerifier, SignatureInvalid
from tavari_dr.drill import outage
from tavari_dr.drill.emulator import MotoServer
from tavari_dr.drill.state import fingerprints
from tests.conftest import ROOT, cdk_context

pytestmark = pytest.mark.moto

PRIMARY, DR = "eu-west-1", "eu-central-1"
CONFIG = load_environment(cdk_context(), "prod")
KEYS = {"aws_access_key_id": "t", "aws_secret_access_key": "t"}


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    with MotoServer(tmp_path_factory.mktemp("moto") / "moto.log") as server:
        yield server


@pytest.fixture(autouse=True)
def credentials(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "t")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "t")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv(aws.OUTAGE_ENV, raising=False)
    monkeypatch.chdir(ROOT)


def client(moto, service, region):
    return boto3.client(service, region_name=region, endpoint_url=moto.url, config=aws.EMULATOR_CONFIG, **KEYS)


def register_outputs(moto, region, stack, values):
    template = {"Resources": {"Deployed": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
                "Outputs": {k: {"Value": v} for k, v in values.items()}}
    client(moto, "cloudformation", region).create_stack(StackName=stack, TemplateBody=json.dumps(template))


@pytest.fixture(scope="module")
def deployed(moto, db, tmp_path_factory):
    """What a deployed prod holds before the outage: a signed backup in the primary backup bucket,
    replicated (version IDs kept) to the DR copy; an invoice replica; secrets with DR replicas; the DR
    stacks' outputs. Returns names and the exported public key."""
    import os

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "t")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "t")
    work = tmp_path_factory.mktemp("failover")
    s3 = client(moto, "s3", PRIMARY)
    names = {"backups": "prod-backups", "backups_dr": "prod-backups-dr", "invoices": "prod-invoices",
             "invoices_dr": "prod-invoices-dr", "reports": "prod-reports"}
    for name, region in (("backups", PRIMARY), ("backups_dr", DR), ("invoices", PRIMARY), ("invoices_dr", DR),
                         ("reports", PRIMARY)):
        client(moto, "s3", region).create_bucket(
            Bucket=names[name], CreateBucketConfiguration={"LocationConstraint": region},
            ObjectLockEnabledForBucket=name.startswith("backups"))
    for name in ("backups", "backups_dr"):  # as deployed: a default retention (replicas take it too)
        client(moto, "s3", PRIMARY).put_object_lock_configuration(Bucket=names[name], ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}})
    kms = client(moto, "kms", PRIMARY)
    key = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    manifest = db_lib.run_backup(s3, names["backups"], db, reason="nightly", signer=KmsSigner(kms, key))
    copied = outage.replicate_keeping_versions(s3, names["backups"], names["backups_dr"])
    s3.put_object(Bucket=names["invoices_dr"], Key="invoices/a.pdf", Body=b"%PDF a")
    secrets = client(moto, "secretsmanager", PRIMARY)
    values = {}
    for entry in CONFIG.secrets.all_entries:
        values[entry.name] = f"value of {entry.name}"
        secrets.create_secret(Name=f"tavari-prod-secrets-config{entry.name.lower()}-x1",
                              Description=f"{entry.name}: {entry.description}", SecretString=values[entry.name],
                              AddReplicaRegions=[{"Region": DR}])
    # Another environment's replica of the same entry: never taken for prod's.
    secrets.create_secret(Name="tavari-dev-secrets-configsupabaseurl-x1", Description="SUPABASE_URL: dev's",
                          SecretString="dev", AddReplicaRegions=[{"Region": DR}])
    register_outputs(moto, DR, CONFIG.stack_name(outputs.INVOICE_REPLICA), {
        outputs.REPLICA_BUCKET_NAME: names["invoices_dr"], outputs.REPLICA_KEY_ARN: f"arn:aws:kms:{DR}:1:key/r"})
    register_outputs(moto, DR, CONFIG.stack_name("DatabaseBackupsReplica"),
                     {outputs.BACKUP_BUCKET_NAME: names["backups_dr"]})
    register_outputs(moto, DR, CONFIG.stack_name(outputs.SECRETS_REPLICA_KEY),
                     {outputs.SECRETS_REPLICA_KEY_ARN: f"arn:aws:kms:{DR}:1:key/s"})
    register_outputs(moto, PRIMARY, CONFIG.stack_name(outputs.DATABASE_BACKUPS), {
        outputs.BACKUP_BUCKET_NAME: names["backups"], outputs.REPORTS_BUCKET_NAME: names["reports"],
        outputs.MANIFEST_SIGNING_KEY_ARN: key})
    public_key = outage.public_key(kms, key, work / "signing.der")
    down = outage.declare(work / "outage.json", PRIMARY, outage.buckets_in(s3, PRIMARY))
    return {**names, "key": key, "manifest": manifest, "copied": copied, "values": values, "public_key": public_key,
            "outage": down, "work": work}


def run(moto, *args):
    result = CliRunner().invoke(main, [*args, "--endpoint-url", moto.url], catch_exceptions=False)
    return result.exit_code, result.output


def test_the_replica_keeps_the_backups_version_ids(moto, deployed):
    s3 = client(moto, "s3", DR)
    listed = {(v["Key"], v["VersionId"]) for v in s3.list_object_versions(Bucket=deployed["backups_dr"])["Versions"]}
    assert deployed["copied"] == len(listed) > 3
    pinned = {(a["key"], a["version_id"]) for a in deployed["manifest"].artifacts.values()}
    assert pinned <= listed


def test_a_request_to_a_primary_region_resource_is_refused(moto, deployed, monkeypatch):
    monkeypatch.setenv(aws.OUTAGE_ENV, str(deployed["outage"]))
    dr_s3 = aws.client("s3", region=DR, endpoint_url=moto.url)
    # A DR-region client reaching a primary-region bucket: moto would answer (its buckets are global).
    with pytest.raises(EndpointConnectionError, match=f"region {PRIMARY} is down: bucket {deployed['backups']}"):
        dr_s3.list_objects_v2(Bucket=deployed["backups"])
    with pytest.raises(EndpointConnectionError, match="region eu-west-1 is down"):
        dr_s3.copy_object(Bucket=deployed["invoices_dr"], Key="x",
                          CopySource={"Bucket": deployed["invoices"], "Key": "x"})
    with pytest.raises(EndpointConnectionError, match=f"secretsmanager:{PRIMARY}"):
        aws.client("secretsmanager", region=DR, endpoint_url=moto.url).describe_secret(
            SecretId=f"arn:aws:secretsmanager:{PRIMARY}:123456789012:secret:x")
    with pytest.raises(EndpointConnectionError, match=f"kms client in {PRIMARY}"):
        aws.client("kms", region=PRIMARY, endpoint_url=moto.url).describe_key(KeyId=deployed["key"])
    assert dr_s3.list_objects_v2(Bucket=deployed["backups_dr"])["KeyCount"] > 0  # the DR region answers
    # The operator's usual commands meet the outage as one line, not a traceback.
    code, out = run(moto, "db", "list", "--env", "prod")
    assert code == 1 and f"region {PRIMARY} is down" in out and "Traceback" not in out
    # Never against AWS: a client without an emulator endpoint is left alone (the stub answers; no refusal).
    real = aws.client("s3", region=PRIMARY)
    with Stubber(real) as stub:
        stub.add_response("list_objects_v2", {"KeyCount": 0}, {"Bucket": deployed["backups"]})
        assert real.list_objects_v2(Bucket=deployed["backups"])["KeyCount"] == 0


def test_plan_without_replication_refuses_in_one_line(moto):
    code, out = run(moto, "failover", "plan", "--env", "dev")
    assert code == 2 and out.strip().endswith(
        "dev has no DR region (replication.enabled is false): there is nothing to fail over to")


def test_plan_names_what_it_uses_and_what_is_missing(moto, deployed, monkeypatch):
    monkeypatch.setenv(aws.OUTAGE_ENV, str(deployed["outage"]))
    code, out = run(moto, "failover", "plan", "--env", "prod", "--format", "json")
    assert code == 1, out
    document = json.loads(out[:out.rindex("}") + 1])["result"]
    assert document["invoice_bucket"] == deployed["invoices_dr"]
    assert document["backup_bucket"] == deployed["backups_dr"]
    assert [m for m in document["missing"]] == [
        "backup signature: the manifest signing key lives in eu-west-1 only; pass --signing-public-key FILE (its "
        "public key, exported while the region was up: see docs/runbooks/region-outage.md)"]
    assert set(document["secrets"]) == {e.name for e in CONFIG.secrets.all_entries}
    assert all(f":{DR}:" in arn and "tavari-prod-" in arn for arn in document["secrets"].values())
    code, out = run(moto, "failover", "plan", "--env", "prod", "--signing-public-key", str(deployed["public_key"]))
    # The dump alone loses everything after it: the change log's key is asked for, or the loss said aloud.
    assert code == 1 and "change log: its signing key lives in eu-west-1 only; pass --change-signing-public-key" \
        in out, out
    code, out = run(moto, "failover", "plan", "--env", "prod", "--signing-public-key", str(deployed["public_key"]),
                    "--without-log")
    assert code == 0, out
    assert f"backup {deployed['manifest'].backup_id} (signed" in out and "ready:" in out
    assert "change log: not replayed (--without-log): everything after the dump is lost" in out


def test_apply_restores_from_the_dr_region_alone(moto, deployed, db, pg, monkeypatch, tmp_path):
    monkeypatch.setenv(aws.OUTAGE_ENV, str(deployed["outage"]))  # any primary-region call would fail the command
    refused = []  # and is recorded here, should anything catch the failure
    original = aws.Outage.refusal

    def recorded(self, *args):
        found = original(self, *args)
        if found:
            refused.append(found)
        return found

    monkeypatch.setattr(aws.Outage, "refusal", recorded)
    target = pg.create_database("failed_over")
    out = tmp_path / "dr.env"
    args = ("failover", "apply", "--env", "prod", "--signing-public-key", str(deployed["public_key"]),
            "--without-log", "--target-url", target, "--out", str(out))
    result = CliRunner().invoke(main, [*args, "--endpoint-url", moto.url], input="n\n")
    assert result.exit_code == 1 and "not confirmed: nothing was changed" in result.output
    assert not out.exists()
    code, printed = run(moto, *args, "--yes")
    assert code == 0, printed
    assert fingerprints(target) == fingerprints(db)
    assert parse(out.read_text()) == deployed["values"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert f"invoice bucket: {deployed['invoices_dr']}" in printed and f"region:        {DR}" in printed
    (audit,) = client(moto, "s3", DR).list_objects_v2(Bucket=deployed["backups_dr"], Prefix="audit/")["Contents"]
    record = json.loads(client(moto, "s3", DR).get_object(Bucket=deployed["backups_dr"], Key=audit["Key"])[
        "Body"].read())
    assert record["action"] == "failover" and record["outcome"] == "failed over"
    assert refused == []
    # The hook was in force all along: pointed at the primary region, the same command is refused at once.
    code, printed = run(moto, *args, "--yes", "--force", "--region", DR, "--dr-region", PRIMARY)
    assert code == 1 and f"region {PRIMARY} is down" in printed and refused


def test_the_exported_public_key_verifies_and_refuses_like_kms(moto, deployed):
    verifier = PublicKeyVerifier(deployed["public_key"].read_bytes())
    signer = KmsSigner(client(moto, "kms", PRIMARY), deployed["key"])
    signature = signer.sign(b"manifest")
    verifier.verify(b"manifest", signature)
    with pytest.raises(SignatureInvalid, match="does not verify"):
        verifier.verify(b"another manifest", signature)
    with pytest.raises(SignatureInvalid, match="malformed"):
        verifier.verify(b"manifest", {"value": signature["value"]})
