"""A local AWS emulator (moto server) on a free loopback port, stopped whatever happens."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MotoServer:
    """``with MotoServer(log) as server: server.url`` — the request log goes to ``log``."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self._handle: IO[str] | None = None

    def start(self) -> MotoServer:
        self._handle = self.log.open("w")
        self.process = subprocess.Popen(
            # moto's server, holding conditional bucket-policy Denies it cannot evaluate (see that module).
            [sys.executable, "-m", "tavari_dr.drill.moto_server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self._handle, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto server exited at start; see {self.log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"moto server did not start within 30 s; see {self.log}")

    def log_size(self) -> int:
        assert self._handle is not None
        self._handle.flush()
        return len(self.log.read_text())

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._handle is not None:
            self._handle.close()

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
