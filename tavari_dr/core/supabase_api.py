"""The Supabase Management API client every capability shares: Bearer auth, JSON in and out, retried by
urllib3's Retry (429 honouring Retry-After or, failing that, Supabase's X-RateLimit-Reset; 5xx, timeouts
and connection errors with exponential backoff). The daily monitor reads the project's backups through it
(tavari_dr.verification.checks) and the nightly job its configuration
(tavari_dr.configbackup.supabase_config), which `tavari-dr supabase restore-config` writes back.

The calls and bodies follow the API's OpenAPI document, which the tests' fake server enforces
(tests/data/supabase_management_api/SOURCE.md)."""

from __future__ import annotations

import json
import time
from typing import Any

# urllib3 ships with botocore (the Lambda runtime's and the CLI's): its Retry is the client's policy.
import urllib3
from urllib3.util import Retry

MAX_WAIT_SECONDS = 60.0  # the longest a rate limit may hold one call (the daily check runs in a Lambda)


class SupabaseApiError(OSError):
    """The Management API did not give a usable answer."""


class _SupabaseRetry(Retry):
    """urllib3's Retry reading the wait of a 429 from Retry-After or, when the API sends only its own
    header, X-RateLimit-Reset (seconds until the window resets, or — if large — the reset time as a Unix
    timestamp); every wait capped at MAX_WAIT_SECONDS."""

    def get_retry_after(self, response: Any) -> float | None:
        after = super().get_retry_after(response)
        reset = (response.headers.get("X-RateLimit-Reset") or "").strip()
        if after is None and response.status == 429 and reset.isdigit():
            value = float(reset)
            after = max(0.0, value - time.time()) if value > 10**9 else value
        return None if after is None else min(after, MAX_WAIT_SECONDS)


# One pool per process: a warm Lambda reuses the TLS connection to the API.
_HTTP = urllib3.PoolManager()


def supabase_retry(attempts: int = 4) -> Retry:
    """Up to ``attempts`` tries of any call: 429, 5xx, timeouts and connection errors are retried (urllib3:
    no wait before the first retry, then 2 s, 4 s ...; a 429 waits as its headers say). A write is retried
    too: every update this tool sends sets values (PUT, or a PATCH/POST of the full values wanted), so a
    second delivery of one the API did take changes nothing."""
    return _SupabaseRetry(total=attempts - 1, backoff_factor=1.0, backoff_max=MAX_WAIT_SECONDS,
                          status_forcelist=(429, *range(500, 600)), allowed_methods=None,
                          respect_retry_after_header=True, raise_on_status=False, redirect=0)


def supabase_request(method: str, url: str, token: str, body: Any = None, *, timeout: float = 10.0,
                     attempts: int = 4) -> Any:
    """One Management API call: ``body`` (if any) sent as JSON; the answer's JSON (None for an empty
    body)."""
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    try:
        response = _HTTP.request(method, url, body=data, headers=headers, timeout=timeout,
                                 retries=supabase_retry(attempts), preload_content=True)
    except urllib3.exceptions.MaxRetryError as err:
        reason = err.reason
        raise SupabaseApiError(f"gave up on {method} {url} after {attempts} attempts: "
                               f"{type(reason).__name__}: {reason}") from None
    except urllib3.exceptions.HTTPError as err:
        raise SupabaseApiError(f"{method} {url}: {type(err).__name__}: {err}") from None
    status = response.status
    if status in (401, 403):
        raise SupabaseApiError(f"HTTP {status}: the Management API token was refused (SUPABASE_ACCESS_TOKEN)")
    if status == 429 or status >= 500:
        raise SupabaseApiError(f"gave up on {method} {url} after {attempts} attempts: HTTP {status}")
    if status >= 300:
        detail = response.data[:200].decode(errors="replace")
        raise SupabaseApiError(f"HTTP {status} from {method} {url}: {detail}")
    raw = response.data
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise SupabaseApiError(f"malformed JSON from {url}: {raw[:120]!r}") from None


def supabase_get(url: str, token: str, *, timeout: float = 10.0, attempts: int = 4) -> Any:
    """GET a Management API resource."""
    return supabase_request("GET", url, token, timeout=timeout, attempts=attempts)


def project_ref_from_url(supabase_url: str) -> str:
    """https://abcd.supabase.co -> abcd"""
    host = supabase_url.split("://", 1)[-1].split("/", 1)[0]
    if not host.endswith(".supabase.co"):
        raise ValueError(f"SUPABASE_URL {supabase_url!r} is not https://<ref>.supabase.co")
    return host.split(".", 1)[0]
