"""Database backups against a real PostgreSQL server (a throwaway cluster) with S3 on moto."""

from __future__ import annotations

import json
import stat
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from freezegun import freeze_time

import tavari_dr
from tavari_dr.cli import main
from tavari_dr.database import backup as d
from tavari_dr.drill import demo_data
from tests.backups import backup_s3

pytestmark = [pytest.mark.postgres, pytest.mark.moto]
REGION = "eu-west-1"
BUCKET = "tavari-db-backups"
TUESDAY = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)






@pytest.fixture
def s3():
    with backup_s3(BUCKET, REGION) as client:
        yield client


def fingerprint(url: str, tables) -> dict[str, str]:
    """Every row of every table, order-independent."""
    out = {}
    with psycopg.connect(url) as conn:
        for table in tables:
            query = f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table} t"  # noqa: S608
            out[table] = conn.execute(query).fetchone()[0]
    return out


def test_backup_then_restore_into_plain_postgres_reproduces_counts_and_content(s3, source, empty_db, signing):
    manifest = d.run_backup(s3, BUCKET, source, signer=signing.signer, reason="nightly", now=TUESDAY)
    assert manifest.tier == "daily" and manifest.backup_id == "20261124T020000Z-nightly"
    assert manifest.tool_version == tavari_dr.__version__  # signed with the rest (tests/test_version.py)
    assert manifest.tables["auth.users"] == 5 and manifest.tables["public.messages"] == 250
    assert manifest.tables["storage.objects"] == 15  # auth and storage data are in the dump
    assert manifest.data_format == "directory" and manifest.data_compression == "gzip"  # this machine: pg_dump 15
    assert set(manifest.artifacts) == set(manifest.required_artifacts()) and "data/toc.dat" in manifest.artifacts
    assert {*d.SCHEMA_ARTIFACTS} < set(manifest.artifacts) and "data.dump" not in manifest.artifacts
    assert all(len(a["sha256"]) == 64 and a["bytes"] > 0 for a in manifest.artifacts.values())
    target = empty_db()
    result = d.restore(s3, BUCKET, "latest", target, verifier=signing.verifier)
    assert result.ok, result.table_counts
    assert fingerprint(target, manifest.tables) == fingerprint(source, manifest.tables)
    with psycopg.connect(target) as conn:
        # The schema came back whole: enum, view, function, policies using auth.uid(), sequences.
        assert conn.execute("SELECT count(*) FROM public.business_summary").fetchone()[0] == 5
        assert conn.execute("SELECT count(*) FROM pg_policies WHERE qual LIKE '%auth.uid()%'").fetchone()[0] == 4
        assert conn.execute("SELECT public.invoice_total(id) > 0 FROM public.businesses LIMIT 1").fetchone()[0]
        next_id = conn.execute("SELECT nextval('public.messages_id_seq')").fetchone()[0]
        assert next_id > 250


def test_roles_are_dumped_without_passwords_and_reserved_roles_commented_out(s3, source, signing):
    manifest = d.run_backup(s3, BUCKET, source, signer=signing.signer, reason="roles", now=TUESDAY)
    roles = s3.get_object(Bucket=BUCKET, Key=manifest.artifacts["roles.sql"]["key"])["Body"].read().decode()
    assert "-- (Supabase reserved role) CREATE ROLE anon;" in roles
    assert "\nCREATE ROLE anon;" not in roles and "PASSWORD 'SCRAM" not in roles


def test_concurrent_writes_during_the_dump_do_not_break_consistency(s3, source, empty_db, signing):
    stop = threading.Event()
    written = []

    def writer():
        with psycopg.connect(source, autocommit=True) as conn:
            business = conn.execute("SELECT id FROM public.businesses LIMIT 1").fetchone()[0]
            while not stop.is_set():
                conn.execute("INSERT INTO public.messages (business_id, direction, body, sent_at) "
                             "VALUES (%s, 'in', 'during the dump', now())", (business,))
                written.append(1)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        time.sleep(0.2)
        manifest = d.run_backup(s3, BUCKET, source, signer=signing.signer, reason="busy", now=TUESDAY)
        time.sleep(0.2)
    finally:
        stop.set()
        thread.join()
    assert 250 < manifest.tables["public.messages"] < 250 + len(written)
    result = d.restore(s3, BUCKET, "latest", empty_db(), verifier=signing.verifier)
    assert result.ok and result.table_counts["public.messages"][1] == manifest.tables["public.messages"]


def killing_pg_bin(tmp_path: Path) -> Path:
    """A pg_dump that dies half-way through the data dump, like an OOM-killed task."""
    real = Path(d.shutil_which("pg_dump")).parent
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("pg_dumpall", "pg_restore"):
        (bin_dir / tool).symlink_to(real / tool)
    script = bin_dir / "pg_dump"
    script.write_text(f'#!/bin/sh\ncase "$*" in *--data-only*) "{real}/pg_dump" "$@" | head -c 2000; exit 137;; '
                      f'esac\nexec "{real}/pg_dump" "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return bin_dir


def test_a_dump_killed_half_way_leaves_no_manifest_and_is_never_latest(s3, source, tmp_path, signing):
    good = d.run_backup(s3, BUCKET, source, signer=signing.signer, reason="good", now=TUESDAY)
    with pytest.raises(d.BackupError, match="pg_dump exited 137"):
        d.run_backup(s3, BUCKET, source, signer=signing.signer, reason="killed", now=TUESDAY + timedelta(hours=1),
                     pg_bin=killing_pg_bin(tmp_path))
    backups = {b.backup_id: b for b in d.list_backups(s3, BUCKET)}
    killed = backups["20261124T030000Z-killed"]
    assert not killed.complete and "data.dump" not in killed.artifacts  # the multipart upload was aborted
    assert not s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads")
    assert d.find_backup(s3, BUCKET, "latest", verifier=signing.verifier).manifest.backup_id == good.backup_id
    with pytest.raises(d.BackupError, match="has no manifest"):
        d.find_backup(s3, BUCKET, killed.backup_id, verifier=signing.verifier)


def test_transaction_pooler_port_is_refused(s3, signing):
    with pytest.raises(d.BackupError, match="port 6543 is Supabase's transaction-mode pooler"):
        d.run_backup(s3, BUCKET, "postgresql://postgres.ref:pw@aws-0-eu-west-1.pooler.supabase.com:6543/postgres",
                     signer=signing.signer, reason="x")


def test_password_travels_in_the_environment_not_the_command_line():
    conn = d.parse_database_url("postgresql://postgres.abc:s%40cret@host.example:5432/postgres?sslmode=require")
    assert conn.url_without_password == "postgresql://postgres.abc@host.example:5432/postgres?sslmode=require"
    assert conn.password == "s@cret" and conn.env["PGPASSWORD"] == "s@cret"


def test_a_target_with_user_tables_is_refused_without_force(s3, source, empty_db, signing):
    d.run_backup(s3, BUCKET, source, signer=signing.signer, reason="x", now=TUESDAY)
    target = empty_db()
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.precious (id int)")
        conn.execute("INSERT INTO public.precious VALUES (1)")
    with pytest.raises(d.BackupError, match="already holds 1 user table"):
        d.restore(s3, BUCKET, "latest", target, verifier=signing.verifier)
    with psycopg.connect(target) as conn:
        assert conn.execute("SELECT count(*) FROM public.precious").fetchone()[0] == 1
    assert d.restore(s3, BUCKET, "latest", target, verifier=signing.verifier, force=True).ok


def test_restore_over_a_damaged_copy_with_force_brings_the_rows_back(s3, source, signing):
    manifest = d.run_backup(s3, BUCKET, source, signer=signing.signer, reason="before damage", now=TUESDAY)
    before = fingerprint(source, manifest.tables)
    with psycopg.connect(source, autocommit=True) as conn:  # scenario 1: database corruption
        conn.execute("UPDATE public.invoices SET amount = 0")
        conn.execute("DELETE FROM public.messages WHERE id % 2 = 0")
    assert fingerprint(source, manifest.tables) != before
    assert d.restore(s3, BUCKET, manifest.backup_id, source, verifier=signing.verifier, force=True).ok
    assert fingerprint(source, manifest.tables) == before


@pytest.mark.parametrize(("when", "zone", "tier", "days"), [
    (datetime(2026, 11, 24, 2, tzinfo=UTC), "UTC", "daily", 35),
    (datetime(2026, 11, 29, 2, tzinfo=UTC), "UTC", "weekly", 91),   # a Sunday
    (datetime(2026, 12, 1, 2, tzinfo=UTC), "UTC", "monthly", 396),  # the 1st
    # 23:30 UTC on the 30th is 00:30 on the 1st in Warsaw: the schedule's calendar decides.
    (datetime(2026, 11, 30, 23, 30, tzinfo=UTC), "Europe/Warsaw", "monthly", 396),
])
def test_tier_and_retain_until_date_are_set_on_every_object(s3, source, when, zone, tier, days, signing):
    manifest = d.run_backup(s3, BUCKET, source, signer=signing.signer, reason="tiers", now=when, timezone=zone)
    assert manifest.tier == tier
    expected = when + timedelta(days=days)
    for key in [a["key"] for a in manifest.artifacts.values()] + [f"dumps/{tier}/{manifest.backup_id}/manifest.json"]:
        head = s3.head_object(Bucket=BUCKET, Key=key)
        assert key.startswith(f"dumps/{tier}/")
        assert head["ObjectLockMode"] == "GOVERNANCE"
        assert head["ObjectLockRetainUntilDate"] == expected


def test_cli_backup_list_verify_restore(s3, source, empty_db, monkeypatch, signing):
    # In-process moto has no endpoint URL for the CLI to recognise; say it the botocore way.
    monkeypatch.setenv("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required")
    runner = CliRunner()

    def run(*args):
        result = runner.invoke(main, ["db", *args, "--region", REGION], catch_exceptions=False)
        return result.exit_code, result.output

    # The tier depends on the day the backup is taken: take it on a known Tuesday (the clock ticks on).
    with freeze_time(TUESDAY, tick=True):
        code, out = run("backup", "--reason", "before migration 0042", "--database-url", source, "--bucket", BUCKET,
                        "--signing-key", signing.arn)
    assert code == 0, out
    assert "before-migration-0042" in out and "GOVERNANCE lock" in out
    assert "(daily, retained until 2026-12-29T02:00" in out  # 35 days from the Tuesday
    code, out = run("list", "--bucket", BUCKET)
    assert code == 0 and "complete" in out and "daily" in out
    code, out = run("verify", "--quick", "--bucket", BUCKET, "--report-bucket", "reports", "--signing-key", signing.arn)
    assert code == 0 and "quick check passed" in out and "table of contents" in out
    (report_obj,) = s3.list_objects_v2(Bucket="reports")["Contents"]
    assert report_obj["Key"].startswith("reports/db_verify_quick/") and report_obj["Key"].endswith(".json")
    report = json.loads(s3.get_object(Bucket="reports", Key=report_obj["Key"])["Body"].read())
    assert report["status"] == "PASS" and report["check"] == "db_verify_quick" and len(report["checks"]) == 10
    assert report["trust"] == "signed" and not report["tampered"]
    code, out = run("verify", "--bucket", BUCKET, "--scratch-url", empty_db(), "--signing-key", signing.arn)
    assert code == 0 and "restore test passed" in out and "public.messages" in out
    target = empty_db()
    restore_args = ("--bucket", BUCKET, "--target-url", target, "--signing-key", signing.arn, "--report-bucket",
                    "reports")
    code, out = run("restore", *restore_args)
    assert code == 0 and "target: a plain PostgreSQL database" in out and "every row count matches" in out
    code, out = run("restore", *restore_args)
    assert code == 1 and "already holds" in out
    # Both restores left their audit record, the refusal too: who, what, where, the outcome.
    audits = [json.loads(s3.get_object(Bucket="reports", Key=o["Key"])["Body"].read())
              for o in s3.list_objects_v2(Bucket="reports", Prefix="audit/db_restore/")["Contents"]]
    assert sorted(a["outcome"].split(":")[0] for a in audits) == ["failed", "restored"]
    assert all(a["caller"].startswith("arn:aws:") and a["target"]["database"].startswith("postgresql://")
               and ":" not in a["target"]["database"].split("@")[0].removeprefix("postgresql://") for a in audits)
    assert {a["source"]["backup"] for a in audits} == {"latest", report["backup_id"]}
    code, out = run("verify", "--bucket", BUCKET)
    assert code == 2 and "--scratch-url" in out
    code, out = run("backup", "--reason", "x", "--bucket", BUCKET,
                    "--database-url", "postgresql://u:p@h.example:6543/postgres", "--signing-key", signing.arn)
    assert code == 1 and "port 6543" in out
    code, out = run("backup", "--reason", "x", "--bucket", BUCKET, "--database-url", source)
    assert code == 2 and "--signing-key" in out  # nothing unsigned is ever written


def test_multipart_sink_streams_parts_in_order_with_bounded_queue(s3):
    import hashlib
    import os

    data = os.urandom(12 * 1024 * 1024 + 123)
    sink = d.MultipartSink(s3, BUCKET, "dumps/daily/x/data.dump", lock={}, part_size=5 * 1024 * 1024)
    for i in range(0, len(data), 700_000):
        sink.write(data[i:i + 700_000])
    result = sink.close()
    assert result == {"key": "dumps/daily/x/data.dump", "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                      "version_id": s3.head_object(Bucket=BUCKET, Key="dumps/daily/x/data.dump")["VersionId"]}
    assert s3.get_object(Bucket=BUCKET, Key="dumps/daily/x/data.dump")["Body"].read() == data


def test_multipart_sink_upload_failure_aborts_and_says_so(s3):
    class Failing:
        def __init__(self, real):
            self.real = real

        def __getattr__(self, name):
            return getattr(self.real, name)

        def upload_part(self, **kwargs):
            raise RuntimeError("network down")

    sink = d.MultipartSink(Failing(s3), BUCKET, "dumps/daily/y/data.dump", lock={}, part_size=5 * 1024 * 1024)
    with pytest.raises(d.BackupError, match="upload of dumps/daily/y/data.dump failed: network down"):
        for _ in range(4):
            sink.write(b"x" * 5 * 1024 * 1024)
        sink.close()
    sink.abort()
    assert not s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads")


def test_restore_into_a_fresh_supabase_project_keeps_its_auth_schema(s3, source, empty_db, signing):
    """A fresh project already has roles and the auth/storage schemas: only roles, public schema and data go in."""
    manifest = d.run_backup(s3, BUCKET, source, signer=signing.signer, reason="to supabase", now=TUESDAY)
    target = empty_db()
    with psycopg.connect(target, autocommit=True) as conn:  # what a new Supabase project starts with
        conn.execute(demo_data.sql("supabase_platform.sql"))
        conn.execute(demo_data.sql("supabase_auth_storage.sql"))
    messages = []
    result = d.restore(s3, BUCKET, "latest", target, verifier=signing.verifier, log=messages.append)
    assert "target: a Supabase project" in messages
    assert not any("plain target" in m for m in messages)
    assert result.ok
    assert fingerprint(target, manifest.tables) == fingerprint(source, manifest.tables)


def test_verify_that_cannot_run_publishes_failure_metrics(s3, monkeypatch):
    from tavari_dr.core import metrics as m

    published = []
    monkeypatch.setattr(m, "put", lambda cw, values, dims=None: published.append((values, dims)))
    monkeypatch.setenv("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required")
    key = "arn:aws:kms:eu-west-1:123456789012:key/x"
    result = CliRunner().invoke(main, ["db", "verify", "--quick", "--bucket", BUCKET, "--region", REGION,
                                       "--publish-metrics", "--signing-key", key], catch_exceptions=False)
    assert result.exit_code == 1 and "no complete backup" in result.output
    assert ({"CheckFailed": 1}, {"Check": "db_verify_quick"}) in published
    assert ({"JobFailed": 1}, {"Job": "db_verify_quick"}) in published
