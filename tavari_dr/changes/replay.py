"""Point-in-time restore: the log's transactions a dump's snapshot does not see, up to a second.

A dump records its snapshot (pg_current_snapshot() in the transaction pg_dump reads) and the WAL
position before it. Replay reads the segments of the base that dump belongs to, from the one the
log was complete before that position, in LSN (= commit) order, and applies each transaction
exactly once: those the snapshot sees are in the dump already (skipped), those it does not see are
applied, a transaction at or before the last one applied (segments overlap after a crash) is
skipped, and it stops at the first commit after the target second. Continuity is checked from
each signed header (a segment begins where the log was complete), so a missing segment is an
error, never a silent gap.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tavari_dr.changes.pgoutput import UNCHANGED, parse_lsn
from tavari_dr.changes.segment import (
    Base,
    Header,
    OpenedSegment,
    SegmentError,
    SegmentKey,
    list_bases,
    list_segments,
    open_segment,
    read_base,
    source_tag,
)
from tavari_dr.changes.snapshot import Snapshot
from tavari_dr.database.manifest import Manifest
from tavari_dr.database.signing import KmsVerifier

# A segment's first commit precedes the dump's WAL position by at most this much (a segment holds
# what the capture read within segment_seconds, at most an hour; a day leaves room for a lagging capture).
LOOKBACK = timedelta(days=1)


class ReplayError(RuntimeError):
    """The log cannot bring this dump to that second; the message says why and what can."""


@dataclass
class Plan:
    """What a restore to ``to`` needs, checked and downloaded before anything is written: the dump, its base,
    and every segment up to the first commit after ``to``, each verified (signature, body, source, base,
    continuity, coverage). ``opened`` are those verified segments on local disk; close() when not replayed."""

    manifest: Manifest
    base: Base
    to: datetime
    snapshot: Snapshot
    segments: list[SegmentKey]
    next_base: Base | None = None
    dump_only: list[str] = field(default_factory=list)  # tables restored as of the dump, named by the operator
    opened: list[tuple[SegmentKey, OpenedSegment]] = field(default_factory=list)
    verified: int = 0  # segments downloaded and verified up to the first commit after ``to``

    def close(self) -> None:
        for _, opened in self.opened:
            opened.close()
        self.opened = []


@dataclass
class ReplayResult:
    applied: int = 0  # transactions
    changes: int = 0
    skipped_visible: int = 0  # in the dump already
    skipped_repeated: int = 0  # in an overlapping segment already
    segments: int = 0
    last_commit: str | None = None
    expected: dict[str, int] = field(default_factory=dict)  # manifest table key -> rows the log says it holds
    sequences: dict[str, int] = field(default_factory=dict)
    uncaptured: list[str] = field(default_factory=list)  # restored as of the dump (the operator named them)
    seconds: float = 0.0


def _time(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def served_from(manifest: Manifest) -> datetime | None:
    """The earliest point in time this dump serves: the server's clock read after its snapshot was taken
    (a manifest from before that was recorded: None, it serves no point in time)."""
    return _time(manifest.snapshot_at) if manifest.snapshot_at else None


def serves(manifest: Manifest, to: datetime) -> bool:
    """Whether a restore to ``to`` may start from this dump: its snapshot was taken at or before ``to``, by the
    server's clock read after it (a dump holds every transaction committed before its snapshot)."""
    served = served_from(manifest)
    return served is not None and served <= to


def bases(s3: Any, bucket: str, verifier: KmsVerifier) -> list[Base]:
    return [read_base(s3, bucket, b, verifier) for b in list_bases(s3, bucket)]


def base_of(manifest: Manifest, all_bases: list[Base]) -> tuple[Base | None, Base | None]:
    """The base a dump can be replayed in (the same source database, begun before the dump's snapshot),
    and the next base of that source after it. Bases of other sources never count."""
    if not manifest.wal_lsn_before or not manifest.source_identity:
        return None, None
    mine = [b for b in all_bases if b.identity == manifest.source_identity]
    # By position: the base's log is complete from its start LSN, the dump's snapshot came after its WAL
    # position; a base that began later cannot hold what the snapshot missed. And by the server's clock: a
    # new base starts at the position the log was written to, which may precede the schema change it was
    # started for; a dump whose snapshot came before the base was created has the old schema, so it is
    # never that base's (it belongs to the one before, which ends where the new one begins).
    before = parse_lsn(manifest.wal_lsn_before)
    served = served_from(manifest)
    fitting = [b for b in mine if parse_lsn(b.start_lsn) <= before
               and (served is None or _time(b.created_at) <= served)]
    if not fitting:
        return None, None
    base = max(fitting, key=lambda b: (parse_lsn(b.start_lsn), b.base_id))
    later = sorted((b for b in mine if (parse_lsn(b.start_lsn), b.base_id) > (parse_lsn(base.start_lsn), base.base_id)),
                   key=lambda b: (parse_lsn(b.start_lsn), b.base_id))
    return base, (later[0] if later else None)


def _keys(s3: Any, bucket: str, manifest: Manifest, base: Base, following: Base | None,
          until: datetime) -> list[SegmentKey]:
    """This base's segments (its source's tag, its LSN range) that may hold a transaction the dump missed."""
    start = served_from(manifest) or _time(manifest.started_at)
    before = parse_lsn(manifest.wal_lsn_before or "0/0")
    return [k for k in list_segments(s3, bucket, start - LOOKBACK, until, source=source_tag(base.identity))
            if k.start_lsn >= parse_lsn(base.start_lsn) and k.end_lsn > before
            and (following is None or k.start_lsn < parse_lsn(following.start_lsn))]


def window(s3: Any, bucket: str, manifest: Manifest, all_bases: list[Base],
           verifier: KmsVerifier, now: datetime) -> tuple[datetime, datetime] | None:
    """[the earliest second the dump serves, the newest commit the log holds] a restore from this dump can
    go to; None when no base of its source covers it (a dump from before the capture, or before its base)."""
    return windows(s3, bucket, [manifest], verifier, now, all_bases=all_bases)[manifest.backup_id]


def _uncovered_tables(manifest: Manifest, base: Base) -> list[str]:
    """Tables the dump holds (or the base knows exist) whose changes this base does not capture."""
    captured = set(base.schema) | set(base.partitioned)
    held = {f"{s}.{t}" for s, t in manifest.table_pairs().values()}
    return sorted((held - captured) | set(base.uncaptured))


def plan(s3: Any, bucket: str, manifest: Manifest, to: datetime, verifier: KmsVerifier, *,
         dump_only: tuple[str, ...] | list[str] = (), keep: bool = True) -> Plan:
    """Everything a restore of ``manifest`` to ``to`` needs, verified before anything is written; raises
    ReplayError naming why when the result could not be the source's state at ``to``. ``keep``: keep the
    verified segments for replay() (else they are closed: a dry run, a check)."""
    if not manifest.xid_snapshot or not manifest.wal_lsn_before or not manifest.snapshot_at \
            or not manifest.source_identity:
        raise ReplayError(f"backup {manifest.backup_id} predates this change log format (its manifest records no "
                          "snapshot time or source identity): restore it as it is, without --to")
    served = served_from(manifest)
    if not serves(manifest, to):
        raise ReplayError(f"backup {manifest.backup_id}'s snapshot was taken at {manifest.snapshot_at} (the "
                          f"server's clock), after {to.isoformat()}: it holds transactions committed after that "
                          "point; restore from an earlier backup")
    all_bases = bases(s3, bucket, verifier)
    base, following = base_of(manifest, all_bases)
    if base is None:
        raise ReplayError(f"no change log of this backup's source covers backup {manifest.backup_id}: it was taken "
                          "before the capture's base began (`tavari-dr db stream` was not running yet, or had just "
                          "reset)")
    if following is not None and to >= _time(following.created_at):
        raise ReplayError(f"{to:%Y-%m-%dT%H:%M:%SZ} is past the end of base {base.base_id}: a new base began at "
                          f"{following.created_at} ({following.reason}); restore from the first dump after it")
    if following is not None and following.previous_covered_until and to > _time(following.previous_covered_until):
        raise ReplayError(f"{to.isoformat()} is after {following.previous_covered_until}, the last time base "
                          f"{base.base_id} was seen capturing every table ({following.reason}): a table it did not "
                          "capture may have existed then; restore from the first dump after the new base")
    others = sorted({b.base_id for b in all_bases if b.identity != base.identity and
                     served <= _time(b.created_at) <= to})  # type: ignore[operator]
    if others:
        raise ReplayError(f"another source database began a change log in this bucket between backup "
                          f"{manifest.backup_id} and {to.isoformat()} (base {', '.join(others)}): after a failover, "
                          "restore from that database's first dump; two databases never share one bucket's log")
    missing = [t for t in _uncovered_tables(manifest, base) if t not in dump_only]
    if missing:
        raise ReplayError(f"base {base.base_id} does not capture {', '.join(missing)}: the log cannot bring "
                          f"{'it' if len(missing) == 1 else 'them'} to {to.isoformat()}; name each with "
                          "--dump-only to restore it as of the dump, or restore the backup without --to")
    keys = _keys(s3, bucket, manifest, base, following, to + timedelta(days=1))
    the_plan = Plan(manifest, base, to, Snapshot.parse(manifest.xid_snapshot), keys, following,
                    sorted(_uncovered_tables(manifest, base)))
    try:
        _preflight(s3, bucket, the_plan, verifier)
    except BaseException:
        the_plan.close()
        raise
    if not keep:
        the_plan.close()
    return the_plan


def link(key: SegmentKey, header: Header, base: Base, complete_to: int, floor: int = 0) -> int:
    """One verified segment (open_segment) as the next link of ``base``'s log, which is complete up to
    ``complete_to``: it must be that base's (its source, its ID) and begin where the log was complete
    (``floor``: for the first segment read, a position it may begin at or before — a dump's WAL position).
    Raises ReplayError naming the segment; returns how far the log is complete with it. The one rule of
    continuity: a restore's plan (_preflight) and the weekly chain check (verification) both apply it."""
    if header.identity != base.identity or header.base_id != base.base_id:
        raise ReplayError(f"{key.key} belongs to base {header.base_id} of another source or base than "
                          f"{base.base_id}: the log is mixed; refusing to replay it")
    if parse_lsn(header.prev_end_lsn) > max(complete_to, floor):
        raise ReplayError(f"the log has a gap before {key.key}: it begins where the log was complete up "
                          f"to {header.prev_end_lsn}, the segments before reach only "
                          f"{_lsn(complete_to)} — a segment is missing")
    return max(complete_to, parse_lsn(header.end_lsn))


def _preflight(s3: Any, bucket: str, the_plan: Plan, verifier: KmsVerifier) -> None:
    """Download and verify each segment up to the first commit after T: signature and body (open_segment),
    the source and base, continuity from the dump's WAL position, the tables the source held; and that the
    log reaches T. Keeps them in the plan; raises ReplayError at the first that fails."""
    base, to = the_plan.base, the_plan.to
    before = parse_lsn(the_plan.manifest.wal_lsn_before or "0/0")
    complete_to = parse_lsn(base.start_lsn)
    last_header: Header | None = None
    reached = False
    with _Prefetch(s3, bucket, the_plan.segments, verifier) as segments:
        for key, opened in segments:
            the_plan.opened.append((key, opened))
            header = opened.header
            checked = link(key, header, base, complete_to, before if last_header is None else 0)
            if header.uncovered:
                raise ReplayError(f"{key.key}: when it closed ({header.closed_at}) the source held "
                                  f"{', '.join(header.uncovered)}, which base {base.base_id} does not capture: "
                                  "restore from the first dump after the new base")
            complete_to = checked
            last_header = header
            if _time(header.last_commit) > to:
                reached = any(record[0] == "T" and _time(record[4]) > to for record in opened.lines())
            if reached:
                break
    the_plan.verified = len(the_plan.opened)
    # DDL is not in the log: a column renamed, added or retyped after the base began shows only as the catalog's
    # schema no longer being the base's. The capture moves covered_at only while it is (capture._coverage_gap),
    # so the segment that holds T's first later commit vouches for the schema at T only if it saw the base's
    # schema at or after T; otherwise the dump's tables (as the base has them) are not the source's at T. (A log
    # that does not reach T is refused below, saying so.)
    # None: a capture resumed after a kill never saw that schema again before this segment closed (the DDL came
    # while it was down, at a time nothing records).
    if reached and last_header is not None and (last_header.covered_at is None or _time(last_header.covered_at) < to):
        raise ReplayError(f"{the_plan.opened[-1][0].key}: the capture last saw the source's tables as base "
                          f"{base.base_id} captures them (every column) at {last_header.covered_at or 'no time'}, "
                          f"before {to.isoformat()}: a table's columns may have changed by then (DDL is not in the "
                          "log); restore from the first dump after the new base")
    # Past the newest segment's last commit the log cannot say nothing else committed (until the next
    # segment shows a later commit): such a second is refused, never restored on a guess.
    if not reached and (last_header is None or _time(last_header.last_commit) < to):
        reaches = last_header.last_commit if last_header else the_plan.manifest.snapshot_at
        raise ReplayError(f"the change log reaches only {reaches}: it cannot show what the database held at "
                          f"{to.isoformat()} (is `tavari-dr db stream` running? a segment is written "
                          "every changes.segment_seconds)")


class _Applier:
    def __init__(self, conn: Any) -> None:
        from psycopg import sql

        self.conn, self.sql = conn, sql
        self.cur = conn.cursor()

    def _table(self, rel: dict[str, Any]) -> Any:
        return self.sql.Identifier(rel["schema"], rel["table"])

    def _where(self, rel: dict[str, Any], kind: str | None, old: list | None, new: list | None) -> tuple[Any, list]:
        sql = self.sql
        columns = rel["columns"]
        if kind == "O":  # REPLICA IDENTITY FULL: the whole old row; one row that matches it, as text
            parts, params = [], []
            for column, value in zip(columns, old or [], strict=True):
                if _unchanged(value):
                    continue
                parts.append(sql.SQL("{}::text IS NOT DISTINCT FROM %s").format(sql.Identifier(column)))
                params.append(value)
            where = sql.SQL(" AND ").join(parts)
            return sql.SQL("ctid = (SELECT ctid FROM {} WHERE {} LIMIT 1)").format(
                self._table(rel), where), params
        source = old if kind == "K" else new
        keyed = [(c, v) for c, v, k in zip(columns, source or [], rel["key"], strict=True) if k]
        if not keyed:
            raise ReplayError(f"{rel['schema']}.{rel['table']} has no replica identity to find the row by")
        return (sql.SQL(" AND ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c, _ in keyed),
                [v for _, v in keyed])

    def apply(self, record: list[Any], relations: dict[str, dict[str, Any]]) -> None:
        sql = self.sql
        op = record[0]
        if op == "X":
            _, keys, cascade, restart = record
            tables = sql.SQL(", ").join(self._table(relations[k]) for k in keys)
            self.cur.execute(sql.SQL("TRUNCATE {}{}{}").format(
                tables, sql.SQL(" RESTART IDENTITY" if restart else ""), sql.SQL(" CASCADE" if cascade else "")))
            return
        rel = relations[record[1]]
        if op == "I":
            self.cur.execute(sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                self._table(rel), sql.SQL(", ").join(map(sql.Identifier, rel["columns"])),
                sql.SQL(", ").join(sql.Placeholder() * len(rel["columns"]))), record[2])
            return
        if op == "U":
            _, _, kind, old, new = record
            # An unchanged TOASTed column ('u') was not sent: the stored value stays.
            sets = [(c, v) for c, v in zip(rel["columns"], new, strict=True) if not _unchanged(v)]
            where, params = self._where(rel, kind, old, new)
            statement = sql.SQL("UPDATE {} SET {} WHERE {}").format(
                self._table(rel), sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c, _ in sets),
                where)
            self.cur.execute(statement, [v for _, v in sets] + params)
        else:
            _, _, kind, old = record
            where, params = self._where(rel, kind, old, None)
            self.cur.execute(sql.SQL("DELETE FROM {} WHERE {}").format(self._table(rel), where), params)
        if self.cur.rowcount != 1:
            raise ReplayError(f"{op} on {rel['schema']}.{rel['table']} touched {self.cur.rowcount} rows, not 1: the "
                              "restored database is not the state the log continues from")


def _unchanged(value: Any) -> bool:
    return value == UNCHANGED and not isinstance(value, (bool, str)) and value is not None


def replay(s3: Any, bucket: str, the_plan: Plan, connect: Callable[[], Any], verifier: KmsVerifier, *,
           log: Callable[[str], None] = lambda _m: None) -> ReplayResult:
    """Apply the plan's verified segments through ``connect()`` (a psycopg connection to the restored
    database, with triggers off where the role may). Returns what it applied and the row counts the log
    implies. The plan's segments are closed when it returns."""
    begun = time.monotonic()
    manifest, snapshot, to = the_plan.manifest, the_plan.snapshot, the_plan.to
    result = ReplayResult(expected=dict(manifest.tables), uncaptured=list(the_plan.dump_only))
    by_pair = {pair: key for key, pair in manifest.table_pairs().items()}
    last_applied = 0
    last_header: Header | None = None
    try:
        with connect() as conn:
            _fix_session(conn)
            applier = _Applier(conn)
            for key, opened in the_plan.opened:
                header = opened.header
                result.segments += 1
                last_header = header
                pending = 0
                skip = reached = False
                for record in opened.lines():
                    if record[0] == "T":
                        if pending:
                            raise ReplayError(f"{key.key}: a transaction ends early")
                        _, xid, commit_lsn, _end, commit_time, pending = record
                        if _time(commit_time) > to:
                            reached = True
                            break
                        lsn = parse_lsn(commit_lsn)
                        skip = lsn <= last_applied or snapshot.visible(xid)
                        if lsn <= last_applied:
                            result.skipped_repeated += 1
                        elif skip:
                            result.skipped_visible += 1
                        else:
                            last_applied = lsn
                            result.applied += 1
                            result.last_commit = commit_time
                        continue
                    pending -= 1
                    if skip:
                        continue
                    applier.apply(record, header.relations)
                    result.changes += 1
                    _count(result.expected, by_pair, header.relations, record)
                conn.commit()
                if reached:
                    break
                log(f"replayed {key.key}: {result.applied} transaction(s) so far")
            _sum_partitions(conn, result.expected, by_pair)
            if last_header is not None:
                result.sequences = _set_sequences(conn, last_header.sequences)
                conn.commit()
    finally:
        the_plan.close()
    result.seconds = round(time.monotonic() - begun, 3)
    return result


def _fix_session(conn: Any) -> None:
    """The replay parses the values the capture's walsender rendered under the same fixed settings."""
    from tavari_dr.database.backup import FIXED_SESSION

    with conn.cursor() as cur:
        for name, value in FIXED_SESSION.items():
            cur.execute("SELECT set_config(%s, %s, false)", (name, value))
    conn.commit()


def _sum_partitions(conn: Any, expected: dict[str, int], by_pair: dict[tuple[str, str], str]) -> None:
    """A partitioned table holds what its leaf partitions hold: the log names the leaves, so each partitioned
    table's expected rows are the sum of its leaves' (as counted in the dump, then changed by the log)."""
    with conn.cursor() as cur:
        cur.execute("SELECT pn.nspname, p.relname, ln.nspname, l.relname FROM pg_class p "
                    "JOIN pg_namespace pn ON pn.oid = p.relnamespace "
                    "CROSS JOIN LATERAL pg_partition_tree(p.oid) t JOIN pg_class l ON l.oid = t.relid "
                    "JOIN pg_namespace ln ON ln.oid = l.relnamespace WHERE p.relkind = 'p' AND t.isleaf")
        leaves: dict[str, list[str]] = {}
        for ps, pt, ls, lt in cur.fetchall():
            root, leaf = by_pair.get((ps, pt)), by_pair.get((ls, lt))
            if root is not None:
                leaves.setdefault(root, [])
                if leaf is not None:
                    leaves[root].append(leaf)
    for root, keys in leaves.items():
        expected[root] = sum(expected.get(k, 0) for k in keys)


class _Prefetch:
    """The plan's segments in order, PREFETCH of them downloaded and verified ahead of the one being
    applied (each GET's latency overlaps the replay instead of adding to it); those left unread when
    the replay stops early are closed."""

    def __init__(self, s3: Any, bucket: str, keys: list[SegmentKey], verifier: KmsVerifier) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.s3, self.bucket, self.keys, self.verifier = s3, bucket, keys, verifier
        self.pool = ThreadPoolExecutor(PREFETCH)
        self.pending: list[Any] = []

    def __enter__(self) -> _Prefetch:
        return self

    def __iter__(self):
        upcoming = iter(self.keys)
        for key in upcoming:
            self.pending.append((key, self.pool.submit(open_segment, self.s3, self.bucket, key.key, self.verifier)))
            if len(self.pending) >= PREFETCH:
                break
        while self.pending:
            key, future = self.pending.pop(0)
            following = next(upcoming, None)
            if following is not None:
                self.pending.append((following, self.pool.submit(open_segment, self.s3, self.bucket, following.key,
                                                                 self.verifier)))
            yield key, future.result()

    def __exit__(self, *exc: object) -> None:
        for _, future in self.pending:
            future.cancel()
        self.pool.shutdown(wait=True)
        for _, future in self.pending:
            if future.done() and not future.cancelled() and future.exception() is None:
                future.result().close()


PREFETCH = 4


def _lsn(value: int) -> str:
    from tavari_dr.changes.pgoutput import lsn_text

    return lsn_text(value)


def _count(expected: dict[str, int], by_pair: dict[tuple[str, str], str], relations: dict[str, dict[str, Any]],
           record: list[Any]) -> None:
    def key_of(rel_key: str) -> str | None:
        rel = relations[rel_key]
        return by_pair.get((rel["schema"], rel["table"]))

    if record[0] == "X":
        for rel_key in record[1]:
            if (k := key_of(rel_key)) is not None:
                expected[k] = 0
        return
    k = key_of(record[1])
    if k is None:
        return
    expected[k] = expected.get(k, 0) + {"I": 1, "D": -1}.get(record[0], 0)


def _set_sequences(conn: Any, sampled: dict[str, int | None]) -> dict[str, int]:
    """Each sequence to at least the value the source had handed out (sampled as each segment closed):
    pgoutput carries no sequence changes, and a sequence behind its table's rows collides on insert."""
    done: dict[str, int] = {}
    with conn.cursor() as cur:
        for name, value in sorted(sampled.items()):
            if value is None:
                continue
            schema, _, seq = name.partition(".")
            cur.execute("SELECT last_value FROM pg_sequences WHERE schemaname = %s AND sequencename = %s",
                        (schema, seq))
            row = cur.fetchone()
            if row is None:
                continue
            if row[0] is None or row[0] < value:
                cur.execute("SELECT setval(format('%%I.%%I', %s::text, %s::text)::regclass, %s, true)",
                            (schema, seq, value))
                done[name] = value
    return done




def windows(s3: Any, bucket: str, manifests: list[Manifest], verifier: KmsVerifier,
            now: datetime, *, all_bases: list[Base] | None = None) -> dict[str, tuple[datetime, datetime] | None]:
    """window() of many dumps with one listing per source and one segment read per base (`db list`)."""
    covered = [m for m in manifests if m.wal_lsn_before and m.xid_snapshot and m.snapshot_at and m.source_identity]
    answer: dict[str, tuple[datetime, datetime] | None] = {m.backup_id: None for m in manifests}
    if not covered:
        return answer
    all_bases = bases(s3, bucket, verifier) if all_bases is None else all_bases
    since = min(served_from(m) for m in covered) - LOOKBACK  # type: ignore[type-var,operator]
    keys = list_segments(s3, bucket, since, now)
    newest: dict[str, datetime] = {}
    for manifest in covered:
        base, following = base_of(manifest, all_bases)
        if base is None:
            continue
        start = served_from(manifest)
        assert start is not None
        if base.base_id not in newest:
            tag = source_tag(base.identity)
            mine = [k for k in keys if k.source == tag and k.start_lsn >= parse_lsn(base.start_lsn)
                    and (following is None or k.start_lsn < parse_lsn(following.start_lsn))]
            if mine:
                opened = open_segment(s3, bucket, mine[-1].key, verifier)
                newest[base.base_id] = _time(opened.header.last_commit)
                opened.close()
            else:
                newest[base.base_id] = start
        answer[manifest.backup_id] = (start, max(start, newest[base.base_id]))
    return answer


__all__ = ["Plan", "ReplayError", "ReplayResult", "SegmentError", "base_of", "bases", "link", "plan", "replay",
           "served_from", "serves",
           "window", "windows"]
