"""The edges where a point-in-time restore was silently wrong, each pinned by a test that failed before its fix
(real PostgreSQL with Supabase's role layout, moto): a new database after a failover, two databases in one
bucket, the second a dump starts, a table created after the dump, a partitioned table, an operator in another
time zone, large objects, and a slot the server invalidates by its own max_slot_wal_keep_size."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from tavari_dr.changes import pitr, replay
from tavari_dr.changes.capture import setup
from tavari_dr.changes.segment import list_segments, source_tag
from tavari_dr.core import metrics
from tavari_dr.database import backup as db_lib
from tests import changes_harness as h
from tests.backups import backup_s3

pytestmark = pytest.mark.postgres

BUCKET = "tavari-db-backups"
PUB = SLOT = "tavari_backup"


@pytest.fixture(scope="module")
def pg():
    cluster = h.cluster()
    yield cluster
    cluster.stop()


@pytest.fixture(autouse=True)
def no_slots_left(pg):
    """Slot names are the cluster's: each test starts with none (a failed test's left behind too)."""
    yield
    for _ in range(50):
        with psycopg.connect(pg.url(user="supabase_admin"), autocommit=True) as conn:
            conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE NOT active")
            if not conn.execute("SELECT count(*) FROM pg_replication_slots").fetchone()[0]:
                return
        time.sleep(0.1)




@pytest.fixture
def aws():
    with backup_s3(BUCKET) as s3:
        yield h.Aws.on(s3, BUCKET)


def admin(url: str) -> str:
    return url.replace("postgres@", "supabase_admin@")


def dump(pg, aws, url: str, reason: str = "nightly") -> db_lib.Manifest:
    return db_lib.run_backup(aws.s3, aws.bucket, url, reason=reason, signer=aws.signing.signer, pg_bin=pg.client_bin,
                             jobs=1)


def restore_to(pg, aws, to, **options: Any):
    target = admin(h.database(pg, "SELECT 1"))
    result, outcome = pitr.restore_to(aws.s3, aws.bucket, to, target, verifier=aws.signing.verifier,
                                      change_verifier=aws.changes.verifier, pg_bin=pg.client_bin, jobs=1, **options)
    return target, result, outcome


def commit(url: str, sql: str, *params: Any) -> tuple[int, Any]:
    """One transaction; its xid (to wait for the capture) and the server's clock after it."""
    with psycopg.connect(url) as conn:
        x = h.xid(conn)
        conn.execute(sql, params)
        conn.commit()
        return x, conn.execute("SELECT clock_timestamp()").fetchone()[0]


def drop_slot(pg, slot: str = SLOT) -> None:
    with psycopg.connect(pg.url(user="supabase_admin"), autocommit=True) as conn:
        conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s "
                     "AND NOT active", (slot,))


def test_a_rebuilt_database_starts_its_own_base_and_is_never_replayed_with_the_old_ones(pg, aws):
    """A failover's new database (here another database; a new cluster has another system identifier too)
    behind the same slot and publication names and bucket: the capture resumed the old base, whose position
    is far ahead, and skipped every new commit as already written. Now: a new base, a fresh dump, an alarm."""
    old = h.database(pg)
    setup(old, PUB, SLOT)
    running = h.Running(h.capture(old, aws)).started()
    for n in range(300):  # the old database's WAL moves well ahead
        commit(old, "INSERT INTO public.notes VALUES (%s, 'old', repeat('x', 500))", n)
    x, _ = commit(old, "INSERT INTO public.notes VALUES (1000, 'old last', '')")
    running.wait_for(x)
    running.stop()
    drop_slot(pg)
    new = h.database(pg)
    setup(new, PUB, SLOT)
    emitted, dumps = [], []
    capture = h.capture(new, aws, emitted=emitted,
                        fresh_dump=lambda reason: dumps.append(dump(pg, aws, new, "base-reset")))
    running = h.Running(capture).started()
    assert "another source database" in capture.base.reason and capture.base.identity["database"] in new
    assert len(dumps) == 1 and ({metrics.CHANGE_BASE_RESET: 1}, {"Source": "changes"}) in emitted
    time.sleep(1.1)
    commit(new, "INSERT INTO public.notes VALUES (1, 'new', 'after the failover')")
    before, to = h.rows(new), h.server_now(new)
    x, _ = commit(new, "INSERT INTO public.notes VALUES (2, 'new', 'after T')")
    running.wait_for(x)
    running.stop()
    keys = list_segments(aws.s3, aws.bucket, to - timedelta(hours=1), to + timedelta(hours=1))
    assert source_tag(capture.identity) in {k.source for k in keys} and len({k.source for k in keys}) == 2
    target, result, _ = restore_to(pg, aws, to)
    assert result.ok, result.checks
    assert h.rows(target) == before


def test_two_databases_in_one_bucket_each_replay_their_own_log(pg, aws):
    first, second = h.database(pg), h.database(pg)
    setup(first, PUB, SLOT)
    setup(second, PUB, "tavari_backup_b")
    one = h.Running(h.capture(first, aws)).started()
    two = h.Running(h.capture(second, aws, slot="tavari_backup_b")).started()
    dump(pg, aws, first, "first")
    time.sleep(1.1)
    dump(pg, aws, second, "second")  # the newest dump before T is the second database's
    commit(first, "INSERT INTO public.notes VALUES (1, 'first', 'after its dump')")
    commit(second, "INSERT INTO public.notes VALUES (2, 'second', 'after its dump')")
    time.sleep(0.2)
    to = h.server_now(first)
    expected = h.rows(second)
    for url, running in ((first, one), (second, two)):
        x, _ = commit(url, "INSERT INTO public.notes VALUES (9, 'later', '')")
        running.wait_for(x)
    one.stop()
    two.stop()
    drop_slot(pg, "tavari_backup_b")
    target, result, _ = restore_to(pg, aws, to)
    assert result.ok, result.checks
    assert h.rows(target) == expected  # the second database's state, with its own row and not the first's


def test_a_dump_serves_no_point_before_its_snapshot_by_the_servers_clock(pg, aws):
    """T inside the second the dump's job started but before its snapshot: the dump holds rows committed
    after T. It was chosen (its ID's second), replayed nothing and reported ok; now the previous dump serves."""
    url = h.database(pg)
    setup(url, PUB, SLOT)
    running = h.Running(h.capture(url, aws)).started()
    dump(pg, aws, url, "earlier")
    time.sleep(1.1)
    commit(url, "INSERT INTO public.notes VALUES (1, 'before T', '')")
    expected, to = h.rows(url), h.server_now(url)
    commit(url, "INSERT INTO public.notes VALUES (2, 'after T, before the snapshot', '')")
    manifest = dump(pg, aws, url, "later")
    assert manifest.snapshot_at and replay.served_from(manifest) > to
    x, _ = commit(url, "INSERT INTO public.notes VALUES (3, 'after', '')")
    running.wait_for(x)
    running.stop()
    drop_slot(pg)
    with pytest.raises(replay.ReplayError, match="snapshot was taken at"):
        replay.plan(aws.s3, aws.bucket, manifest, to, aws.changes.verifier)
    # The job's second, as the backup's ID has it, may equal T's: the dump is still not the one to use.
    assert pitr.newest_dump_before(aws.s3, aws.bucket, to, verifier=aws.signing.verifier).reason == "earlier"
    target, result, _ = restore_to(pg, aws, to)
    assert result.ok and h.rows(target) == expected


def test_a_table_created_after_the_dump_is_captured_alarmed_or_refused_by_name(pg, aws):
    url = h.database(pg)
    setup(url, PUB, SLOT)
    emitted, dumps = [], []
    capture = h.capture(url, aws, emitted=emitted,
                        fresh_dump=lambda reason: dumps.append(dump(pg, aws, url, "base-reset")))
    running = h.Running(capture).started()
    first = dump(pg, aws, url)
    time.sleep(1.1)
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE public.invoices_2 (id integer PRIMARY KEY, total numeric)")
        conn.execute("INSERT INTO public.invoices_2 VALUES (1, 10)")
    created = h.server_now(url)
    x, _ = commit(url, "INSERT INTO public.notes VALUES (1, 'after the table', '')")
    running.wait_for(x)
    deadline = time.monotonic() + 30
    while not dumps and time.monotonic() < deadline:  # the capture notices within one segment
        time.sleep(0.1)
    assert dumps, "the new table was not noticed"
    assert ({metrics.CHANGE_COVERAGE_GAP: 1}, {"Source": "changes"}) in emitted
    assert "public.invoices_2" in capture.base.schema and "not captured: public.invoices_2" in capture.base.reason
    time.sleep(1.1)
    commit(url, "INSERT INTO public.invoices_2 VALUES (2, 20)")
    expected, to = h.rows(url, ("public.notes", "public.invoices_2")), h.server_now(url)
    x, _ = commit(url, "INSERT INTO public.notes VALUES (2, 'after T', '')")
    running.wait_for(x)
    running.stop()
    drop_slot(pg)
    # From the dump before the table, a T after its creation is refused (it was restored without the table).
    with pytest.raises(replay.ReplayError):
        replay.plan(aws.s3, aws.bucket, first, created + timedelta(microseconds=1), aws.changes.verifier)
    target, result, _ = restore_to(pg, aws, to)
    assert result.ok, result.checks
    assert h.rows(target, ("public.notes", "public.invoices_2")) == expected


PARTITIONED = h.SCHEMA + """
SET ROLE postgres;
CREATE TABLE public.messages (id bigint, sent date, body text, PRIMARY KEY (id, sent)) PARTITION BY RANGE (sent);
CREATE TABLE public.messages_a PARTITION OF public.messages FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE public.messages_b PARTITION OF public.messages FOR VALUES FROM ('2027-01-01') TO ('2028-01-01');
RESET ROLE;
"""


def test_a_partitioned_table_is_captured_and_restored_with_rows_moving_between_partitions(pg, aws):
    """Partitioned tables were never published: every restore --to of such a database exited 1."""
    url = h.database(pg, PARTITIONED)
    said = setup(url, PUB, SLOT)
    assert "public.messages: added to the publication" in said
    running = h.Running(h.capture(url, aws)).started()
    commit(url, "INSERT INTO public.messages VALUES (1, '2026-02-02', 'a'), (2, '2027-02-02', 'b')")
    dump(pg, aws, url)
    commit(url, "INSERT INTO public.messages VALUES (3, '2026-03-03', 'c')")
    commit(url, "UPDATE public.messages SET sent = '2027-05-05' WHERE id = 1")  # moves to the other partition
    commit(url, "TRUNCATE public.messages_b")
    commit(url, "INSERT INTO public.messages VALUES (4, '2027-04-04', 'd')")
    time.sleep(0.2)
    tables = ("public.messages", "public.messages_a", "public.messages_b")
    expected, to = h.rows(url, tables), h.server_now(url)
    x, _ = commit(url, "INSERT INTO public.notes VALUES (1, 'after T', '')")
    running.wait_for(x)
    running.stop()
    drop_slot(pg)
    target, result, _ = restore_to(pg, aws, to)
    assert result.ok, (result.checks, result.mismatches())
    assert h.rows(target, tables) == expected


def test_rows_without_a_key_replay_whatever_time_zone_the_operator_restores_in(pg, aws, monkeypatch):
    url = h.database(pg, h.SCHEMA + "ALTER TABLE public.events ADD COLUMN at timestamptz;")
    setup(url, PUB, SLOT)
    running = h.Running(h.capture(url, aws)).started()
    commit(url, "INSERT INTO public.events VALUES ('a', 1, '2026-05-05 10:00:00.123456+00')")
    dump(pg, aws, url)
    commit(url, "UPDATE public.events SET n = 2 WHERE kind = 'a'")
    commit(url, "DELETE FROM public.events WHERE kind = 'a'")
    commit(url, "INSERT INTO public.events VALUES ('b', 3, '2026-06-06 23:59:59.5+05:30')")
    commit(url, "UPDATE public.events SET n = 4 WHERE kind = 'b'")
    time.sleep(0.2)
    expected, to = h.rows(url, ("public.events",)), h.server_now(url)
    x, _ = commit(url, "INSERT INTO public.notes VALUES (1, 'after T', '')")
    running.wait_for(x)
    running.stop()
    drop_slot(pg)
    monkeypatch.setenv("PGTZ", "Pacific/Chatham")  # the restoring operator's sessions
    target, result, _ = restore_to(pg, aws, to)
    monkeypatch.delenv("PGTZ")
    assert result.ok, result.checks
    assert h.rows(target, ("public.events",)) == expected


def test_large_objects_and_uncaptured_tables_are_refused_unless_named(pg, aws):
    url = h.database(pg)
    setup(url, PUB, SLOT)
    running = h.Running(h.capture(url, aws)).started()
    commit(url, "SELECT lo_from_bytea(0, 'invoice pdf bytes')")
    x, _ = commit(url, "INSERT INTO public.notes VALUES (1, 'n', '')")
    running.wait_for(x)
    deadline = time.monotonic() + 30
    while "pg_largeobject" not in running.capture.base.uncaptured and time.monotonic() < deadline:
        time.sleep(0.1)
    dump(pg, aws, url)
    time.sleep(0.2)
    to = h.server_now(url)
    x, _ = commit(url, "INSERT INTO public.notes VALUES (2, 'after T', '')")
    running.wait_for(x)
    running.stop()
    drop_slot(pg)
    with pytest.raises(replay.ReplayError, match="does not capture pg_largeobject"):
        restore_to(pg, aws, to)
    target, result, _ = restore_to(pg, aws, to, dump_only=("pg_largeobject",))
    assert result.ok and any("pg_largeobject" in detail for _, _, detail in result.checks)


def test_a_slot_the_server_invalidates_is_answered_with_a_new_base_a_fresh_dump_and_an_alarm(pg, aws):
    """max_slot_wal_keep_size (Supabase sets one) invalidates a slot whatever our own bound says: reproduced
    with a 1 MB bound while the capture is down."""
    url = h.database(pg)
    setup(url, PUB, SLOT)
    h.Running(h.capture(url, aws)).started().stop()
    with psycopg.connect(pg.url(user="supabase_admin"), autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'")
        conn.execute("SELECT pg_reload_conf()")
        try:
            for n in range(3):
                commit(url, "INSERT INTO public.notes VALUES (%s, 'while down', repeat('y', 1000))", n)
                conn.execute("SELECT pg_switch_wal()")
            conn.execute("CHECKPOINT")
            status = conn.execute("SELECT wal_status FROM pg_replication_slots WHERE slot_name = %s",
                                  (SLOT,)).fetchone()[0]
            assert status == "lost"
            emitted, dumps = [], []
            said: list[str] = []
            capture = h.capture(url, aws, emitted=emitted, dumps=dumps)
            capture.say = said.append
            capture.run(stop=lambda: True)
        finally:
            conn.execute("ALTER SYSTEM RESET max_slot_wal_keep_size")
            conn.execute("SELECT pg_reload_conf()")
    assert dumps == ["base-reset slot lost (the server removed WAL it still needed)"]
    assert ({metrics.CHANGE_BASE_RESET: 1}, {"Source": "changes"}) in emitted
    drop_slot(pg)


def test_the_drop_bound_follows_the_servers_own(pg, aws):
    url = h.database(pg)
    setup(url, PUB, SLOT)
    with psycopg.connect(pg.url(user="supabase_admin"), autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET max_slot_wal_keep_size = '64MB'")
        conn.execute("SELECT pg_reload_conf()")
        try:
            emitted, said = [], []
            capture = h.capture(url, aws, emitted=emitted, retained_wal_limit_bytes=4 * 1024 ** 3)
            capture.say = said.append
            asked: list[int] = []
            capture.run(stop=lambda: asked.append(1) or len(asked) > 1)  # one pass of the loop
        finally:
            conn.execute("ALTER SYSTEM RESET max_slot_wal_keep_size")
            conn.execute("SELECT pg_reload_conf()")
    assert any("past the server's max_slot_wal_keep_size (67108864 bytes)" in line for line in said), said
    fractions = [v[metrics.RETAINED_WAL_FRACTION] for v, _ in emitted if metrics.RETAINED_WAL_FRACTION in v]
    assert fractions and 0 <= fractions[0] < 0.5
    drop_slot(pg)


def test_two_schema_changes_in_a_row_converge_instead_of_resetting_for_ever(pg, aws):
    """A column renamed and renamed back before the capture read the first: the new base took the catalog's
    shape, met the logged one again after the reconnect, and reset for ever (523 fresh dumps in the oracle)."""
    url = h.database(pg)
    setup(url, PUB, SLOT)
    emitted, dumps = [], []
    running = h.Running(h.capture(url, aws, emitted=emitted, dumps=dumps)).started()
    running.stop()  # the changes below wait in the slot: the capture reads them all at once
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO public.notes VALUES (1, 'a', 'before')")
    with psycopg.connect(url) as conn:
        conn.execute("ALTER TABLE public.notes RENAME COLUMN title TO heading")
        conn.execute("INSERT INTO public.notes VALUES (2, 'b', 'renamed')")
    with psycopg.connect(url) as conn:
        conn.execute("ALTER TABLE public.notes RENAME COLUMN heading TO title")
        conn.execute("INSERT INTO public.notes VALUES (3, 'c', 'renamed back')")
    x, _ = commit(url, "INSERT INTO public.notes VALUES (4, 'd', 'marker')")
    running = h.Running(h.capture(url, aws, emitted=emitted, dumps=dumps)).started()
    running.wait_for(x, timeout=60)
    running.stop()
    assert 1 <= len(dumps) <= 4, dumps  # a reset per shape the log holds, not one per reconnect
