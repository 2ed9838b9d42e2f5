"""Evidence: every verification run leaves a JSON report at ``reports/<check>/<date>.json``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any


def report_key(check: str, when: datetime) -> str:
    return f"reports/{check}/{when.astimezone(UTC).strftime('%Y-%m-%d')}.json"


def write_report(s3: Any, bucket: str, check: str, body: dict[str, Any], *, now: datetime | None = None) -> str:
    """Write (or, for a second run the same day, overwrite as a new version) one check's report."""
    when = now or datetime.now(UTC)
    key = report_key(check, when)
    document = {"check": check, "at": when.isoformat(timespec="seconds"), **body}
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(document, indent=1, sort_keys=True, default=str).encode(),
                  ContentType="application/json")
    return key
