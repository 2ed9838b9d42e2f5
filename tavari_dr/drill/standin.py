"""Local stand-ins for what the drill cannot reach offline, speaking the documented shapes.

- the Supabase Management API backup endpoint (``GET /v1/projects/{ref}/database/backups``,
  Bearer token), reporting the daily backup Supabase itself takes;
- the application's health endpoints: each answers 200 only while the application can query
  its database — the database named by the configuration the app was last (re)started with —
  so "update environment variables, restart services, verify health endpoints" is real.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlparse


class StandIn:
    def __init__(self, *, project_ref: str, token: str, pitr_enabled: bool, health_paths: list[str],
                 database_check: Callable[[], bool]) -> None:
        self.project_ref, self.token, self.pitr_enabled = project_ref, token, pitr_enabled
        self.health_paths = set(health_paths)
        self.database_check = database_check
        self.last_supabase_backup = datetime.now(UTC) - timedelta(hours=2)
        self.requests: list[str] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                stand_in.requests.append(self.path)
                status, body = stand_in.answer(self.path, self.headers.get("Authorization", ""))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, path: str, authorization: str) -> tuple[int, Any]:
        if path == f"/v1/projects/{self.project_ref}/database/backups":
            if authorization != f"Bearer {self.token}":
                return 401, {"message": "Unauthorized"}
            when = self.last_supabase_backup
            body: dict[str, Any] = {"region": "eu-west-1", "walg_enabled": True, "pitr_enabled": self.pitr_enabled,
                                    "backups": [{"is_physical_backup": True, "id": 1, "status": "COMPLETED",
                                                 "inserted_at": when.isoformat().replace("+00:00", "Z")}]}
            if self.pitr_enabled:
                body["physical_backup_data"] = {"earliest_physical_backup_date_unix": int(when.timestamp()) - 86400,
                                                "latest_physical_backup_date_unix": int(when.timestamp())}
            return 200, body
        if path in self.health_paths:
            try:
                healthy, why = self.database_check(), "no rows in public.businesses"
            except Exception as err:  # the app's database does not answer: say how, as a health page would
                healthy, why = False, f"{type(err).__name__}: {str(err).strip()[:200]}"
            return (200, {"status": "ok"}) if healthy else (503, {"status": "database unavailable", "reason": why})
        return 404, {"message": "not found"}

    def local_url(self, endpoint: str) -> str:
        """https://app.tavari.example/api/health -> this server, path /app.tavari.example/api/health"""
        parsed = urlparse(endpoint)
        return f"{self.url}/{parsed.netloc}{parsed.path}"

    def __enter__(self) -> StandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def health_path(endpoint: str) -> str:
    parsed = urlparse(endpoint)
    return f"/{parsed.netloc}{parsed.path}"
