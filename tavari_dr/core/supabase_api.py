"""The Supabase Management API client every capability shares: Bearer auth, JSON in and out, a 429
honouring X-RateLimit-Reset, 5xx and network errors retried. The daily monitor reads the project's
backups through it (tavari_dr.verification.checks) and the nightly job its configuration
(tavari_dr.configbackup.supabase_config), which `tavari-dr supabase restore-config` writes back."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any


class SupabaseApiError(OSError):
    """The Management API did not give a usable answer."""


def supabase_request(method: str, url: str, token: str, body: Any = None, *, timeout: float = 10.0,
                     attempts: int = 4, sleep: Callable[[float], None] = time.sleep,
                     clock: Callable[[], float] = time.time) -> Any:
    """One Management API call: ``body`` (if any) sent as JSON; the answer's JSON (None for an empty
    body). Only a 429, a 5xx or a network error is retried: a write is retried only where the API
    said it did not take it (5xx responses are not committed changes by the API's contract)."""
    last = ""
    data = json.dumps(body).encode() if body is not None else None
    for attempt in range(1, attempts + 1):
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - https API URL
                raw = response.read()
            if not raw.strip():
                return None
            try:
                return json.loads(raw)
            except ValueError:
                raise SupabaseApiError(f"malformed JSON from {url}: {raw[:120]!r}") from None
        except urllib.error.HTTPError as err:
            if err.code in (401, 403):
                raise SupabaseApiError(f"HTTP {err.code}: the Management API token was refused "
                                       "(SUPABASE_ACCESS_TOKEN)") from None
            if err.code != 429 and err.code < 500:
                detail = err.read()[:200].decode(errors="replace")
                raise SupabaseApiError(f"HTTP {err.code} from {method} {url}: {detail}") from None
            last = f"HTTP {err.code}"
            wait = 2.0 ** attempt
            reset = err.headers.get("X-RateLimit-Reset")
            if err.code == 429 and reset and reset.strip().isdigit():
                value = float(reset)
                # Seconds until the window resets, or (if large) the reset time as a Unix timestamp.
                wait = max(0.0, value - clock()) if value > 10**9 else value
            if attempt < attempts:
                sleep(min(wait, 60.0))
        except (urllib.error.URLError, TimeoutError) as err:
            last = f"{type(err).__name__}: {getattr(err, 'reason', err)}"
            if attempt < attempts:
                sleep(2.0 ** attempt)
    raise SupabaseApiError(f"gave up on {method} {url} after {attempts} attempts: {last}")


def supabase_get(url: str, token: str, *, timeout: float = 10.0, attempts: int = 4,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time) -> Any:
    """GET a Management API resource."""
    return supabase_request("GET", url, token, timeout=timeout, attempts=attempts, sleep=sleep, clock=clock)


def project_ref_from_url(supabase_url: str) -> str:
    """https://abcd.supabase.co -> abcd"""
    host = supabase_url.split("://", 1)[-1].split("/", 1)[0]
    if not host.endswith(".supabase.co"):
        raise ValueError(f"SUPABASE_URL {supabase_url!r} is not https://<ref>.supabase.co")
    return host.split(".", 1)[0]
