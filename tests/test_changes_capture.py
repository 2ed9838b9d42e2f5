"""The continuous capture against real PostgreSQL (wal_level=logical, Supabase's role layout) and moto:
a dump interleaved with writes restores row by row to the second, and each hard part of ADR 0020."""

from __future__ import annotations

import random
import threading
import time
import tracemalloc
import uuid
from datetime import timedelta
from typing import Any

import psycopg
import pytest

import tavari_dr
from tavari_dr.changes import pitr, replay
from tavari_dr.changes.capture import Capture, CaptureError, Settings, setup
from tavari_dr.changes.segment import SegmentError, list_segments, open_segment
from tavari_dr.changes.snapshot import Snapshot
from tavari_dr.core import metrics
from tavari_dr.database import backup as db_lib
from tests import changes_harness as h
from tests.backups import backup_s3

BUCKET = "tavari-db-backups"
PUB = SLOT = "tavari_backup"


@pytest.fixture(scope="module")
def pg():
    cluster = h.cluster()
    try:
        yield cluster
    finally:
        cluster.stop()




@pytest.fixture
def aws():
    with backup_s3(BUCKET) as s3:
        yield h.Aws.on(s3, BUCKET)


@pytest.fixture
def src(pg):
    url = h.database(pg)
    setup(url, PUB, SLOT)
    yield url
    with psycopg.connect(pg.url(user="supabase_admin"), autocommit=True) as conn:
        conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE NOT active")


def dump(pg, aws, url: str) -> db_lib.Manifest:
    return db_lib.run_backup(aws.s3, aws.bucket, url, reason="nightly", signer=aws.signing.signer,
                             pg_bin=pg.client_bin, jobs=1)


def restore_to(pg, aws, to) -> tuple[str, db_lib.VerifyResult, replay.ReplayResult]:
    target = h.database(pg, "SELECT 1")
    admin = target.replace("postgres@", "supabase_admin@")
    result, outcome = pitr.restore_to(aws.s3, aws.bucket, to, admin, verifier=aws.signing.verifier,
                                      change_verifier=aws.changes.verifier, pg_bin=pg.client_bin, jobs=1)
    return admin, result, outcome


def seed(url: str, users: int = 3, accounts: int = 10) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(users)]
    with psycopg.connect(url) as conn:
        for i, u in enumerate(ids):
            conn.execute("INSERT INTO auth.users VALUES (%s, %s)", (u, f"u{i}@tavari.example"))
        for a in range(accounts):
            conn.execute("INSERT INTO public.accounts (owner, name, balance) VALUES (%s, %s, %s)",
                         (ids[a % users], f"acct {a}", a))
        conn.execute("INSERT INTO public.events VALUES ('seed', 1), ('seed', 1), ('seed', 2)")
    return ids


def writer(url: str, stop: threading.Event, owners: list[uuid.UUID], seed_value: int) -> threading.Thread:
    """Small transactions as fast as one connection goes: inserts, updates, deletes, duplicate-row events."""
    def work() -> None:
        rng = random.Random(seed_value)  # noqa: S311 - reproducible test traffic
        with psycopg.connect(url, autocommit=True) as conn:
            while not stop.is_set():
                with conn.transaction():
                    choice = rng.random()
                    if choice < 0.4:
                        conn.execute("INSERT INTO public.accounts (owner, name, balance) VALUES (%s, %s, %s)",
                                     (rng.choice(owners), f"w{rng.random():.6f}", rng.randrange(1000)))
                    elif choice < 0.7:
                        conn.execute("UPDATE public.accounts SET balance = balance + 1 WHERE id = "
                                     "(SELECT id FROM public.accounts ORDER BY random() LIMIT 1)")
                    elif choice < 0.8:
                        conn.execute("DELETE FROM public.accounts WHERE id = "
                                     "(SELECT max(id) FROM public.accounts)")
                    else:
                        conn.execute("INSERT INTO public.events VALUES ('w', %s)", (rng.randrange(3),))
                        conn.execute("UPDATE public.events SET n = n + 10 WHERE ctid = "
                                     "(SELECT ctid FROM public.events WHERE kind = 'seed' LIMIT 1)")

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def last_xid(url: str) -> tuple[int, Any]:
    """A marker transaction's xid and commit time (the server's clock), for waiting on the capture."""
    with psycopg.connect(url) as conn:
        x = h.xid(conn)
        conn.execute("INSERT INTO public.events VALUES ('marker', 0)")
        conn.commit()
        return x, conn.execute("SELECT clock_timestamp()").fetchone()[0]


def test_a_dump_interleaved_with_writes_restores_row_by_row_to_the_second(pg, aws, src):
    owners = seed(src)
    running = h.Running(h.capture(src, aws)).started()
    stop = threading.Event()
    threads = [writer(src, stop, owners, n) for n in range(2)]
    try:
        time.sleep(0.5)
        manifest = dump(pg, aws, src)  # the writers go on while pg_dump reads its snapshot
        time.sleep(1.0)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    marker, _ = last_xid(src)
    running.wait_for(marker)
    time.sleep(1.1)  # the marker's second is over: T below is after every commit so far
    expected, to = h.rows(src), h.server_now(src)
    x, _ = last_xid(src)  # a commit after T shows the log reaches past it
    running.wait_for(x)
    running.stop()

    snapshot = Snapshot.parse(manifest.xid_snapshot)
    assert manifest.wal_lsn_before and snapshot.xmax >= snapshot.xmin
    target, result, outcome = restore_to(pg, aws, to)
    assert result.ok, (result.checks, result.mismatches())
    # Both kinds happened: transactions the dump already held were skipped, later ones applied.
    assert outcome.skipped_visible > 0 and outcome.applied > 0
    got = h.rows(target)
    got["public.events"] = [r for r in got["public.events"] if "marker" not in r[0]]
    expected["public.events"] = [r for r in expected["public.events"] if "marker" not in r[0]]
    assert got == expected


def test_restore_to_one_second_before_the_damage_and_sequences_past_the_highest_used(pg, aws, src):
    owners = seed(src)
    running = h.Running(h.capture(src, aws)).started()
    dump(pg, aws, src)
    with psycopg.connect(src) as conn:
        for n in range(30):
            conn.execute("INSERT INTO public.accounts (owner, name) VALUES (%s, %s)", (owners[0], f"after {n}"))
        conn.execute("INSERT INTO public.notes VALUES (1, 'kept', 'body')")
    time.sleep(1.1)
    before, to = h.rows(src), h.server_now(src)
    time.sleep(1.1)
    with psycopg.connect(src) as conn:  # the damage: a second later
        conn.execute("DELETE FROM public.accounts")
        conn.execute("TRUNCATE public.notes")
    x, _ = last_xid(src)
    running.wait_for(x)
    running.stop()
    target, result, outcome = restore_to(pg, aws, to)
    assert result.ok, result.checks
    assert h.rows(target) == before
    with psycopg.connect(target) as conn:
        highest = conn.execute("SELECT max(id) FROM public.accounts").fetchone()[0]
        # pgoutput carries no sequences: without the sampled value the next insert collides
        assert conn.execute("INSERT INTO public.accounts (name) VALUES ('new') RETURNING id").fetchone()[0] > highest


def test_truncates_and_unchanged_toast_values_replay(pg, aws, src):
    seed(src)
    running = h.Running(h.capture(src, aws)).started()
    big = "".join(random.Random(1).choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(300_000))  # noqa: S311
    with psycopg.connect(src) as conn:
        conn.execute("INSERT INTO public.notes VALUES (1, 'first', %s), (2, 'second', 'short')", (big,))
    dump(pg, aws, src)
    with psycopg.connect(src) as conn:
        conn.execute("UPDATE public.notes SET title = 'renamed' WHERE id = 1")  # body: unchanged TOAST, not sent
        conn.execute("TRUNCATE public.events")
        conn.execute("INSERT INTO public.events VALUES ('after truncate', 7)")
    time.sleep(1.1)
    before, to = h.rows(src), h.server_now(src)
    x, _ = last_xid(src)
    running.wait_for(x)
    running.stop()
    kinds = set()
    for key in list_segments(aws.s3, aws.bucket, to - timedelta(hours=1), to + timedelta(hours=1)):
        seg = open_segment(aws.s3, aws.bucket, key.key, aws.changes.verifier)
        assert seg.header.tool_version == tavari_dr.__version__  # under the change key's signature
        for r in seg.lines():
            kinds |= {"X"} if r[0] == "X" else {"u"} if r[0] == "U" and 0 in r[4] else set()
        seg.close()
    assert {"X", "u"} <= kinds  # the log really held a truncate and an unchanged TOASTed column
    target, result, _ = restore_to(pg, aws, to)
    assert result.ok, result.checks
    assert h.rows(target) == before


def test_setup_is_idempotent_and_names_what_it_cannot_capture(pg):
    url = h.database(pg, h.SCHEMA + """
        DO $$ BEGIN CREATE ROLE other_owner NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
        CREATE TABLE public.foreign_owned (id int PRIMARY KEY);
        ALTER TABLE public.foreign_owned OWNER TO other_owner;""")
    first = setup(url, "pub_a", "slot_a")
    second = setup(url, "pub_a", "slot_a")
    assert "publication pub_a: created" in first and "publication pub_a: exists" in second
    assert any("public.events: no primary key, REPLICA IDENTITY FULL set" in s for s in first)
    assert any(s.startswith("NOT CAPTURED public.foreign_owned: owned by other_owner") for s in first)
    assert not any("added to the publication" in s or "REPLICA IDENTITY FULL set" in s for s in second)
    assert any(s.startswith("slot slot_a: exists") for s in second)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_drop_replication_slot('slot_a')")


def test_a_published_table_without_identity_is_refused_at_start_by_name(pg, aws, src):
    with psycopg.connect(src, autocommit=True) as conn:
        conn.execute("ALTER TABLE public.events REPLICA IDENTITY DEFAULT")  # undoes what setup set
    with pytest.raises(CaptureError, match=r"without a primary key or replica identity: public\.events"):
        h.capture(src, aws).run(stop=lambda: True)


def test_a_large_transaction_waits_for_its_commit_on_disk_not_in_memory(pg, aws, src):
    seed(src)
    cap = h.capture(src, aws, spill_bytes=1024 * 1024, segment_max_bytes=2 * 1024 * 1024)
    running = h.Running(cap).started()
    with psycopg.connect(src) as conn:  # ~24 MB in one transaction
        x = h.xid(conn)
        with conn.cursor().copy("COPY public.events (kind, n) FROM STDIN") as copy:
            for n in range(24_000):
                copy.write_row((f"{n:06d}" + "x" * 1000, n))
    tracemalloc.start()
    try:
        running.wait_for(x, timeout=180)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        running.stop()
    assert peak < 12 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB while a 24 MB transaction was read"
    assert cap.segments_written >= 1


def test_a_schema_change_closes_the_base_forces_a_dump_and_is_never_replayed_across(pg, aws, src):
    seed(src)
    emitted, dumps = [], []
    running = h.Running(h.capture(src, aws, emitted=emitted,
                                  fresh_dump=lambda reason: dumps.append((reason, dump(pg, aws, src))))).started()
    first = dump(pg, aws, src)
    # A backup's ID is its second and reason: the forced dump in the same second as this one would be
    # refused (nothing is overwritten), as it should; an operator's change comes later than that.
    time.sleep(1.1)
    with psycopg.connect(src) as conn:
        conn.execute("INSERT INTO public.notes VALUES (1, 'before', 'x')")
    with psycopg.connect(src) as conn:
        conn.execute("ALTER TABLE public.notes ADD COLUMN tags text")
        conn.execute("INSERT INTO public.notes VALUES (2, 'after', 'y', 'new column')")
    x, _ = last_xid(src)
    running.wait_for(x, timeout=120)
    time.sleep(1.1)
    before, to = h.rows(src), h.server_now(src)
    y, _ = last_xid(src)
    running.wait_for(y)
    running.stop()
    assert [r for r, _ in dumps] == ["base-reset schema change on public.notes"]
    assert ({metrics.CHANGE_BASE_RESET: 1}, {"Source": "changes"}) in emitted
    # From the dump before the change, T after it is refused, not replayed into the old shape...
    with pytest.raises(replay.ReplayError, match=r"past the end of base .*\(schema change on public\.notes\)"):
        replay.plan(aws.s3, aws.bucket, first, to, aws.changes.verifier)
    # ...and the forced dump restores to T with the new column.
    target, result, _ = restore_to(pg, aws, to)
    assert result.ok, result.checks
    assert h.rows(target) == before


def test_a_column_renamed_while_the_capture_was_down_is_never_replayed_into_the_old_column(pg, aws, src):
    """DDL is not in the log. A rename made while the capture was down, with no row of that table written after
    it: the resumed capture's next segment (a commit on another table) must not vouch for a point after the
    rename — the dump has the old column (found by the restore oracle, seed 133: notes restored with `title`,
    true `heading`)."""
    seed(src)
    running = h.Running(h.capture(src, aws, fresh_dump=lambda reason: None)).started()
    first = dump(pg, aws, src)
    time.sleep(1.1)
    with psycopg.connect(src) as conn:
        conn.execute("INSERT INTO public.notes VALUES (1, 'before', 'x')")
    x, _ = last_xid(src)
    running.wait_for(x)
    running.stop()                       # the capture is down ...
    with psycopg.connect(src) as conn:   # ... while the column is renamed; nothing is written to notes after
        conn.execute("ALTER TABLE public.notes RENAME COLUMN title TO heading")
    to = h.server_now(src)
    with psycopg.connect(src) as conn:   # a later commit on another table: the log reaches past T
        conn.execute("UPDATE public.accounts SET balance = balance + 1 "
                     "WHERE id = (SELECT min(id) FROM public.accounts)")
    y, _ = last_xid(src)
    resumed = h.Running(h.capture(src, aws, fresh_dump=lambda reason: None)).started()
    resumed.wait_for(y)
    resumed.stop()
    with pytest.raises(replay.ReplayError, match=r"columns may have changed|past the end of base|last time base"):
        replay.plan(aws.s3, aws.bucket, first, to, aws.changes.verifier)


def test_a_column_renamed_and_renamed_back_between_two_looks_is_never_replayed_into_the_wrong_column(pg, aws, src):
    """Both DDLs between two coverage checks, no row of the table written: the columns look as the base has them
    again, but the catalog's rows do not (the oracle's seed 231: notes restored with `title`, true `heading`)."""
    seed(src)
    dumps: list[str] = []
    running = h.Running(h.capture(src, aws, fresh_dump=dumps.append)).started()
    first = dump(pg, aws, src)
    time.sleep(1.1)
    with psycopg.connect(src) as conn:
        conn.execute("ALTER TABLE public.notes RENAME COLUMN title TO heading")
    to = h.server_now(src)                # the truth at T: the column is `heading`
    with psycopg.connect(src) as conn:
        conn.execute("ALTER TABLE public.notes RENAME COLUMN heading TO title")
        conn.execute("UPDATE public.accounts SET balance = balance + 1 "
                     "WHERE id = (SELECT min(id) FROM public.accounts)")
    y, _ = last_xid(src)
    running.wait_for(y)
    running.stop()
    with pytest.raises(replay.ReplayError, match=r"columns may have changed|past the end of base|last time base"):
        replay.plan(aws.s3, aws.bucket, first, to, aws.changes.verifier)
    # One reset: at the segment's close (the DDL undone) or, when the capture looked in between, while idle.
    assert dumps in (["base-reset DDL on a published table (undone since)"],
                     ["base-reset schema change (seen while idle)"]), dumps


def _batches(url: str, running: h.Running, batches: int) -> None:
    """``batches`` commits, each in its own segment."""
    for b in range(batches):
        with psycopg.connect(url) as conn:
            x = h.xid(conn)
            conn.execute("INSERT INTO public.notes VALUES (%s, 'batch', 'b')", (100 + b,))
        running.wait_for(x)
        time.sleep(0.6)


def test_a_lost_slot_starts_a_new_base_with_a_fresh_dump_and_an_alarm(pg, aws, src, superuser_of):
    seed(src)
    first = h.Running(h.capture(src, aws)).started()
    first.stop()
    with psycopg.connect(superuser_of(src), autocommit=True) as conn:
        conn.execute("SELECT pg_drop_replication_slot(%s)", (SLOT,))  # what the server does to an invalid slot
    emitted, dumps = [], []
    second = h.capture(src, aws, emitted=emitted, dumps=dumps)
    second.run(stop=lambda: True)
    assert dumps == ["base-reset slot missing (dropped or never created)"]
    assert ({metrics.CHANGE_BASE_RESET: 1}, {"Source": "changes"}) in emitted
    assert second.base.previous == first.capture.base.base_id


def test_a_slot_past_the_retained_wal_limit_is_dropped_for_a_new_base(pg, aws, src):
    seed(src)
    h.Running(h.capture(src, aws)).started().stop()
    with psycopg.connect(src) as conn, conn.cursor().copy("COPY public.events (kind, n) FROM STDIN") as copy:
        for n in range(12_000):  # ~12 MB of WAL the stopped capture's slot holds
            copy.write_row(("y" * 1000, n))
    emitted, dumps = [], []
    asked: list[int] = []
    h.capture(src, aws, emitted=emitted, dumps=dumps, retained_wal_limit_bytes=8 * 1024 * 1024).run(
        stop=lambda: asked.append(1) or len(asked) > 1)  # one pass of the loop
    assert len(dumps) == 1 and "past retained_wal_limit_bytes" in dumps[0]
    retained = [v[metrics.RETAINED_WAL_BYTES] for v, _ in emitted if metrics.RETAINED_WAL_BYTES in v]
    assert retained[0] > 8 * 1024 * 1024
    assert ({metrics.CHANGE_BASE_RESET: 1}, {"Source": "changes"}) in emitted


def test_an_idle_capture_confirms_what_it_does_not_publish_so_the_source_releases_its_wal(pg, aws, src,
                                                                                         superuser_of):
    """WAL that carries nothing for the publication (here: logical messages pgoutput does not send) must
    not stay behind the slot while the published tables are quiet."""
    seed(src)
    running = h.Running(h.capture(src, aws)).started()
    try:
        with psycopg.connect(superuser_of(src), autocommit=True) as conn:
            def confirmed() -> int:
                (lsn,) = conn.execute("SELECT confirmed_flush_lsn - '0/0'::pg_lsn FROM pg_replication_slots "
                                      "WHERE slot_name = %s", (SLOT,)).fetchone()
                return int(lsn)

            time.sleep(1.5)  # the seed's segment written and confirmed
            before = confirmed()
            for _ in range(4):
                conn.execute("SELECT pg_logical_emit_message(true, 'tavari-test', repeat('x', 1000000))")
            (wal,) = conn.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()
            deadline = time.monotonic() + 30
            while confirmed() < int(wal) and time.monotonic() < deadline:
                time.sleep(0.2)
            # (the WAL grew by megabytes the publication does not carry, and the slot is past all of it)
            assert confirmed() >= int(wal) > before + 1_000_000
    finally:
        running.stop()
    assert running.capture.segments_written >= 1


class _CrashAfterWrite(Capture):
    """Dies after a segment is durably written and before the slot is confirmed."""

    def _close(self) -> None:
        if self.open is not None and self.open.first_commit is not None:
            self._cursor = None  # never confirmed
            super()._close()
            raise RuntimeError("killed between the write and the confirmation")
        super()._close()


def test_a_crash_between_write_and_confirm_loses_nothing_and_repeats_nothing(pg, aws, src, monkeypatch):
    seed(src)
    h.Running(h.capture(src, aws)).started().stop()
    manifest = dump(pg, aws, src)
    crashing = _CrashAfterWrite(src, aws.s3, aws.bucket, aws.changes.signer, aws.changes.verifier,
                                Settings(segment_seconds=0.5), fresh_dump=lambda _r: None)
    with psycopg.connect(src) as conn:
        conn.execute("INSERT INTO public.notes VALUES (1, 'in the segment written before the crash', 'x')")
    with pytest.raises(RuntimeError, match="killed"):
        crashing.run()
    # The next run re-reads from the confirmed position; with what the first wrote unknown to it (as
    # after a lost listing), it writes the same transactions again: replay must apply them once.
    monkeypatch.setattr("tavari_dr.changes.capture.list_segments", lambda *_a, **_k: [])
    running = h.Running(h.capture(src, aws)).started()
    with psycopg.connect(src) as conn:
        conn.execute("INSERT INTO public.notes VALUES (2, 'after the restart', 'y')")
    time.sleep(1.1)
    before, to = h.rows(src), h.server_now(src)
    x, _ = last_xid(src)
    running.wait_for(x)
    running.stop()
    assert len(list_segments(aws.s3, aws.bucket, to - timedelta(hours=1), to + timedelta(hours=1))) >= 2
    target, result, outcome = restore_to(pg, aws, to)
    assert result.ok, result.checks
    assert outcome.skipped_repeated >= 1 and manifest.xid_snapshot
    assert h.rows(target) == before


def test_a_resumed_capture_does_not_write_again_what_is_written(pg, aws, src):
    seed(src)
    crashing = _CrashAfterWrite(src, aws.s3, aws.bucket, aws.changes.signer, aws.changes.verifier,
                                Settings(segment_seconds=0.5), fresh_dump=lambda _r: None)
    with psycopg.connect(src) as conn:
        conn.execute("INSERT INTO public.notes VALUES (1, 'once', 'x')")
    with pytest.raises(RuntimeError, match="killed"):
        crashing.run()
    written = crashing.confirmed
    resumed = h.capture(src, aws)
    running = h.Running(resumed).started()
    assert resumed.confirmed == written
    x, _ = last_xid(src)
    running.wait_for(x)
    running.stop()
    keys = list_segments(aws.s3, aws.bucket, h.server_now(src) - timedelta(hours=1))
    assert all(a.end_lsn < b.start_lsn for a, b in zip(keys, keys[1:], strict=False))  # no overlap


def test_a_missing_segment_is_a_gap_and_a_rewritten_one_is_refused(pg, aws, src):
    seed(src)
    running = h.Running(h.capture(src, aws)).started()
    dump(pg, aws, src)
    _batches(src, running, 3)
    x, marked = last_xid(src)
    running.wait_for(x)
    running.stop()
    to = marked - timedelta(seconds=0.3)  # after the batches, before the marker: the log reaches past it
    keys = list_segments(aws.s3, aws.bucket, to - timedelta(hours=1), to + timedelta(hours=1))
    assert len(keys) >= 3
    aws.s3.delete_object(Bucket=aws.bucket, Key=keys[1].key)  # a delete marker hides it from the listing
    manifest = pitr.newest_dump_before(aws.s3, aws.bucket, to, verifier=aws.signing.verifier)
    # Found while planning, before the dump is restored into anything (the real run and --dry-run alike).
    with pytest.raises(replay.ReplayError, match="gap"):
        replay.plan(aws.s3, aws.bucket, manifest, to, aws.changes.verifier)
    target = h.database(pg, "SELECT 1")
    with pytest.raises(replay.ReplayError, match="gap"):
        pitr.restore_to(aws.s3, aws.bucket, to, target.replace("postgres@", "supabase_admin@"),
                        verifier=aws.signing.verifier, change_verifier=aws.changes.verifier, pg_bin=pg.client_bin,
                        jobs=1)
    with psycopg.connect(target) as conn:  # nothing was written into the target
        tables = conn.execute("SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace").fetchone()
    assert tables == (0,)
    aws.s3.put_object(Bucket=aws.bucket, Key=keys[-1].key, Body=b"a second version")
    with pytest.raises(SegmentError, match="2 version"):
        open_segment(aws.s3, aws.bucket, keys[-1].key, aws.changes.verifier)


def test_snapshot_visibility_is_pg_visible_in_snapshot(pg):
    with psycopg.connect(pg.url(user="supabase_admin")) as conn:
        for snapshot, xid in [("100:105:101,103", x) for x in (99, 100, 101, 102, 103, 104, 105, 4000)]:
            expected = conn.execute("SELECT pg_visible_in_snapshot(%s::text::xid8, %s::pg_snapshot)",
                                    (str(xid), snapshot)).fetchone()[0]
            assert Snapshot.parse(snapshot).visible(xid) is expected
    wrapped = Snapshot.parse(f"{2**32 + 5}:{2**32 + 9}:{2**32 + 6}")
    assert wrapped.visible(2**32 - 10) and not wrapped.visible(6) and wrapped.visible(7) and not wrapped.visible(9)


@pytest.fixture
def superuser_of():
    return lambda url: url.replace("postgres@", "supabase_admin@")


def test_the_cli_sets_up_lists_windows_and_restores_to_a_second(pg, aws, monkeypatch):
    from click.testing import CliRunner

    # moto's multipart CRC32 is not the whole object's, which botocore checks by default (as the pipeline test says)
    monkeypatch.setenv("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required")

    from tavari_dr.cli import main

    url = h.database(pg)
    common = ["--bucket", aws.bucket, "--signing-key", aws.signing.arn, "--change-signing-key", aws.changes.arn]
    audit = ["--report-bucket", "reports"]
    done = CliRunner().invoke(main, ["db", "stream", "--setup", "--database-url", url])
    assert done.exit_code == 0, done.output
    assert "publication tavari_backup: created" in done.output and "slot tavari_backup: created" in done.output
    again = CliRunner().invoke(main, ["db", "stream", "--setup", "--database-url", url])
    assert "publication tavari_backup: exists" in again.output and "slot tavari_backup: exists" in again.output
    owners = seed(url)
    running = h.Running(h.capture(url, aws)).started()
    manifest = dump(pg, aws, url)
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO public.accounts (owner, name) VALUES (%s, 'after the dump')", (owners[0],))
    time.sleep(1.1)
    before, to = h.rows(url), h.server_now(url)
    x, _ = last_xid(url)
    running.wait_for(x)
    running.stop()
    listed = CliRunner().invoke(main, ["db", "list", *common])
    assert listed.exit_code == 0, listed.output
    assert f"{manifest.backup_id}" in listed.output and "--to up to " in listed.output
    bad = CliRunner().invoke(main, ["db", "restore", "--to", "yesterday", "--target-url", url, *common])
    assert bad.exit_code == 2 and "'yesterday' is not a time" in bad.output and "Traceback" not in bad.output
    later = (to + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    late = CliRunner().invoke(main, ["db", "restore", "--to", later, "--target-url", url, "--dry-run", *common])
    # The dry run judges as the real run does: a T the log cannot reach is refused by both, naming why.
    assert late.exit_code == 1 and "the change log reaches only" in late.output, late.output
    target = h.database(pg, "SELECT 1").replace("postgres@", "supabase_admin@")
    second = (to.replace(microsecond=0)).strftime("%Y-%m-%dT%H:%M:%SZ")
    dry = CliRunner().invoke(main, ["db", "restore", "--to", second, "--target-url", target, "--dry-run", *common])
    assert dry.exit_code == 0 and f"would restore backup {manifest.backup_id}" in dry.output, dry.output
    done = CliRunner().invoke(main, ["db", "restore", "--to", second, "--target-url", target, "--pg-bin",
                                     str(pg.client_bin), "--jobs", "1", *common, *audit])
    assert done.exit_code == 0, done.output
    assert f"restored to {second}: backup {manifest.backup_id}" in done.output
    assert h.rows(target)["public.accounts"] == before["public.accounts"]
    beyond = CliRunner().invoke(main, ["db", "restore", "--to", later, "--target-url",
                                       h.database(pg, "SELECT 1").replace("postgres@", "supabase_admin@"),
                                       "--pg-bin", str(pg.client_bin), *common, *audit])
    assert beyond.exit_code == 1 and "the change log reaches only" in beyond.output, beyond.output
