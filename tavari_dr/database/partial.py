"""Partial restores: chosen tables of a backup, as copies beside the live data.

`db restore --table public.invoices` restores the whole backup into a scratch database (created on
the target's server and dropped afterwards, or the operator's ``--scratch-url``), then copies each
chosen table into ``restored_<YYYYMMDD>.<table>`` of the live database (the date of the restore;
``<schema>__<table>`` for a table outside ``public``), so the operator compares and copies rows back
with SQL (docs/runbooks/database-corruption.md). The copies are inert: plain columns (the live
database's type where it has one, else text), the primary key, no foreign keys, defaults or
triggers; no privilege for PUBLIC, ``anon`` or ``authenticated`` (Supabase's API roles); and a
COMMENT with their expiry time, after which ``cleanup_restored`` (`db cleanup-restored`, and the
nightly backup before it dumps) drops them. Every name goes through psycopg.sql.Identifier.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tavari_dr.core.config import DEFAULT_DATASETS, Dataset, Tier
from tavari_dr.database import backup as db
from tavari_dr.database.failures import database_step, server_of
from tavari_dr.database.manifest import BackupError, Manifest, find_backup
from tavari_dr.database.signing import KmsVerifier

SCHEMA_PREFIX = "restored_"
COPY_MARK = "tavari-dr restored copy"
SCHEMA_MARK = "tavari-dr restored copies"
SCRATCH_MARK = "tavari-dr partial-restore scratch database"
API_ROLES = ("anon", "authenticated")  # Supabase's PostgREST roles; PUBLIC is revoked too
DEFAULT_KEEP_HOURS = 72
MAX_IDENTIFIER = 63  # NAMEDATALEN - 1


# --------------------------------------------------------------------------- names


def split_name(name: str) -> tuple[str, str]:
    """``schema.table`` as PostgreSQL reads it: "double quotes" keep case, dots and "" (one quote);
    unquoted parts are folded to lower case; no schema means public."""
    parts, i, text = [], 0, name.strip()
    while i <= len(text):
        if i < len(text) and text[i] == '"':
            j, part = i + 1, []
            while True:
                k = text.find('"', j)
                if k < 0:
                    raise BackupError(f"table {name!r}: unterminated quoted identifier")
                part.append(text[j:k])
                if text[k + 1:k + 2] == '"':
                    part.append('"')
                    j = k + 2
                    continue
                break
            parts.append("".join(part))
            i = k + 1
        else:
            k = text.find(".", i)
            k = len(text) if k < 0 else k
            part_text = text[i:k].strip()
            if not part_text or '"' in part_text:
                raise BackupError(f"table {name!r}: name it as schema.table (quote odd names: "
                                  "'\"My Schema\".\"Odd.Table\"')")
            parts.append(part_text.lower())
            i = k
        if i < len(text) and text[i] != ".":
            raise BackupError(f"table {name!r}: unexpected {text[i:]!r} after a quoted name")
        i += 1
    if len(parts) == 1:
        return "public", parts[0]
    if len(parts) != 2 or not all(parts):
        raise BackupError(f"table {name!r}: name it as schema.table")
    return parts[0], parts[1]


def ident(part: str) -> str:
    """One identifier as SQL would quote it (quote_ident's rules but for keywords: names in messages)."""
    return part if re.fullmatch(r"[a-z_][a-z0-9_$]*", part) else '"' + part.replace('"', '""') + '"'


def shown(schema: str, table: str) -> str:
    return f"{ident(schema)}.{ident(table)}"


def copy_schema(when: datetime) -> str:
    return f"{SCHEMA_PREFIX}{when.astimezone(UTC):%Y%m%d}"


def copy_table(schema: str, table: str) -> str:
    name = table if schema == "public" else f"{schema}__{table}"
    if len(name.encode()) > MAX_IDENTIFIER:
        raise BackupError(f"{shown(schema, table)}: the copy's name {name!r} is longer than PostgreSQL's "
                          f"{MAX_IDENTIFIER} bytes")
    return name


def scratch_database(backup_id: str) -> str:
    return ("tavari_restore_" + re.sub(r"[^a-z0-9]+", "_", backup_id.lower())).strip("_")[:MAX_IDENTIFIER]


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, ""))


# --------------------------------------------------------------------------- the restore


@dataclass
class Copied:
    source: str  # schema.table in the backup
    copy: str  # restored_<date>.<table> in the live database, quoted as SQL wants it
    expected: int  # the manifest's row count
    rows: int | None = None  # rows copied (None in a dry run)
    erased: int = 0  # rows of erased accounts the ledger removed from the scratch restore (never copied)

    @property
    def ok(self) -> bool:
        return self.rows == self.expected - self.erased


@dataclass
class PartialRestore:
    backup_id: str
    target: str  # the URL without its password
    schema: str
    expires_at: datetime
    copies: list[Copied] = field(default_factory=list)
    scratch: str = ""  # where the backup was restored first
    trust: str = ""
    findings: list[str] = field(default_factory=list)
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.copies)

    def document(self) -> dict[str, Any]:
        return {"backup": self.backup_id, "target": self.target, "schema": self.schema,
                "expires_at": self.expires_at.isoformat(timespec="seconds"), "scratch": self.scratch,
                "copies": [{"source": c.source, "copy": c.copy, "manifest_rows": c.expected, "rows": c.rows,
                            "erased_rows": c.erased} for c in self.copies], "dry_run": self.dry_run}


def _chosen(manifest: Manifest, tables: list[str]) -> list[tuple[str, str, str]]:
    """(schema, table, manifest key) of each requested table, refusing names the backup lacks."""
    by_parts = {split_name(key): key for key in manifest.tables}
    chosen, seen = [], set()
    for name in tables:
        parts = split_name(name)
        if parts not in by_parts:
            some = ", ".join(sorted(manifest.tables)[:12]) + (", ..." if len(manifest.tables) > 12 else "")
            raise BackupError(f"backup {manifest.backup_id} has no table {shown(*parts)} (it has {some})")
        if parts not in seen:
            seen.add(parts)
            chosen.append((*parts, by_parts[parts]))
    copies = [copy_table(s, t) for s, t, _ in chosen]
    duplicate = next((c for c in copies if copies.count(c) > 1), None)
    if duplicate:
        raise BackupError(f"two of the tables would be copied to the same name {duplicate!r}; restore them one "
                          "at a time")
    return chosen


def restore_tables(s3: Any, bucket: str, which: str, target_url: str, tables: list[str], *,
                   verifier: KmsVerifier | None, manifest_version: str | None = None,
                   tiers: tuple[Tier, ...] = db.DEFAULT_TIERS, scratch_url: str | None = None,
                   keep_hours: float = DEFAULT_KEEP_HOURS, pg_bin: Any = None, dry_run: bool = False,
                   now: datetime | None = None, log: Callable[[str], None] = lambda _m: None,
                   jobs: int | None = None, work_dir: Any = None,
                   datasets: Sequence[Dataset] = DEFAULT_DATASETS) -> PartialRestore:
    """Restore ``which`` into a scratch database and copy ``tables`` into the live ``target_url``; the
    scratch restore re-applies the erasure ledger by ``datasets`` (the environment's account map) before
    anything is copied, so no copy holds an erased account's rows."""
    if keep_hours <= 0:
        raise BackupError("--keep-hours must be more than 0")
    now = now or datetime.now(UTC)
    opened = find_backup(s3, bucket, which, verifier=verifier, manifest_version=manifest_version, tiers=tiers)
    manifest = opened.manifest
    chosen = _chosen(manifest, tables)
    target = db.parse_database_url(target_url)
    outcome = PartialRestore(manifest.backup_id, target.url_without_password, copy_schema(now),
                             now + timedelta(hours=keep_hours), trust=opened.trust, findings=opened.findings,
                             dry_run=dry_run)
    outcome.copies = [Copied(key, shown(outcome.schema, copy_table(s, t)), manifest.tables[key])
                      for s, t, key in chosen]
    with database_step(target_url, "inspecting the live database"), db._connect(target) as conn:
        taken = [c.copy for (s, t, _), c in zip(chosen, outcome.copies, strict=True)
                 if _exists(conn, outcome.schema, copy_table(s, t))]
    if taken:
        raise BackupError(f"{', '.join(taken)} already exist(s) in {server_of(target_url)} (restored earlier today); "
                          f"drop them first (DROP TABLE {taken[0]}) or wait for tomorrow's schema")
    if dry_run:
        outcome.scratch = (db.parse_database_url(scratch_url).url_without_password if scratch_url else
                           with_database(target.url_without_password, scratch_database(manifest.backup_id)))
        return outcome
    with _scratch(target_url, manifest.backup_id, scratch_url, log) as scratch:
        outcome.scratch = db.parse_database_url(scratch).url_without_password
        with database_step(scratch, "restoring into the scratch database"):
            restored = db.restore(s3, bucket, manifest.backup_id, scratch, verifier=verifier,
                                  manifest_version=manifest_version, tiers=tiers, pg_bin=pg_bin, log=log,
                                  only_missing_roles=True, jobs=jobs, work_dir=work_dir, datasets=datasets)
        wrong = list(restored.mismatches())  # the manifest's counts less what the erasure ledger removed
        if wrong:
            raise BackupError(f"the scratch restore of {manifest.backup_id} does not match its manifest ({wrong[0]}); "
                              "nothing was copied")
        for (_s, _t, key), copied in zip(chosen, outcome.copies, strict=True):
            copied.erased = restored.erased.get(key, 0)
        _copy(scratch, target_url, chosen, outcome, log)
    return outcome


@contextmanager
def _scratch(target_url: str, backup_id: str, scratch_url: str | None, log: Callable[[str], None]) -> Iterator[str]:
    """The operator's scratch database, or a new one on the target's server, dropped afterwards."""
    from psycopg import sql

    if scratch_url:
        with database_step(scratch_url, "inspecting the scratch database"), \
                db._connect(db.parse_database_url(scratch_url)) as conn, conn.cursor() as cur:
            existing = db.user_tables(cur)
        if existing:
            raise BackupError(f"the scratch database already holds user tables (e.g. {existing[0]}); give an "
                              "empty one")
        yield scratch_url
        return
    name = scratch_database(backup_id)
    target = db.parse_database_url(target_url)
    doing = f"creating the scratch database {name} (or pass --scratch-url)"
    with database_step(target_url, doing), db._connect(target, autocommit=True) as conn:
        found = conn.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
                             (name,)).fetchone()
        if found is not None:
            if not (found[0] or "").startswith(SCRATCH_MARK):
                raise BackupError(f"a database {name} exists on {server_of(target_url)} and is not a scratch "
                                  "database of ours; pass --scratch-url")
            if conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,)).fetchone()[0]:
                raise BackupError(f"the scratch database {name} on {server_of(target_url)} is in use (another "
                                  "partial restore of this backup?); wait for it, or pass --scratch-url")
            log(f"dropping {name}, left behind by an earlier partial restore")
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(
            sql.Identifier(name), sql.Literal(f"{SCRATCH_MARK} (backup {backup_id}); safe to drop")))
    log(f"scratch database {name} created on {server_of(target_url)}")
    try:
        yield with_database(target_url, name)
    finally:
        with database_step(target_url, f"dropping the scratch database {name}"), \
                db._connect(target, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        log(f"scratch database {name} dropped")


# The breach scope (tavari_dr.breach.scope) restores a backup into a scratch database the same way.
scratch = _scratch


def _exists(conn: Any, schema: str, table: str) -> bool:
    return conn.execute("SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE n.nspname = %s AND c.relname = %s)", (schema, table)).fetchone()[0]


def _columns(conn: Any, schema: str, table: str) -> tuple[list[tuple[str, str, bool]], list[str]]:
    """(name, type as SQL, not null) of each column, and the primary key's columns, in order."""
    conn.execute("SET search_path = ''")  # format_type then qualifies every type outside pg_catalog
    oid = conn.execute("SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                       "WHERE n.nspname = %s AND c.relname = %s", (schema, table)).fetchone()[0]
    columns = conn.execute("SELECT attname, format_type(atttypid, atttypmod), attnotnull FROM pg_attribute "
                           "WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped ORDER BY attnum", (oid,)).fetchall()
    key = [r[0] for r in conn.execute(
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
        "WHERE i.indrelid = %s AND i.indisprimary ORDER BY array_position(i.indkey::int2[], a.attnum)",
        (oid,)).fetchall()]
    return [(name, kind, notnull) for name, kind, notnull in columns], key


def _copy(scratch_url: str, target_url: str, chosen: list[tuple[str, str, str]], outcome: PartialRestore,
          log: Callable[[str], None]) -> None:
    """Every chosen table into the live database, in one transaction: all copies or none."""
    from psycopg import sql

    scratch, target = db.parse_database_url(scratch_url), db.parse_database_url(target_url)
    schema = sql.Identifier(outcome.schema)
    with database_step(target_url, f"copying the tables into {outcome.schema}"), \
            db._connect(scratch) as src, db._connect(target) as dst:
        api_roles = [r for r in API_ROLES
                     if dst.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (r,)).fetchone()]
        grantees = sql.SQL(", ").join([sql.SQL("PUBLIC"), *(sql.Identifier(r) for r in api_roles)])
        dst.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
        dst.execute(sql.SQL("COMMENT ON SCHEMA {} IS {}").format(schema, sql.Literal(
            f"{SCHEMA_MARK} (tavari-dr db restore --table); each table is dropped at the expiry in its comment")))
        dst.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM {}").format(schema, grantees))
        for (source_schema, source_table, _key), copied in zip(chosen, outcome.copies, strict=True):
            name = copy_table(source_schema, source_table)
            table = sql.Identifier(outcome.schema, name)
            columns, primary = _columns(src, source_schema, source_table)
            definitions = []
            for column, kind, notnull in columns:
                known = dst.execute("SELECT to_regtype(%s) IS NOT NULL", (kind,)).fetchone()[0]
                definitions.append(sql.SQL("{} {}{}").format(
                    sql.Identifier(column), sql.SQL(kind if known else "text"),  # a type name format_type wrote
                    sql.SQL(" NOT NULL" if notnull else "")))
            if primary:
                definitions.append(sql.SQL("PRIMARY KEY ({})").format(
                    sql.SQL(", ").join(sql.Identifier(c) for c in primary)))
            dst.execute(sql.SQL("CREATE TABLE {} ({})").format(table, sql.SQL(", ").join(definitions)))
            names = sql.SQL(", ").join(sql.Identifier(c) for c, _, _ in columns)
            source = sql.Identifier(source_schema, source_table)
            with src.cursor().copy(sql.SQL("COPY (SELECT {} FROM {}) TO STDOUT").format(names, source)) as out, \
                    dst.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN").format(table, names)) as into:
                for data in out:
                    into.write(data)
            dst.execute(sql.SQL("REVOKE ALL ON TABLE {} FROM {}").format(table, grantees))
            copied.rows = dst.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone()[0]
            dst.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(table, sql.Literal(_comment(copied, outcome))))
            log(f"{copied.source} -> {copied.copy}: {copied.rows} rows")
        dst.commit()


def _comment(copied: Copied, outcome: PartialRestore) -> str:
    expires = outcome.expires_at.isoformat(timespec="seconds")
    return (f"{COPY_MARK} of {copied.source} from backup {outcome.backup_id}; dropped by tavari-dr db "
            f"cleanup-restored (and the nightly backup) after {expires}\n"
            + json.dumps({"source": copied.source, "backup": outcome.backup_id, "expires_at": expires}))


# --------------------------------------------------------------------------- cleanup


@dataclass
class Cleanup:
    dropped: list[str] = field(default_factory=list)  # restored_<date>.<table> and, once empty, restored_<date>
    kept: list[tuple[str, str]] = field(default_factory=list)  # (copy, expires_at) not yet due


def _expiry(comment: str | None) -> datetime | None:
    if not comment or not comment.startswith(COPY_MARK):
        return None
    try:
        parsed = datetime.fromisoformat(json.loads(comment.rsplit("\n", 1)[-1])["expires_at"])
    except (ValueError, KeyError, TypeError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def cleanup_restored(database_url: str, *, now: datetime | None = None, dry_run: bool = False) -> Cleanup:
    """Drop every restored copy whose expiry has passed, then each restored_<date> schema of ours left
    empty. Only objects carrying our comments are touched; anything else in those schemas stays."""
    import psycopg
    from psycopg import sql

    now = now or datetime.now(UTC)
    result = Cleanup()
    conn_info = db.parse_database_url(database_url)
    with database_step(database_url, "dropping expired restored copies"), db._connect(conn_info) as conn:
        rows = conn.execute(
            "SELECT n.nspname, c.relname, obj_description(c.oid, 'pg_class') FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname LIKE 'restored\\_%%' "
            "AND c.relkind IN ('r', 'p') ORDER BY 1, 2").fetchall()
        gone = []
        for schema, table, comment in rows:
            expires = _expiry(comment)
            if expires is None:
                continue
            if expires > now:
                result.kept.append((shown(schema, table), expires.isoformat(timespec="seconds")))
                continue
            if not dry_run:
                conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(schema, table)))
            result.dropped.append(shown(schema, table))
            gone.append(f"{schema}.{table}")
        # A schema of ours whose tables are all gone goes too; one holding anything else stays (RESTRICT).
        schemas = conn.execute(
            "SELECT n.nspname FROM pg_namespace n WHERE n.nspname LIKE 'restored\\_%%' "
            "AND obj_description(n.oid, 'pg_namespace') LIKE %s AND NOT EXISTS (SELECT 1 FROM pg_class c "
            "WHERE c.relnamespace = n.oid AND c.relkind IN ('r', 'p') "
            "AND NOT (n.nspname || '.' || c.relname = ANY(%s))) ORDER BY 1",
            (SCHEMA_MARK + "%", gone)).fetchall()
        for (schema,) in schemas:
            if not dry_run:
                try:
                    with conn.transaction():
                        conn.execute(sql.SQL("DROP SCHEMA {} RESTRICT").format(sql.Identifier(schema)))
                except psycopg.errors.DependentObjectsStillExist:
                    continue
            result.dropped.append(ident(schema))
        conn.commit()
    return result
