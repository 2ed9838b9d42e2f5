"""A backup named by its ID is found by reading its own folder: the listing a restore by ID makes is the same
whether the bucket holds one backup or a hundred (issue 30: each restore cost more as the history grew)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from tavari_dr.database.manifest import ID_TIME_FORMAT, MANIFEST, list_backups

pytestmark = pytest.mark.moto

BUCKET = "backups"
START = datetime(2026, 11, 1, 1, 0, tzinfo=UTC)


def _bucket_with(n: int):
    s3 = boto3.client("s3", region_name="eu-west-1")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    ids = []
    for i in range(n):
        backup_id = (START + timedelta(hours=12 * i)).strftime(ID_TIME_FORMAT) + f"-{i:04d}"
        tier = "weekly" if i % 7 == 6 else "daily"
        for name in ("db.dump", "roles.sql", MANIFEST):
            s3.put_object(Bucket=BUCKET, Key=f"dumps/{tier}/{backup_id}/{name}", Body=b"x")
        ids.append(backup_id)
    calls: Counter = Counter()
    s3.meta.events.register("before-call.s3.*", lambda model, **_: calls.update([model.name]))
    return s3, ids, calls


@pytest.mark.parametrize("backups", [1, 10, 100])
def test_a_backup_by_id_is_listed_from_its_own_folder_whatever_the_history(backups):
    with mock_aws():
        s3, ids, calls = _bucket_with(backups)
        wanted = ids[len(ids) // 2]
        (entry,) = list_backups(s3, BUCKET, backup_id=wanted)
        assert entry.backup_id == wanted and entry.complete
        assert set(entry.history) == {"db.dump", "roles.sql", MANIFEST}
        tiers = 1 if backups < 7 else 2
        # one request for the tier folders, one listing page per tier: never a page per hundred backups
        assert calls == Counter({"ListObjectsV2": 1, "ListObjectVersions": tiers})
        # ... and it is what the whole listing says of that backup
        whole = {e.backup_id: e for e in list_backups(s3, BUCKET)}
        assert whole[wanted].history.keys() == entry.history.keys() and whole[wanted].tier == entry.tier
        assert list_backups(s3, BUCKET, backup_id="20990101T000000Z-9999") == []
