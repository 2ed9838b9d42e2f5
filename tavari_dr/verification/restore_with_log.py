"""The monthly restore test of a dump PLUS its change log (issue 27, item 8; AWS Backup's restore testing):
the newest dump restored and its log replayed to the newest segment's last commit (pitr.restore_to), then
what needs no ground truth checked on the restored database: the row counts the log implies (restore_to
compares them), every table covered by the log (a table the base does not capture fails, named), every
serial/identity sequence past its column's highest value, and no foreign key with orphans.

When no base of the source covers the newest dump (no capture, or a dump from before its base), the caller
keeps the dump-only restore test and the report says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tavari_dr.changes import pitr, replay
from tavari_dr.database import backup as db_lib
from tavari_dr.database.manifest import DEFAULT_TIERS, find_backup
from tavari_dr.database.signing import KmsVerifier

SYSTEM_SCHEMAS = ("pg_catalog", "information_schema")


@dataclass
class Point:
    """Where the monthly test restores to: the newest dump, its base and the newest commit of that base's log;
    ``why_not``: why it restores the dump alone (then the other fields may be None)."""

    backup_id: str
    base_id: str | None = None
    to: datetime | None = None
    why_not: str | None = None


def newest_point(s3: Any, bucket: str, *, verifier: KmsVerifier, change_verifier: KmsVerifier, now: datetime,
                 tiers: Any = DEFAULT_TIERS) -> Point:
    """The newest dump and the last commit of the newest segment of its base (replay.window: one listing of
    the segments since the dump, one segment read)."""
    manifest = find_backup(s3, bucket, "latest", verifier=verifier, tiers=tiers).manifest
    all_bases = replay.bases(s3, bucket, change_verifier)
    base, _ = replay.base_of(manifest, all_bases)
    if base is None:
        return Point(manifest.backup_id, why_not=f"no change log covers the newest backup {manifest.backup_id} (no "
                                                 "base of its source began before it): restored as of the dump only")
    reach = replay.window(s3, bucket, manifest, all_bases, change_verifier, now)
    if reach is None or reach[1] <= reach[0]:
        return Point(manifest.backup_id, base.base_id,
                     why_not=f"base {base.base_id} has no segment committed after backup {manifest.backup_id}: "
                             "restored as of the dump only")
    return Point(manifest.backup_id, base.base_id, reach[1])


def restore_test(s3: Any, bucket: str, scratch_url: str, point: Point, *, verifier: KmsVerifier,
                 change_verifier: KmsVerifier, tiers: Any = DEFAULT_TIERS, log: Callable[[str], None] = lambda _m: None,
                 **restore_options: Any) -> db_lib.VerifyResult:
    """Restore ``point`` (dump and log) into ``scratch_url`` and check it; a log that cannot reach the point
    (a gap, a table it does not capture, another source) is a FAIL naming why, never an exception."""
    assert point.to is not None
    try:
        result, _outcome = pitr.restore_to(s3, bucket, point.to, scratch_url, verifier=verifier,
                                           change_verifier=change_verifier, tiers=tiers, log=log, **restore_options)
    except (replay.ReplayError, replay.SegmentError) as err:
        return db_lib.VerifyResult(point.backup_id, [("change log to the newest segment", False, str(err))])
    integrity(result, scratch_url)
    return result


def integrity(result: db_lib.VerifyResult, url: str) -> None:
    """The checks a restored database passes whatever its data: sequences ahead of their columns, no orphans."""
    import psycopg

    with psycopg.connect(url) as conn:
        behind = sequences_behind(conn)
        result.checks.append(("sequences past the highest ids", not behind, "; ".join(behind) or
                              "every serial/identity column's sequence is at or past its highest value"))
        orphans = foreign_key_orphans(conn)
        result.checks.append(("foreign keys hold", not orphans, "; ".join(orphans) or
                              "no row references a missing parent"))


def sequences_behind(conn: Any) -> list[str]:
    """Each serial/identity column whose sequence's last_value is below the column's highest value: the next
    insert would collide (the log carries no sequence changes; replay sets them from the samples)."""
    from psycopg import sql

    with conn.cursor() as cur:
        cur.execute("SELECT sn.nspname, s.relname, n.nspname, c.relname, a.attname, ps.last_value "
                    "FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' "
                    "JOIN pg_namespace sn ON sn.oid = s.relnamespace "
                    "JOIN pg_class c ON c.oid = d.refobjid AND c.relkind IN ('r', 'p') "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.refobjsubid "
                    "JOIN pg_sequences ps ON ps.schemaname = sn.nspname AND ps.sequencename = s.relname "
                    "WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass "
                    "AND d.deptype IN ('a', 'i') AND n.nspname <> ALL(%s) AND n.nspname NOT LIKE 'pg_toast%%' "
                    "AND ps.increment_by > 0 ORDER BY 3, 4, 5", (list(SYSTEM_SCHEMAS),))
        owned = cur.fetchall()
        behind = []
        for seq_schema, seq, schema, table, column, last_value in owned:
            cur.execute(sql.SQL("SELECT max({}) FROM {}").format(sql.Identifier(column), sql.Identifier(schema, table)))
            highest = cur.fetchone()[0]
            if highest is not None and (last_value is None or last_value < highest):
                behind.append(f"{schema}.{table}.{column}: sequence {seq_schema}.{seq} is at {last_value}, the rows "
                              f"reach {highest}")
    return behind


def foreign_key_orphans(conn: Any) -> list[str]:
    """Each foreign key with rows whose (non-NULL) key has no parent row: a restore that loaded the data with
    triggers off, then replayed a log, is not proven consistent by the constraint's `convalidated` flag."""
    from psycopg import sql

    with conn.cursor() as cur:
        cur.execute("SELECT con.conname, cn.nspname, cl.relname, pn.nspname, pl.relname, "
                    "ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(num, i) "
                    "      JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num ORDER BY k.i), "
                    "ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(num, i) "
                    "      JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.num ORDER BY k.i) "
                    "FROM pg_constraint con JOIN pg_class cl ON cl.oid = con.conrelid "
                    "JOIN pg_namespace cn ON cn.oid = cl.relnamespace JOIN pg_class pl ON pl.oid = con.confrelid "
                    "JOIN pg_namespace pn ON pn.oid = pl.relnamespace "
                    "WHERE con.contype = 'f' AND con.conparentid = 0 AND cn.nspname <> ALL(%s) ORDER BY 2, 3, 1",
                    (list(SYSTEM_SCHEMAS),))
        found = []
        for name, c_schema, c_table, p_schema, p_table, columns, referenced in cur.fetchall():
            statement = sql.SQL("SELECT count(*) FROM {child} c WHERE {present} AND NOT EXISTS "
                                "(SELECT 1 FROM {parent} p WHERE {match})").format(
                child=sql.Identifier(c_schema, c_table), parent=sql.Identifier(p_schema, p_table),
                present=sql.SQL(" AND ").join(sql.SQL("c.{} IS NOT NULL").format(sql.Identifier(c))
                                              for c in columns),
                match=sql.SQL(" AND ").join(sql.SQL("p.{} = c.{}").format(sql.Identifier(p), sql.Identifier(c))
                                            for c, p in zip(columns, referenced, strict=True)))
            cur.execute(statement)
            orphans = cur.fetchone()[0]
            if orphans:
                found.append(f"{c_schema}.{c_table} {name}: {orphans} row(s) reference no {p_schema}.{p_table} row")
    return found
