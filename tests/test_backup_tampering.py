"""Attacks on the database backups: a writer with s3:PutObject (and s3:DeleteObject) on the backup
bucket but no kms:Sign, as the issue's attacker was. Real PostgreSQL where a restore is judged by
its rows; moto everywhere (it honours If-None-Match and keeps every version)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from click.testing import CliRunner
from freezegun import freeze_time

import tavari_dr
from tavari_dr.cli import main
from tavari_dr.core import s3sink
from tavari_dr.database import backup as d
from tavari_dr.database.manifest import MANIFEST
from tavari_dr.drill import demo_data
from tests.backups import (
    DIRECTORY_ARTIFACTS,
    Signing,
    backup_s3,
    legacy_body,
    manifest_for,
    put_artifacts,
    signed_body,
    write_backup,
)

pytestmark = pytest.mark.moto
REGION = "eu-west-1"
BUCKET = "tavari-db-backups"
KEYS = (*d.ARTIFACTS, MANIFEST)


@pytest.fixture
def s3():
    with backup_s3(BUCKET, REGION) as client:
        yield client


def now() -> datetime:
    """Backups in these tests are taken 'now' (the test's clock, faked or not): a delete marker is
    judged against the backup's retention, which runs from its ID's time."""
    return datetime.now(UTC).replace(microsecond=0)


def key_of(manifest: d.Manifest, name: str) -> str:
    return f"dumps/{manifest.tier}/{manifest.backup_id}/{name}"


# --------------------------------------------------------------------------- the attack, end to end


def test_the_replacement_attack_is_refused_and_the_named_original_restores_every_row(s3, signing, pg, monkeypatch):
    source = pg.create_database("victim")
    demo_data.create_supabase_like(source)
    demo_data.seed(source)
    genuine = d.run_backup(s3, BUCKET, source, reason="nightly", signer=signing.signer)
    assert genuine.tables["public.messages"] == 250
    original_manifest = s3.head_object(Bucket=BUCKET, Key=key_of(genuine, MANIFEST))["VersionId"]

    # The attacker: a copy of the database with a table emptied, dumped with their own key into their own
    # bucket, then its data/ files and a manifest with matching sha256 and counts put over the genuine ones.
    emptied = pg.create_database("attacker_copy")
    demo_data.create_supabase_like(emptied)
    demo_data.seed(emptied)
    with psycopg.connect(emptied, autocommit=True) as conn:
        conn.execute("TRUNCATE public.messages")
    s3.create_bucket(Bucket="attacker", CreateBucketConfiguration={"LocationConstraint": REGION},
                     ObjectLockEnabledForBucket=True)
    forged = d.run_backup(s3, "attacker", emptied, reason="nightly", signer=Signing().signer)
    payload = json.loads(json.loads(s3.get_object(Bucket="attacker", Key=key_of(forged, MANIFEST))["Body"].read())
                         ["manifest"])
    payload.update(backup_id=genuine.backup_id, tier=genuine.tier)
    assert genuine.data_format == forged.data_format == "directory"
    for name in (n for n in forged.artifacts if n.startswith("data/")):
        data = s3.get_object(Bucket="attacker", Key=forged.artifacts[name]["key"])["Body"].read()
        version = s3.put_object(Bucket=BUCKET, Key=key_of(genuine, name), Body=data)["VersionId"]
        payload["artifacts"][name].update(key=key_of(genuine, name), version_id=version)
    forged_manifest = d.Manifest(**{k: v for k, v in payload.items() if k != "total_bytes"})
    s3.put_object(Bucket=BUCKET, Key=key_of(genuine, MANIFEST), Body=signed_body(forged_manifest, Signing().signer))

    quick = d.verify_quick(s3, BUCKET, verifier=signing.verifier)
    assert not quick.ok and quick.tampered
    assert any("data/toc.dat: 2 versions" in f for f in quick.findings)
    assert any("manifest.json: 2 versions" in f for f in quick.findings)
    target = pg.create_database("restore_target")
    with pytest.raises(d.BackupTampered, match="--manifest-version"):
        d.restore(s3, BUCKET, "latest", target, verifier=signing.verifier)
    with psycopg.connect(target) as conn, conn.cursor() as cur:
        assert d.user_tables(cur) == []  # refused before anything was written

    # Through the CLI: refused, alarmed, audited.
    monkeypatch.setenv("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required")
    published = []
    from tavari_dr.core import metrics

    monkeypatch.setattr(metrics, "put", lambda cw, values, dims=None: published.append((values, dims)))
    args = ["db", "restore", "--bucket", BUCKET, "--target-url", target, "--signing-key", signing.arn,
            "--report-bucket", "reports", "--region", REGION, "--publish-metrics"]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 1 and "was tampered with" in result.output
    assert ({"BackupTampered": 1}, {"Source": "offsite"}) in published and ({"BackupTampered": 1}, None) in published

    # The forged manifest version named explicitly: its signature is still checked.
    forged_version = next(v["VersionId"] for v in s3.list_object_versions(
        Bucket=BUCKET, Prefix=key_of(genuine, MANIFEST))["Versions"] if v["VersionId"] != original_manifest)
    with pytest.raises(d.BackupTampered, match="does not verify with the backup signing key"):
        d.restore(s3, BUCKET, "latest", target, verifier=signing.verifier, manifest_version=forged_version)

    # The operator names the genuine manifest: its recorded versions are read, every row comes back.
    result = CliRunner().invoke(main, [*args, "--manifest-version", original_manifest], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "TAMPERING" in result.output and "the bucket was tampered with" in result.output
    with psycopg.connect(target) as conn:
        assert conn.execute("SELECT count(*) FROM public.messages").fetchone()[0] == 250
    audits = sorted((json.loads(s3.get_object(Bucket="reports", Key=o["Key"])["Body"].read())
                     for o in s3.list_objects_v2(Bucket="reports", Prefix="audit/db_restore/")["Contents"]),
                    key=lambda a: a["outcome"])
    assert [a["outcome"].split(":")[0] for a in audits] == [
        "refused", "restored from a tampered backup through the named manifest version"]
    assert audits[1]["source"]["manifest_version"] == original_manifest and audits[1]["details"]["findings"]
    assert {a["tool_version"] for a in audits} == {tavari_dr.__version__}


# --------------------------------------------------------------------------- every single artifact


@pytest.mark.parametrize("name", KEYS)
def test_an_overwrite_of_any_single_key_is_tampering(s3, signing, name):
    manifest = write_backup(s3, BUCKET, signing.signer, finished=now())
    s3.put_object(Bucket=BUCKET, Key=key_of(manifest, name),
                  Body=s3.get_object(Bucket=BUCKET, Key=key_of(manifest, name))["Body"].read())  # even the same bytes
    with pytest.raises(d.BackupTampered, match=rf"{name}: 2 versions"):
        d.find_backup(s3, BUCKET, "latest", verifier=signing.verifier)
    quick = d.verify_quick(s3, BUCKET, verifier=signing.verifier)
    assert quick.tampered and not quick.ok


@pytest.mark.parametrize("name", KEYS)
def test_a_delete_marker_over_any_key_is_tampering_and_latest_never_falls_back(s3, signing, name):
    older = write_backup(s3, BUCKET, signing.signer, finished=now() - timedelta(hours=12))
    newest = write_backup(s3, BUCKET, signing.signer, finished=now())
    s3.delete_object(Bucket=BUCKET, Key=key_of(newest, name))  # allowed by Object Lock; hides the key
    with pytest.raises(d.BackupTampered, match=rf"{newest.backup_id} was tampered with: {name}: delete marker"):
        d.find_backup(s3, BUCKET, "latest", verifier=signing.verifier)
    assert d.find_backup(s3, BUCKET, older.backup_id, verifier=signing.verifier).trust == d.SIGNED
    (listed,) = [b for b in d.list_backups(s3, BUCKET) if b.backup_id == newest.backup_id]
    assert listed.findings() and not listed.expired


def test_a_planted_backup_with_a_forged_manifest_is_refused_not_made_latest(s3, signing):
    write_backup(s3, BUCKET, signing.signer, finished=now() - timedelta(hours=12))
    planted = write_backup(s3, BUCKET, Signing().signer, finished=now(), reason="planted")  # another key
    for which in ("latest", planted.backup_id):
        with pytest.raises(d.BackupTampered, match="does not verify with the backup signing key"):
            d.find_backup(s3, BUCKET, which, verifier=signing.verifier)


def test_an_unsigned_manifest_written_after_the_signing_key_existed_is_refused(s3, signing):
    prefix = f"dumps/daily/{now():%Y%m%dT%H%M%SZ}-nightly"
    manifest = manifest_for(prefix, now(), put_artifacts(s3, BUCKET, prefix))
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/{MANIFEST}", Body=legacy_body(manifest))
    with pytest.raises(d.BackupTampered, match="is unsigned but was written at .* after the signing key existed"):
        d.find_backup(s3, BUCKET, "latest", verifier=signing.verifier)


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"format": "tavari-db-backup/2", "manifest": 3}',
                                  b'{"format": "tavari-db-backup/2", "manifest": "{}", "signature": "x"}',
                                  b'{"format": "something/else"}'])
def test_a_malformed_manifest_is_refused_with_one_line(s3, signing, body):
    prefix = f"dumps/daily/{now():%Y%m%dT%H%M%SZ}-nightly"
    put_artifacts(s3, BUCKET, prefix)
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/{MANIFEST}", Body=body)
    with pytest.raises(d.BackupTampered) as raised:
        d.find_backup(s3, BUCKET, "latest", verifier=signing.verifier)
    assert "\n" not in str(raised.value)


def test_a_genuine_manifest_replayed_into_another_folder_is_refused(s3, signing):
    genuine = write_backup(s3, BUCKET, signing.signer, finished=now() - timedelta(hours=12))
    replay = f"dumps/daily/{now():%Y%m%dT%H%M%SZ}-nightly"
    for name in d.ARTIFACTS:
        s3.put_object(Bucket=BUCKET, Key=f"{replay}/{name}",
                      Body=s3.get_object(Bucket=BUCKET, Key=key_of(genuine, name))["Body"].read())
    s3.put_object(Bucket=BUCKET, Key=f"{replay}/{MANIFEST}",
                  Body=s3.get_object(Bucket=BUCKET, Key=key_of(genuine, MANIFEST))["Body"].read())
    with pytest.raises(d.BackupTampered, match=f"belongs to backup daily/{genuine.backup_id}"):
        d.find_backup(s3, BUCKET, "latest", verifier=signing.verifier)


def test_an_extra_object_in_a_backup_folder_is_tampering(s3, signing):
    manifest = write_backup(s3, BUCKET, signing.signer, finished=now())
    s3.put_object(Bucket=BUCKET, Key=key_of(manifest, "data2.dump"), Body=b"PGDMP")
    with pytest.raises(d.BackupTampered, match="data2.dump: an object no backup writes"):
        d.find_backup(s3, BUCKET, "latest", verifier=signing.verifier)


def test_a_directory_format_backup_pins_every_data_file(s3, signing):
    manifest = write_backup(s3, BUCKET, signing.signer, finished=now(), names=DIRECTORY_ARTIFACTS)
    opened = d.find_backup(s3, BUCKET, "latest", verifier=signing.verifier)
    assert opened.manifest.data_format == "directory" and not opened.findings
    assert opened.manifest.required_artifacts() == list(DIRECTORY_ARTIFACTS)
    assert {e.backup_id: e.artifacts for e in d.list_backups(s3, BUCKET)}[manifest.backup_id] == sorted(
        [*DIRECTORY_ARTIFACTS, MANIFEST])
    # A data file the signed manifest does not name, though named like one pg_dump writes: tampering.
    s3.put_object(Bucket=BUCKET, Key=key_of(manifest, "data/3003.dat.gz"), Body=b"rows nobody dumped")
    with pytest.raises(d.BackupTampered, match="data/3003.dat.gz: an object the manifest does not name"):
        d.find_backup(s3, BUCKET, "latest", verifier=signing.verifier)


def test_a_stranger_under_data_is_an_object_no_backup_writes(s3, signing):
    manifest = write_backup(s3, BUCKET, signing.signer, finished=now(), names=DIRECTORY_ARTIFACTS)
    s3.put_object(Bucket=BUCKET, Key=key_of(manifest, "data/run.sh"), Body=b"#!/bin/sh")
    with pytest.raises(d.BackupTampered, match="data/run.sh: an object no backup writes"):
        d.find_backup(s3, BUCKET, "latest", verifier=signing.verifier)


def test_a_directory_format_manifest_without_its_table_of_contents_is_refused(s3, signing):
    names = tuple(n for n in DIRECTORY_ARTIFACTS if n != "data/toc.dat")
    prefix = f"dumps/daily/{now():%Y%m%dT%H%M%SZ}-nightly"
    artifacts = put_artifacts(s3, BUCKET, prefix, names=names)
    manifest = manifest_for(prefix, now(), artifacts)
    manifest.data_format = "directory"
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/{MANIFEST}", Body=signed_body(manifest, signing.signer))
    with pytest.raises(d.BackupTampered, match="the manifest does not name .*/data/toc.dat"):
        d.find_backup(s3, BUCKET, "latest", verifier=signing.verifier)


def test_no_signing_key_no_trust(s3, signing):
    write_backup(s3, BUCKET, signing.signer, finished=now())
    with pytest.raises(d.BackupError, match="no backup signing key"):
        d.find_backup(s3, BUCKET, "latest", verifier=None)


# --------------------------------------------------------------------------- backups from before signing


def test_a_backup_from_before_signing_is_read_as_unsigned_while_each_key_has_one_version(s3):
    finished = now() - timedelta(hours=6)
    prefix = f"dumps/daily/{finished:%Y%m%dT%H%M%SZ}-nightly"
    with freeze_time(finished):  # moto stamps LastModified from the (frozen) clock
        manifest = manifest_for(prefix, finished, put_artifacts(s3, BUCKET, prefix))
        s3.put_object(Bucket=BUCKET, Key=f"{prefix}/{MANIFEST}", Body=legacy_body(manifest))
    signing = Signing()  # deployed after that backup was written: the cut-over
    opened = d.find_backup(s3, BUCKET, "latest", verifier=signing.verifier)
    assert opened.trust == d.UNSIGNED_LEGACY and not opened.findings
    pinned = {n: a["version_id"] for n, a in opened.manifest.artifacts.items()}
    assert pinned == {n: s3.head_object(Bucket=BUCKET, Key=f"{prefix}/{n}")["VersionId"] for n in d.ARTIFACTS}
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/data.dump", Body=b"PGDMP swapped")
    with pytest.raises(d.BackupTampered, match="an unsigned .* is read only where each key has exactly one version"):
        d.find_backup(s3, BUCKET, "latest", verifier=signing.verifier)
    first = s3.list_object_versions(Bucket=BUCKET, Prefix=f"{prefix}/{MANIFEST}")["Versions"][0]["VersionId"]
    with pytest.raises(d.BackupTampered):  # naming a version does not help: nothing pins the artifacts
        d.find_backup(s3, BUCKET, "latest", verifier=signing.verifier, manifest_version=first)


# --------------------------------------------------------------------------- lifecycle is not tampering


def test_lifecycle_expiry_after_the_retention_is_not_tampering(s3, signing):
    expired = write_backup(s3, BUCKET, signing.signer, finished=now() - timedelta(days=40))  # daily: 35 days
    for name in KEYS:
        s3.delete_object(Bucket=BUCKET, Key=key_of(expired, name))  # what the expiration rule does on day 36
    current = write_backup(s3, BUCKET, signing.signer, finished=now())
    listed = {b.backup_id: b for b in d.list_backups(s3, BUCKET)}
    assert listed[expired.backup_id].expired and not listed[expired.backup_id].findings()
    assert d.find_backup(s3, BUCKET, "latest", verifier=signing.verifier).manifest.backup_id == current.backup_id


# --------------------------------------------------------------------------- writes never overwrite


def test_put_new_treats_a_412_as_success_only_for_the_same_bytes(s3):
    version = s3sink.put_new(s3, BUCKET, "dumps/daily/x/manifest.json", b"one")
    assert s3sink.put_new(s3, BUCKET, "dumps/daily/x/manifest.json", b"one") == version  # a retried write
    with pytest.raises(s3sink.UploadError, match="already exists with other content; refusing to overwrite"):
        s3sink.put_new(s3, BUCKET, "dumps/daily/x/manifest.json", b"two")
    versions = s3.list_object_versions(Bucket=BUCKET, Prefix="dumps/daily/x/")["Versions"]
    assert [v["VersionId"] for v in versions] == [version]


@pytest.mark.parametrize(("first", "second", "accepted"), [(b"same" * 10, b"same" * 10, True),
                                                          (b"same" * 10, b"other" * 10, False)])
def test_a_multipart_write_never_overwrites(s3, first, second, accepted):
    key = "dumps/daily/y/data.dump"
    s3.put_object(Bucket=BUCKET, Key=key, Body=first)
    sink = d.MultipartSink(s3, BUCKET, key, lock={}, part_size=5 * 1024 * 1024, if_none_match=True)
    sink.write(second)
    if accepted:
        assert sink.close()["sha256"] == hashlib.sha256(first).hexdigest()
    else:
        with pytest.raises(d.BackupError, match="already exists with other content"):
            sink.close()
    assert len(s3.list_object_versions(Bucket=BUCKET, Prefix=key)["Versions"]) == 1
    assert not s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads")  # the upload was aborted either way
