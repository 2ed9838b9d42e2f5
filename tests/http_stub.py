"""A loopback HTTP server that answers from a script, for webhook and API tests."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class ScriptedServer:
    """Answers each request with the next (status, headers, body, delay) of ``script`` (200 with an
    empty body once it runs out) and records every request as {method, path, headers, body}."""

    def __init__(self, script: list[tuple[int, dict[str, str], Any, float]], *, path: str = "") -> None:
        self.script = list(script)
        self.requests: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body: Any = json.loads(raw) if raw else None
                except ValueError:
                    body = raw
                outer.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                       "body": body, "at": time.monotonic()})
                status, headers, payload, delay = outer.script.pop(0) if outer.script else (200, {}, b"", 0)
                if delay:
                    time.sleep(delay)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload if isinstance(payload, bytes) else json.dumps(payload).encode())

            do_GET = do_POST = do_PATCH = do_PUT = _answer  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}{path}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class RoutedServer(ScriptedServer):
    """Answers each request with ``route(method, path, body) -> (status, payload)`` instead of a script: a
    stand-in for an API whose answers depend on what was written before (records requests the same way).
    With ``with_headers`` the route is called ``route(method, path, body, headers)``; a bytes payload is
    sent as it is (b"" for an answer without a body)."""

    def __init__(self, route, *, path: str = "", with_headers: bool = False) -> None:
        super().__init__([], path=path)
        outer = self

        def answer(handler: BaseHTTPRequestHandler) -> None:
            length = int(handler.headers.get("Content-Length") or 0)
            raw = handler.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            outer.requests.append({"method": handler.command, "path": handler.path, "headers": dict(handler.headers),
                                   "body": body, "at": time.monotonic()})
            extra = (dict(handler.headers),) if with_headers else ()
            status, payload = route(handler.command, handler.path, body, *extra)
            handler.send_response(status)
            handler.end_headers()
            handler.wfile.write(payload if isinstance(payload, bytes) else json.dumps(payload).encode())

        handler_class = self.server.RequestHandlerClass
        for verb in ("GET", "POST", "PATCH", "PUT", "DELETE"):
            setattr(handler_class, f"do_{verb}", answer)


def server_factory(build):
    """For a pytest fixture: ``yield from server_factory(build)`` hands tests ``make(*script)`` and
    closes every server made, whatever the test did."""
    made = []

    def make(*script):
        server = build(*script)
        made.append(server)
        return server

    try:
        yield make
    finally:
        for server in made:
            server.close()
