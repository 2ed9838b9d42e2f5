"""The dead man's switch outside AWS: the daily monitor pings a heartbeat URL (healthchecks.io style:
a GET to the check's URL) only when every check passed, so that silence — a lost account, a broken
schedule, a failed check, a dead alert path — is what alerts, from a service AWS cannot take down with
it (ADR 0025).

Only a success is ever sent: no ``/fail`` ping, so the one thing that keeps the outside service quiet is a
run in which everything passed (a failure is already an alarm inside AWS, and not every service speaks
``/fail``). A ping that cannot be delivered is the HeartbeatPingFailed metric (alarmed): the outside
service will also alert when its grace period ends.
"""

from __future__ import annotations

import logging
import urllib.parse

import urllib3
from urllib3.util import Retry

log = logging.getLogger("tavari.verification")

# One pool per container, as the alert router's.
_HTTP = urllib3.PoolManager()


class HeartbeatError(RuntimeError):
    pass


def ping(url: str, *, timeout: float = 10.0, attempts: int = 3, backoff: float = 1.0) -> int:
    """GET ``url``; connection errors, timeouts, 429 and 5xx are retried (urllib3's Retry); return the status."""
    where = urllib.parse.urlsplit(url).netloc  # never the path: it carries the check's token
    retry = Retry(total=attempts - 1, backoff_factor=backoff, backoff_max=30, status_forcelist=(429, *range(500, 600)),
                  allowed_methods=frozenset({"GET"}), respect_retry_after_header=True, raise_on_status=False,
                  redirect=2)
    try:
        response = _HTTP.request("GET", url, timeout=timeout, retries=retry, preload_content=True,
                                 headers={"User-Agent": "tavari-dr daily_monitor"})
    except urllib3.exceptions.HTTPError as err:
        reason = getattr(err, "reason", None) or err
        raise HeartbeatError(f"heartbeat to {where}: {type(reason).__name__} after {attempts} attempts") from None
    if response.status >= 300:
        raise HeartbeatError(f"heartbeat to {where}: HTTP {response.status}")
    return response.status
