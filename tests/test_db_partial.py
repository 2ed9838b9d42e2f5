"""Partial restores through the CLI on a real PostgreSQL server (S3 and KMS on moto): chosen tables
of a backup as inert, private, expiring copies beside the live ones; the runbook's SQL puts the rows
back; cleanup-restored (and the nightly backup) drops the copies once their time is up."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import psycopg.sql
import pytest
from click.testing import CliRunner
from freezegun import freeze_time

from tavari_dr.cli import main
from tavari_dr.database import backup as d
from tavari_dr.database import partial as p
from tavari_dr.drill import demo_data
from tests.backups import backup_s3
from tests.test_db_backup import fingerprint

pytestmark = [pytest.mark.postgres, pytest.mark.moto]
REGION = "eu-west-1"
BUCKET = "tavari-db-backups"
TUESDAY = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
RESTORED_AT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
ODD = '"Odd Schema"."we.ird ""t"""'  # a schema with a space, a table with a dot and a double quote
RUNBOOK = Path(__file__).resolve().parent.parent / "docs" / "runbooks" / "database-corruption.md"
_databases = iter(range(10_000))


@pytest.fixture
def s3(monkeypatch):
    monkeypatch.setenv("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required")
    with backup_s3(BUCKET, REGION) as client:
        yield client


@pytest.fixture
def live(pg, s3, signing):
    """A Supabase-like database with an oddly named table, its nightly backup, then the damage."""
    url = pg.create_database(f"live_{next(_databases)}")
    demo_data.create_supabase_like(url)
    demo_data.seed(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute('CREATE SCHEMA "Odd Schema"')
        conn.execute(f'CREATE TABLE {ODD} (id int PRIMARY KEY, "Value" text, status public.call_status)')
        conn.execute(f"INSERT INTO {ODD} SELECT g, 'v' || g, 'answered' FROM generate_series(1, 9) g")  # noqa: S608
        # As on Supabase: new tables are granted to the API roles by default privileges.
        conn.execute("ALTER DEFAULT PRIVILEGES GRANT ALL ON TABLES TO anon, authenticated")
    manifest = d.run_backup(s3, BUCKET, url, signer=signing.signer, reason="nightly", now=TUESDAY)
    good = fingerprint(url, ["public.invoices", ODD])
    with psycopg.connect(url, autocommit=True) as conn:  # scenario 1, on two tables only
        conn.execute("UPDATE public.invoices SET amount = 0 WHERE number LIKE '%-2'")
        conn.execute("DELETE FROM public.invoices WHERE number LIKE '%-1'")
        conn.execute(f"DELETE FROM {ODD} WHERE id > 6")  # noqa: S608
    return url, manifest, good


def cli(*args):
    result = CliRunner().invoke(main, ["db", *args, "--region", REGION], catch_exceptions=False)
    return result.exit_code, result.output


def partial_args(target, signing, *tables):
    return ("restore", "--bucket", BUCKET, "--target-url", target, "--signing-key", signing.arn,
            "--report-bucket", "reports", *(x for t in tables for x in ("--table", t)))


def databases(url):
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database")}


def runbook_sql(heading: str) -> list[str]:
    """The SQL blocks under one heading of the runbook, as the operator copies them."""
    text = RUNBOOK.read_text().split(heading, 1)[1].split("###", 1)[0].split("\n5. ", 1)[0]
    return [b.split("```", 1)[0].replace("restored_YYYYMMDD", "restored_20261201") for b in text.split("```sql")[1:]]


def test_split_name_reads_identifiers_as_postgresql_does():
    assert p.split_name("public.invoices") == ("public", "invoices")
    assert p.split_name("Invoices") == ("public", "invoices")
    assert p.split_name(ODD) == ("Odd Schema", 'we.ird "t"')
    assert p.shown(*p.split_name(ODD)) == ODD
    for bad in ("", "a.", ".b", "a.b.c", '"open', 'a"b'):
        with pytest.raises(d.BackupError):
            p.split_name(bad)


def test_tables_are_copied_beside_the_live_ones_private_and_expiring(s3, live, signing):
    url, manifest, good = live
    damaged = fingerprint(url, manifest.tables)
    with freeze_time(RESTORED_AT, tick=True):
        code, out = cli(*partial_args(url, signing, "public.invoices", ODD), "--keep-hours", "48")
    assert code == 0, out
    assert "public.invoices -> restored_20261201.invoices  15 rows" in out
    assert f'{ODD} -> restored_20261201."Odd Schema__we.ird ""t"""  9 rows' in out  # as SQL names it
    assert fingerprint(url, manifest.tables) == damaged  # the live tables are untouched
    assert not {n for n in databases(url) if n.startswith("tavari_restore_")}  # the scratch database is gone
    with psycopg.connect(url) as conn:
        copy = fingerprint(url, ["restored_20261201.invoices"])["restored_20261201.invoices"]
        assert copy == good["public.invoices"]
        odd = conn.execute('SELECT count(*), min(status::text) FROM restored_20261201."Odd Schema__we.ird ""t"""')
        assert odd.fetchone() == (9, "answered")
        # Inert: no foreign keys, no triggers, no defaults; the primary key kept for the comparison.
        for catalog, column, expected in (("pg_constraint", "conrelid", ["p", "p"]), ("pg_trigger", "tgrelid", None),
                                          ("pg_attrdef", "adrelid", None)):
            query = psycopg.sql.SQL("SELECT array_agg({}) FROM {} x JOIN pg_class c ON c.oid = x.{} "
                                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                                    "WHERE n.nspname = 'restored_20261201'").format(
                psycopg.sql.SQL("x.contype::text" if catalog == "pg_constraint" else "x.oid"),
                psycopg.sql.Identifier(catalog), psycopg.sql.Identifier(column))
            assert conn.execute(query).fetchone()[0] == expected, catalog
        # Private: the API roles and PUBLIC can neither reach the schema nor read a copy.
        for role in ("anon", "authenticated", "public"):
            assert not conn.execute("SELECT has_schema_privilege(%s, 'restored_20261201', 'USAGE')",
                                    (role,)).fetchone()[0]
            for table in ("restored_20261201.invoices", 'restored_20261201."Odd Schema__we.ird ""t"""'):
                assert not conn.execute("SELECT has_table_privilege(%s, %s, 'SELECT')", (role, table)).fetchone()[0]
        comment = conn.execute("SELECT obj_description('restored_20261201.invoices'::regclass, 'pg_class')"
                               ).fetchone()[0]
        assert comment.startswith("tavari-dr restored copy of public.invoices from backup 20261124T020000Z-nightly")
        assert json.loads(comment.splitlines()[-1])["expires_at"] == "2026-12-03T09:30:00+00:00"
    audit = [json.loads(s3.get_object(Bucket="reports", Key=o["Key"])["Body"].read())
             for o in s3.list_objects_v2(Bucket="reports", Prefix="audit/db_restore/")["Contents"]]
    assert [a["outcome"] for a in audit] == ["copied 2 table(s) into restored_20261201"]
    assert audit[0]["details"]["tables"] == ["public.invoices", ODD]
    # The same table twice the same day is refused, naming what to drop.
    with freeze_time(RESTORED_AT + timedelta(hours=1), tick=True):
        code, out = cli(*partial_args(url, signing, "public.invoices"))
    assert code == 1 and "DROP TABLE restored_20261201.invoices" in out


def test_the_runbook_sql_puts_the_rows_back(s3, live, signing):
    url, manifest, good = live
    with freeze_time(RESTORED_AT, tick=True):
        code, out = cli(*partial_args(url, signing, "public.invoices"))
    assert code == 0, out
    (compare,) = runbook_sql("### Compare")
    deleted, changed = (q for q in compare.split(";") if q.strip())
    statements = runbook_sql("### Copy rows back")
    assert len(statements) == 2 and "ON CONFLICT" in statements[0] and "UPDATE" in statements[1]
    with psycopg.connect(url, autocommit=True) as conn:
        assert len(conn.execute(deleted).fetchall()) == 5  # one invoice of each business deleted
        assert len(conn.execute(changed).fetchall()) == 5  # and one zeroed
        for statement in statements:
            conn.execute(statement)
    assert fingerprint(url, ["public.invoices"]) == {"public.invoices": good["public.invoices"]}


def test_cleanup_drops_only_expired_copies_of_ours(s3, live, signing):
    url, _, _ = live
    with freeze_time(RESTORED_AT, tick=True):
        assert cli(*partial_args(url, signing, "public.invoices"), "--keep-hours", "2")[0] == 0
        assert cli(*partial_args(url, signing, ODD), "--keep-hours", "100")[0] == 0
    with psycopg.connect(url, autocommit=True) as conn:  # someone else's table in the schema: never touched
        conn.execute("CREATE TABLE restored_20261201.mine (id int)")
    cleanup = ("cleanup-restored", "--database-url", url, "--report-bucket", "reports")
    with freeze_time(RESTORED_AT + timedelta(hours=1)):
        code, out = cli(*cleanup)
    assert code == 0 and "no expired restored copies" in out and "(2 not yet due)" in out
    with freeze_time(RESTORED_AT + timedelta(hours=3)):
        code, out = cli(*cleanup, "--dry-run")
        assert code == 0 and "would drop restored_20261201.invoices" in out and "nothing was changed" in out
        code, out = cli(*cleanup)
    assert code == 0 and "dropped restored_20261201.invoices" in out
    with freeze_time(RESTORED_AT + timedelta(hours=101)):
        code, out = cli(*cleanup)
    assert code == 0 and 'dropped restored_20261201."Odd Schema__we.ird ""t"""' in out
    with psycopg.connect(url) as conn:
        left = conn.execute("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                            "WHERE n.nspname = 'restored_20261201'").fetchall()
        assert left == [("mine",)]  # and so the schema stays too
    audits = [json.loads(s3.get_object(Bucket="reports", Key=o["Key"])["Body"].read())
              for o in s3.list_objects_v2(Bucket="reports", Prefix="audit/db_cleanup_restored/")["Contents"]]
    assert sorted(a["details"]["dropped"][0] for a in audits) == [
        'restored_20261201."Odd Schema__we.ird ""t"""', "restored_20261201.invoices"]


def test_the_nightly_backup_drops_expired_copies_before_it_dumps(s3, live, signing):
    url, _, _ = live
    with freeze_time(RESTORED_AT, tick=True):
        assert cli(*partial_args(url, signing, "public.invoices"), "--keep-hours", "1")[0] == 0
    with freeze_time(RESTORED_AT + timedelta(hours=20), tick=True):
        code, out = cli("backup", "--reason", "nightly", "--database-url", url, "--bucket", BUCKET, "--signing-key",
                        signing.arn, "--cleanup-restored", "--report-bucket", "reports")
    assert code == 0, out
    assert "dropped restored_20261201.invoices" in out and "dropped restored_20261201\n" in out
    nightly = d.find_backup(s3, BUCKET, "latest", verifier=signing.verifier).manifest
    assert nightly.backup_id.startswith("20261202T05") and not any(t.startswith("restored_") for t in nightly.tables)


def test_a_scratch_url_is_used_and_kept(s3, pg, live, signing):
    url, _, good = live
    scratch = pg.create_database(f"scratch_{next(_databases)}")
    with freeze_time(RESTORED_AT, tick=True):
        code, out = cli(*partial_args(url, signing, "public.invoices"), "--scratch-url", scratch)
    assert code == 0, out
    with psycopg.connect(scratch) as conn:  # the operator's database, with the whole backup in it
        assert conn.execute("SELECT count(*) FROM public.messages").fetchone()[0] == 250
    assert fingerprint(url, ["restored_20261201.invoices"])["restored_20261201.invoices"] == good["public.invoices"]


def test_dry_run_and_unknown_tables_change_nothing(s3, live, signing):
    url, manifest, _ = live
    before = fingerprint(url, manifest.tables)
    code, out = cli(*partial_args(url, signing, "public.invoices"), "--dry-run")
    assert code == 0 and "would copy from backup 20261124T020000Z-nightly" in out and "nothing was changed" in out
    assert "public.invoices -> restored_" in out and "15 rows in the manifest" in out
    code, out = cli(*partial_args(url, signing, "public.nope"))
    assert code == 1 and "has no table public.nope" in out and "Traceback" not in out
    with psycopg.connect(url) as conn:
        assert not conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'restored%'").fetchone()[0]
    assert fingerprint(url, manifest.tables) == before
    assert not {n for n in databases(url) if n.startswith("tavari_restore_")}


def test_a_failed_cleanup_does_not_cost_the_nightly_backup(s3, live, signing, monkeypatch):
    url, _, _ = live

    def refuse(*_args, **_kwargs):
        raise d.BackupError("dropping expired restored copies: permission denied by PostgreSQL at 127.0.0.1:5432")

    monkeypatch.setattr(p, "cleanup_restored", refuse)
    code, out = cli("backup", "--reason", "nightly", "--database-url", url, "--bucket", BUCKET, "--signing-key",
                    signing.arn, "--cleanup-restored", "--report-bucket", "reports")
    assert code == 0, out
    assert "warning: the expired restored copies were not dropped (dropping expired restored copies: permission " in out
    assert len(d.list_backups(s3, BUCKET)) == 2
