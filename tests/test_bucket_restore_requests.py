"""The requests a point-in-time restore sends, counted (not timed) for a fixed history: 2,000 keys x
3 versions, 40 keys changed after T (13 overwritten, 14 deleted, 13 created). Every HTTP request the
client sends is counted (botocore's request-created event fires once per attempt, retries included).

s3-pit-restore sends 2,020 for this history (one listing, a copy of every key, a delete per new key);
the goal is at least 25x fewer. The floor with one read-back per write is 7 listing pages + 3 bucket
checks + 40 writes + 40 HEADs = 90 (22.4x): ADR 0031 says why the read-back stays."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from freezegun import freeze_time
from moto import mock_aws

from tavari_dr.bucket import restore as r
from tavari_dr.core import aws

pytestmark = [pytest.mark.moto, pytest.mark.slow]

REGION = "eu-west-1"
BUCKET = "invoices"
KEYS, CHANGED = 2000, 40
BASE = datetime(2026, 11, 1, 9, 0, 0, tzinfo=UTC)
NOW = BASE + timedelta(days=2)


def seed(s3):
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    names = [f"invoices/2026/{i:05}.pdf" for i in range(KEYS)]
    for version in range(3):
        with freeze_time(BASE + timedelta(minutes=version)):
            for key in names:
                s3.put_object(Bucket=BUCKET, Key=key, Body=f"{key} v{version} ".encode() * 20)
    to = BASE + timedelta(hours=1)
    picked = random.Random(7).sample(names, CHANGED - CHANGED // 3)
    with freeze_time(to + timedelta(hours=1)):
        for key in picked[: len(picked) // 2]:
            s3.put_object(Bucket=BUCKET, Key=key, Body=b"tampered after T")
        for key in picked[len(picked) // 2:]:
            s3.delete_object(Bucket=BUCKET, Key=key)
        for i in range(CHANGED // 3):
            s3.put_object(Bucket=BUCKET, Key=f"invoices/2026/new-{i:04}.pdf", Body=b"created after T")
    return to


def test_a_restore_of_40_changed_keys_in_2000_sends_one_listing_one_write_and_one_read_back_each(tmp_path):
    with mock_aws():
        s3 = aws.client("s3", region=REGION)
        to = seed(s3)
        sent = Counter()
        s3.meta.events.register("request-created.s3",
                                lambda request, operation_name, **_: sent.update([operation_name]))
        with freeze_time(NOW):
            plan = r.plan_restore(s3, BUCKET, to, now=NOW)
            summary = r.apply_plan(s3, plan, journal=r.Journal(tmp_path / "j.jsonl"), concurrency=8)
        counted = dict(sent)
        assert summary.counts == {"done": 40} and summary.ok
        assert r.visible_state(s3, BUCKET, "invoices/2026/new-") == {}
    assert counted == {
        "ListObjectVersions": 7,    # 6,040 entries, 1,000 a page, listed once
        "GetBucketVersioning": 2,   # when planning, and right before the first write
        "GetBucketEncryption": 1,   # stated on every write
        "CopyObject": 27,           # 13 overwritten + 14 deleted after T: no HEAD of the source
        "DeleteObject": 13,         # a delete marker on each key created after T
        "HeadObject": 40,           # one read-back per write, after the last write
    }
    assert sum(counted.values()) == 90  # s3-pit-restore: 2,020
