"""The weekly change_chain check (tavari_dr.verification.chain): every retained dump's change log, verified in
AWS without a restore. An intact chain passes; a missing segment, a tampered one, an overlapping one and a
segment of another source each fail, naming the segment."""

from __future__ import annotations

import gzip
import hashlib
import io
from datetime import UTC, datetime, timedelta

import pytest

from tavari_dr.changes.pgoutput import lsn_text
from tavari_dr.changes.segment import Base, Header, write_base, write_segment
from tavari_dr.core import metrics
from tavari_dr.database import backup as d
from tavari_dr.database.manifest import MANIFEST
from tavari_dr.verification import checks, jobs
from tavari_dr.verification.chain import change_chain
from tests.backups import Signing, backup_s3, manifest_for, put_artifacts, signed_body

pytestmark = pytest.mark.moto
REGION = "eu-west-1"
BUCKET = "tavari-db-backups"
FINISHED = datetime(2027, 2, 27, 12, 0, tzinfo=UTC)
NOW = FINISHED + timedelta(days=1)
SOURCE = {"system_identifier": "7000000000000000001", "timeline": 1, "database": "postgres", "database_oid": 5}
OTHER = {**SOURCE, "system_identifier": "7000000000000000002"}
BASE_ID = f"{FINISHED - timedelta(hours=1):%Y%m%dT%H%M%SZ}-{0x100:016X}"


@pytest.fixture
def s3():
    with backup_s3(BUCKET, REGION) as client:
        yield client


@pytest.fixture
def keys(s3):
    return Signing(), Signing()  # manifests', changes'


def dump(s3, signer) -> d.Manifest:
    prefix = f"dumps/daily/{FINISHED:%Y%m%dT%H%M%SZ}-nightly"
    manifest = manifest_for(prefix, FINISHED, put_artifacts(s3, BUCKET, prefix))
    manifest.xid_snapshot, manifest.wal_lsn_before = "100:100:", "0/900"
    manifest.snapshot_at, manifest.source_identity = FINISHED.isoformat(), SOURCE
    manifest.tables, manifest.table_names = {}, {}
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/{MANIFEST}", Body=signed_body(manifest, signer))
    return manifest


def base(s3, signer, identity=SOURCE, base_id=BASE_ID) -> Base:
    created = FINISHED - timedelta(hours=1)
    record = Base(base_id=base_id, slot="tavari_backup", publication="tavari_backup", created_at=created.isoformat(),
                  start_lsn="0/100", reason="first start", schema_fingerprint="f", schema={}, identity=identity)
    write_base(s3, BUCKET, record, signer)
    return record


def segment(s3, signer, n: int, prev: int, start: int, end: int, identity=SOURCE, base_id=BASE_ID,
            body: bytes = b"") -> str:
    raw = io.BytesIO(gzip.compress(body, mtime=0))
    when = (FINISHED + timedelta(minutes=n)).isoformat()
    header = Header(base_id=base_id, seq=n, prev_end_lsn=lsn_text(prev), start_lsn=lsn_text(start),
                    end_lsn=lsn_text(end), first_commit=when, last_commit=when, closed_at=when, transactions=0,
                    changes=0, xid_min=0, xid_max=0, relations={}, sequences={}, schema_fingerprint="f", tables={},
                    body_sha256=hashlib.sha256(raw.getvalue()).hexdigest(), body_bytes=len(raw.getvalue()),
                    identity=identity, uncovered=[])
    return write_segment(s3, BUCKET, header, raw, signer)["key"]


def chain(s3, manifests: Signing, changes: Signing, n: int = 4) -> list[str]:
    """A dump at 0/900 and a base from 0/100 with ``n`` contiguous segments, 0x1000 apart."""
    dump(s3, manifests.signer)
    base(s3, changes.signer)
    keys, prev = [], 0x100
    for i in range(n):
        start, end = 0x800 + i * 0x1000, 0x1000 + i * 0x1000
        keys.append(segment(s3, changes.signer, i + 1, prev, start, end))
        prev = end
    return keys


def run(s3, manifests: Signing, changes: Signing) -> checks.CheckResult:
    return checks.run_check("change_chain", lambda r: change_chain(
        r, s3=s3, bucket=BUCKET, manifest_verifier=manifests.verifier, change_verifier=changes.verifier,
        enabled=True, now=NOW))


def test_an_intact_chain_passes(s3, keys):
    chain(s3, *keys)
    result = run(s3, *keys)
    assert result.status == checks.PASS, result.details
    assert result.measured["segments_verified"] == 4 and result.measured["first_broken"] is None


def test_a_missing_segment_fails_naming_the_one_after_the_gap(s3, keys):
    made = chain(s3, *keys)
    s3.delete_object(Bucket=BUCKET, Key=made[1])  # a delete marker: the listing no longer shows it
    result = run(s3, *keys)
    assert result.status == checks.FAIL
    assert result.measured["first_broken"] == made[2]
    assert any("gap before" in line and made[2] in line for line in result.details), result.details


def test_a_tampered_segment_fails_naming_it(s3, keys):
    made = chain(s3, *keys)
    original = s3.get_object(Bucket=BUCKET, Key=made[2])["Body"].read()
    s3.put_object(Bucket=BUCKET, Key=made[2], Body=original[:-4] + b"\x00\x00\x00\x00")  # a second version
    result = run(s3, *keys)
    assert result.status == checks.FAIL and result.measured["first_broken"] == made[2]
    assert any(made[2] in line and "tampered" in line for line in result.details), result.details


def test_a_segment_signed_with_another_key_fails(s3, keys):
    made = chain(s3, *keys)
    stranger = Signing()
    planted = segment(s3, stranger.signer, 9, 0x4000, 0x4800, 0x5000)
    result = run(s3, *keys)
    assert result.status == checks.FAIL and result.measured["first_broken"] == planted, result.details
    assert made[-1] not in (result.measured["first_broken"],)


def test_a_segment_of_another_source_fails_naming_it(s3, keys):
    manifests, changes = keys
    chain(s3, manifests, changes)
    # Signed with the right key, carrying this base's ID, but recorded from another database.
    planted = segment(s3, changes.signer, 9, 0x4000, 0x4800, 0x5000, identity=OTHER)
    result = run(s3, manifests, changes)
    assert result.status == checks.FAIL and result.measured["first_broken"] == planted
    assert any(planted in line and "no base record names" in line for line in result.details), result.details


def test_a_segment_of_another_base_of_the_same_source_fails(s3, keys):
    manifests, changes = keys
    chain(s3, manifests, changes)
    planted = segment(s3, changes.signer, 9, 0x4000, 0x4800, 0x5000, base_id="20270227T090000Z-0000000000000050")
    result = run(s3, manifests, changes)
    assert result.status == checks.FAIL and result.measured["first_broken"] == planted
    assert any("the log is mixed" in line for line in result.details), result.details


def test_an_overlap_beyond_a_resumed_capture_fails(s3, keys):
    manifests, changes = keys
    made = chain(s3, manifests, changes)
    # Begins where the log was complete two segments ago: a restore would skip its repeats, but no capture
    # resumes before the end of the newest segment it wrote.
    planted = segment(s3, changes.signer, 9, 0x3000, 0x4800, 0x5000)
    result = run(s3, manifests, changes)
    assert result.status == checks.FAIL and result.measured["first_broken"] == planted, (made, result.details)
    assert any("overlaps" in line for line in result.details), result.details


def test_no_change_log_passes_when_the_capture_is_not_deployed(s3, keys):
    manifests, changes = keys
    dump(s3, manifests.signer)
    result = checks.run_check("change_chain", lambda r: change_chain(
        r, s3=s3, bucket=BUCKET, manifest_verifier=manifests.verifier, change_verifier=changes.verifier,
        enabled=False, now=NOW))
    assert result.status == checks.PASS and "nothing to verify" in result.details[0]


def test_the_weekly_job_runs_it_and_publishes_change_chain_broken(s3, keys):
    manifests, changes = keys
    made = chain(s3, manifests, changes)
    s3.delete_object(Bucket=BUCKET, Key=made[0])
    import boto3

    clients = jobs.Clients(s3=s3, replica_s3=s3, cloudwatch=None, secretsmanager=None,
                           kms=boto3.client("kms", region_name=REGION))
    targets = jobs.Targets(invoice_bucket="i", invoice_key_arn=None, archive_after_days=30,
                           archive_storage_class="GLACIER", backup_bucket=BUCKET, reports_bucket="reports",
                           scratch_bucket="s", signing_key_arn=manifests.arn, change_signing_key_arn=changes.arn,
                           changes_enabled=True)
    assert "change_chain" in jobs.JOBS[metrics.WEEKLY_INTEGRITY]
    from tavari_dr.core.config import VerificationConfig

    results = jobs.run_checks(("change_chain",), clients=clients, targets=targets, settings=VerificationConfig(),
                              rpo_hours=26, now=NOW)
    assert results[0].status == checks.FAIL and results[0].measured["first_broken"] == made[1]
    emitted = []
    jobs.record(results, job=metrics.WEEKLY_INTEGRITY, s3=s3, reports_bucket="reports", now=NOW,
                emit=lambda values, dimensions=None, **_: emitted.append((values, dimensions)))
    assert ({metrics.CHANGE_CHAIN_BROKEN: 1}, {"Source": "changes"}) in emitted
