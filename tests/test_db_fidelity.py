"""A database comes back whole from `db backup` + `db restore`: an adversarial schema
(tests/data/adversarial_schema.sql) restored into a fresh cluster is identical table by table and in
its pg_dump --schema-only, on PostgreSQL 15 and 17 and with the 17 client dumping a 15 server.

"Identical table by table": every table, partition, populated materialized view and sequence, and
every large object, hashed in a fixed order (content_of). "Identical schema": pg_dump --schema-only
of the source and of the copy, by the same client, with only \\restrict/\\unrestrict's random key
(pg_dump 15.14+ and 17.6+ write a new one per dump) normalized away (schema_of).
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tavari_dr.database import backup as d
from tavari_dr.database.manifest import Manifest, split_qualified
from tavari_dr.drill import demo_data
from tavari_dr.drill.pgcluster import LocalPostgres, PostgresUnavailable, client_bin_dir
from tests.backups import backup_s3

pytestmark = [pytest.mark.postgres, pytest.mark.moto]
BUCKET = "tavari-db-backups"
TUESDAY = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
FIXTURE = Path(__file__).parent / "data" / "adversarial_schema.sql"
_names = iter(range(10_000))


def unavailable(reason: str) -> None:
    """Binaries missing: a skip that says why, except in CI, where `make install` brings them and a
    skip would hide that it did not."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} — CI runs `make install`, which installs them")
    pytest.skip(reason)


def client(major: int) -> Path:
    try:
        return client_bin_dir(major)
    except PostgresUnavailable as err:
        unavailable(str(err))
        raise


@pytest.fixture(scope="module")
def clusters():
    """``clusters(major, role)``: one cluster per major and role for the module. Sources and targets
    are separate clusters, so a restore has to bring the roles too."""
    with contextlib.ExitStack() as stack:
        started: dict[tuple[int, str], LocalPostgres] = {}

        def get(major: int, role: str) -> LocalPostgres:
            if (major, role) not in started:
                try:
                    started[major, role] = stack.enter_context(LocalPostgres(major=major))
                except PostgresUnavailable as err:
                    unavailable(str(err))
            return started[major, role]

        yield get


@pytest.fixture
def s3():
    with backup_s3(BUCKET) as client_:
        yield client_


def load(url: str, sql_file: Path, bin_dir: Path) -> None:
    """Through psql, as a migration would run: statement by statement (ALTER TYPE ... ADD VALUE
    cannot share a transaction with the value's first use)."""
    done = subprocess.run([str(bin_dir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", str(sql_file)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def content_of(url: str) -> dict[str, object]:
    """Every table, partition and materialized view: its row count and an md5 of its rows in a fixed
    order (each row's text, byte order: equal text, equal row); every sequence's position; every
    large object's bytes, owner, grants and comment; whether each materialized view is populated."""
    out: dict[str, object] = {}
    with psycopg.connect(url) as conn:
        relations = conn.execute(
            "SELECT format('%I.%I', n.nspname, c.relname), c.relkind, c.relispopulated FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'm', 'S') "
            "AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' "
            "ORDER BY 1").fetchall()
        for name, kind, populated in relations:
            if kind == "S":
                out[name] = conn.execute(f"SELECT last_value, is_called FROM {name}").fetchone()  # noqa: S608
            elif not populated:
                out[name] = "not populated"
            else:
                rows = "SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text COLLATE \"C\"), ''))"
                out[name] = conn.execute(f"{rows} FROM ONLY {name} t").fetchone()  # noqa: S608 - format('%I.%I')
        out["large objects"] = conn.execute(
            "SELECT oid, lomowner::regrole::text, lomacl::text, obj_description(oid, 'pg_largeobject'), "
            "md5(lo_get(oid)) FROM pg_largeobject_metadata ORDER BY oid").fetchall()
    return out


RESTRICT_KEY = re.compile(r"^\\(restrict|unrestrict) \S+$", re.MULTILINE)


def schema_of(url: str, bin_dir: Path) -> str:
    """pg_dump --schema-only, \\restrict's random key normalized (the only part that differs between
    two dumps of one schema)."""
    done = subprocess.run([str(bin_dir / "pg_dump"), "--schema-only", "--dbname", url], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return RESTRICT_KEY.sub(r"\\\1 KEY", done.stdout)


def backup_and_restore(s3, signing, source: str, target: str, bin_dir: Path, reason: str, **restore_args):
    manifest = d.run_backup(s3, BUCKET, source, signer=signing.signer, reason=reason, now=TUESDAY, pg_bin=bin_dir)
    result = d.restore(s3, BUCKET, manifest.backup_id, target, verifier=signing.verifier, pg_bin=bin_dir,
                       **restore_args)
    return manifest, result


def assert_same(source: str, target: str, bin_dir: Path) -> None:
    assert content_of(target) == content_of(source)
    source_schema, target_schema = schema_of(source, bin_dir), schema_of(target, bin_dir)
    assert target_schema == source_schema, "\n".join(
        line for line in __import__("difflib").unified_diff(
            source_schema.splitlines(), target_schema.splitlines(), "source", "restored", lineterm=""))


# --------------------------------------------------------------------------- the whole round trip

VERSIONS = [(15, 15), (17, 17), (15, 17)]


@pytest.mark.parametrize("supabase", [False, True], ids=["plain-postgres", "supabase-like"])
@pytest.mark.parametrize(("server", "tools"), VERSIONS, ids=[f"server{s}-client{c}" for s, c in VERSIONS])
def test_the_adversarial_schema_comes_back_identical(s3, signing, clusters, server, tools, supabase):
    bin_dir = client(tools)
    name = f"app_{next(_names)}"
    source = clusters(server, "source").create_database(name)
    if supabase:
        demo_data.create_supabase_like(source)
        demo_data.seed(source, businesses=2, calls=3, messages=4)
    load(source, FIXTURE, bin_dir)
    target = clusters(server, "target").create_database(name)  # the same name: the dumps name no database
    manifest, result = backup_and_restore(s3, signing, source, target, bin_dir, name)
    assert result.ok, (result.checks, result.table_counts)
    assert manifest.server_version.startswith(str(server)) and f" {tools}." in manifest.pg_dump_version
    assert_same(source, target, bin_dir)


# --------------------------------------------------------------------------- one test per finding

MATVIEWS = """
CREATE TABLE public.sales (region text, amount int);
INSERT INTO public.sales SELECT (ARRAY['eu', 'us'])[1 + g % 2], g FROM generate_series(1, 50) g;
CREATE MATERIALIZED VIEW public."z base" AS SELECT region, sum(amount) AS total FROM public.sales GROUP BY region;
CREATE VIEW public.through AS SELECT region, total * 2 AS doubled FROM public."z base";
CREATE MATERIALIZED VIEW public."a top" AS SELECT * FROM public.through;
CREATE MATERIALIZED VIEW public.empty AS SELECT * FROM public.sales WITH NO DATA;
"""


def populated(url: str) -> dict[str, bool]:
    with psycopg.connect(url) as conn:
        return dict(conn.execute("SELECT relname, relispopulated FROM pg_class WHERE relkind = 'm'").fetchall())


def test_materialized_views_come_back_populated_in_dependency_order_and_with_no_data_stays_empty(
        s3, signing, clusters, tmp_path):
    """Seen: after a restore the views were there but unpopulated ("has not been populated"), while
    the row counts all matched. Now they are refreshed, each after what it reads (through a plain
    view too: "a top" reads "z base", which the alphabet would refresh second)."""
    cluster, bin_dir = clusters(15, "source"), client(15)
    source = cluster.create_database(f"mv_{next(_names)}")
    demo_data.create_supabase_like(source)
    (tmp_path / "mv.sql").write_text(MATVIEWS)
    load(source, tmp_path / "mv.sql", bin_dir)
    target = clusters(15, "target").create_database(f"mv_{next(_names)}")
    manifest, result = backup_and_restore(s3, signing, source, target, bin_dir, "matviews")
    assert result.ok
    assert populated(target) == {"z base": True, "a top": True, "empty": False}
    with psycopg.connect(source) as src, psycopg.connect(target) as dst:
        query = 'SELECT * FROM public."a top" ORDER BY region'
        assert dst.execute(query).fetchall() == src.execute(query).fetchall()
    assert result.table_counts['public."a top"'] == (2, 2)  # the views' rows are compared too
    order = [v["name"] for v in manifest.matviews]
    assert sorted(order) == ["a top", "empty", "z base"] and order.index("z base") < order.index("a top")


def test_force_over_a_schema_whose_name_holds_a_dot_drops_that_schema_and_no_other(s3, signing, clusters):
    """Seen: `--force` split "a.b".t on its first dot, dropped schema "a" (someone else's) and
    left "a.b", so the restore failed on "schema a.b already exists"."""
    bin_dir = client(15)
    source = clusters(15, "source").create_database(f"dot_{next(_names)}")
    demo_data.create_supabase_like(source)
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute('CREATE SCHEMA "a.b"; CREATE TABLE "a.b"."t.1" (x int); INSERT INTO "a.b"."t.1" VALUES (1), (2)')
    target = clusters(15, "target").create_database(f"dot_{next(_names)}")
    manifest, first = backup_and_restore(s3, signing, source, target, bin_dir, "dotted")
    assert first.ok
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA a; CREATE FUNCTION a.keep() RETURNS int LANGUAGE sql AS 'SELECT 7'")
        conn.execute('DELETE FROM "a.b"."t.1"')
    again = d.restore(s3, BUCKET, manifest.backup_id, target, verifier=signing.verifier, pg_bin=bin_dir, force=True)
    assert again.ok and again.table_counts['"a.b"."t.1"'] == (2, 2)
    with psycopg.connect(target) as conn:
        assert conn.execute("SELECT a.keep()").fetchone()[0] == 7  # schema "a" holds no table of ours
    assert manifest.table_names['"a.b"."t.1"'] == ["a.b", "t.1"]


def test_a_plain_postgres_database_without_auth_or_storage_backs_up_verifies_and_restores(s3, signing, clusters):
    """Seen: `pg_dump: error: no matching schemas were found` (the auth/storage dump named schemas a
    plain database does not have). And a restore adds nothing of Supabase's to a plain copy."""
    bin_dir = client(15)
    source = clusters(15, "source").create_database(f"plain_{next(_names)}")
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.t (id int PRIMARY KEY, v text); INSERT INTO public.t VALUES (1, 'one')")
    manifest = d.run_backup(s3, BUCKET, source, signer=signing.signer, reason="plain", now=TUESDAY, pg_bin=bin_dir)
    assert manifest.internal_schemas == [] and manifest.tables == {"public.t": 1}
    quick = d.verify_quick(s3, BUCKET, manifest.backup_id, verifier=signing.verifier, pg_bin=bin_dir)
    assert quick.ok, quick.checks
    target = clusters(15, "target").create_database(f"plain_{next(_names)}")
    result = d.restore(s3, BUCKET, manifest.backup_id, target, verifier=signing.verifier, pg_bin=bin_dir)
    assert result.ok
    assert_same(source, target, bin_dir)  # no auth, storage, extensions schema or Supabase role grants added


def test_the_17_client_dumps_a_15_server_and_restores_into_15_and_17(s3, signing, clusters):
    """Supabase's current major is 17 and the job image carries the 17 client (pg_major: 17): it dumps
    a project still on 15, and its archive restores into 15 (the monthly test's scratch image) and
    into 17 (the upgraded project)."""
    bin_dir = client(17)
    source = clusters(15, "source").create_database(f"up_{next(_names)}")
    load(source, FIXTURE, bin_dir)
    manifest = d.run_backup(s3, BUCKET, source, signer=signing.signer, reason="up", now=TUESDAY, pg_bin=bin_dir)
    assert manifest.server_version.startswith("15") and "17." in manifest.pg_dump_version
    for major in (15, 17):
        target = clusters(major, "target").create_database(f"up_{next(_names)}")
        result = d.restore(s3, BUCKET, manifest.backup_id, target, verifier=signing.verifier, pg_bin=bin_dir)
        assert result.ok, (major, result.checks)
        assert content_of(target) == content_of(source)


# --------------------------------------------------------------------------- names in manifests

def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


@given(st.text(st.characters(exclude_characters="\x00"), min_size=1),
       st.text(st.characters(exclude_characters="\x00"), min_size=1))
def test_a_manifest_from_before_table_names_parses_any_quoted_name(schema, name):
    assert split_qualified(f"{quote(schema)}.{quote(name)}") == (schema, name)


def test_a_manifest_from_before_reads_as_a_supabase_source_with_every_view_to_refresh():
    legacy = Manifest(backup_id="x", reason="r", tier="daily", database="postgres", started_at="", finished_at="",
                      server_version="15", pg_dump_version="17", snapshot="s", data_schemas=["a.b"],
                      excluded_schemas=[], tables={'"a.b"."t.1"': 1, "public.plain": 2}, artifacts={},
                      retain_until="", lock_mode="GOVERNANCE")
    text = legacy.to_json()
    for key in ('"table_names": {},', '"matviews": null,', '"internal_schemas": null,'):
        text = text.replace(key, "")
    assert "table_names" not in text and "matviews" not in text and "internal_schemas" not in text
    data = Manifest.from_json(text)
    assert data.table_pairs() == {'"a.b"."t.1"': ("a.b", "t.1"), "public.plain": ("public", "plain")}
    assert data.matviews is None and data.internal_schemas is None


def test_rows_load_with_the_tables_triggers_off(s3, signing, clusters):
    """Found building the fixture: a data-only restore fired a BEFORE INSERT trigger, which
    rewrote the rows it loaded (on Supabase, a trigger on auth.users inserts the profile rows the
    dump brings next). Rows now load with session_replication_role = replica."""
    bin_dir = client(15)
    source = clusters(15, "source").create_database(f"trg_{next(_names)}")
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.t (v text); CREATE TABLE public.audit (v text)")
        conn.execute("CREATE FUNCTION public.stamp() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                     "NEW.v := NEW.v || ' (stamped)'; INSERT INTO public.audit VALUES (NEW.v); RETURN NEW; END $$")
        conn.execute("CREATE TRIGGER stamp BEFORE INSERT ON public.t FOR EACH ROW EXECUTE FUNCTION public.stamp()")
        conn.execute("INSERT INTO public.t VALUES ('one'), ('two')")
    target = clusters(15, "target").create_database(f"trg_{next(_names)}")
    _, result = backup_and_restore(s3, signing, source, target, bin_dir, "triggers")
    assert result.ok, result.table_counts
    assert content_of(target) == content_of(source)


def test_a_role_that_may_not_set_the_replica_role_is_told_so(clusters):
    cluster = clusters(15, "target")
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        conn.execute("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'no_replica') THEN "
                     "CREATE ROLE no_replica LOGIN; END IF; END $$")
    assert d._may_set_replica_role(d.parse_database_url(cluster.url()))
    assert not d._may_set_replica_role(d.parse_database_url(cluster.url(user="no_replica")))


def test_restoring_into_an_older_major_reports_what_psql_stopped_on(s3, signing, clusters):
    bin_dir = client(17)
    source = clusters(15, "source").create_database(f"old_{next(_names)}")
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute('CREATE SCHEMA "a.b"; CREATE TABLE "a.b".t (x int)')
    target = clusters(15, "target").create_database(f"old_{next(_names)}")
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute('CREATE SCHEMA "a.b"')  # no table: not refused, but the dump's CREATE SCHEMA fails
    with pytest.raises(d.BackupError, match='psql failed: .*schema "a.b" already exists'):
        backup_and_restore(s3, signing, source, target, bin_dir, "older")


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the cluster as another user (postgres)")
def test_a_server_the_postgres_user_cannot_reach_runs_from_a_copy_it_can(tmp_path):
    """As root the cluster runs as postgres; CI's checkout may sit where postgres cannot read
    (a 0700 home), build/ with it."""
    from tavari_dr.drill import pgcluster

    try:
        install = pgcluster.server_bin_dir(17).parent
    except PostgresUnavailable as err:
        unavailable(str(err))
    hidden = tmp_path / "private"
    hidden.mkdir(mode=0o700)
    subprocess.run(["cp", "-a", str(install), str(hidden / "native")], check=True)
    assert not pgcluster._runnable_by_postgres(hidden / "native" / "bin")
    copy = pgcluster._copy_for_postgres(hidden / "native" / "bin")
    try:
        assert pgcluster._runnable_by_postgres(copy) and pgcluster._copy_for_postgres(hidden / "native" / "bin") == copy
    finally:
        subprocess.run(["rm", "-rf", str(copy.parent)], check=True)
