"""`tavari-dr bucket restore --from-inventory` against moto: the stack's outputs name the restore-ops
bucket, where an inventory report (manifest + Parquet) and the change feed (GZIP JSON lines) lie as the
contract lays them out; the plan is the listing planner's, and the apply restores the state at T."""

from __future__ import annotations

import hashlib
import json
import tempfile
import urllib.parse
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import duckdb  # noqa: F401 (C extensions the CLI loads lazily are imported before freeze_time patches
import psycopg  # noqa: F401  datetime: their modules must see the real type)
import pytest
from click.testing import CliRunner
from freezegun import freeze_time
from moto import mock_aws

from tavari_dr.bucket import inventory_plan as ip
from tavari_dr.bucket import restore as r
from tavari_dr.cli import main
from tavari_dr.core import aws
from tests.inventory_files import INVENTORY_SCHEMA, canary_record
from tests.s3_history import History

pytestmark = pytest.mark.moto

REGION = "eu-west-1"
OPS = "restore-ops"
BACKUPS = "tavari-db-backups"
PREFIX = "inventory/invoices/all-versions/"
NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
BASE_DAY = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def s3(monkeypatch):
    from tests.conftest import ROOT

    monkeypatch.chdir(ROOT)
    with mock_aws():
        client = aws.client("s3", region=REGION)
        for name in ("invoices", OPS, "reports"):
            client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
        client.put_bucket_versioning(Bucket="invoices", VersioningConfiguration={"Status": "Enabled"})
        outputs = {"InvoiceBucketName": "invoices", "RestoreOpsBucketName": OPS, "InventoryPrefix": PREFIX,
                   "FeedPrefix": "feed/", "InventoryWorkgroup": "wg", "InventoryDatabase": "db"}
        template = {"Resources": {"Anchor": {"Type": "AWS::SNS::Topic"}},
                    "Outputs": {k: {"Value": v} for k, v in outputs.items()}}
        boto3.client("cloudformation", region_name=REGION).create_stack(
            StackName="Tavari-Dev-InvoiceStorage", TemplateBody=json.dumps(template))
        # The backup bucket, where the erasure ledger is (every bucket restore reads it).
        client.create_bucket(Bucket=BACKUPS, CreateBucketConfiguration={"LocationConstraint": REGION},
                             ObjectLockEnabledForBucket=True)
        boto3.client("cloudformation", region_name=REGION).create_stack(
            StackName="Tavari-Dev-DatabaseBackups", TemplateBody=json.dumps({
                "Resources": {"Anchor": {"Type": "AWS::SNS::Topic"}},
                "Outputs": {"BackupBucketName": {"Value": BACKUPS}, "ReportsBucketName": {"Value": "reports"}}}))
        yield client


def deliver(s3, *, inventory_after: int, history: list[r.Version], folder: str = "2026-11-01T12-00Z",
            unlisted=(), unrecorded=(), extra=()):
    """An inventory report of the first ``inventory_after`` entries (oldest first) and a feed of all of them
    (but the versions ``unlisted`` / ``unrecorded``), plus ``extra`` feed records."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    listed = [v for v in history[:inventory_after] if v.version_id not in unlisted]
    latest = {v.key: v.version_id for v in listed}
    rows = [{"bucket": "invoices", "key": v.key, "version_id": v.version_id, "is_latest": latest[v.key] == v.version_id,
             "is_delete_marker": v.delete_marker, "size": v.size, "last_modified_date": v.last_modified,
             "e_tag": (v.etag or "").strip('"') or None, "storage_class": v.storage_class,
             "is_multipart_uploaded": False} for v in listed]
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "x.parquet"
        pq.write_table(pa.Table.from_pylist(rows, schema=INVENTORY_SCHEMA), path)
        data = path.read_bytes()
    data_key = f"{PREFIX}data/0f1e.parquet"
    s3.put_object(Bucket=OPS, Key=data_key, Body=data)
    digest = hashlib.md5(data, usedforsecurity=False).hexdigest()
    manifest = json.dumps({"sourceBucket": "invoices", "destinationBucket": f"arn:aws:s3:::{OPS}", "version":
                           "2016-11-30", "creationTimestamp": "1793620800000", "fileFormat": "Parquet",
                           "fileSchema": "message s3.inventory {}",
                           "files": [{"key": data_key, "size": len(data), "MD5checksum": digest}]})
    s3.put_object(Bucket=OPS, Key=f"{PREFIX}{folder}/manifest.json", Body=manifest)
    s3.put_object(Bucket=OPS, Key=f"{PREFIX}{folder}/manifest.checksum",
                  Body=hashlib.md5(manifest.encode(), usedforsecurity=False).hexdigest())
    records = [{"event_id": f"e{i}", "event_time": v.last_modified.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "bucket": "invoices", "key": urllib.parse.quote_plus(v.key, safe="/"), "version_id": v.version_id,
                "sequencer": f"{i + 1:016X}",
                "kind": "delete_marker" if v.delete_marker else "put", "size": None if v.delete_marker else v.size,
                "etag": None if v.delete_marker else (v.etag or "").strip('"')} for i, v in enumerate(history)
               if v.version_id not in unrecorded]
    s3.put_object(Bucket=OPS, Key="feed/dt=2026-11-01/tavari-feed-1-2026-11-01-12-00-00-x.gz",
                  Body=ip.gzip_lines([*records, *extra, canary_record(bucket="invoices")]))


def oldest_first(s3):
    """Every entry, oldest first (each key's listing reversed; History spaces writes ten minutes apart)."""
    entries = list(r.list_versions(s3, "invoices"))
    return sorted(entries, key=lambda v: v.last_modified)


def run(*args):
    # The feed's files expire after feed_retention_days: "now" is fixed so that no run depends on today's date.
    with freeze_time(NOW, tick=True):
        result = CliRunner().invoke(main, ["bucket", "restore", "--env", "dev", "--format", "json", *args],
                                    catch_exceptions=False)
    return result.exit_code, result.output


def history(s3):
    h = History(s3, "invoices")
    h.put("a b+c.pdf", b"1")
    h.put("keep.pdf", b"k")
    h.put("gone.pdf", b"g")
    to = h.time_after(2)
    h.put("a b+c.pdf", b"2")
    h.delete("gone.pdf")
    h.put("new.pdf", b"n")
    return h, to


def test_the_cli_plans_from_the_inventory_as_from_the_listing_and_applies_it(s3, tmp_path):
    h, to = history(s3)
    deliver(s3, inventory_after=4, history=oldest_first(s3))  # the report saw 4 entries; the feed has all 6
    code, out = run("--to", to.isoformat())
    assert code == 0, out
    listing = json.loads(out)["result"]
    code, out = run("--to", to.isoformat(), "--from-inventory")
    assert code == 0, out
    planned = json.loads(out)["result"]
    assert planned["planned_from"]["inventory"] == f"{PREFIX}2026-11-01T12-00Z/manifest.json"
    assert planned["summary"] == listing["summary"], (planned, listing)
    assert planned["ambiguous"] == listing["ambiguous"] == []
    assert planned["summary"]["copy"]["keys"] == 2 and planned["summary"]["delete-marker"]["keys"] == 1

    code, out = run("--to", to.isoformat(), "--from-inventory", "--apply", "--state-dir", str(tmp_path / "s"),
                    "--report-bucket", "reports")
    assert code == 0, out
    assert json.loads(out)["result"]["result"]["counts"] == {"done": 3}
    assert r.visible_state(s3, "invoices") == h.state_after(2)


def test_the_cli_refuses_in_one_line_what_it_cannot_plan_from_the_inventory(s3, tmp_path):
    _, to = history(s3)
    code, out = run("--to", to.isoformat(), "--from-inventory")
    assert code == 2 and "no inventory report under s3://restore-ops/inventory/invoices/all-versions/" in out
    assert "Traceback" not in out
    code, out = run("--to", to.isoformat(), "--from-inventory", "--target-bucket", "elsewhere")
    assert code == 2 and "in-place restore" in out
    deliver(s3, inventory_after=2, history=oldest_first(s3))
    s3.put_object(Bucket=OPS, Key=f"{PREFIX}data/0f1e.parquet", Body=b"tampered")
    code, out = run("--to", to.isoformat(), "--from-inventory")
    assert code == 2 and "does not match the MD5 its inventory manifest gives" in out


def test_the_newest_report_is_the_one_planned_from(s3):
    h, to = history(s3)
    deliver(s3, inventory_after=1, history=oldest_first(s3), folder="2026-10-30T12-00Z")
    deliver(s3, inventory_after=5, history=oldest_first(s3), folder="2026-11-01T12-00Z")
    snapshot = ip.newest_snapshot(s3, OPS, PREFIX, "invoices")
    assert snapshot.manifest_key.endswith("2026-11-01T12-00Z/manifest.json") and snapshot.dt == "2026-11-01-12-00"
    assert snapshot.created == datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


def test_an_inventory_plan_goes_to_a_batch_operations_manifest_with_version_ids(s3):
    from tavari_dr.bucket import batch

    _, to = history(s3)
    deliver(s3, inventory_after=6, history=oldest_first(s3))
    snapshot = ip.newest_snapshot(s3, OPS, PREFIX, "invoices")
    with tempfile.TemporaryDirectory() as work:
        engine = ip.local_engine(s3, OPS, snapshot, ip.feed_files(s3, OPS, "feed/"), Path(work))
        plan, _ = ip.plan_from_inventory(s3, engine, "invoices", to, now=NOW, feed_first_day=BASE_DAY)
    copies = [a for a in plan.actions if a.action == r.COPY]
    rows = batch.manifest_csv(plan.bucket, copies, with_version=True).decode().splitlines()
    assert sorted(rows) == sorted(f"invoices,{urllib.parse.quote(a.key, safe='/')},{a.version_id}" for a in copies)
    assert any(row.startswith("invoices,a%20b%2Bc.pdf,") for row in rows)


# --------------------------------------------------------------------------- inputs that lie (issue 28)


def current_of(s3, key):
    return s3.head_object(Bucket="invoices", Key=key)["VersionId"]


def attacked(s3):
    """keep.pdf, then a.pdf twice before T; after T the attacker rewrites a.pdf."""
    h = History(s3, "invoices")
    h.put("keep.pdf", b"k")
    h.put("a.pdf", b"at first")
    h.put("a.pdf", b"the version at T")
    to = h.time_after(2)
    h.put("a.pdf", b"the attacker's")
    entries = oldest_first(s3)
    return h, to, entries, current_of(s3, "a.pdf")


def refused(s3, tmp_path, to, key, attackers):
    """The apply refuses with exit 1 naming ``key`` and writes nothing to it."""
    code, out = run("--to", to.isoformat(), "--from-inventory", "--apply", "--state-dir", str(tmp_path / "s"),
                    "--report-bucket", "reports")
    answer = json.loads(out)["result"]  # one document, also when it fails
    assert code == 1, out
    assert [c["key"] for c in answer["contradicted"]] == [key], answer
    assert all(a["key"] != key for a in answer.get("ambiguous", []))
    assert current_of(s3, key) == attackers  # left alone: not a delete marker, not an older version
    return answer


def test_a_version_at_t_missing_from_the_inventory_and_feed_is_not_planned_away(s3, tmp_path):
    """Before: the key looked absent at T, so the plan wrote a delete marker over it (exit 0)."""
    _, to, entries, attackers = attacked(s3)
    at_t = entries[2].version_id
    deliver(s3, inventory_after=4, history=entries, unlisted={entries[1].version_id, at_t},
            unrecorded={entries[1].version_id, at_t})
    answer = refused(s3, tmp_path, to, "a.pdf", attackers)
    assert f"S3 lists version {at_t} as current at T" in answer["contradicted"][0]["reason"]


def test_a_forged_put_of_a_version_that_never_existed_is_reported(s3, tmp_path):
    """Before: the forged version was "current since T", so the attacker's version was left in place (exit 0)."""
    _, to, entries, attackers = attacked(s3)
    forged = {"event_id": "forged", "event_time": (to - timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ"),
              "bucket": "invoices", "key": "a.pdf", "version_id": "forgedVersionNeverWritten",
              "sequencer": "FFFFFFFFFFFFFFFF", "kind": "put", "size": 14, "etag": "0" * 32}
    deliver(s3, inventory_after=3, history=entries, extra=[forged])
    answer = refused(s3, tmp_path, to, "a.pdf", attackers)
    assert f"S3's current entry is {attackers}" in answer["contradicted"][0]["reason"]


def test_a_forged_permanent_delete_of_the_version_at_t_does_not_restore_an_older_one(s3, tmp_path):
    """Before: the version at T was taken as gone, so the first version was copied back (exit 0)."""
    _, to, entries, attackers = attacked(s3)
    at_t = entries[2].version_id
    forged = {"event_id": "forged", "event_time": (to + timedelta(minutes=7)).strftime("%Y-%m-%dT%H:%M:%SZ"),
              "bucket": "invoices", "key": "a.pdf", "version_id": at_t, "sequencer": "FFFFFFFFFFFFFFFF",
              "kind": "permanent_delete", "size": None, "etag": None}
    deliver(s3, inventory_after=4, history=entries, extra=[forged])
    answer = refused(s3, tmp_path, to, "a.pdf", attackers)
    assert f"S3 lists version {at_t} as current at T" in answer["contradicted"][0]["reason"]


def test_the_check_after_the_apply_reads_s3_for_each_written_key(s3, tmp_path):
    """A write after this run's own (outside the feed the plan was made from) is caught by reading each
    written key back from S3; planning again from the same inventory and feed (the old check) agrees
    with the plan instead."""
    _, to = history(s3)
    deliver(s3, inventory_after=6, history=oldest_first(s3))
    snapshot = ip.newest_snapshot(s3, OPS, PREFIX, "invoices")
    with tempfile.TemporaryDirectory() as work:
        engine = ip.local_engine(s3, OPS, snapshot, ip.feed_files(s3, OPS, "feed/"), Path(work))

        def replan(written):
            return ip.plan_from_inventory(s3, engine, "invoices", to, now=NOW, feed_first_day=BASE_DAY,
                                          written=written)[0]

        plan = replan(None)
        assert {a.key for a in plan.actions} == {"a b+c.pdf", "gone.pdf", "new.pdf"}

        def late_writer(result):  # after the key's own checks, before the end of the run
            if result.key == "a b+c.pdf" and result.status == "done":
                s3.put_object(Bucket="invoices", Key=result.key, Body=b"late writer")

        summary = r.apply_plan(s3, plan, journal=r.Journal(tmp_path / "j"), concurrency=1, on_result=late_writer)
        changed = [x for x in summary.results if x.status == "changed"]
        assert [x.key for x in changed] == ["a b+c.pdf"] and "S3's current entry is" in changed[0].detail
        written = {x.key: x.version_id for x in summary.results if x.status == "done"}
        assert replan(written).actions == []  # the inputs cannot see the late write
