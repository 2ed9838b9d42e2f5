"""`tavari-dr db stream`: read the logical replication slot and write every committed change off-site.

The client is psycopg2's LogicalReplicationConnection (psycopg 3 speaks no replication protocol;
ADR 0020 says why not pg_recvlogical). Transactions arrive whole and in commit order (pgoutput,
protocol 1); each is spooled to disk past ``spill_bytes`` until its commit, then appended to the
open segment, which is closed every ``segment_seconds`` or at ``segment_max_bytes``, signed and
written once (If-None-Match). Only then is the slot confirmed (flush_lsn) to its end: a crash
loses nothing, the next run re-reads from the confirmed position and skips what is already written.

A base is one continuous run of the log under one schema: a new one starts when the slot is lost,
dropped past ``retained_wal_limit_bytes``, or the published tables' schema changed; each reset is
ChangeBaseReset (alarmed) and a fresh dump, since no older dump can be replayed across it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import select
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

from tavari_dr import __version__
from tavari_dr.changes import pgoutput
from tavari_dr.changes.pgoutput import UNCHANGED, lsn_text, parse_lsn
from tavari_dr.changes.segment import (
    Base,
    BodyWriter,
    Header,
    SegmentError,
    base_id_for,
    digest_file,
    line,
    list_bases,
    list_segments,
    read_base,
    source_tag,
    write_base,
    write_segment,
)
from tavari_dr.core import metrics
from tavari_dr.database.backup import FIXED_SESSION_OPTIONS, _data_excluded, parse_database_url, source_identity
from tavari_dr.database.signing import KmsSigner, KmsVerifier

log = logging.getLogger("tavari.changes")
SOURCE = {"Source": "changes"}


class CaptureError(RuntimeError):
    """The capture cannot go on (the process exits non-zero so ECS starts it again); the message says why."""


@dataclass(frozen=True)
class Settings:
    publication: str = "tavari_backup"
    slot: str = "tavari_backup"
    segment_seconds: float = 60
    segment_max_bytes: int = 64 * 1024 * 1024
    retained_wal_limit_bytes: int = 4 * 1024 ** 3
    spill_bytes: int = 8 * 1024 * 1024  # a transaction bigger than this waits for its commit on disk


def _connect(url: str, **kwargs: Any):
    import psycopg

    info = parse_database_url(url)
    return psycopg.connect(info.url_without_password, password=info.password, **kwargs)


# --------------------------------------------------------------------------- what the source publishes


def _backed_up_tables(cur: Any) -> list[tuple[str, str, str, bool, str, bool]]:
    """(schema, name, owner, may own, replica identity, has a primary key) of every table a dump holds, a
    partitioned table as its root (publishing it publishes each partition, those created later too)."""
    cur.execute(
        "SELECT n.nspname, c.relname, pg_get_userbyid(c.relowner), pg_has_role(current_user, c.relowner, 'USAGE'), "
        "c.relreplident::text, EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') "
        "AND NOT c.relispartition AND n.nspname <> ALL(%s) AND n.nspname NOT LIKE 'pg\\_%%' ORDER BY 1, 2",
        (_data_excluded(),))
    return [tuple(row) for row in cur.fetchall()]


LARGE_OBJECTS = "pg_largeobject"


def coverage(cur: Any, publication: str) -> tuple[list[str], list[str]]:
    """(what the source holds that the publication does not carry, its partitioned tables). Every table with
    rows of its own (partitions included) must be published; large objects never are (logical decoding does
    not carry them), so while any exist they are named as "pg_largeobject"."""
    cur.execute(
        "SELECT format('%%s.%%s', n.nspname, c.relname), c.relkind = 'p' FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') AND n.nspname <> ALL(%s) "
        "AND n.nspname NOT LIKE 'pg\\_%%' AND NOT EXISTS (SELECT 1 FROM pg_publication_tables p WHERE "
        "p.pubname = %s AND p.schemaname = n.nspname AND p.tablename = c.relname) ORDER BY 1",
        (_data_excluded(), publication))
    uncovered, partitioned = [], []
    for name, is_root in cur.fetchall():
        (partitioned if is_root else uncovered).append(name)
    if cur.execute("SELECT EXISTS (SELECT 1 FROM pg_largeobject_metadata)").fetchone()[0]:
        uncovered.append(LARGE_OBJECTS)
    return uncovered, partitioned


def published(cur: Any, publication: str) -> set[tuple[str, str]]:
    cur.execute("SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %s", (publication,))
    return {(r[0], r[1]) for r in cur.fetchall()}


def without_identity(cur: Any, publication: str) -> list[str]:
    """Published tables whose updates and deletes pgoutput cannot say which row they touched."""
    cur.execute(
        "SELECT format('%%I.%%I', n.nspname, c.relname) FROM pg_publication_tables p "
        "JOIN pg_namespace n ON n.nspname = p.schemaname JOIN pg_class c ON c.relnamespace = n.oid "
        "AND c.relname = p.tablename WHERE p.pubname = %s AND (c.relreplident = 'n' OR (c.relreplident = 'd' "
        "AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary))) ORDER BY 1",
        (publication,))
    return [r[0] for r in cur.fetchall()]


def schema_of(cur: Any, publication: str) -> dict[str, list[list[Any]]]:
    """Each published table's columns as pgoutput sends them (no dropped or generated columns)."""
    cur.execute(
        "SELECT p.schemaname || '.' || p.tablename, a.attname, a.atttypid::int FROM pg_publication_tables p "
        "JOIN pg_namespace n ON n.nspname = p.schemaname JOIN pg_class c ON c.relnamespace = n.oid "
        "AND c.relname = p.tablename JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 "
        "AND NOT a.attisdropped AND a.attgenerated = '' WHERE p.pubname = %s ORDER BY 1, a.attnum",
        (publication,))
    schema: dict[str, list[list[Any]]] = {}
    for table, column, oid in cur.fetchall():
        schema.setdefault(table, []).append([column, oid])
    return schema


def catalog_version(cur: Any, publication: str) -> str:
    """The published tables' column rows in the catalog as row versions (pg_attribute's xmin, dropped columns
    included): any DDL on a column (rename, add, drop, retype) writes a new version, also one that a second DDL
    undoes, which the columns alone (schema_of) would not show. VACUUM and ANALYZE write none (statistics live
    in pg_statistic; pg_class is updated in place)."""
    cur.execute(
        "SELECT p.schemaname || '.' || p.tablename, a.attnum, a.xmin::text FROM pg_publication_tables p "
        "JOIN pg_namespace n ON n.nspname = p.schemaname JOIN pg_class c ON c.relnamespace = n.oid "
        "AND c.relname = p.tablename JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 "
        "WHERE p.pubname = %s ORDER BY 1, 2", (publication,))
    return hashlib.sha256(json.dumps(cur.fetchall()).encode()).hexdigest()


def fingerprint(schema: dict[str, list[list[Any]]]) -> str:
    return hashlib.sha256(json.dumps(schema, sort_keys=True).encode()).hexdigest()


def sample_sequences(cur: Any) -> dict[str, int | None]:
    cur.execute("SELECT schemaname || '.' || sequencename, last_value FROM pg_sequences "
                "WHERE schemaname <> ALL(%s) ORDER BY 1", (_data_excluded(),))
    return {r[0]: r[1] for r in cur.fetchall()}


def slot_state(cur: Any, slot: str) -> tuple[str | None, int | None, str | None] | None:
    """(wal_status, retained WAL bytes, confirmed_flush_lsn) of the slot, None when there is none."""
    cur.execute("SELECT wal_status, (pg_current_wal_lsn() - restart_lsn)::bigint, confirmed_flush_lsn::text "
                "FROM pg_replication_slots WHERE slot_name = %s AND database = current_database()", (slot,))
    row = cur.fetchone()
    return (row[0], row[1], row[2]) if row else None


def server_wal_limit(cur: Any) -> int | None:
    """The server's own bound on a slot's retained WAL (max_slot_wal_keep_size, in bytes; None: unlimited).
    Past it the server invalidates the slot at its next checkpoint (wal_status 'unreserved', then 'lost'),
    whatever our configuration says: Supabase sets it (512 MB was seen on a PostgreSQL 17 project)."""
    value = cur.execute("SELECT pg_size_bytes(current_setting('max_slot_wal_keep_size') || "
                        "CASE WHEN current_setting('max_slot_wal_keep_size') ~ '^-?[0-9]+$' THEN 'MB' ELSE '' END)"
                        ).fetchone()[0]
    return None if value is None or value < 0 else int(value)


# The capture drops its slot (a new base and a fresh dump, on its own terms) at this fraction of the server's
# bound, and alarms at half of that: before the server invalidates the slot under it.
SERVER_LIMIT_DROP_FRACTION = 0.8


def publish_backed_up(cur: Any, publication: str) -> list[str]:
    """Add every backed-up table the role may alter to the publication (REPLICA IDENTITY FULL where it has no
    primary key); name those it may not. One line per thing done or found."""
    import psycopg
    from psycopg import sql

    said: list[str] = []
    have = published(cur, publication)
    cur.execute("SELECT c.relnamespace::regnamespace::text, c.relname FROM pg_class c "
                "JOIN pg_partitioned_table p ON p.partrelid = c.oid")
    roots = {(r[0], r[1]) for r in cur.fetchall()}
    cur.execute("SELECT pn.nspname, pc.relname FROM pg_publication_tables t JOIN pg_namespace n ON n.nspname = "
                "t.schemaname JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.tablename "
                "CROSS JOIN LATERAL pg_partition_ancestors(c.oid) a JOIN pg_class pc ON pc.oid = a.relid "
                "JOIN pg_namespace pn ON pn.oid = pc.relnamespace WHERE t.pubname = %s", (publication,))
    have |= {(r[0], r[1]) for r in cur.fetchall()}  # a partitioned table is published through its partitions
    for schema, name, owner, may, identity, has_pk in _backed_up_tables(cur):
        table = sql.Identifier(schema, name)
        shown = f"{schema}.{name}"
        if not may:
            if (schema, name) not in have:
                said.append(f"NOT CAPTURED {shown}: owned by {owner}, which this role is not a member of "
                            "(a point-in-time restore refuses it unless named with --dump-only)")
            continue
        if (schema, name) not in roots and (identity == "d" and not has_pk or identity == "n"):
            cur.execute(sql.SQL("ALTER TABLE {} REPLICA IDENTITY FULL").format(table))
            said.append(f"{shown}: no primary key, REPLICA IDENTITY FULL set (updates and deletes log the "
                        "whole old row)")
        if (schema, name) not in have:
            try:
                cur.execute(sql.SQL("ALTER PUBLICATION {} ADD TABLE {}").format(sql.Identifier(publication), table))
            except psycopg.errors.UndefinedTable:  # dropped since the catalog was read: nothing to capture
                said.append(f"{shown}: dropped meanwhile, not added")
                continue
            said.append(f"{shown}: added to the publication")
    return said


def setup(url: str, publication: str, slot: str) -> list[str]:
    """Idempotent: the publication over the backed-up tables, REPLICA IDENTITY FULL where a table has no
    primary key and the role may alter it, the slot. Returns what it did and found, one line each."""
    from psycopg import sql

    said: list[str] = []
    with _connect(url, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SELECT current_setting('wal_level'), rolreplication, rolsuper FROM pg_roles "
                    "WHERE rolname = current_user")
        wal_level, replication, superuser = cur.fetchone()
        if wal_level != "logical":
            raise CaptureError(f"wal_level is {wal_level}; logical replication needs wal_level=logical")
        if not (replication or superuser):
            raise CaptureError("this role has no REPLICATION attribute: it cannot read a replication slot")
        said.append(f"role: {'superuser' if superuser else 'REPLICATION'}, wal_level=logical")
        cur.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (publication,))
        if cur.fetchone():
            said.append(f"publication {publication}: exists")
        else:
            cur.execute(sql.SQL("CREATE PUBLICATION {}").format(sql.Identifier(publication)))
            said.append(f"publication {publication}: created")
        said += publish_backed_up(cur, publication)
        said.append(f"publication {publication}: {len(published(cur, publication))} table(s)")
        state = slot_state(cur, slot)
        if state is None:
            cur.execute("SELECT lsn::text FROM pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
            said.append(f"slot {slot}: created at {cur.fetchone()[0]}")
        else:
            said.append(f"slot {slot}: exists (wal_status {state[0]}, {state[1]} bytes of WAL retained)")
    return said


# --------------------------------------------------------------------------- the stream


class _Reconnect(Exception):
    """The base changed: read the slot again from its confirmed position."""


@dataclass
class _Txn:
    begin: pgoutput.Begin
    spool: IO[bytes]
    bytes: int = 0
    changes: int = 0
    tables: dict[str, dict[str, int]] = field(default_factory=dict)
    schema_change: str | None = None
    rels: set[str] = field(default_factory=set)

    def add(self, record: list[Any], table: str, op: str, *rel_keys: str) -> None:
        self.rels.update(rel_keys)
        data = line(record)
        self.spool.write(data)
        self.bytes += len(data)
        self.changes += 1
        counts = self.tables.setdefault(table, {"I": 0, "U": 0, "D": 0, "X": 0})
        counts[op] += 1


@dataclass
class _Open:
    body: BodyWriter
    prev_end: int
    opened: float  # monotonic time of its first transaction: closed segment_seconds after
    first_commit: datetime | None = None
    last_commit: datetime | None = None
    start_lsn: int = 0
    end_lsn: int = 0
    transactions: int = 0
    changes: int = 0
    xid_min: int = 0
    xid_max: int = 0
    relations: set[str] = field(default_factory=set)
    tables: dict[str, dict[str, int]] = field(default_factory=dict)


class Capture:
    """One capture process. ``fresh_dump(reason)`` takes a dump (the CLI's run_backup) after a base
    reset; ``emit`` publishes metrics (metrics.cloudwatch_emitter or a test's recorder)."""

    def __init__(self, url: str, s3: Any, bucket: str, signer: KmsSigner, verifier: KmsVerifier,
                 settings: Settings = Settings(), *, fresh_dump: Callable[[str], None],
                 emit: metrics.Emit | None = None, say: Callable[[str], None] = log.info,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.url, self.s3, self.bucket, self.signer, self.verifier = url, s3, bucket, signer, verifier
        self.settings, self.fresh_dump, self.say, self.clock = settings, fresh_dump, say, clock
        self.emit = emit or (lambda *_a, **_k: None)
        self.base: Base | None = None
        self.relations: dict[int, pgoutput.Relation] = {}
        self.rel_keys: dict[int, str] = {}
        self.rel_desc: dict[str, dict[str, Any]] = {}
        self._versions = 0
        self.txn: _Txn | None = None
        self.open: _Open | None = None
        self.confirmed = 0  # everything up to here is durably in a segment
        self.seq = 0
        self.segments_written = 0
        self.max_xid_written = 0
        self.resets: list[str] = []
        self._cursor: Any = None
        self.identity: dict[str, Any] | None = None  # the source's (source_identity), read at start
        # The source's clock at the last check that found every table the source holds captured by the base
        # (at each segment's close and each idle interval): a new base records it for the one it ends.
        self.covered_until: str | None = None

    # -- metrics
    def _publish(self, values: dict[str, float]) -> None:
        self.emit(values, SOURCE)

    # -- bases
    def _schema(self, cur: Any) -> dict[str, list[list[Any]]]:
        return schema_of(cur, self.settings.publication)

    def _start_base(self, cur: Any, reason: str, start_lsn: int, *, reset: bool,
                    shapes: dict[str, list[list[Any]]] | None = None) -> None:
        """``shapes``: tables' columns as the log has them at ``start_lsn`` where the catalog has moved on since."""
        said = publish_backed_up(cur, self.settings.publication)  # what appeared since is captured from here on
        for line_ in said:
            self.say(line_)
        schema = {**self._schema(cur), **(shapes or {})}
        self._historic = {}
        uncovered, partitioned = coverage(cur, self.settings.publication)
        # The source's clock (as every time the log compares): restores at or after it use the new base.
        now = cur.execute("SELECT clock_timestamp()").fetchone()[0].astimezone(UTC)
        previous = self.base if self.base is not None and self.base.identity == self.identity else None
        base = Base(base_id=base_id_for(now, start_lsn), slot=self.settings.slot,
                    publication=self.settings.publication, created_at=now.isoformat(timespec="microseconds"),
                    start_lsn=lsn_text(start_lsn), reason=reason, schema_fingerprint=fingerprint(schema),
                    schema=schema, previous=previous.base_id if previous else None, identity=self.identity,
                    uncaptured=uncovered, partitioned=partitioned,
                    previous_covered_until=self.covered_until if previous else None, tool_version=__version__,
                    catalog_version=catalog_version(cur, self.settings.publication))
        write_base(self.s3, self.bucket, base, self.signer)
        self.base, self.confirmed, self.covered_until = base, start_lsn, now.isoformat(timespec="microseconds")
        if uncovered:
            self.say(f"base {base.base_id}: NOT CAPTURED {', '.join(uncovered)} (a restore --to refuses "
                     f"{'it' if len(uncovered) == 1 else 'them'} unless named with --dump-only)")
        self.relations.clear()
        self.say(f"base {base.base_id}: {reason}")
        if reset:
            self.resets.append(reason)
            self._publish({metrics.CHANGE_BASE_RESET: 1})
            log.error("change capture: a new base (%s); no dump before now can be replayed past this point; "
                      "taking a fresh dump", reason)
            self.fresh_dump(f"base-reset {reason}")

    def _recreate_slot(self, cur: Any, reason: str) -> None:
        import psycopg

        deadline = time.monotonic() + 30
        while slot_state(cur, self.settings.slot) is not None:
            try:  # the walsender of a connection just closed may hold the slot a moment longer
                cur.execute("SELECT pg_drop_replication_slot(%s)", (self.settings.slot,))
            except psycopg.errors.ObjectInUse:
                if time.monotonic() > deadline:
                    raise CaptureError(f"slot {self.settings.slot} stays active in another process; "
                                       "stop the other reader first") from None
                time.sleep(0.2)
        cur.execute("SELECT lsn::text FROM pg_create_logical_replication_slot(%s, 'pgoutput')", (self.settings.slot,))
        self._start_base(cur, reason, parse_lsn(cur.fetchone()[0]), reset=True)

    def _resume(self, cur: Any) -> None:
        """The base of this very source (identity, slot, publication) the slot continues, and what of it is
        already written; or a new base. A base of another source (a rebuilt database after a failover, another
        database into the same bucket) is never resumed: its positions mean nothing in this one's WAL."""
        self.identity = source_identity(cur)
        other: Base | None = None
        for base_id in reversed(list_bases(self.s3, self.bucket)):
            base = read_base(self.s3, self.bucket, base_id, self.verifier)
            if base.slot != self.settings.slot or base.publication != self.settings.publication:
                continue
            if base.identity == self.identity:
                self.base = base
                break
            other = other or base
        state = slot_state(cur, self.settings.slot)
        if state is None:
            self._recreate_slot(cur, "slot missing (dropped or never created)")
            return
        if state[0] == "lost":
            self._recreate_slot(cur, "slot lost (the server removed WAL it still needed)")
            return
        if self.base is None and other is not None:
            theirs = other.identity or {}
            self._start_base(cur, f"another source database than base {other.base_id}'s (system "
                             f"{self.identity['system_identifier']} timeline {self.identity['timeline']} database "
                             f"{self.identity['database']} oid {self.identity['database_oid']}, was system "
                             f"{theirs.get('system_identifier')} timeline {theirs.get('timeline')} database "
                             f"{theirs.get('database')} oid {theirs.get('database_oid')})", parse_lsn(state[2]),
                             reset=True)
            return
        if self.base is None:
            self._start_base(cur, "first start", parse_lsn(state[2]), reset=False)
            return
        if parse_lsn(state[2]) < parse_lsn(self.base.start_lsn):
            self._start_base(cur, f"the slot's confirmed position {state[2]} is behind base {self.base.base_id}'s "
                             f"start {self.base.start_lsn}: it does not continue that base", parse_lsn(state[2]),
                             reset=True)
            return
        since = datetime.fromisoformat(self.base.created_at)
        ends = [k.end_lsn for k in list_segments(self.s3, self.bucket, since, self.clock(),
                                                 source=source_tag(self.identity))
                if k.start_lsn >= parse_lsn(self.base.start_lsn)]
        self.confirmed = max([parse_lsn(self.base.start_lsn), *ends])
        self.say(f"base {self.base.base_id}: resuming; the log is written up to {lsn_text(self.confirmed)}")
        gap = self._coverage_gap(cur)
        if gap:  # a table appeared while the capture was down
            self._new_base_for_gap(cur, gap)

    # -- checks on the source
    def _wal_limit(self, cur: Any) -> tuple[int, int | None]:
        """(the bound past which this capture drops its slot, the server's own bound): the configured one, or a
        fraction of the server's when that is lower (said once)."""
        server = server_wal_limit(cur)
        limit = self.settings.retained_wal_limit_bytes
        if server is not None and limit > server * SERVER_LIMIT_DROP_FRACTION:
            limit = int(server * SERVER_LIMIT_DROP_FRACTION)
            if not self._said_limit:
                self._said_limit = True
                self.say(f"retained_wal_limit_bytes {self.settings.retained_wal_limit_bytes} is past the server's "
                         f"max_slot_wal_keep_size ({server} bytes), where the server invalidates the slot itself: "
                         f"dropping at {limit} instead ({SERVER_LIMIT_DROP_FRACTION:.0%} of the server's)")
        return limit, server

    _said_limit = False

    def _check_source(self, cur: Any) -> None:
        """Retained WAL (published, also as a fraction of the server's bound; past the limit the slot is dropped)
        and the slot's status: one the server marks unreserved is about to be lost, so it is replaced now."""
        state = slot_state(cur, self.settings.slot)
        if state is None or state[0] == "lost":
            raise _SlotGone("slot missing" if state is None else "slot lost")
        limit, server = self._wal_limit(cur)
        retained = float(state[1] or 0)
        self._publish({metrics.RETAINED_WAL_BYTES: retained,
                       metrics.RETAINED_WAL_FRACTION: round(retained / server, 4) if server else 0.0})
        if state[0] == "unreserved":
            raise _SlotGone("the server marked the slot unreserved (past its max_slot_wal_keep_size): it loses the "
                            "WAL at its next checkpoint")
        if state[1] is not None and state[1] > limit:
            raise _SlotGone(f"the slot held {state[1]} bytes of WAL, past retained_wal_limit_bytes "
                            f"({limit}): dropped so the source's disk cannot fill")

    def _coverage_gap(self, cur: Any) -> tuple[str, list[str]] | None:
        """(the source's clock, then what it holds that the base does not capture beyond the base's own
        uncaptured tables); None when covered. covered_until moves to that clock only when, besides, the
        published tables' schema is still the base's. The clock is read first: a table created (or a column
        changed) before it is in the catalog read after it."""
        now = cur.execute("SELECT clock_timestamp()").fetchone()[0].astimezone(UTC).isoformat(timespec="microseconds")
        uncovered, _ = coverage(cur, self.settings.publication)
        new = sorted(set(uncovered) - set(self.base.uncaptured if self.base else ()))
        if new:
            return now, new
        if self.base is not None and fingerprint(self._schema(cur)) == self.base.schema_fingerprint \
                and not self._catalog_moved(cur):
            self.covered_until = now
        return None

    def _catalog_moved(self, cur: Any) -> bool:
        """Has any DDL touched the published tables' columns since the base began (even one undone since)?"""
        return self.base is not None and self.base.catalog_version is not None and \
            catalog_version(cur, self.settings.publication) != self.base.catalog_version

    def _new_base_for_gap(self, cur: Any, gap: tuple[str, list[str]]) -> None:
        """A table the base does not capture exists: alarmed, published where the role may, and a new base."""
        _, tables = gap
        self._publish({metrics.CHANGE_COVERAGE_GAP: 1})
        log.error("change capture: the source holds %s, which base %s does not capture", ", ".join(tables),
                  self.base.base_id if self.base else "-")
        self._start_base(cur, f"not captured: {', '.join(tables)}", self.confirmed, reset=True)

    def _refuse_unidentified(self, cur: Any) -> None:
        missing = without_identity(cur, self.settings.publication)
        if missing:
            raise CaptureError(f"published table(s) without a primary key or replica identity: {', '.join(missing)}; "
                               "their updates and deletes cannot be replayed — run `tavari-dr db stream --setup` "
                               "(sets REPLICA IDENTITY FULL) or give them a primary key")

    # -- messages
    def _relation(self, rel: pgoutput.Relation) -> None:
        known = self.relations.get(rel.relid)
        if known is None or known.shape() != rel.shape():
            self._versions += 1
            key = f"{rel.relid}.{self._versions}"
            self.rel_keys[rel.relid] = key
            self.rel_desc[key] = {"schema": rel.schema, "table": rel.name, "columns": list(rel.columns),
                                  "types": list(rel.type_oids), "key": list(rel.key), "identity": rel.identity}
        self.relations[rel.relid] = rel
        expected = (self.base.schema if self.base else {}).get(rel.qualified)
        shape = [[c, t] for c, t in zip(rel.columns, rel.type_oids, strict=True)]
        if expected != shape:
            # The shape the log has here, which the catalog may have left again (two DDLs in a row): the new base
            # takes it, or it would meet this very message again after the reconnect, for ever.
            self._historic[rel.qualified] = shape
        if expected != shape and self.txn is not None and self.txn.schema_change is None:
            self.txn.schema_change = (f"schema change on {rel.qualified}" if expected else
                                      f"{rel.qualified} newly published")
        elif expected != shape and self.txn is None:
            self._pending_schema_change = f"schema change on {rel.qualified}"

    _pending_schema_change: str | None = None
    _historic: dict[str, list[list[Any]]] = {}  # noqa: RUF012 - replaced per instance in _start_base

    def _on(self, message: Any) -> None:
        if isinstance(message, pgoutput.Begin):
            spool = tempfile.SpooledTemporaryFile(max_size=self.settings.spill_bytes)  # noqa: SIM115
            self.txn = _Txn(message, spool, schema_change=self._pending_schema_change)
            self._pending_schema_change = None
        elif isinstance(message, pgoutput.Relation):
            self._relation(message)
        elif isinstance(message, pgoutput.Change):
            key = self.rel_keys[message.relid]
            table = self.relations[message.relid].qualified
            record: list[Any] = {"I": lambda: ["I", key, message.new],
                                 "U": lambda: ["U", key, message.old_kind, message.old, message.new],
                                 "D": lambda: ["D", key, message.old_kind, message.old]}[message.op]()
            self.txn.add(record, table, message.op, key)  # type: ignore[union-attr]
        elif isinstance(message, pgoutput.Truncate):
            keys = [self.rel_keys[r] for r in message.relids]
            txn = self.txn
            txn.add(["X", keys, message.cascade, message.restart_identity],  # type: ignore[union-attr]
                    self.relations[message.relids[0]].qualified, "X", *keys)
            for relid in message.relids[1:]:
                txn.tables.setdefault(self.relations[relid].qualified,  # type: ignore[union-attr]
                                      {"I": 0, "U": 0, "D": 0, "X": 0})["X"] += 1
        elif isinstance(message, pgoutput.Commit):
            self._commit(message)

    def _commit(self, commit: pgoutput.Commit) -> None:
        txn, self.txn = self.txn, None
        assert txn is not None
        try:
            if commit.end_lsn <= self.confirmed:
                return  # already durably in a segment (a run before this one wrote it, then stopped)
            if txn.schema_change:
                self._close()
                with _connect(self.url, autocommit=True) as conn, conn.cursor() as cur:
                    self._start_base(cur, txn.schema_change, self.confirmed, reset=True, shapes=self._historic)
                raise _Reconnect
            if self.open is None:
                self.open = _Open(BodyWriter(), self.confirmed, time.monotonic())
            seg = self.open
            if seg.first_commit is None:
                seg.first_commit, seg.start_lsn, seg.xid_min = commit.commit_time, commit.commit_lsn, txn.begin.xid
            seg.last_commit, seg.end_lsn = commit.commit_time, commit.end_lsn
            seg.xid_min, seg.xid_max = min(seg.xid_min, txn.begin.xid), max(seg.xid_max, txn.begin.xid)
            seg.transactions += 1
            seg.changes += txn.changes
            seg.body.write_line(line(["T", txn.begin.xid, lsn_text(commit.commit_lsn), lsn_text(commit.end_lsn),
                                      commit.commit_time.isoformat(), txn.changes]))
            seg.body.copy_from(txn.spool, txn.bytes)
            seg.relations.update(txn.rels)
            for table, counts in txn.tables.items():
                mine = seg.tables.setdefault(table, {"I": 0, "U": 0, "D": 0, "X": 0})
                for op, n in counts.items():
                    mine[op] += n
        finally:
            txn.spool.close()
        if self.open.body.file.tell() >= self.settings.segment_max_bytes:
            self._close()

    def _due(self) -> bool:
        return self.open is not None and time.monotonic() - self.open.opened >= self.settings.segment_seconds

    def _close(self) -> None:
        """Write the open segment, then confirm the slot up to its end."""
        seg, self.open = self.open, None
        if seg is None or seg.first_commit is None:
            return
        body = seg.body.finish()
        try:
            sha, size = digest_file(body)
            with _connect(self.url, autocommit=True) as conn, conn.cursor() as cur:
                gap = self._coverage_gap(cur)
                sequences, schema = sample_sequences(cur), self._schema(cur)
                catalog_moved = self._catalog_moved(cur)
                # The source's clock, as the commit times are: everything committed before it has been read
                # (transactions arrive in commit order, and this one's data was all received).
                closed_at = cur.execute("SELECT clock_timestamp()").fetchone()[0]
            header = Header(
                base_id=self.base.base_id, seq=self.seq, prev_end_lsn=lsn_text(seg.prev_end),  # type: ignore[union-attr]
                start_lsn=lsn_text(seg.start_lsn), end_lsn=lsn_text(seg.end_lsn),
                first_commit=seg.first_commit.isoformat(), last_commit=seg.last_commit.isoformat(),  # type: ignore[union-attr]
                closed_at=closed_at.isoformat(), transactions=seg.transactions, changes=seg.changes,
                xid_min=seg.xid_min, xid_max=seg.xid_max,
                relations={k: self.rel_desc[k] for k in sorted(seg.relations)}, sequences=sequences,
                schema_fingerprint=fingerprint(schema), tables=seg.tables, body_sha256=sha, body_bytes=size,
                identity=self.identity, uncovered=gap[1] if gap else [],
                covered_at=gap[0] if gap else self.covered_until, tool_version=__version__)
            write_segment(self.s3, self.bucket, header, body, self.signer)
        finally:
            seg.body.close()
        self.seq += 1
        self.segments_written += 1
        self.confirmed = seg.end_lsn
        self.max_xid_written = max(self.max_xid_written, seg.xid_max)
        if self._cursor is not None:
            self._cursor.send_feedback(flush_lsn=seg.end_lsn, reply=True)
        lag = (self.clock() - seg.first_commit).total_seconds()
        self._publish({metrics.CHANGE_SEGMENTS_WRITTEN: 1, metrics.CHANGE_SEGMENT_AGE_SECONDS: 0,
                       metrics.REPLICATION_LAG_SECONDS: max(0.0, lag)})
        self.say(f"segment {header.key}: {seg.transactions} transaction(s), {seg.changes} change(s), {size} bytes")
        with _connect(self.url, autocommit=True) as conn, conn.cursor() as cur:
            self._check_source(cur)  # past the retained-WAL limit: _SlotGone, once this segment is safe
        if gap:
            with _connect(self.url, autocommit=True) as conn, conn.cursor() as cur:
                self._new_base_for_gap(cur, gap)
            raise _Reconnect
        if header.schema_fingerprint != self.base.schema_fingerprint:  # type: ignore[union-attr]
            changed = sorted(set(schema) ^ set(self.base.schema) | {  # type: ignore[union-attr]
                t for t in schema if schema[t] != self.base.schema.get(t)})  # type: ignore[union-attr]
            with _connect(self.url, autocommit=True) as conn, conn.cursor() as cur:
                self._start_base(cur, f"schema change on {', '.join(changed)}", self.confirmed, reset=True)
            raise _Reconnect
        if catalog_moved:  # a DDL the columns no longer show (undone since): the log vouches for nothing after it
            with _connect(self.url, autocommit=True) as conn, conn.cursor() as cur:
                self._start_base(cur, "DDL on a published table (undone since)", self.confirmed, reset=True)
            raise _Reconnect

    # -- the loop
    def run(self, stop: Callable[[], bool] = lambda: False) -> None:
        """Until ``stop()``: read, write, confirm. Raises CaptureError when it cannot go on."""
        import psycopg2
        import psycopg2.extras

        with _connect(self.url, autocommit=True) as conn, conn.cursor() as cur:
            self._refuse_unidentified(cur)
            self._resume(cur)
        info = parse_database_url(self.url)
        while not stop():
            try:
                with _connect(self.url, autocommit=True) as conn, conn.cursor() as cur:
                    self._check_source(cur)
                # The walsender renders every value as text under this session's settings: fixed, so the
                # replay parses what the capture meant whatever the role's or the server's defaults.
                replication = psycopg2.connect(info.url_without_password, password=info.password,
                                               options=FIXED_SESSION_OPTIONS,
                                               connection_factory=psycopg2.extras.LogicalReplicationConnection)
                try:
                    self._stream(replication, stop)
                finally:
                    self._cursor = None
                    replication.close()
            except _Reconnect:
                self._discard()
            except _SlotGone as gone:
                self._discard()
                with _connect(self.url, autocommit=True) as conn, conn.cursor() as cur:
                    self._recreate_slot(cur, str(gone))
            except psycopg2.Error as err:
                self._discard()
                with _connect(self.url, autocommit=True) as conn, conn.cursor() as cur:
                    state = slot_state(cur, self.settings.slot)
                if state is None or state[0] == "lost":
                    with _connect(self.url, autocommit=True) as conn, conn.cursor() as cur:
                        self._recreate_slot(cur, "slot missing" if state is None else "slot lost")
                    continue
                raise CaptureError(f"the replication stream failed: {str(err).strip()}") from err
        self._close()

    def _discard(self) -> None:
        """What was read but not written is read again from the confirmed position."""
        if self.txn is not None:
            self.txn.spool.close()
            self.txn = None
        if self.open is not None:
            self.open.body.close()
            self.open = None

    def _stream(self, replication: Any, stop: Callable[[], bool]) -> None:
        cur = replication.cursor()
        cur.start_replication(slot_name=self.settings.slot, decode=False, start_lsn=self.confirmed,
                              options={"proto_version": "1", "publication_names": self.settings.publication},
                              status_interval=10)
        self._cursor = cur
        checked = time.monotonic()
        while not stop():
            message = cur.read_message()
            if message is not None:
                self._on(pgoutput.decode(message.payload))
                if self.txn is None and self._due():
                    self._close()
                continue
            if self.txn is None and self._due():
                self._close()
            if time.monotonic() - checked >= self.settings.segment_seconds:
                checked = time.monotonic()
                with _connect(self.url, autocommit=True) as conn, conn.cursor() as c:
                    self._check_source(c)
                    if self.open is None and self.txn is None:
                        gap = self._coverage_gap(c)
                        moved = fingerprint(self._schema(c)) != self.base.schema_fingerprint  # type: ignore[union-attr]
                        if gap or moved or self._catalog_moved(c):
                            if gap:
                                self._new_base_for_gap(c, gap)
                            else:
                                self._start_base(c, "schema change (seen while idle)", self.confirmed, reset=True)
                            raise _Reconnect
                if self.open is None and self.txn is None:
                    self._publish({metrics.CHANGE_SEGMENT_AGE_SECONDS: 0, metrics.REPLICATION_LAG_SECONDS: 0})
                    # Nothing received is unwritten, and the server has sent all it decoded up to wal_end:
                    # confirm that far, or WAL of what we do not publish (Supabase's own schemas, other
                    # roles' tables) piles up behind the slot until the hard bound drops it. The log's own
                    # position (self.confirmed, each segment's prev_end) stays where the last segment ended.
                    # (psycopg2's keepalive replies advance this too once caught up — the test sees the slot
                    # move either way; this does not depend on that detail of its C code.)
                    if cur.wal_end > self.confirmed:
                        cur.send_feedback(flush_lsn=cur.wal_end)
            wait = 0.2 if self.open is None else max(0.0, min(0.2, self.settings.segment_seconds
                                                               - (time.monotonic() - self.open.opened)))
            select.select([replication], [], [], wait)
        if self.txn is None:
            self._close()


class _SlotGone(Exception):
    """The slot is gone, lost, or dropped on purpose: a new slot and a new base."""


__all__ = ["Capture", "CaptureError", "SegmentError", "Settings", "UNCHANGED", "setup"]
