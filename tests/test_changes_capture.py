"""The continuous capture against real PostgreSQL (wal_level=logical, Supabase's role layout) and moto:
a dump interleaved with writes restores row by row to the second, and each hard part of ADR 0020."""

from __future__ import annotations

import random
import threading
import time
import tracemalloc
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import boto3
import psycopg
import pytest

from tavari_dr.changes import pitr, replay
from tavari_dr.changes.capture import CaptureError, setup
from tavari_dr.changes.segment import PREFIX, SegmentError, list_segments, open_segment
from tavari_dr.changes.snapshot import Snapshot
from tavari_dr.core import metrics
from tavari_dr.database import backup as db_lib
from tests import changes_harness as h
from tests.backups import Signing, backup_s3

BUCKET = "tavari-db-backups"
PUB = SLOT = "tavari_backup"


@pytest.fixture(scope="module")
def pg():
    cluster = h.cluster()
    try:
        yield cluster
    finally:
        cluster.stop()


@dataclass
class Aws:
    s3: Any
    bucket: str
    signing: Signing


@pytest.fixture
def aws():
    with backup_s3(BUCKET) as s3:
        yield Aws(s3, BUCKET, Signing())


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
                                      pg_bin=pg.client_bin, jobs=1)
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
        seg = open_segment(aws.s3, aws.bucket, key.key, aws.signing.verifier)
        for r in seg.lines():
            kinds |= {"X"} if r[0] == "X" else {"u"} if r[0] == "U" and 0 in r[4] else set()
        seg.close()
    assert {"X", "u"} <= kinds  # the log really held a truncate and an unchanged TOASTed column
    target, result, _ = restore_to(pg, aws, to)
    assert result.ok, result.checks
    assert h.rows(target) == before
