"""A Supabase-like cluster for the change capture's tests: wal_level=logical, the cluster's superuser is
supabase_admin, ``postgres`` is NOT a superuser but has REPLICATION, and auth's tables belong to
supabase_auth_admin; plus a capture run on a thread and the checks that compare databases row by row."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from tavari_dr.changes.capture import Capture, Settings
from tavari_dr.drill.pgcluster import LocalPostgres
from tests.backups import Signing

LOGICAL = {"wal_level": "logical", "max_wal_senders": "10", "max_replication_slots": "10",
           "wal_sender_timeout": "60s"}
SCHEMA = """
CREATE SCHEMA auth AUTHORIZATION supabase_auth_admin;
SET ROLE supabase_auth_admin;
CREATE TABLE auth.users (id uuid PRIMARY KEY, email text NOT NULL);
RESET ROLE;
SET ROLE postgres;
CREATE TABLE public.accounts (id bigserial PRIMARY KEY, owner uuid REFERENCES auth.users (id), name text NOT NULL,
                              balance integer NOT NULL DEFAULT 0);
CREATE TABLE public.notes (id integer PRIMARY KEY, title text NOT NULL, body text);
CREATE TABLE public.events (kind text, n integer);  -- no primary key
RESET ROLE;
"""
_names = itertools.count()


@dataclass
class Aws:
    """The backup bucket on moto and the two signing keys, each trusted for its own records only."""

    s3: Any
    bucket: str
    signing: Signing  # the manifests' key (the nightly job's)
    changes: Signing  # the change records' key (the capture's)

    @classmethod
    def on(cls, s3: Any, bucket: str) -> Aws:
        return cls(s3, bucket, Signing(), Signing())


def cluster(major: int = 15) -> LocalPostgres:
    pg = LocalPostgres(superuser="supabase_admin", settings=LOGICAL, major=major)
    pg.start()
    with psycopg.connect(pg.url(user="supabase_admin"), autocommit=True) as conn:
        conn.execute("CREATE ROLE postgres LOGIN REPLICATION CREATEDB NOSUPERUSER")
        conn.execute("CREATE ROLE supabase_auth_admin NOLOGIN")
        # The capture's role may publish auth's tables only as a member of their owner.
        conn.execute("GRANT supabase_auth_admin TO postgres")
    return pg


def database(pg: LocalPostgres, schema: str = SCHEMA) -> str:
    name = f"src_{next(_names)}"
    with psycopg.connect(pg.url(user="supabase_admin"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" OWNER postgres')
    with psycopg.connect(pg.url(name, user="supabase_admin"), autocommit=True) as conn:
        conn.execute(schema)
    return pg.url(name)


def rows(url: str, tables: tuple[str, ...] = ("auth.users", "public.accounts", "public.notes",
                                              "public.events")) -> dict[str, list[tuple]]:
    """Every row of every table, in a stable order."""
    with psycopg.connect(url) as conn:
        return {t: sorted(conn.execute(f"SELECT t::text FROM {t} t").fetchall()) for t in tables}  # noqa: S608


def xid(conn: Any) -> int:
    return int(conn.execute("SELECT txid_current()").fetchone()[0]) & 0xFFFFFFFF


def server_now(url: str):
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT clock_timestamp()").fetchone()[0]


class Running:
    """A capture on a thread until stop(); ``error`` is what ended it early."""

    def __init__(self, capture: Capture) -> None:
        self.capture, self.error = capture, None
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.capture.run(stop=self._stop.is_set)
        except BaseException as err:  # surfaced by wait/stop
            self.error = err

    def started(self, timeout: float = 60) -> Running:
        """Once the capture has its base (before that, a dump is not covered by the log)."""
        deadline = time.monotonic() + timeout
        while self.capture.base is None or self.capture._cursor is None:
            if self.error is not None:
                raise self.error
            if time.monotonic() > deadline:
                raise AssertionError("the capture did not start")
            time.sleep(0.05)
        return self

    def wait_for(self, xid32: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.capture.max_xid_written < xid32:
            if self.error is not None:
                raise self.error
            if time.monotonic() > deadline:
                raise AssertionError(f"the capture did not write transaction {xid32} within {timeout} s")
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(60)
        if self.error is not None:
            raise self.error


def capture(url: str, aws: Any, *, dumps: list[str] | None = None, emitted: list | None = None,
            fresh_dump: Callable[[str], None] | None = None, **settings: Any) -> Capture:
    def record(values: dict, dimensions: dict | None = None, **_: Any) -> None:
        if emitted is not None:
            emitted.append((dict(values), dict(dimensions or {})))

    return Capture(url, aws.s3, aws.bucket, aws.changes.signer, aws.changes.verifier,
                   Settings(**{"segment_seconds": 0.5, **settings}),
                   fresh_dump=fresh_dump or (lambda reason: (dumps if dumps is not None else []).append(reason)),
                   emit=record)
