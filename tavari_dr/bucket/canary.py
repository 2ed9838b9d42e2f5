"""The inventory canary (ADR 0022, docs/formats/inventory-and-feed.md): a quiet bucket must still feed.

Each run writes one small object under ``_canary/`` of the invoice bucket, so the change feed carries a
record at least every ``inventory.canary_minutes`` and its silence means breakage, not a quiet day;
then it reads the newest S3 Inventory manifest of the invoice bucket in the restore-ops bucket and
publishes its age (``InventoryAgeHours``), which the inventory-late alarm judges.

The canary's key holds a space and a plus (``probe a+b``): its feed records show whether EventBridge
delivers keys form-encoded (``probe+a%2Bb``) or raw, which the planner checks before decoding keys.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tavari_dr.core import metrics
from tavari_dr.core.outputs import CANARY_KEY_PREFIX
from tavari_dr.core.s3sink import put_new

log = logging.getLogger("tavari.bucket")

CANARY_NAME = "probe a+b"
# S3 documents that the first report of a new inventory configuration may take up to 48 hours.
FIRST_REPORT_HOURS = 48
# A report's folder: <prefix><YYYY-MM-DDTHH-MMZ>/ (S3's documented inventory layout).
_REPORT_FOLDER = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}Z/$")


class InventoryError(Exception):
    """The inventory cannot be judged (an unreadable or malformed manifest): the run fails loudly."""


@dataclass(frozen=True)
class CanaryRun:
    canary_key: str
    version_id: str | None
    inventory_age_hours: float
    newest_manifest: str | None


def canary_key(now: datetime) -> str:
    return f"{CANARY_KEY_PREFIX}{now.astimezone(UTC):%Y-%m-%dT%H-%M-%SZ}/{CANARY_NAME}"


def write_canary(s3: Any, bucket: str, now: datetime) -> tuple[str, str | None]:
    """One new canary object (never an overwrite: If-None-Match); returns its key and version ID."""
    key = canary_key(now)
    body = json.dumps({"written_at": now.astimezone(UTC).isoformat()}).encode()
    return key, put_new(s3, bucket, key, body, ContentType="application/json")


def newest_manifest(s3: Any, bucket: str, prefix: str) -> tuple[str, datetime] | None:
    """The newest report's manifest.json under ``prefix`` (``inventory/<source>/<config id>/``) and its
    creationTimestamp, or None before the first report. A folder without its manifest yet (S3 writes
    the manifest last) is skipped for the one before it."""
    folders: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
        folders += [p["Prefix"] for p in page.get("CommonPrefixes", [])
                    if _REPORT_FOLDER.match(p["Prefix"][len(prefix):])]
    for folder in sorted(folders, reverse=True):  # the folder names sort as their times do
        key = f"{folder}manifest.json"
        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except s3.exceptions.NoSuchKey:
            continue
        try:
            created_ms = int(json.loads(body)["creationTimestamp"])
        except (ValueError, KeyError, TypeError) as err:
            raise InventoryError(f"s3://{bucket}/{key}: no readable creationTimestamp ({type(err).__name__})") \
                from err
        return key, datetime.fromtimestamp(created_ms / 1000, UTC)
    return None


def feed_started(s3: Any, bucket: str, feed_prefix: str) -> datetime | None:
    """When the oldest feed object still kept was written (feed keys sort by day, then by time)."""
    found = s3.list_objects_v2(Bucket=bucket, Prefix=feed_prefix, MaxKeys=1).get("Contents", [])
    return found[0]["LastModified"] if found else None


def inventory_age_hours(s3: Any, bucket: str, inventory_prefix: str, feed_prefix: str,
                        now: datetime) -> tuple[float, str | None]:
    """Hours since the newest report's creationTimestamp; before the first report, hours since the feed
    started less S3's 48 h first-delivery allowance (never below 0); 0 when neither exists yet (a new
    deployment: the feed-silence alarm, not this one, says when the feed never starts)."""
    newest = newest_manifest(s3, bucket, inventory_prefix)
    if newest is not None:
        key, created = newest
        return max(0.0, (now - created).total_seconds() / 3600), key
    started = feed_started(s3, bucket, feed_prefix)
    if started is None:
        log.warning("inventory_not_started", extra={"bucket": bucket})
        return 0.0, None
    return max(0.0, (now - started).total_seconds() / 3600 - FIRST_REPORT_HOURS), None


def run_canary(s3: Any, *, invoice_bucket: str, ops_bucket: str, inventory_prefix: str, feed_prefix: str,
               now: datetime, emit: metrics.Emit = metrics.publish) -> CanaryRun:
    """Write the canary, then judge the inventory; the canary is written even when the inventory cannot
    be read (that run then fails: an error, not a silent metric gap)."""
    key, version = write_canary(s3, invoice_bucket, now)
    age, manifest = inventory_age_hours(s3, ops_bucket, inventory_prefix, feed_prefix, now)
    metrics.publish_outcome(metrics.INVENTORY_CANARY, measurements=[({metrics.INVENTORY_AGE_HOURS: age}, None)],
                            emit=emit)
    log.info("canary_written", extra={"inventory_age_hours": round(age, 2), "manifest_found": manifest is not None})
    return CanaryRun(key, version, age, manifest)
