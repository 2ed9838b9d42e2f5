"""Old backups keep restoring: every fixture in tests/fixtures/backups (a backup an earlier release
wrote, artifacts and manifest byte for byte) must restore with this release into a fresh database,
table for table identical to what was backed up.

The one thing replayed rather than kept is each artifact's S3 version ID: a bucket assigns it on
upload and moto cannot be told one, so the test uploads the recorded artifacts, puts the IDs this
bucket gave them into the recorded manifest and signs it with this run's key. Everything the
manifest's format and the artifacts' formats say is read as the old release wrote it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tavari_dr.database import backup as d
from tavari_dr.database.signing import envelope
from tests.backups import backup_s3
from tests.fixtures.backups import content_hashes

pytestmark = [pytest.mark.postgres, pytest.mark.moto]
BUCKET = "tavari-db-backups"
FIXTURES = sorted(p.parent for p in (Path(__file__).parent / "fixtures" / "backups").glob("*/expected.json"))


def test_there_is_a_fixture_of_the_signed_format():
    assert any(json.loads((f / "manifest.json").read_text())["format"] == "tavari-db-backup/2" for f in FIXTURES)


def replay(s3, signing, fixture: Path) -> None:
    recorded = json.loads((fixture / "manifest.json").read_text())
    payload = json.loads(recorded["manifest"])
    for name, artifact in payload["artifacts"].items():
        body = (fixture / name).read_bytes()
        artifact["version_id"] = s3.put_object(Bucket=BUCKET, Key=artifact["key"], Body=body)["VersionId"]
    signed = json.dumps(payload, indent=1, sort_keys=True).encode()
    prefix = f"dumps/{payload['tier']}/{payload['backup_id']}"
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/manifest.json",
                  Body=envelope(signed, signing.signer.sign(signed), recorded["format"]))


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.name for f in FIXTURES])
def test_a_backup_an_earlier_release_wrote_restores_whole(fixture, pg):
    from tests.backups import Signing

    expected = json.loads((fixture / "expected.json").read_text())
    with backup_s3(BUCKET) as s3:
        signing = Signing()
        replay(s3, signing, fixture)
        target = pg.create_database(f"fixture_{fixture.name.replace('-', '_').replace('.', '_')}")
        result = d.restore(s3, BUCKET, expected["backup_id"], target, verifier=signing.verifier)
    assert result.ok, result.checks
    assert content_hashes(target, expected["tables"]) == expected["tables"]
