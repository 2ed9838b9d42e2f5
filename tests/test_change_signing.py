"""Two signing keys, each trusted for its own records only (issue 27): the capture signs change records
(segments and base records under changes/) with the change signing key, the nightly job signs dump
manifests with the manifest signing key. A record signed with the other key is refused, by the KMS
verifiers and by the exported public keys alike (a failover verifies without KMS)."""

from __future__ import annotations

import gzip
import hashlib
import io
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from click.testing import CliRunner

from tavari_dr.changes.segment import Base, Header, SegmentError, open_segment, read_base, write_base, write_segment
from tavari_dr.cli import main
from tavari_dr.database import backup as d
from tavari_dr.database.manifest import MANIFEST, find_backup
from tavari_dr.database.signing import KmsSigner, PublicKeyVerifier, change_verifier, manifest_verifier
from tests.backups import Signing, backup_s3, manifest_for, put_artifacts, signed_body

pytestmark = pytest.mark.moto
REGION = "eu-west-1"
BUCKET = "tavari-db-backups"
FINISHED = datetime(2027, 2, 28, 12, 0, tzinfo=UTC)
DUMP_LSN = 0x1000


@pytest.fixture
def s3():
    with backup_s3(BUCKET, REGION) as client:
        yield client


@pytest.fixture
def keys(s3):
    """The stack's two keys on moto: manifests (the nightly job's) and changes (the capture's)."""
    return Signing(), Signing()


# The one source database every record here comes from (backup.source_identity's shape).
SOURCE = {"system_identifier": "7000000000000000001", "timeline": 1, "database": "postgres", "database_oid": 5}


def backup(s3, signer: KmsSigner) -> d.Manifest:
    """A dump the change log can be replayed onto (its snapshot and WAL position recorded)."""
    prefix = f"dumps/daily/{FINISHED:%Y%m%dT%H%M%SZ}-nightly"
    manifest = manifest_for(prefix, FINISHED, put_artifacts(s3, BUCKET, prefix))
    manifest.xid_snapshot, manifest.wal_lsn_before = "100:100:", f"0/{DUMP_LSN:X}"
    manifest.snapshot_at, manifest.source_identity = FINISHED.isoformat(), SOURCE
    manifest.tables, manifest.table_names = {}, {}  # nothing the (empty) base would have to capture
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/{MANIFEST}", Body=signed_body(manifest, signer))
    return manifest


def base(s3, signer: KmsSigner) -> Base:
    record = Base(base_id=f"{FINISHED - timedelta(hours=1):%Y%m%dT%H%M%SZ}-{0x100:016X}", slot="tavari_backup",
                  publication="tavari_backup", created_at=(FINISHED - timedelta(hours=1)).isoformat(),
                  start_lsn="0/100", reason="first start", schema_fingerprint="f", schema={}, identity=SOURCE)
    write_base(s3, BUCKET, record, signer)
    return record


def segment(s3, signer: KmsSigner, base_id: str) -> str:
    body = io.BytesIO(gzip.compress(b"", mtime=0))
    first = FINISHED + timedelta(minutes=1)
    header = Header(base_id=base_id, seq=0, prev_end_lsn="0/100", start_lsn="0/2000", end_lsn="0/2100",
                    first_commit=first.isoformat(), last_commit=first.isoformat(), closed_at=first.isoformat(),
                    transactions=0, changes=0, xid_min=0, xid_max=0, relations={}, sequences={},
                    schema_fingerprint="f", tables={}, body_sha256=hashlib.sha256(body.getvalue()).hexdigest(),
                    body_bytes=len(body.getvalue()), identity=SOURCE, uncovered=[], covered_at=first.isoformat())
    return write_segment(s3, BUCKET, header, body, signer)["key"]


def dry_run(manifests: Signing, changes: Signing, to: datetime = FINISHED + timedelta(minutes=2)):
    return CliRunner().invoke(main, [
        "db", "restore", "--to", to.strftime("%Y-%m-%dT%H:%M:%SZ"), "--dry-run", "--target-url",
        "postgresql://nobody@localhost:1/none", "--bucket", BUCKET, "--region", REGION,
        "--signing-key", manifests.arn, "--change-signing-key", changes.arn])


def test_a_segment_or_base_signed_with_the_manifest_key_is_refused(s3, keys):
    manifests, changes = keys
    backup(s3, manifests.signer)
    forged = base(s3, manifests.signer)  # what the capture could sign while it held the manifest key
    kms = boto3.client("kms", region_name=REGION)
    with pytest.raises(SegmentError, match="does not verify with the change signing key"):
        read_base(s3, BUCKET, forged.base_id, change_verifier(kms, changes.arn))
    key = segment(s3, manifests.signer, forged.base_id)
    with pytest.raises(SegmentError, match="does not verify with the change signing key"):
        open_segment(s3, BUCKET, key, change_verifier(kms, changes.arn))

    # Through `db restore --to`: the manifest key's signature on a change record is not enough.
    refused = dry_run(manifests, changes)
    assert refused.exit_code == 1 and "does not verify with the change signing key" in refused.output, \
        refused.output


def test_the_change_key_is_what_a_point_in_time_restore_trusts_for_the_log(s3, keys):
    manifests, changes = keys
    backup(s3, manifests.signer)
    genuine = base(s3, changes.signer)
    segment(s3, changes.signer, genuine.base_id)
    planned = dry_run(manifests, changes, FINISHED + timedelta(minutes=1))  # the log's last commit: it reaches T
    assert planned.exit_code == 0, planned.output
    assert "would restore backup" in planned.output and "1 verified change segment(s)" in planned.output


def test_a_manifest_signed_with_the_change_key_is_refused(s3, keys):
    manifests, changes = keys
    planted = backup(s3, changes.signer)  # what a capture could mint: a signed "latest" backup
    kms = boto3.client("kms", region_name=REGION)
    with pytest.raises(d.BackupTampered, match="does not verify with the backup signing key"):
        find_backup(s3, BUCKET, "latest", verifier=manifest_verifier(kms, manifests.arn))
    with pytest.raises(d.BackupTampered):
        find_backup(s3, BUCKET, planted.backup_id, verifier=manifest_verifier(kms, manifests.arn))
    base(s3, changes.signer)
    refused = dry_run(manifests, changes)
    assert refused.exit_code == 1 and "does not verify with the backup signing key" in refused.output, \
        refused.output


def test_one_key_for_both_is_refused(s3, keys):
    """Two keys or none: the same ARN for both would let the capture's key sign backups again."""
    manifests, _ = keys
    refused = dry_run(manifests, manifests)
    assert refused.exit_code == 2 and "must be two different keys" in refused.output, refused.output


@pytest.fixture
def kms_signs_digests(monkeypatch):
    """moto signing MessageType=DIGEST as KMS does (the drill's moto server does the same), for this test only."""
    from moto.kms.responses import KmsResponse

    from tavari_dr.drill import moto_server

    monkeypatch.setattr(KmsResponse, "sign", KmsResponse.sign)  # restored afterwards
    monkeypatch.setattr(KmsResponse, "verify", KmsResponse.verify)
    moto_server._kms_signs_digests()


def test_each_exported_public_key_verifies_its_own_records_only(s3, keys, kms_signs_digests):
    """A failover verifies with the exported public keys (no KMS in the DR region): the same separation."""
    manifests, changes = keys
    kms = boto3.client("kms", region_name=REGION)
    manifest_public = PublicKeyVerifier(kms.get_public_key(KeyId=manifests.arn)["PublicKey"])
    change_public = PublicKeyVerifier(kms.get_public_key(KeyId=changes.arn)["PublicKey"])
    genuine = base(s3, changes.signer)
    assert read_base(s3, BUCKET, genuine.base_id, change_public).base_id == genuine.base_id
    with pytest.raises(SegmentError, match="does not verify"):
        read_base(s3, BUCKET, genuine.base_id, manifest_public)
    key = segment(s3, changes.signer, genuine.base_id)
    open_segment(s3, BUCKET, key, change_public).close()
    with pytest.raises(SegmentError, match="does not verify"):
        open_segment(s3, BUCKET, key, manifest_public)
    planted = backup(s3, changes.signer)
    with pytest.raises(d.BackupTampered):
        find_backup(s3, BUCKET, planted.backup_id, verifier=manifest_public)
