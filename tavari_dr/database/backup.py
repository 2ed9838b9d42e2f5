"""Off-site database backups: a consistent pg_dump of Supabase, streamed to an Object-Lock bucket.

The layout and the manifest are tavari_dr.database.manifest's; this module writes them (run_backup)
and reads them back (verify_quick, restore) through it.

All dumps read one exported snapshot, taken by a REPEATABLE READ transaction that also counts
every table's rows, so the manifest's counts match the dump exactly. The small schema dumps stream
into multipart uploads while their sha256 is computed; the data is a directory-format dump
(pg_dump -j, zstd where the client has it) written to local disk and then uploaded file by file
(ADR 0014). Each object is written once (If-None-Match: *) with an Object Lock retain-until date
from its tier; the manifest, signed by KMS, pins every artifact's version.

A restore downloads every artifact to local disk and verifies every sha256 before it writes
anything to the target, then restores pre-data, data and post-data in that order with
pg_restore -j (indexes and constraints built once over the loaded rows).
"""

from __future__ import annotations

import hashlib
import os
import queue
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from graphlib import TopologicalSorter
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from tavari_dr import __version__
from tavari_dr.core import s3sink
from tavari_dr.core.config import DEFAULT_DATASETS, Dataset, Tier
from tavari_dr.core.s3sink import PART_SIZE
from tavari_dr.core.schedule import local_date
from tavari_dr.database import erasure
from tavari_dr.database.manifest import (  # noqa: F401 - the format, re-exported for the CLI, jobs and checks
    ARTIFACTS,
    DATA_DIR,
    DEFAULT_TIERS,
    DIRECTORY_TOC,
    FORMAT,
    MANIFEST,
    OPTIONAL_ARTIFACTS,
    PRE_RESTORE,
    SCHEMA_ARTIFACTS,
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
    try:
        port = parts.port or 5432
    except ValueError as err:  # a port out of 0-65535, or not a number
        raise BackupError(f"the database URL's port: {err}; e.g. postgresql://user:password@host:5432/postgres") \
            from None
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


# Every session that reads or writes values as text for the change log (the capture's walsender, which
# renders each value, and the replay that parses them back) fixes these, so no role's or operator's
# defaults change a value on the way: a timestamptz in another TimeZone, a float cut short, bytea as escape.
FIXED_SESSION = {"TimeZone": "UTC", "DateStyle": "ISO, MDY", "IntervalStyle": "postgres",
                 "extra_float_digits": "3", "bytea_output": "hex"}
FIXED_SESSION_OPTIONS = " ".join(f"-c {name}={value.replace(' ', '')}" for name, value in FIXED_SESSION.items())


def source_identity(cur: Any) -> dict[str, Any]:
    """Which database this is, beyond its URL: the cluster's system identifier and timeline (a rebuilt or
    restored cluster has another; a promoted standby another timeline), the database's name and OID (a
    database dropped and created again has another). The change log is resumed and replayed only within one."""
    cur.execute("SELECT s.system_identifier::text, c.timeline_id, d.datname, d.oid::bigint "
                "FROM pg_control_system() s, pg_control_checkpoint() c, pg_database d "
                "WHERE d.datname = current_database()")
    system, timeline, name, oid = cur.fetchone()
    return {"system_identifier": system, "timeline": int(timeline), "database": name, "database_oid": int(oid)}


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
    try:
        return subprocess.run([tool, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as err:
        raise BackupError(f"cannot run {tool} --version ({err}); install the PostgreSQL client or pass --pg-bin") \
            from None


def _relations(cur: Any, kinds: str, excluded: list[str]) -> list[tuple[str, str, str]]:
    """(quote_ident-qualified name, schema, name) of the relations of ``kinds`` outside ``excluded``:
    the pair straight from the catalog, as names may hold dots, quotes and spaces."""
    cur.execute("SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), n.nspname, c.relname FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind::text = ANY(%s) "
                "AND n.nspname <> ALL(%s) AND n.nspname NOT LIKE 'pg\\_%%' ORDER BY 2, 3", (list(kinds), excluded))
    return [(row[0], row[1], row[2]) for row in cur.fetchall()]


def list_tables(cur: Any) -> list[str]:
    return [qualified for qualified, _, _ in _relations(cur, "rp", _data_excluded())]


def _data_excluded() -> list[str]:
    return [s for s in INTERNAL_SCHEMAS if s not in DATA_KEPT_SCHEMAS]


def list_matviews(cur: Any, excluded: list[str]) -> list[dict[str, Any]]:
    """The materialized views outside ``excluded`` in an order that refreshes each after every one it
    reads, directly or through plain views: {schema, name, populated, qualified}. pg_restore would refresh them
    in its post-data section, but a --schema-only plus --data-only pair carries no refresh at all."""
    cur.execute("SELECT c.oid, n.nspname, c.relname, c.relispopulated, quote_ident(n.nspname) || '.' || "
                "quote_ident(c.relname) FROM pg_class c JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE c.relkind = 'm' AND n.nspname <> ALL(%s) "
                "AND n.nspname NOT LIKE 'pg\\_%%' ORDER BY 2, 3", (excluded,))
    views = {oid: {"schema": schema, "name": name, "populated": populated, "qualified": qualified}
             for oid, schema, name, populated, qualified in cur.fetchall()}
    # What each view and materialized view reads: the relations its rewrite rule depends on.
    cur.execute("SELECT DISTINCT r.ev_class, d.refobjid FROM pg_rewrite r JOIN pg_depend d "
                "ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid AND d.refclassid = 'pg_class'::regclass "
                "WHERE d.refobjid <> r.ev_class")
    reads: dict[int, set[int]] = {}
    for reader, read in cur.fetchall():
        reads.setdefault(reader, set()).add(read)

    def needs(oid: int) -> set[int]:
        found, seen, todo = set(), {oid}, list(reads.get(oid, ()))
        while todo:
            current = todo.pop()
            if current in seen:
                continue
            seen.add(current)
            if current in views:
                found.add(current)  # refreshed before; what it reads is its own dependency
            else:
                todo.extend(reads.get(current, ()))  # a plain view: look through it
        return found

    order = TopologicalSorter({oid: needs(oid) for oid in views}).static_order()
    return [views[oid] for oid in order]


def client_major(version: str) -> int:
    """The major version in a PostgreSQL tool's --version (``pg_dump (PostgreSQL) 17.2 (Debian ...)`` -> 17)."""
    found = re.search(r"\)\s+(\d+)", version)
    if not found:
        raise BackupError(f"cannot tell the PostgreSQL client's major version from {version!r}")
    return int(found.group(1))


def data_compression(major: int) -> tuple[str, str]:
    """(method recorded in the manifest, pg_dump --compress value) for the data dump, by client version:
    zstd at level 1 where pg_dump has it (16 and later), else gzip at level 1 (ADR 0014 has the
    measurements: the fastest of each client's methods but lz4, and the smallest output)."""
    if major >= 16:
        return "zstd", "zstd:1"
    return "gzip", "1"


def default_jobs() -> int:
    """Parallel pg_dump / pg_restore workers: one per CPU this process may use, and at least two (a
    worker waits on the server as often as it computes, so two overlap even on one CPU)."""
    return max(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def _upload_file(path: Path, sink: MultipartSink) -> dict[str, Any]:
    try:
        with path.open("rb") as source:
            for chunk in iter(lambda: source.read(1024 * 1024), b""):
                sink.write(chunk)
    except BaseException:
        sink.abort()
        raise
    return sink.close()


# How long a dump waits for a table lock before it fails (pg_dump --lock-wait-timeout, and lock_timeout on the
# connection that counts rows in the same snapshot).
LOCK_WAIT_SECONDS = 30


def run_backup(s3: Any, bucket: str, database_url: str, *, reason: str, signer: KmsSigner,
               now: datetime | None = None, tiers: tuple[Tier, ...] = DEFAULT_TIERS, timezone: str = "UTC",
               lock_mode: str = "GOVERNANCE", pg_bin: Path | None = None, part_size: int = PART_SIZE,
               clock: Callable[[], datetime] = lambda: datetime.now(UTC), jobs: int | None = None,
               work_dir: Path | None = None, upload_concurrency: int = 4,
               extra_artifacts: Mapping[str, bytes] | None = None, tier_name: str | None = None,
               lock_wait_seconds: int = LOCK_WAIT_SECONDS) -> Manifest:
    """Take one backup; returns its manifest (signed and uploaded last).

    The data is a directory-format dump (pg_dump -Fd -j ``jobs``) written under ``work_dir`` (default:
    the system temporary directory), then uploaded file by file; the small schema dumps stream to S3
    meanwhile, from the same exported snapshot. ``extra_artifacts``: objects written beside the dump
    and pinned by the same signed manifest (OPTIONAL_ARTIFACTS names them). ``tier_name`` files it
    under that tier whatever the day (a restore's pre-restore copy is daily, never kept for a year)."""
    conn_info = parse_database_url(database_url)
    started = now or clock()
    tier = {t.name: t for t in tiers}[tier_name] if tier_name else tier_for(started, tiers, timezone)
    retain_until = retain_until_for(started, tier.retention_days)
    lock = {"ObjectLockMode": lock_mode, "ObjectLockRetainUntilDate": retain_until}
    backup_id = f"{started.strftime('%Y%m%dT%H%M%SZ')}-{_slug(reason)}"
    prefix = f"dumps/{tier.name}/{backup_id}"
    tool = (lambda name: str(pg_bin / name)) if pg_bin else (lambda name: name)
    excluded = _data_excluded()
    pg_dump_version = _tool_version(tool("pg_dump"))
    method, compress = data_compression(client_major(pg_dump_version))
    jobs = jobs or default_jobs()
    artifacts: dict[str, dict[str, Any]] = {}

    def sink(name: str) -> MultipartSink:
        return MultipartSink(s3, bucket, f"{prefix}/{name}", lock=lock, part_size=part_size, if_none_match=True,
                             content_type="application/sql" if name.endswith(".sql") else "application/octet-stream")

    base = ["--dbname", conn_info.url_without_password, "--no-password"]
    internal_excludes = [f"--exclude-schema={s}" for s in INTERNAL_SCHEMAS if not s.startswith("pg_")
                         and s != "information_schema"]
    # Read before the dump's transaction takes its snapshot: every transaction that snapshot does not see
    # commits after this position, so a point-in-time restore reads the change log from here (ADR 0020).
    with _connect(conn_info, autocommit=True) as before:
        wal_lsn_before = str(before.execute("SELECT pg_current_wal_lsn()").fetchone()[0])
    # A bounded wait for every lock the dump takes: this connection's counts hold ACCESS SHARE on each table
    # while pg_dump, another session, asks for the same; a DDL queued between them (a migration, a partial
    # restore's cleanup) would otherwise wait on us while pg_dump waits on it, for ever, and hold the DDL's
    # whole application up with it. Past the bound the dump fails, loudly, and the DDL goes through.
    lock_wait = [f"--lock-wait-timeout={lock_wait_seconds}s"]
    with _connect(conn_info, options=f"-c lock_timeout={lock_wait_seconds}s") as conn, conn.cursor() as cur, \
            tempfile.TemporaryDirectory(dir=work_dir, prefix="tavari-backup-") as work:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        # pg_current_snapshot() here is the exported snapshot's: one REPEATABLE READ transaction, one snapshot.
        # clock_timestamp() is the server's clock after this transaction's snapshot was taken (its first
        # statement takes it): every transaction the snapshot sees committed before it, so the dump serves a
        # point in time at or after it — never the job's clock, read before the snapshot and cut to the second.
        cur.execute("SELECT pg_export_snapshot(), current_database(), current_setting('server_version'), "
                    "pg_current_snapshot()::text, clock_timestamp()")
        snapshot, database, server_version, xid_snapshot, snapshot_at = cur.fetchone()
        identity = source_identity(cur)
        cur.execute("SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s) ORDER BY 1", (list(DATA_KEPT_SCHEMAS),))
        internal = [row[0] for row in cur.fetchall()]
        # A plain PostgreSQL source has no auth or storage, and pg_dump refuses a --schema that matches
        # nothing: there, including pg_catalog and excluding it again writes an archive of no objects.
        only = [f"--schema={s}" for s in internal] or ["--schema=pg_catalog", "--exclude-schema=pg_catalog"]

        # The transaction stays open while pg_dump runs, so its snapshot stays importable.
        def schema_dumps() -> dict[str, dict[str, Any]]:
            return {
                "roles.sql": _stream_command(
                    [tool("pg_dumpall"), *base, "--roles-only", "--no-role-passwords"], conn_info.env,
                    sink("roles.sql"), transform=comment_reserved_roles),
                "schema.dump": _stream_command(
                    [tool("pg_dump"), *base, f"--snapshot={snapshot}", *lock_wait, "--format=custom", "--schema-only",
                     *internal_excludes], conn_info.env, sink("schema.dump")),
                "internal_schema.dump": _stream_command(
                    [tool("pg_dump"), *base, f"--snapshot={snapshot}", *lock_wait, "--format=custom", "--schema-only",
                     *only],
                    conn_info.env, sink("internal_schema.dump"))}

        def data_dump() -> dict[str, dict[str, Any]]:
            data_dir = Path(work) / DATA_DIR
            _run_dump([tool("pg_dump"), *base, f"--snapshot={snapshot}", *lock_wait, "--format=directory",
                       f"--jobs={jobs}",
                       f"--compress={compress}", "--data-only", "--file", str(data_dir),
                       *(f"--exclude-schema={s}" for s in excluded
                         if not s.startswith("pg_") and s != "information_schema")], conn_info.env)
            names = {f"{DATA_DIR}/{p.relative_to(data_dir).as_posix()}": p
                     for p in sorted(data_dir.rglob("*")) if p.is_file()}
            with ThreadPoolExecutor(upload_concurrency) as pool:
                uploads = {name: pool.submit(_upload_file, path, sink(name)) for name, path in names.items()}
                return {name: future.result() for name, future in uploads.items()}

        # The schema dumps (small, mostly waiting on the server) and the data dump run side by side,
        # and this connection counts every table's rows in the same snapshot meanwhile.
        with ThreadPoolExecutor(2) as beside:
            schema, data = beside.submit(schema_dumps), beside.submit(data_dump)
            tables, table_names = {}, {}
            for table, schema_name, name in _relations(cur, "rp", excluded):
                cur.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 - quote_ident'ed names from the catalog
                tables[table], table_names[table] = cur.fetchone()[0], [schema_name, name]
            matviews = list_matviews(cur, excluded)
            for view in matviews:
                if view["populated"]:
                    cur.execute(_sql().SQL("SELECT count(*) FROM {}").format(_identifier(view)))
                    view["rows"] = cur.fetchone()[0]
            artifacts.update(data.result())
            artifacts.update(schema.result())
        conn.rollback()
    for name, body in (extra_artifacts or {}).items():  # e.g. the Supabase project's configuration
        artifacts[name] = _put_extra(s3, bucket, f"{prefix}/{name}", name, body, lock)
    manifest = Manifest(
        backup_id=backup_id, reason=reason, tier=tier.name, database=database,
        started_at=started.isoformat(timespec="seconds"), finished_at=clock().isoformat(timespec="seconds"),
        server_version=server_version, pg_dump_version=pg_dump_version, snapshot=snapshot,
        data_schemas=sorted({schema for schema, _ in table_names.values()}), excluded_schemas=excluded,
        tables=tables, artifacts=dict(sorted(artifacts.items())),
        retain_until=retain_until.isoformat(timespec="seconds"), lock_mode=lock_mode, data_format="directory",
        data_compression=method, table_names=table_names, matviews=matviews, internal_schemas=internal,
        xid_snapshot=xid_snapshot, wal_lsn_before=wal_lsn_before,
        snapshot_at=snapshot_at.astimezone(UTC).isoformat(timespec="microseconds"), source_identity=identity,
        tool_version=__version__)
    payload = manifest.to_json().encode()
    s3sink.put_new(s3, bucket, f"{prefix}/{MANIFEST}", envelope(payload, signer.sign(payload), FORMAT),
                   error=BackupError, ContentType="application/json", ChecksumAlgorithm="SHA256", **lock)
    return manifest


def _run_dump(command: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise BackupError(f"{Path(command[0]).name} exited {done.returncode}: {done.stderr[-800:]}")


def _put_extra(s3: Any, bucket: str, key: str, name: str, body: bytes, lock: dict[str, Any]) -> dict[str, Any]:
    if name not in OPTIONAL_ARTIFACTS:  # a reader would call any other name tampering
        raise BackupError(f"{name} is not an artifact a backup may hold ({', '.join(OPTIONAL_ARTIFACTS)})")
    version = s3sink.put_new(s3, bucket, key, body, error=BackupError, ContentType="application/json",
                             ChecksumAlgorithm="SHA256", **lock)
    return {"key": key, "bytes": len(body), "sha256": hashlib.sha256(body).hexdigest(), "version_id": version}


# --------------------------------------------------------------------------- verify and restore


@dataclass
class VerifyResult:
    backup_id: str
    checks: list[tuple[str, bool, str]]
    table_counts: dict[str, tuple[int, int | None]] = field(default_factory=dict)  # table -> (manifest, found)
    duration_seconds: float = 0.0
    trust: str = ""
    findings: list[str] = field(default_factory=list)  # tampering found (the backup was read anyway, by name)
    timings: dict[str, float] = field(default_factory=dict)  # restore phase -> seconds (download, pre-data, ...)
    erased: dict[str, int] = field(default_factory=dict)  # table -> rows the erasure ledger removed (erasure)

    def mismatches(self) -> dict[str, tuple[int, int | None]]:
        """Tables whose restored count is not the manifest's less the rows the erasure ledger removed."""
        return {table: (expected, found) for table, (expected, found) in self.table_counts.items()
                if found != expected - self.erased.get(table, 0)}

    @property
    def ok(self) -> bool:
        return not self.findings and all(passed for _, passed, _ in self.checks) and not self.mismatches()

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
    required = manifest.required_artifacts()
    # One check per archive: a directory-format data/ is one archive of many files.
    archives = [(name, [name]) for name in required if not name.startswith(f"{DATA_DIR}/")]
    if manifest.data_format == "directory":
        archives.append((f"{DATA_DIR}/", [n for n in required if n.startswith(f"{DATA_DIR}/")]))
    with tempfile.TemporaryDirectory() as work:
        for label, names in archives:
            try:
                for name in names:
                    path = Path(work) / name
                    path.parent.mkdir(parents=True, exist_ok=True)
                    with path.open("wb") as out:
                        fetch_verified(s3, bucket, manifest, name, out)
            except BackupError as err:
                result.checks.append((f"{label} sha256", False, str(err)))
                continue
            detail = manifest.artifacts[names[0]]["sha256"][:16] if len(names) == 1 else f"{len(names)} files match"
            result.checks.append((f"{label} sha256", True, detail))
            if label.endswith((".dump", "/")):
                archive = Path(work) / label
                listed = subprocess.run([tool, "--list", str(archive)], capture_output=True, text=True)
                entries = [line for line in listed.stdout.splitlines() if line and not line.startswith(";")]
                # A source without auth and storage has nothing to put in internal_schema.dump.
                may_be_empty = label == "internal_schema.dump" and manifest.internal_schemas == []
                result.checks.append((f"{label} table of contents", listed.returncode == 0 and (
                    bool(entries) or may_be_empty), f"{len(entries)} entries" + (
                    " (the source has no auth or storage schema)" if may_be_empty else "")
                    if listed.returncode == 0 else listed.stderr[-300:]))
            shutil.rmtree(Path(work) / label) if label.endswith("/") else (Path(work) / label).unlink()
    result.duration_seconds = time.monotonic() - started
    return result


def user_tables(cur: Any) -> list[str]:
    """The target's tables outside Supabase's schemas, quote_ident-qualified."""
    return [qualified for qualified, _, _ in _relations(cur, "rp", list(INTERNAL_SCHEMAS))]


def _sql() -> Any:
    from psycopg import sql

    return sql


def _identifier(view: dict[str, Any]) -> Any:
    return _sql().Identifier(view["schema"], view["name"])


def platform_sql() -> str:
    """The roles and schemas a plain PostgreSQL target needs before a Supabase dump restores into it."""
    return (resources.files("tavari_dr.database") / "sql" / "supabase_platform.sql").read_text()


def detect_target(cur: Any) -> str:
    """'supabase' when the platform's schemas and roles are there, else 'plain'."""
    cur.execute("SELECT to_regclass('auth.users') IS NOT NULL AND to_regclass('storage.objects') IS NOT NULL "
                "AND EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'supabase_admin')")
    return "supabase" if cur.fetchone()[0] else "plain"


def free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


def check_free_space(manifest: Manifest, work_dir: Path) -> None:
    """Refuse up front, in one line, a backup whose artifacts cannot all be downloaded into ``work_dir``."""
    free = free_bytes(work_dir)
    if manifest.total_bytes > free:
        raise BackupError(f"backup {manifest.backup_id} is {_size(manifest.total_bytes)} and {work_dir} has "
                          f"{_size(free)} free: every artifact is downloaded and verified before the restore "
                          "starts; pass --work-dir on a volume with room")


def check_client_reads(manifest: Manifest, pg_restore: str) -> None:
    """Refuse up front, in one line, a backup this pg_restore cannot read: an archive of pg_dump N
    needs pg_restore N or later (pg_restore 15 stops at a 17 archive's header, "unsupported
    version (1.16)"; zstd and lz4 need 16 anyway)."""
    try:
        written_by = client_major(manifest.pg_dump_version)
    except BackupError:
        return  # a manifest without a readable version: pg_restore itself will say
    major = client_major(_tool_version(pg_restore))
    if major < written_by:
        raise BackupError(f"backup {manifest.backup_id} was written by pg_dump {written_by} "
                          f"({manifest.data_compression}), which pg_restore {major} cannot read: use the PostgreSQL "
                          f"{written_by} client or later (--pg-bin)")


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def download_verified(s3: Any, bucket: str, manifest: Manifest, work: Path, *, concurrency: int = 8) -> Path:
    """Every artifact the manifest requires into ``work`` (data/ as a directory), each checked against
    its pinned size and sha256; the first mismatch is raised once every download has stopped."""
    names = manifest.required_artifacts()

    def fetch(name: str) -> None:
        path = work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as out:
            fetch_verified(s3, bucket, manifest, name, out)

    with ThreadPoolExecutor(max(1, min(concurrency, len(names)))) as pool:
        futures = [pool.submit(fetch, name) for name in names]
        for future in futures:
            future.result()
    return work


@dataclass(frozen=True)
class RestoreStep:
    """One pg_restore run: a section of one archive, or the entries of it a list file names."""

    section: str  # pre-data, data or post-data
    archive: Path
    jobs: int
    use_list: Path | None = None  # pg_restore --use-list: only these entries, in this order
    what: str = ""

    def command(self, pg_restore: str, base: list[str]) -> list[str]:
        # The data archive's rows as --data-only, not --section=data: that also brings the large objects'
        # entries (created, then filled), which pg_dump files under pre-data.
        section = "--data-only" if self.section == "data" else f"--section={self.section}"
        return [pg_restore, *base, section, *([f"--jobs={self.jobs}"] if self.jobs > 1 else []),
                *([f"--use-list={self.use_list}"] if self.use_list else []), str(self.archive)]


TOC_TABLE_DATA = re.compile(r"^\d+; \d+ \d+ TABLE DATA (\S+) ")


def restore_steps(manifest: Manifest, work: Path, jobs: int, pg_restore: str = "pg_restore") -> list[RestoreStep]:
    """Tables first, then their rows, then what is built from the rows (indexes, primary keys,
    foreign keys, triggers): an index is built once over the loaded table instead of updated per
    row, and a foreign key is checked once. pg_restore -j needs an archive in a file or directory
    (never a pipe); the schema's pre-data is serial by nature (each object depends on the last).

    The rows of auth and storage go first and one table at a time, in the dump's order: their tables
    already have their foreign keys in the target (a Supabase project's own, or internal_schema.dump's),
    which parallel workers loading them in any order would trip over. The user tables get theirs in
    post-data, so their rows load in parallel."""
    data = work / DATA_DIR if manifest.data_format == "directory" else work / "data.dump"
    schema = work / "schema.dump"
    listed = subprocess.run([pg_restore, "--list", str(data)], capture_output=True, text=True)
    if listed.returncode != 0:
        raise BackupError(f"pg_restore --list {data.name} failed: {listed.stderr[-800:]}")
    entries = [line for line in listed.stdout.splitlines() if line and not line.startswith(";")]

    def platform(line: str) -> bool:
        found = TOC_TABLE_DATA.match(line)
        return bool(found) and found.group(1) in DATA_KEPT_SCHEMAS

    lists = {"platform": work / "platform-data.list", "user": work / "user-data.list"}
    lists["platform"].write_text("".join(f"{line}\n" for line in entries if platform(line)))
    lists["user"].write_text("".join(f"{line}\n" for line in entries if not platform(line)))
    return [RestoreStep("pre-data", schema, 1, what="tables, types, functions"),
            RestoreStep("data", data, 1, lists["platform"], "auth and storage rows, in the dump's order"),
            RestoreStep("data", data, jobs, lists["user"], "user rows"),
            RestoreStep("post-data", schema, jobs, what="indexes, constraints, triggers, policies")]


def restore(s3: Any, bucket: str, which: str, target_url: str, *, verifier: KmsVerifier | None,
            manifest_version: str | None = None, tiers: tuple[Tier, ...] = DEFAULT_TIERS, force: bool = False,
            pg_bin: Path | None = None, log: Callable[[str], None] = lambda _msg: None, jobs: int | None = None,
            work_dir: Path | None = None, before_write: Callable[[Manifest, list[str]], None] | None = None,
            only_missing_roles: bool = False,
            replay: Callable[[Manifest, Connection], Mapping[str, int]] | None = None,
            datasets: Sequence[Dataset] = DEFAULT_DATASETS) -> VerifyResult:
    """Verify (signature, recorded versions), download every artifact into ``work_dir`` (default: the
    system temporary directory) checking each sha256 — nothing is written to the target before all
    match — then restore roles, the schema's pre-data, the data and the schema's post-data in that
    order (pg_restore -j ``jobs``, default: default_jobs()), re-apply the erasure ledger
    (tavari_dr.database.erasure; ``result.erased``), refresh the materialized views the source had
    populated, in dependency order, then compare row counts with the manifest's less what the ledger
    removed. ``datasets``: the environment's account map (``config.data_export.datasets``) the ledger
    deletes by; every runtime caller passes it (tests/test_erasure_paths.py checks that it does). A
    tampered backup is refused (BackupTampered) unless the operator named the manifest
    version to trust; then its findings are in the result. ``result.timings`` has each phase's seconds.

    ``before_write(manifest, existing user tables)`` runs once the backup is opened and the target
    inspected, before anything is written to the target; it may raise to stop (tavari_dr.database.
    overwrite: confirm, take the pre-restore copy). ``only_missing_roles``: create the roles the
    cluster lacks and leave the others as they are (a scratch database on a live server).

    ``replay(manifest, target)``: runs once the dump is restored, before the erasure ledger and the
    views' refresh (a point-in-time restore's change log, tavari_dr.changes.replay); it returns the
    row counts the tables hold after it, which the restore then checks instead of the manifest's."""
    started = time.monotonic()
    opened = find_backup(s3, bucket, which, verifier=verifier, manifest_version=manifest_version, tiers=tiers)
    manifest = opened.manifest
    for finding in opened.findings:
        log(f"TAMPERING (reading the named manifest version's recorded versions anyway): {finding}")
    log(f"backup {manifest.backup_id}: {opened.trust}")
    root = Path(work_dir) if work_dir else Path(tempfile.gettempdir())
    check_free_space(manifest, root)
    check_client_reads(manifest, (str(pg_bin / "pg_restore") if pg_bin else "pg_restore"))
    jobs = jobs or default_jobs()
    target = parse_database_url(target_url)
    tool = (lambda name: str(pg_bin / name)) if pg_bin else (lambda name: name)
    result = VerifyResult(manifest.backup_id, [])
    _opened(result, opened)
    # A plain PostgreSQL source has no auth or storage: nothing of Supabase's to bring to a plain target.
    supabase_source = manifest.internal_schemas is None or bool(manifest.internal_schemas)
    with _connect(target, autocommit=True) as conn, conn.cursor() as cur:
        kind = detect_target(cur)
        existing = user_tables(cur)
        log(f"target: {'a Supabase project' if kind == 'supabase' else 'a plain PostgreSQL database'}")
        if existing and not force:
            raise BackupError(f"the target already holds {len(existing)} user table(s) (e.g. {existing[0]}); "
                              "restore into an empty database, or pass --force to replace them")
    if before_write is not None:
        before_write(manifest, existing)

    def timed(phase: str, action: Callable[[], Any]) -> None:
        begun = time.monotonic()
        action()
        result.timings[phase] = round(time.monotonic() - begun, 3)

    with tempfile.TemporaryDirectory(dir=root, prefix="tavari-restore-") as work:
        timed("download", lambda: download_verified(s3, bucket, manifest, Path(work)))
        result.checks.append(("sha256 of every artifact", True,
                              f"{len(manifest.required_artifacts())} artifacts match the manifest"))
        log(f"downloaded and verified {len(manifest.required_artifacts())} artifacts "
            f"({_size(manifest.total_bytes)}) in {result.timings['download']:.1f} s")
        paths = {name: Path(work) / name for name in SCHEMA_ARTIFACTS}
        begun = time.monotonic()
        with _connect(target, autocommit=True) as conn:
            if kind == "plain" and supabase_source:
                conn.execute(platform_sql())
            _apply_roles(conn, paths["roles.sql"].read_text(), only_missing=only_missing_roles)
        log("roles restored")
        base = ["--dbname", target.url_without_password, "--no-password", "--exit-on-error"]
        if kind == "plain" and supabase_source:
            _run_restore([tool("pg_restore"), *base, "--schema-only", str(paths["internal_schema.dump"])], target)
            log("auth and storage schemas restored (plain target)")
        # Everything the restore needs to know is read before --force drops anything: the archive's
        # list, and whether rows may load with triggers off.
        steps = restore_steps(manifest, Path(work), jobs, tool("pg_restore"))
        # Rows load with triggers off where the role may (session_replication_role = replica, as
        # Supabase's own restore guide loads its data): no trigger rewrites or duplicates them.
        replica = _may_set_replica_role(target)
        if force:
            _clear_for_restore(target, manifest, existing)
            log("--force: user schemas dropped and recreated, auth/storage rows truncated, large objects unlinked")
        result.timings["roles"] = round(time.monotonic() - begun, 3)  # and, on a plain target, the platform
        for step in steps:
            begun = time.monotonic()
            _run_restore(step.command(tool("pg_restore"), base), target,
                         options=REPLICA_ROLE if replica and step.section == "data" else None)
            seconds = time.monotonic() - begun
            result.timings[step.section] = round(result.timings.get(step.section, 0.0) + seconds, 3)
            log(f"{step.section} restored ({step.what}) from {step.archive.name}"
                f"{f' with pg_restore -j {step.jobs}' if step.jobs > 1 else ''} in {seconds:.1f} s")
        if not replica:
            log("this role may not set session_replication_role: the tables' triggers fired while their rows "
                "were loaded")
    expected: Mapping[str, int] = manifest.tables
    if replay is not None:
        begun = time.monotonic()
        expected = replay(manifest, target)
        result.timings["replay"] = round(time.monotonic() - begun, 3)
    # Erased accounts stay erased, before the views are refreshed so no view summarises their rows.
    result.erased = erasure.reapply(s3, bucket, lambda: _connect(target), datasets=datasets, log=log)
    begun = time.monotonic()
    views = _refresh_views(target, manifest, log)
    # pg_dump files a view's data under post-data: the refresh counts there (the cost model's phases)
    result.timings["post-data"] = round(result.timings.get("post-data", 0.0) + time.monotonic() - begun, 3)
    begun = time.monotonic()
    found = count_rows(target, list(expected), jobs)
    result.table_counts.update({table: (rows, found[table]) for table, rows in expected.items()})
    counted = [v for v in views if "rows" in v]
    if counted and replay is not None:
        # A view's count in the manifest is the dump's; the log records no view rows to compare after it.
        result.checks.append(("materialized view row counts", True, "not compared: refreshed after the change "
                              "log's replay, whose view rows no log records"))
        counted = []
    if counted and any(result.erased.values()):
        # A view's count in the manifest includes the erased accounts' rows; which of them it held is
        # not recorded, so there is nothing exact to compare it with.
        result.checks.append(("materialized view row counts", True, "not compared: the erasure ledger "
                              "removed rows the views may summarise (they were refreshed after it)"))
        counted = []
    if counted:
        with _connect(target) as conn, conn.cursor() as cur:
            for view in counted:
                cur.execute(_sql().SQL("SELECT count(*) FROM {}").format(_identifier(view)))
                result.table_counts[view["qualified"]] = (view["rows"], cur.fetchone()[0])
    result.timings["row counts"] = round(time.monotonic() - begun, 3)
    result.duration_seconds = time.monotonic() - started
    return result


def count_rows(target: Connection, tables: list[str], workers: int) -> dict[str, int]:
    """Every table's exact row count, on ``workers`` connections at once (each count is a full scan)."""
    pending: queue.SimpleQueue[str] = queue.SimpleQueue()
    for table in tables:
        pending.put(table)
    counts: dict[str, int] = {}

    def work() -> None:
        with _connect(target) as conn, conn.cursor() as cur:
            while True:
                try:
                    table = pending.get_nowait()
                except queue.Empty:
                    return
                cur.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 - names from our own manifest
                counts[table] = cur.fetchone()[0]

    with ThreadPoolExecutor(max(1, min(workers, len(tables)))) as pool:
        for future in [pool.submit(work) for _ in range(max(1, min(workers, len(tables))))]:
            future.result()
    return counts


def _refresh_views(target: Connection, manifest: Manifest, log: Callable[[str], None]) -> list[dict[str, Any]]:
    """Refresh the materialized views the source had populated, each after the views it reads (the
    manifest's order); one created WITH NO DATA stays so. Returns the views."""
    import psycopg

    sql = _sql()
    with _connect(target, autocommit=True) as conn, conn.cursor() as cur:
        views = manifest.matviews
        if views is None:  # a manifest from before: every view, in the target's dependency order
            views = [{**v, "populated": True} for v in list_matviews(cur, _data_excluded())]
        for view in views:
            if view["populated"]:
                try:
                    cur.execute(sql.SQL("REFRESH MATERIALIZED VIEW {}").format(_identifier(view)))
                except psycopg.Error as err:
                    raise BackupError(f"refreshing materialized view {view['qualified']} failed: "
                                      f"{str(err).strip()}") from err
    if views:
        filled = sum(1 for v in views if v["populated"])
        log(f"materialized views refreshed in dependency order: {filled}, left with no data as in the source: "
            f"{len(views) - filled}")
    return views


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


def target_user_schemas(cur: Any) -> set[str]:
    """The schemas the target's user tables are in, as the catalog names them."""
    return {schema for _, schema, _ in _relations(cur, "rp", list(INTERNAL_SCHEMAS))}


def force_clears(manifest: Manifest, there: set[str]) -> tuple[list[str], list[str]]:
    """What --force clears: the user schemas it drops (the backup's and ``there``, the target's) and the
    platform tables it truncates (the backup's auth/storage tables, as the manifest names them; those
    the target has are emptied)."""
    pairs = manifest.table_pairs()
    user = ({schema for schema, _ in pairs.values()} | set(manifest.data_schemas) | there) - set(INTERNAL_SCHEMAS)
    return sorted(user), [table for table, (schema, _) in pairs.items() if schema in DATA_KEPT_SCHEMAS]


def _clear_for_restore(target: Connection, manifest: Manifest, existing: list[str]) -> None:
    """--force: drop the user schemas (the dump recreates them whole), empty the platform's tables
    the dump refills and unlink every large object (pg_largeobject is the database's, in no schema:
    the dump recreates its own under the same OIDs, which a large object left behind would collide
    with). One transaction: a step that fails (a large object this role does not own) drops nothing.
    Not pg_restore --clean: that would also drop shared extensions other schemas depend on."""
    import psycopg
    from psycopg import sql

    del existing  # quoted names: the target's schemas are read again below, as the catalog names them
    pairs = manifest.table_pairs()
    try:
        with _connect(target) as conn, conn.transaction(), conn.cursor() as cur:
            _clear(conn, cur, sql, manifest, pairs)
    except psycopg.Error as err:
        raise BackupError(f"--force could not clear the target, so nothing was dropped: "
                          f"{str(err).strip().splitlines()[0]}") from None


def _clear(conn: Any, cur: Any, sql: Any, manifest: Manifest, pairs: dict[str, tuple[str, str]]) -> None:
    user, kept_tables = force_clears(manifest, target_user_schemas(cur))
    kept = [pairs[table] for table in kept_tables]
    for schema in sorted(user):
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        if schema != "public":  # pg_dump never creates public; every other schema is in the dump
            continue
        conn.execute("CREATE SCHEMA public")
    present = [sql.Identifier(*pair) for pair in kept if conn.execute(
        "SELECT to_regclass(%s)", (sql.Identifier(*pair).as_string(conn),)).fetchone()[0]]
    if present:
        conn.execute(sql.SQL("TRUNCATE {} CASCADE").format(sql.SQL(", ").join(present)))
    conn.execute("SELECT lo_unlink(oid) FROM pg_largeobject_metadata")


REPLICA_ROLE = "-c session_replication_role=replica"


def _may_set_replica_role(target: Connection) -> bool:
    """Whether the restoring role may load rows with triggers off (session_replication_role =
    replica, as Supabase's own restore guide loads its data file; a superuser may). Asked the way
    pg_restore will set it, as a connection option. A data-only restore otherwise fires every
    trigger again: a BEFORE INSERT trigger rewrites the rows it loads, one on auth.users inserts
    the profile rows the dump brings next."""
    import psycopg

    try:
        with _connect(target, options=REPLICA_ROLE) as conn:
            return conn.execute("SHOW session_replication_role").fetchone()[0] == "replica"
    except psycopg.OperationalError as err:  # FATAL at connection: permission denied to set parameter
        if "session_replication_role" not in str(err):
            raise BackupError(f"connecting to the target failed: {str(err).strip()}") from err
        return False


def _run_restore(command: list[str], target: Connection, options: str | None = None) -> None:
    env = target.env if options is None else {**target.env, "PGOPTIONS": options}
    if _major(_tool_version(command[0])) > _server_major(target):
        _restore_through_psql(command, env)
        return
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise BackupError(f"{' '.join(c for c in command[:1])} failed: {done.stderr[-1500:]}")


def _major(version: str) -> int:
    found = re.search(r"\) (\d+)", version)  # "pg_restore (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
    if not found:
        raise BackupError(f"cannot read a PostgreSQL version from {version!r}")
    return int(found.group(1))


def _server_major(target: Connection) -> int:
    with _connect(target) as conn:
        return int(conn.execute("SHOW server_version_num").fetchone()[0]) // 10000


# What pg_restore 17 sends first on every connection; a server before 17 rejects the setting.
_NEWER_SETTINGS = (b"SET transaction_timeout = 0;\n",)
_HEADER_LINES = 64  # pg_restore's fixed settings come before any object, in the first few lines


def _restore_through_psql(command: list[str], env: dict[str, str]) -> None:
    """Restore into an older major (the 17 client into a 15 server: a project not yet upgraded, the
    monthly test's scratch image): pg_restore's SQL, without the settings only newer servers know,
    run by psql with ON_ERROR_STOP (as --exit-on-error)."""
    url, script_args, skip = "", [], False
    for i, arg in enumerate(command[1:], 1):
        if skip:
            skip = False
        elif arg == "--dbname":
            url, skip = command[i + 1], True
        elif arg not in ("--no-password", "--exit-on-error") and not arg.startswith("--jobs="):
            script_args.append(arg)  # not -j: pg_restore writes a script serially
    psql = str(Path(command[0]).with_name("psql"))
    with tempfile.TemporaryFile() as restore_err, tempfile.TemporaryFile() as psql_err:
        producer = subprocess.Popen([command[0], "--file=-", *script_args], stdout=subprocess.PIPE,
                                    stderr=restore_err, env=env)
        consumer = subprocess.Popen([psql, "-X", "-q", "--no-password", "-v", "ON_ERROR_STOP=1", "--dbname", url],
                                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=psql_err, env=env)
        assert producer.stdout is not None and consumer.stdin is not None
        try:
            for _ in range(_HEADER_LINES):
                line = producer.stdout.readline()
                if not line:
                    break
                if line not in _NEWER_SETTINGS:
                    consumer.stdin.write(line)
            for chunk in iter(lambda: producer.stdout.read(1024 * 1024), b""):  # type: ignore[union-attr]
                consumer.stdin.write(chunk)
            consumer.stdin.close()
        except BrokenPipeError:
            pass  # psql stopped on an error: its stderr says which
        finally:
            consumed = consumer.wait()
            if consumed != 0:
                producer.kill()  # psql stopped first: its error is the cause
            produced = producer.wait()
        for name, code, err in ((psql, consumed, psql_err), (command[0], produced, restore_err)):
            if code != 0:
                err.seek(0)
                raise BackupError(f"{name} failed: {err.read().decode(errors='replace')[-1500:]}")
