"""What a handler test needs of Lambda: a context as the runtime passes one, and the JSON lines the
handler's Powertools logger writes (tavari_dr.core.observability), captured and parsed."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

from tavari_dr.core import observability


@dataclass
class FakeContext:
    function_name: str = "tavari-test-function"
    aws_request_id: str = "req-1"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:tavari-test-function"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 30000


class JsonLogs:
    """The structured log lines written while it is installed (the logger's stream swapped for a buffer)."""

    def __init__(self) -> None:
        self.buffer = io.StringIO()

    @property
    def text(self) -> str:
        return self.buffer.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines() if line.strip()]

    def events(self) -> list[Any]:
        return [line["message"] for line in self.lines()]


def capture_json_logs(monkeypatch: Any) -> JsonLogs:
    logs = JsonLogs()
    observability.cli_logging("json")  # the Lambda's configuration: INFO, the Powertools handler
    monkeypatch.setattr(observability._JSON_HANDLER, "stream", logs.buffer)
    return logs
