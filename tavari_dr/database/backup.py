"""Off-site database backups: a consistent pg_dump of Supabase, streamed to an Object-Lock bucket.

The layout and the manifest are tavari_dr.database.manifest's; this module writes them (run_backup)
and reads them back (verify_quick, restore) through it.

All dumps read one exported snapshot, taken by a REPEATABLE READ transaction that also counts
every table's rows, so the manifest's counts match the dump exactly. Nothing is held in memory
or on disk beyond one upload part: pg_dump's output streams into a multipart upload while its
sha256 is computed. Each object is written once (If-None-Match: *) with an Object Lock
retain-until date from its tier; the manifest, signed by KMS, pins every artifact's version.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from tavari_dr.core import s3sink
from tavari_dr.core.config import Tier
from tavari_dr.core.s3sink import PART_SIZE
from tavari_dr.core.schedule import local_date
from tavari_dr.database.manifest import (  # noqa: F401 - the format, re-exported for the CLI, jobs and checks
    ARTIFACTS,
    DEFAULT_TIERS,
    FORMAT,
    MANIFEST,
    PRE_RESTORE,
    SIGNED,
    UNSIGNED_LEGACY,
    BackupEntry,
    BackupError,
    BackupTampered,
    Manifest,
    OpenedBackup,
    fetch_verified,
    find_backup,
    list_backups,
)
from tavari_dr.database.signing import KmsSigner, KmsVerifier, envelope

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


def run_backup(s3: Any, bucket: str, database_url: str, *, reason: str, signer: KmsSigner,
               now: datetime | None = None, tiers: tuple[Tier, ...] = DEFAULT_TIERS, timezone: str = "UTC",
               lock_mode: str = "GOVERNANCE", pg_bin: Path | None = None, part_size: int = PART_SIZE,
               clock: Callable[[], datetime] = lambda: datetime.now(UTC), tier_name: str | None = None) -> Manifest:
    """Take one backup; returns its manifest (signed and uploaded last). ``tier_name`` files it under
    that tier whatever the day (a restore's pre-restore copy is daily, never kept for a year)."""
    conn_info = parse_database_url(database_url)
    started = now or clock()
    tier = {t.name: t for t in tiers}[tier_name] if tier_name else tier_for(started, tiers, timezone)
    retain_until = retain_until_for(started, tier.retention_days)
    lock = {"ObjectLockMode": lock_mode, "ObjectLockRetainUntilDate": retain_until}
    backup_id = f"{started.strftime('%Y%m%dT%H%M%SZ')}-{_slug(reason)}"
    prefix = f"dumps/{tier.name}/{backup_id}"
    tool = (lambda name: str(pg_bin / name)) if pg_bin else (lambda name: name)
    excluded = [s for s in INTERNAL_SCHEMAS if s not in DATA_KEPT_SCHEMAS]
    artifacts: dict[str, dict[str, Any]] = {}

    def sink(name: str) -> MultipartSink:
        return MultipartSink(s3, bucket, f"{prefix}/{name}", lock=lock, part_size=part_size, if_none_match=True,
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
    payload = manifest.to_json().encode()
    s3sink.put_new(s3, bucket, f"{prefix}/{MANIFEST}", envelope(payload, signer.sign(payload), FORMAT),
                   error=BackupError, ContentType="application/json", ChecksumAlgorithm="SHA256", **lock)
    return manifest


# --------------------------------------------------------------------------- verify and restore


@dataclass
class VerifyResult:
    backup_id: str
    checks: list[tuple[str, bool, str]]
    table_counts: dict[str, tuple[int, int | None]] = field(default_factory=dict)  # table -> (manifest, found)
    duration_seconds: float = 0.0
    trust: str = ""
    findings: list[str] = field(default_factory=list)  # tampering found (the backup was read anyway, by name)

    @property
    def ok(self) -> bool:
        return not self.findings and all(passed for _, passed, _ in self.checks) and all(
            found == expected for expected, found in self.table_counts.values())

    @property
    def tampered(self) -> bool:
        return bool(self.findings)


def _opened(result: VerifyResult, opened: OpenedBackup) -> None:
    """What opening the backup established, as the result's first checks."""
    result.trust, result.findings = opened.trust, opened.findings
    result.checks.append(("manifest signature", True, f"{opened.trust}; manifest version {opened.manifest_version}"))
    result.checks.append(("recorded versions", not opened.findings,
                          "every key has exactly the version the manifest records" if not opened.findings
                          else "; ".join(opened.findings)))


def tampered_result(err: BackupTampered) -> VerifyResult:
    """A verification that found tampering before it could read anything: a FAIL that says what."""
    return VerifyResult(err.backup_id, [("tampering", False, str(err))], findings=err.findings)


def verify_quick(s3: Any, bucket: str, which: str = "latest", *, verifier: KmsVerifier | None,
                 manifest_version: str | None = None, tiers: tuple[Tier, ...] = DEFAULT_TIERS,
                 pg_bin: Path | None = None) -> VerifyResult:
    """The signature and recorded versions, sha256 of every artifact, and each archive's table of
    contents (pg_restore --list). Tampering is a FAIL with its findings, not an error."""
    started = time.monotonic()
    try:
        opened = find_backup(s3, bucket, which, verifier=verifier, manifest_version=manifest_version, tiers=tiers)
    except BackupTampered as err:
        return tampered_result(err)
    manifest = opened.manifest
    result = VerifyResult(manifest.backup_id, [])
    _opened(result, opened)
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


def restore(s3: Any, bucket: str, which: str, target_url: str, *, verifier: KmsVerifier | None,
            manifest_version: str | None = None, tiers: tuple[Tier, ...] = DEFAULT_TIERS, force: bool = False,
            pg_bin: Path | None = None, log: Callable[[str], None] = lambda _msg: None,
            before_write: Callable[[Manifest, list[str]], None] | None = None,
            only_missing_roles: bool = False) -> VerifyResult:
    """Verify (signature, recorded versions, every sha256), then restore roles, schema and data in that
    order, then compare row counts. A tampered backup is refused (BackupTampered) unless the operator
    named the manifest version to trust; then its findings are in the result.

    ``before_write(manifest, existing user tables)`` runs once the backup is opened and the target
    inspected, before anything is written to the target; it may raise to stop (tavari_dr.database.
    overwrite: confirm, take the pre-restore copy). ``only_missing_roles``: create the roles the
    cluster lacks and leave the others as they are (a scratch database on a live server)."""
    started = time.monotonic()
    opened = find_backup(s3, bucket, which, verifier=verifier, manifest_version=manifest_version, tiers=tiers)
    manifest = opened.manifest
    for finding in opened.findings:
        log(f"TAMPERING (reading the named manifest version's recorded versions anyway): {finding}")
    log(f"backup {manifest.backup_id}: {opened.trust}")
    target = parse_database_url(target_url)
    tool = (lambda name: str(pg_bin / name)) if pg_bin else (lambda name: name)
    result = VerifyResult(manifest.backup_id, [])
    _opened(result, opened)
    with _connect(target, autocommit=True) as conn, conn.cursor() as cur:
        kind = detect_target(cur)
        existing = user_tables(cur)
        log(f"target: {'a Supabase project' if kind == 'supabase' else 'a plain PostgreSQL database'}")
        if existing and not force:
            raise BackupError(f"the target already holds {len(existing)} user table(s) (e.g. {existing[0]}); "
                              "restore into an empty database, or pass --force to replace them")
    if before_write is not None:
        before_write(manifest, existing)
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
            _apply_roles(conn, paths["roles.sql"].read_text(), only_missing=only_missing_roles)
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


def _apply_roles(conn: Any, roles_sql: str, *, only_missing: bool = False) -> None:
    """roles.sql, line by line. ``only_missing``: CREATE ROLE, and the ALTER/COMMENT of roles just
    created; a role the cluster already has keeps its attributes and memberships."""
    import psycopg

    created: set[str] = set()
    role_of = re.compile(r'^(?:CREATE|ALTER|COMMENT ON) ROLE ("(?:[^"]|"")+"|[^\s;]+)')
    for statement in roles_sql.splitlines():
        line = statement.strip()
        if not line or line.startswith("--") or line.startswith("\\") or line.startswith("SET "):
            continue
        named = role_of.match(line)
        role = named.group(1) if named else None
        if only_missing and not (line.startswith("CREATE ROLE ") or role in created):
            continue
        try:
            conn.execute(line)
        except (psycopg.errors.DuplicateObject, psycopg.errors.InsufficientPrivilege):
            continue  # already there (a fresh Supabase project has its own), or the platform's to manage
        if line.startswith("CREATE ROLE ") and role:
            created.add(role)


def _schema_of(table: str) -> str:
    return table.split(".")[0].strip('"')


def force_clears(manifest: Manifest, existing: list[str]) -> tuple[list[str], list[str]]:
    """What --force clears: the user schemas it drops (the backup's and the target's) and the platform
    tables it truncates (the backup's auth/storage tables; those the target has are emptied)."""
    user = {_schema_of(t) for t in [*manifest.tables, *existing]} - set(INTERNAL_SCHEMAS)
    return sorted(user), [t for t in manifest.tables if _schema_of(t) in DATA_KEPT_SCHEMAS]


def _clear_for_restore(target: Connection, manifest: Manifest, existing: list[str]) -> None:
    """--force: drop the user schemas (the dump recreates them whole) and empty the platform's
    tables the dump refills. Not pg_restore --clean: that would also drop shared extensions
    other schemas depend on."""
    from psycopg import sql

    user, kept = force_clears(manifest, existing)
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
