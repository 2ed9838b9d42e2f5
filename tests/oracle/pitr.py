"""The point-in-time restore oracle: seeded random histories against real PostgreSQL and moto, restored
`--to` random sub-second instants and compared with the truth at each instant.

The property, for every restore point T: `db restore --to T` equals the source's state at T (every table's
columns and rows, and the large objects), or it is refused naming why. Never "ok" and different.

How the truth is known: one writer runs the history one transaction at a time (over every source it
writes to, in turn) and, after each commit, reads the server's clock and digests every table. Between
the clock read after commit k and the one read before operation k+1 begins, the visible state is exactly
state k, so a T drawn inside that gap has one true answer. Dumps, the capture and the restores only read
the sources; a long transaction's early statements change nothing visible until its commit.

What a history holds (each drawn from the seed): inserts, updates, deletes, TOASTed values updated and
left alone, every awkward column type, rows without a primary key, partitioned tables and rows moving
between partitions, TRUNCATE, multi-statement and long transactions spanning segments, column renames and
added columns, tables and partitions created mid-stream, large objects, dumps started mid-write, a capture
killed mid-segment, a slot the server invalidates (max_slot_wal_keep_size), a second database writing into
the same bucket, and a failover to a new cluster restored from the newest dump. Restores run with another
TimeZone in the client's environment than the capture's.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg

from tavari_dr.changes import pitr, replay
from tavari_dr.changes.capture import setup
from tavari_dr.core.accountmap import erase_accounts
from tavari_dr.core.config import Dataset
from tavari_dr.database import backup as db_lib
from tavari_dr.database import erasure
from tavari_dr.database.manifest import BackupError, id_time
from tests import changes_harness as h

BUCKET = "tavari-db-backups"
PUBLICATION = "tavari_backup"

SCHEMA = """
CREATE SCHEMA auth AUTHORIZATION supabase_auth_admin;
SET ROLE supabase_auth_admin;
CREATE TABLE auth.users (id uuid PRIMARY KEY, email text NOT NULL);
RESET ROLE;
SET ROLE postgres;
CREATE TABLE public.accounts (id bigserial PRIMARY KEY, owner uuid REFERENCES auth.users (id), name text NOT NULL,
                              balance numeric(12, 2) NOT NULL DEFAULT 0, meta jsonb, doc text, blob bytea,
                              seen timestamptz, span interval, ratio double precision, tags text[]);
CREATE TABLE public.events (kind text, n integer, at timestamptz);  -- no primary key
CREATE TABLE public.notes (id integer PRIMARY KEY, title text);
CREATE TABLE public.messages (id bigint, sent date, body text, PRIMARY KEY (id, sent)) PARTITION BY RANGE (sent);
CREATE TABLE public.messages_2026 PARTITION OF public.messages FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE public.messages_2027 PARTITION OF public.messages FOR VALUES FROM ('2027-01-01') TO ('2028-01-01');
RESET ROLE;
"""
ZONES = ("UTC", "Pacific/Chatham", "America/St_Johns", "Asia/Kathmandu", "Europe/Lisbon")
_db_names = itertools.count()


# --------------------------------------------------------------------------- the truth


# The oracle's account map: an account's rows (the user's own row in auth.users is always the account's).
DATASETS = (Dataset("accounts", "public.accounts", "user", "owner"),)
# Where an account's rows are named, for leaving the erased ones out of the truth.
ACCOUNT_COLUMNS = {"auth.users": "id", "public.accounts": "owner"}


def digest(url: str, without: tuple[str, ...] = ()) -> dict[str, str]:
    """Every user table's columns and rows (in a fixed order, as text under fixed settings), a partitioned
    table as its leaves, and every large object's content: equal digests, equal states. ``without``: accounts
    whose rows are left out (the truth of a restore, which re-applies the erasure ledger)."""
    with psycopg.connect(url, autocommit=True) as conn:
        for name, value in db_lib.FIXED_SESSION.items():
            conn.execute("SELECT set_config(%s, %s, false)", (name, value))
        tables = conn.execute(
            "SELECT format('%I.%I', n.nspname, c.relname), c.relkind FROM pg_class c JOIN pg_namespace n ON "
            "n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') AND n.nspname IN ('public', 'auth') "
            "ORDER BY 1").fetchall()
        out: dict[str, str] = {}
        for table, kind in tables:
            columns = conn.execute(
                "SELECT string_agg(attname || ':' || format_type(atttypid, atttypmod), ',' ORDER BY attnum) "
                "FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
                (table,)).fetchone()[0]
            if kind == "p":
                out[table] = f"partitioned({columns})"
                continue
            column = ACCOUNT_COLUMNS.get(table)
            kept = f"WHERE coalesce({column}::text, '') <> ALL(%s::text[])" if column else ""
            rows = conn.execute(f"SELECT md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')), "  # noqa: S608
                                f"count(*) FROM {table} t {kept}", (list(without),) if column else None).fetchone()
            out[table] = f"{columns}|{rows[1]}|{rows[0]}"
        lo = conn.execute("SELECT count(*), md5(coalesce(string_agg(oid::text || ':' || md5(lo_get(oid)), ',' "
                          "ORDER BY oid), '')) FROM pg_largeobject_metadata").fetchone()
        if lo[0]:
            out["pg_largeobject"] = f"{lo[0]}|{lo[1]}"
        return out


@dataclass
class State:
    at: datetime  # the server's clock read after the commit
    until: datetime | None  # the server's clock read before the next operation began (None: the last one)
    digest: dict[str, str]


@dataclass
class Source:
    """One source database: its URL (as postgres and as the superuser), its cluster, its identity, and the
    states it went through, in order."""

    name: str
    pg: Any
    url: str
    admin: str
    slot: str
    identity: dict[str, Any] = field(default_factory=dict)
    states: list[State] = field(default_factory=list)
    running: Any = None
    alive: bool = True

    def now(self) -> datetime:
        return h.server_now(self.url)

    without: tuple[str, ...] = ()  # accounts erased by the end of the history: never in a restore

    def record(self, started: datetime | None = None) -> None:
        if started is not None and self.states:
            self.states[-1].until = started
        self.states.append(State(self.now(), None, digest(self.admin, self.without)))

    def truth_at(self, t: datetime) -> dict[str, str] | None:
        """The state at ``t``; None when ``t`` falls inside an operation (no single truth) or before the first."""
        for state in reversed(self.states):
            if state.at <= t:
                return state.digest if state.until is None or t < state.until else None
        return None


# --------------------------------------------------------------------------- one history


@dataclass
class Outcome:
    seed: int
    events: list[str] = field(default_factory=list)
    points: int = 0
    exact: int = 0
    refused: Counter = field(default_factory=Counter)
    silent_wrong: list[str] = field(default_factory=list)
    skipped: int = 0  # restore points that fell inside an operation (no single truth)


class History:
    """One seeded history on ``primary`` (and ``failover``, a second cluster) into one moto bucket."""

    def __init__(self, seed: int, aws: Any, primary: Any, failover: Any | None, *, ops: int = 24,
                 points: int = 3, log: Callable[[str], None] = lambda _m: None,
                 script: list[str] | None = None) -> None:
        self.seed, self.aws, self.primary, self.failover_pg = seed, aws, primary, failover
        self.rng = random.Random(seed)  # noqa: S311 - a reproducible history, not a secret
        self.ops, self.points, self.log = ops, points, log
        self.out = Outcome(seed)
        self.sources: list[Source] = []
        self.dumps: list[threading.Thread] = []
        self.dump_errors: list[BaseException] = []
        self._dump_ids = itertools.count()
        self.segment_seconds = self.rng.choice((0.2, 0.4, 0.8))
        self.segment_max_bytes = self.rng.choice((1500, 64 * 1024 * 1024))
        self.extra_tables: dict[str, list[str]] = {}  # source name -> tables created mid-stream
        self.notes_column: dict[str, str] = {}
        self.next_id = itertools.count(1)
        self.long: tuple[Source, Any] | None = None
        self.zone = self.rng.choice(ZONES)
        self.script = script  # the events in this order instead of drawn ones (a test that must hit one)
        # The account erased during the history (a seeded one): the truth of every restore leaves it out,
        # whatever T, as a restore re-applies the erasure ledger; its rows coming back is a silent wrong.
        self.doomed = str(uuid.UUID(int=seed * 10))
        self.erased = False

    # -- sources, capture, dumps
    def _new_source(self, pg: Any, slot: str, schema: str = SCHEMA) -> Source:
        name = f"oracle_{self.seed}_{next(_db_names)}"
        with psycopg.connect(pg.url(user="supabase_admin"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" OWNER postgres')
        admin = pg.url(name, user="supabase_admin")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(schema)
        source = Source(name, pg, pg.url(name), admin, slot, without=(self.doomed,))
        self.notes_column[name] = "title"
        with psycopg.connect(source.url) as conn:
            source.identity = db_lib.source_identity(conn.cursor())
        return source

    def dump(self, source: Source, reason: str = "oracle") -> db_lib.Manifest:
        return db_lib.run_backup(self.aws.s3, self.aws.bucket, source.url, reason=f"{reason}-{next(self._dump_ids)}",
                                 signer=self.aws.signing.signer, pg_bin=source.pg.client_bin, jobs=1)

    def start_capture(self, source: Source) -> None:
        def fresh(reason: str) -> None:
            self.dump(source, "base-reset")

        capture = h.capture(source.url, self.aws, fresh_dump=fresh, slot=source.slot,
                            segment_seconds=self.segment_seconds, segment_max_bytes=self.segment_max_bytes,
                            publication=PUBLICATION)
        source.running = h.Running(capture).started()

    def stop_capture(self, source: Source, *, kill: bool = False) -> None:
        if source.running is None:
            return
        if kill:  # as a crash: what is open is never written, the slot never confirmed past it
            capture = source.running.capture
            capture._close = capture._discard  # type: ignore[method-assign]
        try:
            source.running.stop()
        except BaseException as err:  # said in the tally: a capture that died leaves a log that refuses, loudly
            self.out.events.append(f"capture stopped with {type(err).__name__}: {str(err)[:80]}")
        source.running = None

    def _conn(self, source: Source) -> psycopg.Connection:
        conn = psycopg.connect(source.url)
        conn.execute("SELECT set_config('TimeZone', %s, false)", (self.zone,))
        # The writer is one thread: a lock its own open transaction holds would be waited on for ever. Never
        # expected (the long transaction only inserts); if it happens the history fails, said, never hangs.
        conn.execute("SELECT set_config('lock_timeout', '120s', false)")
        conn.commit()
        return conn

    # -- the operations (each one transaction, or one step of the long one)
    def _op(self, source: Source, conn: psycopg.Connection, kind: str, *, insert_only: bool = False) -> None:
        """``insert_only``: the long transaction's step, which must lock no row a later write may touch."""
        rng = self.rng
        cur = conn.cursor()
        if kind == "user":
            cur.execute("INSERT INTO auth.users VALUES (%s, %s)", (uuid.UUID(int=rng.getrandbits(128)),
                                                                  f"u{rng.randrange(10**6)}@x.example"))
        elif kind == "account":
            owner = cur.execute("SELECT id FROM auth.users ORDER BY random() LIMIT 1").fetchone()
            big = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(rng.choice((5, 9000))))
            cur.execute("INSERT INTO public.accounts (owner, name, balance, meta, doc, blob, seen, span, ratio, tags) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                        (owner[0] if owner else None, f"n'{rng.random():.5f}\"\\", rng.randrange(-10**6, 10**6) / 100,
                         psycopg.types.json.Jsonb({"k": rng.random(), "u": "é\u2603"}), big,
                         bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 40))),
                         datetime(2026, 1, 1) + timedelta(seconds=rng.randrange(10**8),
                                                          microseconds=rng.randrange(10**6)),
                         timedelta(days=rng.randrange(100), seconds=rng.randrange(86400)), rng.random() * 1e-7,
                         [f"t{rng.randrange(5)}", None]))
        elif kind == "update":
            cur.execute("UPDATE public.accounts SET balance = balance + %s, seen = now(), ratio = %s WHERE id = "
                        "(SELECT id FROM public.accounts ORDER BY random() LIMIT 1)",
                        (rng.randrange(100), rng.random()))
        elif kind == "toast":  # the big value left alone (pgoutput sends it as unchanged) or rewritten
            if rng.random() < 0.5:
                cur.execute("UPDATE public.accounts SET name = name || '+' WHERE id = (SELECT id FROM public.accounts "
                            "WHERE length(doc) > 2000 ORDER BY random() LIMIT 1)")
            else:
                cur.execute("UPDATE public.accounts SET doc = repeat(md5(random()::text), 300) WHERE id = "
                            "(SELECT id FROM public.accounts ORDER BY random() LIMIT 1)")
        elif kind == "delete":
            cur.execute("DELETE FROM public.accounts WHERE id = (SELECT id FROM public.accounts ORDER BY random() "
                        "LIMIT 1)")
        elif kind == "event":  # duplicate rows, no primary key: replayed by the whole old row
            choice = rng.random()
            if choice < 0.5:
                cur.execute("INSERT INTO public.events VALUES (%s, %s, now())", (rng.choice("ab"), rng.randrange(3)))
            elif choice < 0.8:
                cur.execute("UPDATE public.events SET n = n + 1 WHERE ctid = (SELECT ctid FROM public.events "
                            "ORDER BY random() LIMIT 1)")
            else:
                cur.execute("DELETE FROM public.events WHERE ctid = (SELECT ctid FROM public.events LIMIT 1)")
        elif kind == "message":
            choice = rng.random()
            if insert_only:
                choice = 0.0  # drawn all the same: every other seed's history stays what it was
            if choice < 0.6:
                cur.execute("INSERT INTO public.messages VALUES (%s, %s, %s)",
                            (next(self.next_id), rng.choice(("2026-05-01", "2027-02-03")), f"m{rng.random()}"))
            elif choice < 0.8:  # across partitions: logged as a delete in one and an insert in the other
                cur.execute("UPDATE public.messages SET sent = CASE WHEN sent < '2027-01-01' THEN date '2027-06-01' "
                            "ELSE date '2026-06-01' END WHERE (id, sent) = (SELECT id, sent FROM public.messages "
                            "ORDER BY random() LIMIT 1)")
            else:
                cur.execute("DELETE FROM public.messages WHERE (id, sent) = (SELECT id, sent FROM public.messages "
                            "ORDER BY random() LIMIT 1)")
        elif kind == "truncate":
            cur.execute(rng.choice(("TRUNCATE public.events", "TRUNCATE public.messages_2026",
                                    "TRUNCATE public.messages")))
        elif kind == "multi":
            for _ in range(rng.randrange(2, 6)):
                self._op(source, conn, rng.choice(("account", "update", "event", "message")))
        elif kind == "note":
            column = self.notes_column[source.name]
            cur.execute(f"INSERT INTO public.notes (id, {column}) VALUES (%s, %s) ON CONFLICT (id) DO UPDATE "  # noqa: S608
                        f"SET {column} = excluded.{column}", (rng.randrange(20), f"n{rng.random()}"))
        elif kind == "rename":
            old = self.notes_column[source.name]
            new = "heading" if old == "title" else "title"
            cur.execute(f"ALTER TABLE public.notes RENAME COLUMN {old} TO {new}")
            self.notes_column[source.name] = new
        elif kind == "add_column":
            cur.execute(f"ALTER TABLE public.notes ADD COLUMN IF NOT EXISTS c{rng.randrange(3)} integer DEFAULT 7")
        elif kind == "create_table":
            table = f"public.extra_{len(self.extra_tables.setdefault(source.name, []))}"
            cur.execute(f"CREATE TABLE {table} (id integer PRIMARY KEY, v text)")
            cur.execute(f"INSERT INTO {table} VALUES (1, 'born with the table')")  # noqa: S608
            self.extra_tables[source.name].append(table)
        elif kind == "extra_row":
            tables = self.extra_tables.get(source.name)
            if tables:
                cur.execute(f"INSERT INTO {rng.choice(tables)} VALUES (%s, 'later') ON CONFLICT DO NOTHING",  # noqa: S608
                            (rng.randrange(2, 10**6),))
        elif kind == "partition":
            cur.execute("CREATE TABLE IF NOT EXISTS public.messages_2028 PARTITION OF public.messages "
                        "FOR VALUES FROM ('2028-01-01') TO ('2029-01-01')")
            cur.execute("INSERT INTO public.messages VALUES (%s, '2028-03-03', 'in the new partition')",
                        (next(self.next_id),))
        elif kind == "large_object":
            cur.execute("SELECT lo_from_bytea(0, %s)", (rng.randbytes(rng.randrange(1, 3000)),))
        else:
            raise AssertionError(kind)

    WEIGHTS = {"user": 3, "account": 8, "update": 8, "toast": 4, "delete": 3, "event": 6, "message": 6, "truncate": 1,
               "multi": 3, "note": 3, "rename": 0.4, "add_column": 0.3, "create_table": 0.7, "extra_row": 2,
               "partition": 0.5, "large_object": 0.1, "dump": 2, "dump_mid_write": 1.5, "long_begin": 1,
               "kill": 0.7, "invalidate": 0.3, "second_db": 0.3, "failover": 0.3, "erase": 0.5}

    def _write(self, source: Source, kind: str) -> None:
        started = source.now()
        with self._conn(source) as conn:
            self._op(source, conn, kind)
            conn.commit()
        source.record(started)

    # -- the events that are not one transaction
    def _dump_mid_write(self, source: Source) -> None:
        """A dump whose snapshot is taken while the writer commits (the second a dump starts)."""
        thread = threading.Thread(target=self._dump_quietly, args=(source,), daemon=True)
        thread.start()
        for _ in range(self.rng.randrange(3, 8)):
            self._write(source, self.rng.choice(("account", "update", "event", "message")))
        self.dumps.append(thread)

    def _dump_quietly(self, source: Source) -> None:
        try:
            self.dump(source)
        except Exception as err:  # a dump that failed is not a restore's fault: counted in the events
            self.dump_errors.append(err)

    def _long(self, source: Source) -> None:
        """A transaction open across other commits and segment closes, committed later."""
        if self.long is None:
            conn = self._conn(source)
            # Inserts only: nothing later in the history waits on a row it locks (the writer is one thread; an
            # update here once held a row the next update of it waited on for ever: seeds 27 and 270).
            self._op(source, conn, self.rng.choice(("account", "message")), insert_only=True)  # unseen until commit
            self.long = (source, conn)
            return
        owner, conn = self.long
        self.long = None
        started = owner.now()
        conn.commit()
        conn.close()
        owner.record(started)

    def _invalidate(self, source: Source) -> None:
        """The server invalidates the slot (max_slot_wal_keep_size) while the capture is down."""
        self.stop_capture(source)
        with psycopg.connect(source.pg.url(user="supabase_admin"), autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'")
            conn.execute("SELECT pg_reload_conf()")
            try:
                for _ in range(4):
                    self._write(source, "account")
                    conn.execute("SELECT pg_switch_wal()")
                conn.execute("CHECKPOINT")
                status = conn.execute("SELECT wal_status FROM pg_replication_slots WHERE slot_name = %s",
                                      (source.slot,)).fetchone()
                self.out.events.append(f"slot {status[0] if status else 'gone'}")
            finally:
                conn.execute("ALTER SYSTEM RESET max_slot_wal_keep_size")
                conn.execute("SELECT pg_reload_conf()")
        self.start_capture(source)

    def _second_db(self) -> None:
        # Creating its slot waits for every transaction running in the cluster (the one writer's open one too).
        self._finish_long()
        source = self._new_source(self.primary, f"tavari_backup_{len(self.sources)}")
        setup(source.url, PUBLICATION, source.slot)
        source.record()
        self.sources.append(source)
        self.start_capture(source)
        self.dump(source)

    def _failover(self, source: Source) -> None:
        """The primary is lost: a new cluster's database restored from a dump taken now, the capture pointed at
        it with the same slot and publication names and the same bucket; the writer follows."""
        if self.failover_pg is None or not source.alive:
            return
        self._finish_long()
        manifest = self.dump(source, "failover")
        self.stop_capture(source)
        source.alive = False
        new = Source(f"oracle_{self.seed}_{next(_db_names)}", self.failover_pg, "", "", source.slot,
                     without=(self.doomed,))
        with psycopg.connect(self.failover_pg.url(user="supabase_admin"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{new.name}" OWNER postgres')
        new.url, new.admin = self.failover_pg.url(new.name), self.failover_pg.url(new.name, user="supabase_admin")
        db_lib.restore(self.aws.s3, self.aws.bucket, manifest.backup_id, new.admin, verifier=self.aws.signing.verifier,
                       pg_bin=self.failover_pg.client_bin, jobs=1, only_missing_roles=True, datasets=DATASETS)
        self.notes_column[new.name] = self.notes_column[source.name]
        self.extra_tables[new.name] = list(self.extra_tables.get(source.name, []))
        with psycopg.connect(new.url) as conn:
            new.identity = db_lib.source_identity(conn.cursor())
        setup(new.url, PUBLICATION, new.slot)
        new.record()
        self.sources.append(new)
        self.start_capture(new)

    def _erase(self) -> None:
        """The doomed account is erased: its ledger entry beside the backups, then its rows, in one transaction
        on each live source (as the application does it)."""
        if self.erased:
            return
        self._finish_long()
        erasure.record(self.aws.s3, self.aws.bucket, self.doomed, business_ids=[])
        self.erased = True
        for source in self.sources:
            if source.alive:
                started = source.now()
                with psycopg.connect(source.admin) as conn:
                    erase_accounts(conn, [self.doomed], DATASETS)
                    conn.commit()
                source.record(started)

    def _finish_long(self) -> None:
        if self.long is not None:
            self._long(self.long[0])

    # -- the run
    def run(self) -> Outcome:
        first = self._new_source(self.primary, "tavari_backup")
        with psycopg.connect(first.admin) as conn:
            for i in range(3):
                conn.execute("INSERT INTO auth.users VALUES (%s, %s)", (uuid.UUID(int=self.seed * 10 + i), f"s{i}@x"))
        setup(first.url, PUBLICATION, first.slot)
        first.record()
        self.sources.append(first)
        self.start_capture(first)
        self.dump(first)
        kinds, weights = zip(*self.WEIGHTS.items(), strict=True)
        try:
            for step in range(len(self.script) if self.script is not None else self.ops):
                kind = self.script[step] if self.script is not None else self.rng.choices(kinds, weights)[0]
                alive = [s for s in self.sources if s.alive]
                source = self.rng.choice(alive)
                self.out.events.append(kind)
                if kind == "dump":
                    self._dump_quietly(source)  # a dump that fails, fails loudly: restores use an older one
                elif kind == "dump_mid_write":
                    self._dump_mid_write(source)
                elif kind == "long_begin":
                    self._long(self.long[0] if self.long else source)
                elif kind == "kill":
                    self.stop_capture(source, kill=True)
                    self._write(source, "account")  # committed while the capture is down
                    self.start_capture(source)
                elif kind == "invalidate":
                    self._finish_long()
                    self._invalidate(source)
                elif kind == "second_db":
                    if len(self.sources) < 3:
                        self._second_db()
                elif kind == "failover":
                    self._failover(source)
                elif kind == "erase":
                    self._erase()
                elif self.long is not None and kind in ("truncate", "partition"):
                    self._write(source, "event")  # would wait for the open transaction's locks: one writer
                else:
                    self._write(source, kind)
            self._finish_long()
            self._erase()
            for thread in self.dumps:  # every dump finished before a restore lists the bucket (a slow machine)
                thread.join()
            # A dump that failed, failed loudly (no manifest: never chosen); said in the tally's events.
            self.out.events += [f"dump failed ({type(e).__name__}: {str(e)[:60]})" for e in self.dump_errors]
            for source in self.sources:  # a marker commit after the history, so the log reaches past the end
                if source.alive and source.running is not None:
                    time.sleep(self.segment_seconds * 1.5)
                    started = source.now()
                    x = _marker(source.url)
                    source.record(started)
                    source.running.wait_for(x, timeout=120)
        except BaseException:
            for source in self.sources:
                self.stop_capture(source)
            self._drop_sources()  # a failed history leaves no slot behind to fail the next one
            raise
        for source in self.sources:
            self.stop_capture(source)
        try:
            self._restore_points()
        finally:
            self._drop_sources()
        return self.out

    def _drop_sources(self) -> None:
        for source in self.sources:
            with psycopg.connect(source.pg.url(user="supabase_admin"), autocommit=True) as conn:
                conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                             "WHERE database = %s AND NOT active", (source.name,))
            _drop(source.pg, source.name)

    def _instants(self) -> Iterator[datetime]:
        """Random instants inside the gaps between operations; and, for up to two dumps, the second the dump
        started (the job's clock in its ID) at a random fraction, and the first gap in that second after which a
        commit still precedes the dump's snapshot: the instants where a dump and the commits around it meet."""
        gaps = [(s.at, s.until) for source in self.sources for s in source.states if s.until is not None]
        for start, end in self.rng.sample(gaps, min(len(gaps), self.points)):
            yield start + (end - start) * self.rng.random()
        from tavari_dr.database.manifest import list_backups, open_backup

        entries = {b.backup_id: b for b in list_backups(self.aws.s3, self.aws.bucket)
                   if b.complete and not b.pre_restore}
        ids = sorted(entries)
        for backup_id in self.rng.sample(ids, min(len(ids), 2)):
            second = id_time(backup_id)
            if second is None:
                continue
            yield second + timedelta(microseconds=self.rng.randrange(10**6))
            manifest = open_backup(self.aws.s3, self.aws.bucket, entries[backup_id],
                                   verifier=self.aws.signing.verifier).manifest
            snapshot_at = replay.served_from(manifest)
            owner = next((s for s in self.sources if s.identity == manifest.source_identity), None)
            if owner is None or snapshot_at is None:
                continue
            states = owner.states
            for state, after in zip(states, states[1:], strict=False):
                if second <= state.at and after.at < snapshot_at and state.until is not None:
                    yield state.at
                    break

    def _restore_points(self) -> None:
        for t in self._instants():
            self.out.points += 1
            truths = {s.name: s.truth_at(t) for s in self.sources}
            target_db = f"oracle_target_{next(_db_names)}"
            with psycopg.connect(self.primary.url(user="supabase_admin"), autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{target_db}"')
            target = self.primary.url(target_db, user="supabase_admin")
            try:
                with _zone(self.rng.choice(ZONES)):
                    result, _ = pitr.restore_to(self.aws.s3, self.aws.bucket, t, target,
                                                verifier=self.aws.signing.verifier,
                                                change_verifier=self.aws.changes.verifier,
                                                pg_bin=self.primary.client_bin, jobs=1, only_missing_roles=True,
                                                datasets=DATASETS)
            except (replay.ReplayError, replay.SegmentError, BackupError) as err:
                self.out.refused[_reason(str(err))] += 1
                self.log(f"seed {self.seed} T={t.isoformat()}: refused: {err}")
                _drop(self.primary, target_db)
                continue
            except Exception as err:  # loud, but after writing: a defect of its own, counted apart
                self.out.refused[f"FAILED DURING THE RESTORE ({type(err).__name__}): {str(err)[:100]}"] += 1
                self.log(f"seed {self.seed} T={t.isoformat()}: refused: {err}")
                _drop(self.primary, target_db)
                continue
            if not result.ok:
                self.out.refused["a check after the restore failed (exit 1)"] += 1
                _drop(self.primary, target_db)
                continue
            owner = next((s for s in self.sources if s.identity == _identity_of(self.aws, result.backup_id)), None)
            truth = truths.get(owner.name) if owner else None
            if truth is None:
                self.out.skipped += 1
                _drop(self.primary, target_db)
                continue
            got = digest(target)
            if got == truth:
                self.out.exact += 1
            else:
                wrong = sorted(k for k in set(got) | set(truth) if got.get(k) != truth.get(k))
                # each table as columns|rows|md5, restored then true: whether the columns or the rows differ
                said = "; ".join(f"{k}: restored {got.get(k)} true {truth.get(k)}" for k in wrong)
                self.out.silent_wrong.append(f"seed {self.seed} T={t.isoformat()} backup {result.backup_id}: "
                                             f"{', '.join(wrong)} differ ({said})")
                self.log(self.out.silent_wrong[-1])
            _drop(self.primary, target_db)


def _identity_of(aws: Any, backup_id: str) -> dict[str, Any] | None:
    from tavari_dr.database.manifest import find_backup

    return find_backup(aws.s3, aws.bucket, backup_id, verifier=aws.signing.verifier).manifest.source_identity


def _marker(url: str) -> int:
    """A last commit (its xid), so the log shows a commit after every restore point."""
    with psycopg.connect(url) as conn:
        x = h.xid(conn)
        conn.execute("INSERT INTO public.events VALUES ('marker', 0, now())")
        conn.commit()
        return x


def _drop(pg: Any, name: str) -> None:
    with psycopg.connect(pg.url(user="supabase_admin"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def _zone(zone: str) -> Iterator[None]:
    """The restoring operator's environment in another time zone than the capture's (PGTZ sets each
    session's TimeZone): a replay that depends on it shows here."""
    before = os.environ.get("PGTZ")
    os.environ["PGTZ"] = zone
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PGTZ", None)
        else:
            os.environ["PGTZ"] = before


def _reason(message: str) -> str:
    """The kind of a refusal, for the tally (the message without its times, keys and names)."""
    for needle, kind in (("reaches only", "the log does not reach T yet"),
                         ("does not capture", "a table or large objects the log does not capture"),
                         ("past the end of base", "T is past a base reset; the next dump serves it"),
                         ("last time base", "T is after the last coverage check of a base that ended"),
                         ("capture last saw", "T is after the last time the log saw its tables' columns unchanged"),
                         ("snapshot was taken at", "T is before the dump's snapshot"),
                         ("no complete backup", "no dump's snapshot is at or before T"),
                         ("no change log of this backup's source", "the dump predates its source's base"),
                         ("another source database", "another source began a log between the dump and T"),
                         ("gap", "a gap in the log"), ("mixed", "a mixed log")):
        if needle in message:
            return kind
    return message[:120]
