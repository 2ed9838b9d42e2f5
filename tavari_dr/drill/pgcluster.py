"""A throwaway PostgreSQL cluster on loopback, for tests, benchmarks and the local drill.

Runs the server binaries of this machine (PostgreSQL 15 on Debian: /usr/lib/postgresql/<v>/bin).
initdb and pg_ctl refuse to run as root, so as root they run as the ``postgres`` user.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tavari_dr.drill.emulator import free_port


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries here; the message says how to install them."""


def server_bin_dir() -> Path:
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    raise PostgresUnavailable("no PostgreSQL server binaries (initdb, pg_ctl); install them, e.g. "
                              "apt-get install postgresql")


class LocalPostgres:
    """``with LocalPostgres() as pg: pg.url("postgres")`` — stopped and removed on exit, whatever happens."""

    def __init__(self, *, port: int | None = None, settings: dict[str, str] | None = None) -> None:
        self.bin = server_bin_dir()
        self.port = port or free_port()
        self.settings = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
                         "max_connections": "50", **(settings or {})}
        self.root = Path(tempfile.mkdtemp(prefix="tavari-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        self._as_postgres = os.geteuid() == 0

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
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
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

    def url(self, database: str = "postgres", user: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def server_version(self) -> str:
        import psycopg

        with psycopg.connect(self.url()) as conn:
            return str(conn.execute("SHOW server_version").fetchone()[0])

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
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
