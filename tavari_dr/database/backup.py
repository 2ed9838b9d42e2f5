"""Off-site database backups: a consistent pg_dump of Supabase, streamed to an Object-Lock bucket.

Layout of one backup (``<id>`` = ``20261125T020000Z-nightly``)::

    dumps/<tier>/<id>/roles.sql             pg_dumpall --roles-only --no-role-passwords (reserved roles commented out)
    dumps/<tier>/<id>/schema.dump           pg_dump -Fc --schema-only, Supabase's internal schemas excluded
    dumps/<tier>/<id>/internal_schema.dump  pg_dump -Fc --schema-only of auth and storage (for plain targets)
    dumps/<tier>/<id>/data.dump             pg_dump -Fc --data-only, auth and storage data included
    dumps/<tier>/<id>/manifest.json         written LAST: no manifest = incomplete, never "latest"

All dumps read one exported snapshot, taken by a REPEATABLE READ transaction that also counts
every table's rows, so the manifest's counts match the dump exactly. Nothing is held in memory
or on disk beyond one upload part: pg_dump's output streams into a multipart upload while its
sha256 is computed. Each object carries an Object Lock retain-until date from its tier.

One module over 400 lines: it is the backup format (the layout above and its manifest) with the
code that writes it and the code that reads it back (list, verify, restore); a change to the
format changes both sides at once, and neither is used without the other.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlsplit, urlunsplit

from tavari_dr.core import s3sink
from tavari_dr.core.config import DatabaseBackupsConfig, Tier
from tavari_dr.core.s3sink import PART_SIZE
from tavari_dr.core.schedule import local_date

# Supabase's own schemas (as `supabase db dump` excludes them from a schema dump).
INTERNAL_SCHEMAS = (
    "auth", "storage", "extensions", "graphql", "graphql_public", "realtime", "_realtime", "supabase_functions",
    "supabase_migrations", "pgbouncer", "pgsodium", "pgsodium_masks", "vault", "net", "cron", "_analytics",
    "_supavisor", "pgtle", "tiger", "topology", "information_schema", "pg_catalog", "pg_toast",
)
# ... whose data a restore still needs: users must survive a restore.
DATA_KEPT_SCHEMAS = ("auth", "storage")
RESERVED_ROLES = (
    "postgres", "supabase_admin", "supabase_auth_admin", "supabase_storage_admin", "supabase_read_only_user",
    "supabase_replication_admin", "supabase_realtime_admin", "supabase_functions_admin", "supabase_etl_admin",
    "dashboard_user", "pgbouncer", "authenticator", "anon", "authenticated", "service_role",
    "pgsodium_keyholder", "pgsodium_keyiduser", "pgsodium_keymaker",
)
TRANSACTION_POOLER_PORT = 6543
ARTIFACTS = ("roles.sql", "schema.dump", "internal_schema.dump", "data.dump")
MANIFEST = "manifest.json"
FORMAT = "tavari-db-backup/1"


class BackupError(RuntimeError):
    """A backup, verification or restore step failed; the message names the step."""


DEFAULT_TIERS = DatabaseBackupsConfig().tiers


def tier_for(when: datetime, tiers: tuple[Tier, ...] = DEFAULT_TIERS, timezone: str = "UTC") -> Tier:
    """Grandfather-father-son on the calendar of ``timezone`` (the schedules' zone, so the dump the
    schedule runs on the 1st is that month's, even where UTC is still in the previous month): the 1st
    of a month is monthly, a Sunday weekly, any other day daily."""
    by_name = {t.name: t for t in tiers}
    day = local_date(when, timezone)
    if day.day == 1:
        return by_name["monthly"]
    if day.weekday() == 6:
        return by_name["weekly"]
    return by_name["daily"]


def retain_until_for(started: datetime, retention_days: int) -> datetime:
    """Object Lock's retain-until date: whole days of absolute time from the backup's start, so a DST
    switch or a leap day in between never shortens the lock."""
    return started.astimezone(UTC) + timedelta(days=retention_days)


# --------------------------------------------------------------------------- connection


@dataclass(frozen=True)
class Connection:
    """A database URL split so the password travels in PGPASSWORD, never on a command line."""

    url_without_password: str
    password: str | None
    port: int

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        if self.password:
            env["PGPASSWORD"] = self.password
        return env


def parse_database_url(url: str) -> Connection:
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql") or not parts.hostname:
        raise BackupError("the database URL must look like postgresql://user:password@host:5432/postgres")
    port = parts.port or 5432
    if port == TRANSACTION_POOLER_PORT:
        raise BackupError("port 6543 is Supabase's transaction-mode pooler, which breaks pg_dump; use the session "
                          "pooler on port 5432 (user postgres.<project-ref>)")
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    password = unquote(parts.password) if parts.password else None
    return Connection(urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")), password, port)


def _connect(conn: Connection, **kwargs: Any):
    import psycopg

    return psycopg.connect(conn.url_without_password, password=conn.password, **kwargs)


# --------------------------------------------------------------------------- upload


class MultipartSink(s3sink.MultipartSink):
    """The core sink, failing as a BackupError like every other step of a backup."""

    error = BackupError


def _stream_command(command: list[str], env: dict[str, str], sink: MultipartSink,
                    transform: Callable[[bytes], bytes] | None = None) -> dict[str, Any]:
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, env=env)
        try:
            assert process.stdout is not None
            if transform is None:
                for chunk in iter(lambda: process.stdout.read(1024 * 1024), b""):  # type: ignore[union-attr]
                    sink.write(chunk)
            else:
                sink.write(transform(process.stdout.read()))
            code = process.wait()
        except BaseException:
            process.kill()
            sink.abort()
            raise
        if code != 0:
            sink.abort()
            stderr.seek(0)
            raise BackupError(f"{Path(command[0]).name} exited {code}: {stderr.read().decode(errors='replace')[-800:]}")
    return sink.close()


def comment_reserved_roles(sql: bytes) -> bytes:
    """Comment out statements about Supabase's reserved roles: the platform owns them."""
    reserved = "|".join(re.escape(r) for r in RESERVED_ROLES)
    pattern = re.compile(rf"^\s*(CREATE|ALTER|COMMENT ON) ROLE \"?({reserved})\"?[\s;]"
                         rf"|^\s*GRANT .*\b({reserved})\b.* TO ")
    lines = sql.decode().splitlines(keepends=True)
    return "".join(("-- (Supabase reserved role) " + line) if pattern.match(line) else line for line in lines).encode()


# --------------------------------------------------------------------------- backup


@dataclass
class Manifest:
    backup_id: str
    reason: str
    tier: str
    database: str
    started_at: str
    finished_at: str
    server_version: str
    pg_dump_version: str
    snapshot: str
    data_schemas: list[str]
    excluded_schemas: list[str]
    tables: dict[str, int]
    artifacts: dict[str, dict[str, Any]]
    retain_until: str
    lock_mode: str
    format: str = FORMAT

    @property
    def total_bytes(self) -> int:
        return sum(a["bytes"] for a in self.artifacts.values())

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "total_bytes": self.total_bytes}, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data = json.loads(text)
        data.pop("total_bytes", None)
        return cls(**data)


def _slug(reason: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", reason.lower()).strip("-")[:40] or "backup"


def shutil_which(tool: str) -> str:
    import shutil

    found = shutil.which(tool)
    if not found:
        raise BackupError(f"{tool} is not on PATH; install the PostgreSQL client (e.g. apt-get install "
                          "postgresql-client) or pass --pg-bin")
    return found


def _tool_version(tool: str) -> str:
    return subprocess.run([tool, "--version"], capture_output=True, text=True, check=True).stdout.strip()


def list_tables(cur: Any) -> list[str]:
    excluded = [s for s in INTERNAL_SCHEMAS if s not in DATA_KEPT_SCHEMAS]
    cur.execute("SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') "
                "AND n.nspname <> ALL(%s) AND n.nspname NOT LIKE 'pg\\_%%' ORDER BY 1", (excluded,))
    return [row[0] for row in cur.fetchall()]


def run_backup(s3: Any, bucket: str, database_url: str, *, reason: str, now: datetime | None = None,
               tiers: tuple[Tier, ...] = DEFAULT_TIERS, timezone: str = "UTC", lock_mode: str = "GOVERNANCE",
               pg_bin: Path | None = None, part_size: int = PART_SIZE,
               clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> Manifest:
    """Take one backup; returns its manifest (already uploaded, last)."""
    conn_info = parse_database_url(database_url)
    started = now or clock()
    tier = tier_for(started, tiers, timezone)
    retain_until = retain_until_for(started, tier.retention_days)
    lock = {"ObjectLockMode": lock_mode, "ObjectLockRetainUntilDate": retain_until}
    backup_id = f"{started.strftime('%Y%m%dT%H%M%SZ')}-{_slug(reason)}"
    prefix = f"dumps/{tier.name}/{backup_id}"
    tool = (lambda name: str(pg_bin / name)) if pg_bin else (lambda name: name)
    excluded = [s for s in INTERNAL_SCHEMAS if s not in DATA_KEPT_SCHEMAS]
    artifacts: dict[str, dict[str, Any]] = {}

    def sink(name: str) -> MultipartSink:
        return MultipartSink(s3, bucket, f"{prefix}/{name}", lock=lock, part_size=part_size,
                             content_type="application/sql" if name.endswith(".sql") else "application/octet-stream")

    base = ["--dbname", conn_info.url_without_password, "--no-password"]
    with _connect(conn_info) as conn, conn.cursor() as cur:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        cur.execute("SELECT pg_export_snapshot(), current_database(), current_setting('server_version')")
        snapshot, database, server_version = cur.fetchone()
        tables = {}
        for table in list_tables(cur):
            cur.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 - quote_ident'ed names from the catalog
            tables[table] = cur.fetchone()[0]
        # The transaction stays open while pg_dump runs, so its snapshot stays importable.
        artifacts["roles.sql"] = _stream_command(
            [tool("pg_dumpall"), *base, "--roles-only", "--no-role-passwords"], conn_info.env, sink("roles.sql"),
            transform=comment_reserved_roles)
        internal_excludes = [f"--exclude-schema={s}" for s in INTERNAL_SCHEMAS if not s.startswith("pg_")
                             and s != "information_schema"]
        artifacts["schema.dump"] = _stream_command(
            [tool("pg_dump"), *base, f"--snapshot={snapshot}", "--format=custom", "--schema-only",
             *internal_excludes], conn_info.env, sink("schema.dump"))
        artifacts["internal_schema.dump"] = _stream_command(
            [tool("pg_dump"), *base, f"--snapshot={snapshot}", "--format=custom", "--schema-only",
             *(f"--schema={s}" for s in DATA_KEPT_SCHEMAS)], conn_info.env, sink("internal_schema.dump"))
        artifacts["data.dump"] = _stream_command(
            [tool("pg_dump"), *base, f"--snapshot={snapshot}", "--format=custom", "--data-only",
             *(f"--exclude-schema={s}" for s in excluded if not s.startswith("pg_") and s != "information_schema")],
            conn_info.env, sink("data.dump"))
        conn.rollback()
    manifest = Manifest(
        backup_id=backup_id, reason=reason, tier=tier.name, database=database,
        started_at=started.isoformat(timespec="seconds"), finished_at=clock().isoformat(timespec="seconds"),
        server_version=server_version, pg_dump_version=_tool_version(tool("pg_dump")), snapshot=snapshot,
        data_schemas=sorted({t.split(".")[0].strip('"') for t in tables}), excluded_schemas=excluded,
        tables=tables, artifacts=artifacts, retain_until=retain_until.isoformat(timespec="seconds"),
        lock_mode=lock_mode)
    s3.put_object(Bucket=bucket, Key=f"{prefix}/{MANIFEST}", Body=manifest.to_json().encode(),
                  ContentType="application/json", ChecksumAlgorithm="SHA256", **lock)
    return manifest


# --------------------------------------------------------------------------- listing


@dataclass
class BackupEntry:
    backup_id: str
    tier: str
    prefix: str
    complete: bool
    bytes: int
    last_modified: datetime
    artifacts: list[str] = field(default_factory=list)


def list_backups(s3: Any, bucket: str) -> list[BackupEntry]:
    """Every backup folder, newest first; complete means its manifest exists."""
    entries: dict[str, BackupEntry] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="dumps/"):
        for obj in page.get("Contents", []):
            parts = obj["Key"].split("/")
            if len(parts) != 4:
                continue
            _, tier, backup_id, name = parts
            entry = entries.setdefault(backup_id, BackupEntry(backup_id, tier, "/".join(parts[:3]), False, 0,
                                                              obj["LastModified"]))
            entry.bytes += obj["Size"]
            entry.last_modified = max(entry.last_modified, obj["LastModified"])
            entry.artifacts.append(name)
            entry.complete = entry.complete or name == MANIFEST
    return sorted(entries.values(), key=lambda e: e.backup_id, reverse=True)


def find_backup(s3: Any, bucket: str, which: str) -> tuple[BackupEntry, Manifest]:
    """``latest`` (newest complete backup) or a backup ID; refuses incomplete backups."""
    backups = list_backups(s3, bucket)
    if which == "latest":
        complete = [b for b in backups if b.complete]
        if not complete:
            raise BackupError(f"no complete backup (with a manifest) in s3://{bucket}/dumps/")
        entry = complete[0]
    else:
        matches = [b for b in backups if b.backup_id == which]
        if not matches:
            raise BackupError(f"no backup {which!r} in s3://{bucket}/dumps/")
        entry = matches[0]
        if not entry.complete:
            raise BackupError(f"backup {which} has no manifest: it never finished, so it cannot be trusted")
    body = s3.get_object(Bucket=bucket, Key=f"{entry.prefix}/{MANIFEST}")["Body"].read()
    return entry, Manifest.from_json(body.decode())


# --------------------------------------------------------------------------- verify and restore


def _chunks(body: Any) -> Iterator[bytes]:
    yield from iter(lambda: body.read(1024 * 1024), b"")


def fetch_verified(s3: Any, bucket: str, manifest: Manifest, name: str, out: IO[bytes]) -> None:
    """Stream one artifact into ``out``, refusing it if its sha256 is not the manifest's."""
    artifact = manifest.artifacts[name]
    digest = hashlib.sha256()
    for chunk in _chunks(s3.get_object(Bucket=bucket, Key=artifact["key"])["Body"]):
        digest.update(chunk)
        out.write(chunk)
    if digest.hexdigest() != artifact["sha256"]:
        raise BackupError(f"{name}: sha256 {digest.hexdigest()} does not match the manifest's {artifact['sha256']}; "
                          "the object is corrupted or was replaced — refusing it")


@dataclass
class VerifyResult:
    backup_id: str
    checks: list[tuple[str, bool, str]]
    table_counts: dict[str, tuple[int, int | None]] = field(default_factory=dict)  # table -> (manifest, found)
    duration_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(passed for _, passed, _ in self.checks) and all(
            found == expected for expected, found in self.table_counts.values())


def verify_quick(s3: Any, bucket: str, which: str = "latest", *, pg_bin: Path | None = None) -> VerifyResult:
    """sha256 of every artifact, and each archive's table of contents (pg_restore --list)."""
    started = time.monotonic()
    entry, manifest = find_backup(s3, bucket, which)
    result = VerifyResult(manifest.backup_id, [])
    tool = str(pg_bin / "pg_restore") if pg_bin else "pg_restore"
    with tempfile.TemporaryDirectory() as work:
        for name in ARTIFACTS:
            path = Path(work) / name
            try:
                with path.open("wb") as out:
                    fetch_verified(s3, bucket, manifest, name, out)
                result.checks.append((f"{name} sha256", True, manifest.artifacts[name]["sha256"][:16]))
            except BackupError as err:
                result.checks.append((f"{name} sha256", False, str(err)))
                continue
            if name.endswith(".dump"):
                listed = subprocess.run([tool, "--list", str(path)], capture_output=True, text=True)
                entries = [line for line in listed.stdout.splitlines() if line and not line.startswith(";")]
                result.checks.append((f"{name} table of contents", listed.returncode == 0 and bool(entries),
                                      f"{len(entries)} entries" if listed.returncode == 0 else listed.stderr[-300:]))
            path.unlink()
    result.duration_seconds = time.monotonic() - started
    return result


def user_tables(cur: Any) -> list[str]:
    cur.execute("SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind IN ('r', 'p') AND n.nspname <> ALL(%s) AND n.nspname NOT LIKE 'pg\\_%%' ORDER BY 1",
                (list(INTERNAL_SCHEMAS),))
    return [row[0] for row in cur.fetchall()]


def platform_sql() -> str:
    """The roles and schemas a plain PostgreSQL target needs before a Supabase dump restores into it."""
    return (resources.files("tavari_dr.database") / "sql" / "supabase_platform.sql").read_text()


def detect_target(cur: Any) -> str:
    """'supabase' when the platform's schemas and roles are there, else 'plain'."""
    cur.execute("SELECT to_regclass('auth.users') IS NOT NULL AND to_regclass('storage.objects') IS NOT NULL "
                "AND EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'supabase_admin')")
    return "supabase" if cur.fetchone()[0] else "plain"


def restore(s3: Any, bucket: str, which: str, target_url: str, *, force: bool = False, pg_bin: Path | None = None,
            log: Callable[[str], None] = lambda _msg: None) -> VerifyResult:
    """Verify, then restore roles, schema and data in that order, then compare row counts."""
    started = time.monotonic()
    entry, manifest = find_backup(s3, bucket, which)
    target = parse_database_url(target_url)
    tool = (lambda name: str(pg_bin / name)) if pg_bin else (lambda name: name)
    result = VerifyResult(manifest.backup_id, [])
    with _connect(target, autocommit=True) as conn, conn.cursor() as cur:
        kind = detect_target(cur)
        existing = user_tables(cur)
        log(f"target: {'a Supabase project' if kind == 'supabase' else 'a plain PostgreSQL database'}")
        if existing and not force:
            raise BackupError(f"the target already holds {len(existing)} user table(s) (e.g. {existing[0]}); "
                              "restore into an empty database, or pass --force to replace them")
    with tempfile.TemporaryDirectory() as work:
        paths = {}
        for name in ARTIFACTS:  # every artifact is verified before anything is written
            paths[name] = Path(work) / name
            with paths[name].open("wb") as out:
                fetch_verified(s3, bucket, manifest, name, out)
        result.checks.append(("sha256 of every artifact", True, "matches the manifest"))
        with _connect(target, autocommit=True) as conn:
            if kind == "plain":
                conn.execute(platform_sql())
            _apply_roles(conn, paths["roles.sql"].read_text())
        log("roles restored")
        base = ["--dbname", target.url_without_password, "--no-password", "--exit-on-error"]
        if kind == "plain":
            _run_restore([tool("pg_restore"), *base, "--schema-only", str(paths["internal_schema.dump"])], target)
            log("auth and storage schemas restored (plain target)")
        if force:
            _clear_for_restore(target, manifest, existing)
            log("--force: user schemas dropped and recreated, auth/storage rows truncated")
        _run_restore([tool("pg_restore"), *base, "--schema-only", str(paths["schema.dump"])], target)
        log("schema restored")
        _run_restore([tool("pg_restore"), *base, "--data-only", str(paths["data.dump"])], target)
        log("data restored")
    with _connect(target) as conn, conn.cursor() as cur:
        for table, expected in manifest.tables.items():
            cur.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 - names from our own manifest
            result.table_counts[table] = (expected, cur.fetchone()[0])
    result.duration_seconds = time.monotonic() - started
    return result


def _apply_roles(conn: Any, roles_sql: str) -> None:
    import psycopg

    for statement in roles_sql.splitlines():
        line = statement.strip()
        if not line or line.startswith("--") or line.startswith("\\") or line.startswith("SET "):
            continue
        try:
            conn.execute(line)
        except (psycopg.errors.DuplicateObject, psycopg.errors.InsufficientPrivilege):
            continue  # already there (a fresh Supabase project has its own), or the platform's to manage


def _schema_of(table: str) -> str:
    return table.split(".")[0].strip('"')


def _clear_for_restore(target: Connection, manifest: Manifest, existing: list[str]) -> None:
    """--force: drop the user schemas (the dump recreates them whole) and empty the platform's
    tables the dump refills. Not pg_restore --clean: that would also drop shared extensions
    other schemas depend on."""
    from psycopg import sql

    user = {_schema_of(t) for t in [*manifest.tables, *existing]} - set(INTERNAL_SCHEMAS)
    kept = [t for t in manifest.tables if _schema_of(t) in DATA_KEPT_SCHEMAS]
    with _connect(target, autocommit=True) as conn:
        for schema in sorted(user):
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
            if schema != "public":  # pg_dump never creates public; every other schema is in the dump
                continue
            conn.execute("CREATE SCHEMA public")
        present = [t for t in kept if conn.execute("SELECT to_regclass(%s)", (t,)).fetchone()[0]]
        if present:
            conn.execute(f"TRUNCATE {', '.join(present)} CASCADE")


def _run_restore(command: list[str], target: Connection) -> None:
    done = subprocess.run(command, capture_output=True, text=True, env=target.env)
    if done.returncode != 0:
        raise BackupError(f"{' '.join(c for c in command[:1])} failed: {done.stderr[-1500:]}")
