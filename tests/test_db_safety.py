"""Safe overwrites through the CLI, on a real PostgreSQL server with S3 and KMS on moto: what
`db restore --force` drops is shown and confirmed, --dry-run changes nothing, and the target is
backed up first into a pre-restore copy that is never `latest`."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import psycopg
import pytest
from click.testing import CliRunner
from freezegun import freeze_time

from tavari_dr.cli import main
from tavari_dr.database import backup as d
from tavari_dr.database.manifest import PRE_RESTORE
from tests.backups import backup_s3
from tests.test_db_backup import fingerprint

pytestmark = [pytest.mark.postgres, pytest.mark.moto]
REGION = "eu-west-1"
BUCKET = "tavari-db-backups"
TUESDAY = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
_databases = iter(range(10_000))


@pytest.fixture
def s3(monkeypatch):
    monkeypatch.setenv("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required")
    with backup_s3(BUCKET, REGION) as client:
        yield client



@pytest.fixture
def damaged(s3, source, signing):
    """A nightly backup of ``source``, then the damage of scenario 1 (and a table the backup lacks)."""
    manifest = d.run_backup(s3, BUCKET, source, signer=signing.signer, reason="nightly", now=TUESDAY)
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("UPDATE public.invoices SET amount = 0")
        conn.execute("DELETE FROM public.messages WHERE id % 2 = 0")
        conn.execute("CREATE SCHEMA scratchpad")
        conn.execute("CREATE TABLE scratchpad.notes AS SELECT g AS id FROM generate_series(1, 7) g")
    return manifest


def cli(*args, input=None):
    result = CliRunner().invoke(main, ["db", *args, "--region", REGION], input=input, catch_exceptions=False)
    return result.exit_code, result.output


def restore_args(target, signing):
    return ("restore", "--bucket", BUCKET, "--target-url", target, "--signing-key", signing.arn,
            "--report-bucket", "reports")


def everything(s3):
    """Every version of every object in both buckets: what a dry run must leave as it was."""
    return {b: sorted((v["Key"], v["VersionId"]) for v in s3.list_object_versions(Bucket=b).get("Versions", []))
            for b in (BUCKET, "reports")}


def audits(s3):
    listed = s3.list_objects_v2(Bucket="reports", Prefix="audit/db_restore/").get("Contents", [])
    return [json.loads(s3.get_object(Bucket="reports", Key=o["Key"])["Body"].read()) for o in listed]


def test_force_shows_what_it_drops_and_no_changes_nothing(s3, source, damaged, signing):
    before = fingerprint(source, [*damaged.tables, "scratchpad.notes"])
    code, out = cli(*restore_args(source, signing), "--force", input="n\n")
    assert code == 1 and "not confirmed: nothing was written" in out
    assert "DROP SCHEMA public CASCADE (6 table(s), 275 rows)" in out  # 125 of 250 messages deleted
    assert "public.messages: 125 rows" in out and "public.invoices: 15 rows" in out
    assert "DROP SCHEMA scratchpad CASCADE (1 table(s), 7 rows)" in out and "scratchpad.notes: 7 rows" in out
    assert "TRUNCATE auth.users (5 rows; refilled from the backup)" in out
    assert "Drop all of this in postgresql://postgres@127.0.0.1" in out
    assert fingerprint(source, [*damaged.tables, "scratchpad.notes"]) == before
    assert [b.backup_id for b in d.list_backups(s3, BUCKET)] == [damaged.backup_id]  # no pre-restore copy
    (audit,) = audits(s3)
    assert audit["outcome"].startswith("failed: not confirmed")


def test_dry_run_prints_the_same_and_writes_nothing_anywhere(s3, source, damaged, signing):
    before, objects = fingerprint(source, damaged.tables), everything(s3)
    code, out = cli(*restore_args(source, signing), "--force", "--dry-run")
    assert code == 0, out
    assert "DROP SCHEMA public CASCADE (6 table(s), 275 rows)" in out and "scratchpad.notes: 7 rows" in out
    assert "a pre-restore backup of the target would be taken first" in out and "nothing was changed" in out
    assert fingerprint(source, damaged.tables) == before and everything(s3) == objects  # not even an audit record
    code, out = cli(*restore_args(source, signing), "--dry-run")
    assert code == 1 and "would be refused: the target already holds 7 user table(s)" in out


def test_yes_backs_the_target_up_first_and_the_copy_undoes_the_restore(s3, source, damaged, signing):
    damaged_state = fingerprint(source, damaged.tables)
    with freeze_time(TUESDAY.replace(hour=9), tick=True):
        code, out = cli(*restore_args(source, signing), "--force", "--yes")
    assert code == 0, out
    assert "DROP SCHEMA public CASCADE" in out and "every row count matches" in out and "Drop all" not in out
    copies = [b for b in d.list_backups(s3, BUCKET) if b.pre_restore]
    (copy,) = copies
    assert copy.backup_id == f"20261124T09{copy.backup_id[11:15]}Z-{PRE_RESTORE}" and copy.tier == "daily"
    assert f"pre-restore backup {copy.backup_id}" in out
    opened = d.find_backup(s3, BUCKET, copy.backup_id, verifier=signing.verifier)  # signed like every backup
    assert opened.trust == d.SIGNED and opened.manifest.tables["public.messages"] == 125
    assert opened.manifest.tables["scratchpad.notes"] == 7
    # Newer than the nightly, yet never latest: the next `--backup latest` restores the nightly.
    assert d.find_backup(s3, BUCKET, "latest", verifier=signing.verifier).manifest.backup_id == damaged.backup_id
    (audit,) = audits(s3)
    assert audit["details"]["safety_backup"] == copy.backup_id
    assert audit["details"]["dropped"]["rows"] == 275 + 7 + 5 + 1 + 15  # public, scratchpad, auth and storage
    # The way back: the copy, by its ID, puts the overwritten state back.
    code, out = cli(*restore_args(source, signing), "--backup", copy.backup_id, "--force", "--yes",
                    "--no-safety-backup")
    assert code == 0, out
    assert fingerprint(source, damaged.tables) == damaged_state
    assert len([b for b in d.list_backups(s3, BUCKET) if b.pre_restore]) == 1  # --no-safety-backup took none


def test_latest_is_the_nightly_even_when_only_a_pre_restore_copy_is_newer(s3, source, damaged, signing):
    """A forced restore of `latest` never picks the copy it has just taken of its own target."""
    code, out = cli(*restore_args(source, signing), "--force", "--yes")
    assert code == 0, out
    assert f"backup {damaged.backup_id}: signed" in out
    code, out = cli("list", "--bucket", BUCKET, "--format", "json")
    listed = json.loads(out)["result"]["backups"]
    assert [b["pre_restore"] for b in listed] == [True, False]
    code, out = cli("list", "--bucket", BUCKET)
    assert "pre-restore copy of a restore's target: never latest" in out


def test_the_backup_job_metrics_are_not_published_for_the_pre_restore_copy(s3, source, damaged, signing, monkeypatch):
    """BackupSizeBytes and the db_backup job's JobSucceeded are the nightly's: the copy publishes neither."""
    from tavari_dr.core import metrics as m

    published = []
    monkeypatch.setattr(m, "put", lambda cw, values, dims=None: published.append((values, dims)))
    code, out = cli(*restore_args(source, signing), "--force", "--yes", "--publish-metrics")
    assert code == 0, out
    assert any(b.pre_restore for b in d.list_backups(s3, BUCKET))
    assert not [p for p in published if m.BACKUP_SIZE_BYTES in p[0] or (p[1] or {}).get("Job") == m.DB_BACKUP]


def test_a_backup_reason_of_pre_restore_is_reserved(s3, source, signing):
    code, out = cli("backup", "--reason", "Pre Restore", "--database-url", source, "--bucket", BUCKET,
                    "--signing-key", signing.arn)
    assert code == 2 and "reserved" in out
    assert not d.list_backups(s3, BUCKET)


def test_a_failed_safety_backup_changes_nothing(s3, pg, damaged, signing, monkeypatch):
    """The dump of the target fails (here: pg_dump refuses, as on a table the login may not read): the
    overwrite stops before anything is written."""
    target = pg.create_database(f"plain_{next(_databases)}")
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.precious AS SELECT 1 AS id")
    real = d.run_backup

    def refused(*args, **kwargs):
        raise d.BackupError("pg_dump exited 1: pg_dump: error: query failed: ERROR:  permission denied for table "
                            "precious")

    monkeypatch.setattr(d, "run_backup", refused)
    code, out = cli(*restore_args(target, signing), "--force", "--yes")
    monkeypatch.setattr(d, "run_backup", real)
    assert code == 1 and "the pre-restore backup of the target failed, so nothing was changed" in out
    assert "--no-safety-backup" in out and "Traceback" not in out
    with psycopg.connect(target) as conn:
        assert conn.execute("SELECT count(*) FROM public.precious").fetchone()[0] == 1
    code, out = cli(*restore_args(target, signing), "--force", "--yes", "--no-safety-backup")
    assert code == 0, out


def test_option_combinations_are_usage_errors(s3, signing):
    for extra in (("--yes",), ("--no-safety-backup",), ("--table", "public.x", "--force"),
                  ("--scratch-url", "postgresql://u@h/x")):
        code, out = cli(*restore_args("postgresql://u@127.0.0.1:1/x", signing), *extra)
        assert code == 2, (extra, out)


def test_an_unreachable_target_is_one_line_naming_it(s3, damaged, signing):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    target = f"postgresql://postgres:hunter2@127.0.0.1:{port}/postgres"
    for extra in ((), ("--force", "--yes"), ("--force", "--dry-run"), ("--table", "public.invoices"),
                  ("--table", "public.invoices", "--dry-run")):
        result = CliRunner().invoke(main, ["db", *restore_args(target, signing), *extra, "--region", REGION])
        assert result.exit_code == 1, (extra, result.output)
        assert f"PostgreSQL at 127.0.0.1:{port}" in result.output and "Connection refused" in result.output
        assert "Traceback" not in result.output and "hunter2" not in result.output
        assert isinstance(result.exception, SystemExit)


# --------------------------------------------------------------------------- large objects (issue 28)


def large_objects(url):
    """Every large object's OID and bytes: pg_largeobject is the database's, in no schema a DROP reaches."""
    with psycopg.connect(url) as conn:
        return dict(conn.execute("SELECT oid, lo_get(oid) FROM pg_largeobject_metadata ORDER BY oid").fetchall())


def rows(url, tables):
    """Every row of every table, sorted: compared row by row."""
    with psycopg.connect(url) as conn:
        return {t: sorted(map(str, conn.execute(f"SELECT t FROM {t} t").fetchall())) for t in tables}  # noqa: S608


def test_force_over_large_objects_restores_them_and_the_printed_way_back_brings_the_target_back(
        s3, source, signing):
    """Before: the schemas were dropped, then pg_restore failed on pg_largeobject (duplicate OID) and the
    target was left without its tables (exit 1); the printed way back failed the same way."""
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.attachments (id int PRIMARY KEY, blob oid NOT NULL)")
        conn.execute("INSERT INTO public.attachments SELECT g, lo_from_bytea(0, convert_to('pdf ' || g, 'UTF8')) "
                     "FROM generate_series(1, 3) g")
    nightly = d.run_backup(s3, BUCKET, source, signer=signing.signer, reason="nightly", now=TUESDAY)
    at_backup = large_objects(source)
    with psycopg.connect(source, autocommit=True) as conn:  # after the backup: rows and large objects change
        conn.execute("DELETE FROM public.messages WHERE id % 3 = 0")
        conn.execute("SELECT lo_put(blob, 0, '\\x585858') FROM public.attachments WHERE id = 1")
        conn.execute("INSERT INTO public.attachments VALUES (4, lo_from_bytea(0, 'written after the backup'))")
    tables = [*nightly.tables, "public.attachments"]
    overwritten, overwritten_objects = rows(source, tables), large_objects(source)
    assert len(overwritten_objects) == 4 and overwritten_objects != at_backup
    with freeze_time(TUESDAY.replace(hour=9), tick=True):
        code, out = cli(*restore_args(source, signing), "--force", "--yes")
    assert code == 0, out
    assert "4 large object(s)" in out  # shown among what is dropped
    assert large_objects(source) == at_backup
    with psycopg.connect(source) as conn:
        assert conn.execute("SELECT count(*) FROM public.businesses").fetchone()[0] == nightly.tables[
            "public.businesses"] > 0
    # The way back, exactly as printed.
    (line,) = [x for x in out.splitlines() if "the way back: tavari-dr db restore" in x]
    printed = line.split("tavari-dr ", 1)[1].split()
    assert printed[:2] == ["db", "restore"] and "--force" in printed
    args = [a if a != "<target-url>" else source for a in printed[1:]]
    code, out = cli(*args, "--bucket", BUCKET, "--signing-key", signing.arn, "--report-bucket", "reports", "--yes",
                    "--no-safety-backup")
    assert code == 0, out
    assert rows(source, tables) == overwritten
    assert large_objects(source) == overwritten_objects
