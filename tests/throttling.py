"""S3 answering the way it does under load, at the wire: a botocore ``before-send`` handler that
answers chosen attempts with a real HTTP error response (503 SlowDown, 500 InternalError) before
the request reaches moto, so the client's own retry policy (tavari_dr.core.aws.RETRIES) sees what
it would see from S3 and decides, backs off and retries by itself."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from botocore.awsrequest import AWSResponse

SLOWDOWN = (503, "SlowDown", "Please reduce your request rate.")
INTERNAL_ERROR = (500, "InternalError", "We encountered an internal error. Please try again.")


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any):
        yield self._body


class Throttle:
    """Fails the first ``failures`` attempts of each ``operation`` call (told apart by ``call_key``,
    by default the request URL: bucket, key and version) with ``error``; counts every attempt."""

    def __init__(self, client: Any, operation: str, *, failures: int, error: tuple[int, str, str] = SLOWDOWN,
                 call_key: Callable[[Any], str] | None = None) -> None:
        self.failures, self.error = failures, error
        self.call_key = call_key or (lambda request: request.url)
        self.attempts: dict[str, int] = {}
        self.failed = 0
        self._lock = threading.Lock()
        # First: moto's in-process stub answers before-send too, and the first answer wins.
        client.meta.events.register_first(f"before-send.s3.{operation}", self._before_send)

    def _before_send(self, request: Any, **_: Any) -> AWSResponse | None:
        key = self.call_key(request)
        with self._lock:
            seen = self.attempts[key] = self.attempts.get(key, 0) + 1
            if seen > self.failures:
                return None
            self.failed += 1
        status, code, message = self.error
        body = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{message}</Message>'
                f"<RequestId>THROTTLED</RequestId></Error>").encode()
        answer = AWSResponse(request.url, status, {"Content-Type": "application/xml",
                                                   "Content-Length": str(len(body))}, _Raw(body))
        # botocore calls every before-send handler and keeps the first answer: moto's stub, called after this
        # one, would still carry the refused request out (a copy written twice, a delete marker put twice,
        # which moto 5.2's If-Match on DeleteObject then answers NoSuchKey on the retry). An address no moto
        # backend serves keeps the refused attempt from reaching it; botocore builds the next attempt anew.
        request.url = "https://throttled.invalid/"
        return answer


class RecordedSleeps:
    """Stands for the ``time`` module inside one library module: ``sleep`` records the wait instead of
    sleeping; everything else is the real module (patching ``time.sleep`` itself would stop every
    sleep of the process, a scripted server's delays too)."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def record_sleeps(monkeypatch: Any, module: Any) -> list[float]:
    recorded = RecordedSleeps()
    monkeypatch.setattr(module, "time", recorded)
    return recorded.waits
