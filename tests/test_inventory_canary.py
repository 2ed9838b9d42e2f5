"""The inventory canary on moto: it writes one new object under _canary/ each run and reports the age of the
newest inventory report in the layout S3 documents (docs/formats/inventory-and-feed.md)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from tavari_dr.bucket import canary as inv
from tavari_dr.core import metrics, outputs

pytestmark = pytest.mark.moto  # AWS emulated in-process: its own budget (benches/synth.sh)

REGION = "eu-west-1"
INVOICES, OPS = "invoices", "restore-ops"
PREFIX = outputs.inventory_key_prefix(INVOICES)


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        for name in (INVOICES, OPS):
            client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
            client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        yield client


def report(s3, folder: str, created: datetime | None, *, body: bytes | None = None) -> None:
    """One inventory report as S3 lays it out: data file, then the manifest (absent: delivery under way)."""
    s3.put_object(Bucket=OPS, Key=f"{PREFIX}data/{folder}.parquet", Body=b"PAR1")
    if created is not None or body is not None:
        manifest = body if body is not None else json.dumps({
            "sourceBucket": INVOICES, "destinationBucket": f"arn:aws:s3:::{OPS}", "version": "2016-11-30",
            "creationTimestamp": str(int(created.timestamp() * 1000)), "fileFormat": "Parquet",
            "fileSchema": "message s3.inventory { }", "files": []}).encode()
        s3.put_object(Bucket=OPS, Key=f"{PREFIX}{folder}/manifest.json", Body=manifest)


def run(s3, now):
    emitted = []
    result = inv.run_canary(s3, invoice_bucket=INVOICES, ops_bucket=OPS, inventory_prefix=PREFIX,
                            feed_prefix=outputs.FEED_KEY_PREFIX, now=now,
                            emit=lambda values, dimensions=None, **_: emitted.append((values, dimensions)))
    return result, emitted


def test_each_run_writes_a_new_canary_object_whose_key_shows_the_feeds_key_encoding(s3):
    now = datetime(2027, 3, 1, 0, 40, 5, tzinfo=UTC)
    first, _ = run(s3, now)
    second, _ = run(s3, now + timedelta(hours=1))
    assert first.canary_key == "_canary/2027-03-01T00-40-05Z/probe a+b"
    assert second.canary_key == "_canary/2027-03-01T01-40-05Z/probe a+b"
    listed = s3.list_object_versions(Bucket=INVOICES)["Versions"]
    assert sorted(v["Key"] for v in listed) == [first.canary_key, second.canary_key]
    assert {v["VersionId"] for v in listed} == {first.version_id, second.version_id}
    assert all(v["Key"].startswith(outputs.CANARY_KEY_PREFIX) for v in listed)


def test_a_repeated_run_in_the_same_second_does_not_overwrite(s3):
    now = datetime(2027, 3, 1, 0, 40, 5, tzinfo=UTC)
    run(s3, now)
    run(s3, now)  # a retried invocation: same key, same bytes, accepted without a second version
    assert len(s3.list_object_versions(Bucket=INVOICES)["Versions"]) == 1


def test_the_age_is_that_of_the_newest_report_with_a_manifest(s3):
    now = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
    report(s3, "2027-02-27T01-00Z", now - timedelta(hours=83))
    report(s3, "2027-02-28T01-00Z", now - timedelta(hours=35))
    report(s3, "2027-03-01T01-00Z", None)  # today's: data written, manifest not yet
    s3.put_object(Bucket=OPS, Key=f"{PREFIX}hive/dt=2027-02-28-01-00/symlink.txt", Body=b"s3://x")
    result, emitted = run(s3, now)
    assert result.newest_manifest == f"{PREFIX}2027-02-28T01-00Z/manifest.json"
    assert result.inventory_age_hours == pytest.approx(35)
    assert emitted == [({metrics.INVENTORY_AGE_HOURS: pytest.approx(35)}, None),
                       ({metrics.JOB_SUCCEEDED: 1}, {"Job": metrics.INVENTORY_CANARY})]


def test_before_the_first_report_the_age_counts_from_the_feeds_start_less_s3s_48_hours(s3):
    s3.put_object(Bucket=OPS, Key="feed/dt=2027-01-01/stream-1-2027-01-01-00-00-00-a.gz", Body=b"x")
    started = s3.list_objects_v2(Bucket=OPS, Prefix="feed/")["Contents"][0]["LastModified"]
    result, _ = run(s3, started + timedelta(hours=60))
    assert result.newest_manifest is None
    assert result.inventory_age_hours == pytest.approx(12)
    early, _ = run(s3, started + timedelta(hours=5))
    assert early.inventory_age_hours == 0


def test_a_new_deployment_with_neither_feed_nor_inventory_reports_zero(s3):
    result, emitted = run(s3, datetime(2027, 3, 1, tzinfo=UTC))
    assert result.inventory_age_hours == 0 and result.newest_manifest is None
    assert ({metrics.JOB_SUCCEEDED: 1}, {"Job": metrics.INVENTORY_CANARY}) in emitted


def test_a_malformed_manifest_fails_the_run_after_the_canary_is_written(s3):
    report(s3, "2027-02-28T01-00Z", None, body=b'{"sourceBucket": "invoices"}')
    with pytest.raises(inv.InventoryError, match="creationTimestamp"):
        run(s3, datetime(2027, 3, 1, tzinfo=UTC))
    assert len(s3.list_object_versions(Bucket=INVOICES)["Versions"]) == 1


def test_folders_other_than_reports_are_not_taken_for_reports(s3):
    now = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
    report(s3, "2027-02-28T01-00Z", now - timedelta(hours=10))
    s3.put_object(Bucket=OPS, Key=f"{PREFIX}zzz/manifest.json", Body=b"{}")
    result, _ = run(s3, now)
    assert result.newest_manifest == f"{PREFIX}2027-02-28T01-00Z/manifest.json"


def test_the_handler_reads_its_buckets_from_the_environment(s3, monkeypatch):
    import importlib

    monkeypatch.setenv("TAVARI_INVOICE_BUCKET", INVOICES)
    monkeypatch.setenv("TAVARI_RESTORE_OPS_BUCKET", OPS)
    monkeypatch.setenv("TAVARI_INVENTORY_PREFIX", PREFIX)
    monkeypatch.setenv("TAVARI_FEED_PREFIX", outputs.FEED_KEY_PREFIX)
    handler = importlib.import_module("lambdas.inventory_canary.handler")
    monkeypatch.setattr(handler, "S3", s3)

    class Context:
        function_name, memory_limit_in_mb, aws_request_id = "canary", 256, "req-1"
        invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:canary"

    answer = handler.handler({"execution": "exec-1"}, Context())
    assert answer["canary_key"].startswith(outputs.CANARY_KEY_PREFIX) and answer["inventory_age_hours"] == 0
    assert len(s3.list_object_versions(Bucket=INVOICES)["Versions"]) == 1
