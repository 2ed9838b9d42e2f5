"""The account export API behind ``GET /api/account/export`` (API Gateway HTTP API).

Two Lambdas share this module, behind the authorizer (tavari_dr.export.authorizer), which
verifies the Supabase access token and hands the user's ``sub`` to the route in the authorizer
context — the only place the user comes from:

- the **API** claims the user's limits, then exports small accounts at once (200 + presigned
  URL) and hands large ones to the worker (202 + status URL); ``GET .../export/{id}`` reports
  the status and, when ready, a fresh presigned URL;
- the **worker** runs a large export in the background.

Per-user limits (one export in flight, ``exports_per_day`` per UTC day) are one DynamoDB
transaction of conditional writes, because HTTP APIs have no per-client throttling. Logs carry
the user ID, export ID, counts and timings — never tokens, row contents or email addresses.
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.config import Config

from tavari_dr.core.config import DEFAULT_DATASETS, Dataset
from tavari_dr.core.metrics import EXPORT_FAILED, EXPORT_REFUSED, EXPORT_SUCCEEDED, publish
from tavari_dr.export.account import count_rows, export_account

log = logging.getLogger("tavari.export")
# A worker that dies leaves its lock behind; the lock lapses after the longest an export may run.
LOCK_SECONDS = 16 * 60
# Presigned URLs must be SigV4: KMS-encrypted objects refuse anything else.
S3_CONFIG = Config(signature_version="s3v4")
STATUS_PATH = "/api/account/export/{export_id}"


@dataclass(frozen=True)
class ExportSettings:
    """What the API and worker Lambdas are told by CDK (environment TAVARI_EXPORT, JSON)."""

    table: str
    bucket: str
    database_url_secret: str
    exports_per_day: int = 3
    sync_row_limit: int = 20000
    url_expiry_seconds: int = 900
    retention_days: int = 7
    invoice_bucket: str | None = None  # set when PDFs go into the ZIP
    worker: str | None = None
    datasets: tuple[Dataset, ...] = DEFAULT_DATASETS

    @classmethod
    def from_json(cls, text: str) -> ExportSettings:
        raw = json.loads(text)
        datasets = raw.get("datasets")
        raw["datasets"] = tuple(Dataset(**d) for d in datasets) if datasets else DEFAULT_DATASETS
        return cls(**raw)


@dataclass
class Clients:
    dynamodb: Any
    s3: Any
    secretsmanager: Any
    dispatch: Callable[[dict[str, Any]], None] | None = None  # hands a job to the worker
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


class LimitReached(Exception):
    def __init__(self, reason: str, retry_after: int) -> None:
        super().__init__(reason)
        self.reason, self.retry_after = reason, retry_after


# --------------------------------------------------------------------------- the user


def user_of(event: dict[str, Any]) -> str | None:
    """The user the authorizer vouched for. Query string, path and body are never consulted."""
    context = ((event.get("requestContext") or {}).get("authorizer") or {}).get("lambda") or {}
    sub = context.get("sub")
    try:
        return str(uuid.UUID(str(sub))) if sub else None
    except ValueError:
        return None


# --------------------------------------------------------------------------- limits and jobs


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def claim(clients: Clients, settings: ExportSettings, user_id: str, export_id: str) -> None:
    """Take the user's in-flight lock, count today's export and record the job — all or nothing."""
    now = clients.clock()
    day = now.strftime("%Y-%m-%d")
    items = [
        {"Put": {"TableName": settings.table,
                 "Item": {"pk": {"S": user_id}, "sk": {"S": "lock"}, "export_id": {"S": export_id},
                          "expires_at": {"N": str(_epoch(now) + LOCK_SECONDS)}},
                 "ConditionExpression": "attribute_not_exists(sk) OR expires_at < :now",
                 "ExpressionAttributeValues": {":now": {"N": str(_epoch(now))}}}},
        {"Update": {"TableName": settings.table,
                    "Key": {"pk": {"S": user_id}, "sk": {"S": f"day#{day}"}},
                    "UpdateExpression": "ADD exports :one SET expires_at = :expires",
                    "ConditionExpression": "attribute_not_exists(exports) OR exports < :limit",
                    "ExpressionAttributeValues": {":one": {"N": "1"}, ":limit": {"N": str(settings.exports_per_day)},
                                                  ":expires": {"N": str(_epoch(now + timedelta(days=2)))}}}},
        {"Put": {"TableName": settings.table,
                 "Item": {"pk": {"S": user_id}, "sk": {"S": f"export#{export_id}"}, "status": {"S": "running"},
                          "created_at": {"S": now.isoformat(timespec="seconds")},
                          "expires_at": {"N": str(_epoch(now + timedelta(days=settings.retention_days)))}},
                 "ConditionExpression": "attribute_not_exists(sk)"}},
    ]
    try:
        clients.dynamodb.transact_write_items(TransactItems=items)
    except clients.dynamodb.exceptions.TransactionCanceledException as cancelled:
        codes = [r.get("Code") for r in cancelled.response.get("CancellationReasons", [])]
        if codes and codes[0] == "ConditionalCheckFailed":
            raise LimitReached("an export is already running for this account", 60) from None
        if len(codes) > 1 and codes[1] == "ConditionalCheckFailed":
            tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
            raise LimitReached(f"at most {settings.exports_per_day} exports a day",
                               max(1, int((tomorrow - now).total_seconds()))) from None
        raise


def finish(clients: Clients, settings: ExportSettings, user_id: str, export_id: str, *, status: str,
           key: str | None = None, rows: int = 0, size: int = 0) -> None:
    """Record the outcome and release the lock (only if it is still this export's)."""
    values: dict[str, Any] = {":status": {"S": status}, ":rows": {"N": str(rows)}, ":bytes": {"N": str(size)},
                              ":done": {"S": clients.clock().isoformat(timespec="seconds")}}
    expression = "SET #s = :status, #r = :rows, #b = :bytes, finished_at = :done"
    if key:
        values[":key"] = {"S": key}
        expression += ", object_key = :key"
    clients.dynamodb.update_item(TableName=settings.table,
                                 Key={"pk": {"S": user_id}, "sk": {"S": f"export#{export_id}"}},
                                 UpdateExpression=expression, ExpressionAttributeValues=values,
                                 ExpressionAttributeNames={"#s": "status", "#r": "rows", "#b": "bytes"})
    # If the lock lapsed and another export holds it now, it stays.
    with contextlib.suppress(clients.dynamodb.exceptions.ConditionalCheckFailedException):
        clients.dynamodb.delete_item(TableName=settings.table, Key={"pk": {"S": user_id}, "sk": {"S": "lock"}},
                                     ConditionExpression="export_id = :id",
                                     ExpressionAttributeValues={":id": {"S": export_id}})


def object_key(user_id: str, export_id: str) -> str:
    return f"exports/{user_id}/{export_id}.zip"


def presigned_url(clients: Clients, settings: ExportSettings, key: str, export_id: str) -> str:
    return clients.s3.generate_presigned_url(
        "get_object", ExpiresIn=settings.url_expiry_seconds,
        Params={"Bucket": settings.bucket, "Key": key,
                "ResponseContentDisposition": f'attachment; filename="tavari-export-{export_id}.zip"'})


def database_url(clients: Clients, settings: ExportSettings) -> str:
    return clients.secretsmanager.get_secret_value(SecretId=settings.database_url_secret)["SecretString"]


def run_export(clients: Clients, settings: ExportSettings, user_id: str, export_id: str,
               database: str) -> dict[str, Any]:
    """Export into /tmp, upload (multipart for large files), record, release. Raises on failure
    after recording it, so the caller's error path (and the function's alarms) sees it."""
    started = time.monotonic()
    key = object_key(user_id, export_id)
    try:
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "export.zip"
            metadata = export_account(database, user_id, path, datasets=settings.datasets,
                                      s3=clients.s3 if settings.invoice_bucket else None,
                                      pdf_bucket=settings.invoice_bucket, now=clients.clock())
            size = path.stat().st_size
            clients.s3.upload_file(str(path), settings.bucket, key,
                                   ExtraArgs={"ContentType": "application/zip",
                                              "Metadata": {"export-id": export_id}})
    except Exception as error:
        finish(clients, settings, user_id, export_id, status="failed")
        publish({EXPORT_FAILED: 1})
        log.error(json.dumps({"event": "export_failed", "user_id": user_id, "export_id": export_id,
                              "error": type(error).__name__}))
        raise
    rows = sum(f.get("rows", 0) for f in metadata["files"].values())
    finish(clients, settings, user_id, export_id, status="ready", key=key, rows=rows, size=size)
    seconds = round(time.monotonic() - started, 3)
    publish({EXPORT_SUCCEEDED: 1})
    log.info(json.dumps({"event": "export_ready", "user_id": user_id, "export_id": export_id, "rows": rows,
                         "bytes": size, "files": len(metadata["files"]), "seconds": seconds}))
    return {"key": key, "rows": rows, "bytes": size}


# --------------------------------------------------------------------------- HTTP routes


def _response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"content-type": "application/json", "cache-control": "no-store",
                                              **(headers or {})}, "body": json.dumps(body)}


def start(event: dict[str, Any], clients: Clients, settings: ExportSettings) -> dict[str, Any]:
    """GET /api/account/export"""
    user_id = user_of(event)
    if user_id is None:
        return _response(401, {"error": "not authenticated"})
    export_id = str(uuid.uuid4())
    try:
        claim(clients, settings, user_id, export_id)
    except LimitReached as limited:
        publish({EXPORT_REFUSED: 1})
        log.info(json.dumps({"event": "export_refused", "user_id": user_id, "reason": limited.reason}))
        return _response(429, {"error": limited.reason}, {"retry-after": str(limited.retry_after)})
    log.info(json.dumps({"event": "export_requested", "user_id": user_id, "export_id": export_id}))
    status_url = STATUS_PATH.format(export_id=export_id)
    try:
        database = database_url(clients, settings)
        rows = count_rows(database, user_id, settings.datasets)
    except Exception:
        finish(clients, settings, user_id, export_id, status="failed")
        raise
    if rows > settings.sync_row_limit and clients.dispatch is not None:
        clients.dispatch({"export_id": export_id, "user_id": user_id})
        return _response(202, {"export_id": export_id, "status": "running", "status_url": status_url},
                         {"location": status_url, "retry-after": "10"})
    try:
        result = run_export(clients, settings, user_id, export_id, database)
    except Exception:  # recorded, counted and logged by run_export
        return _response(500, {"error": "the export failed; try again later", "export_id": export_id})
    return _response(200, {"export_id": export_id, "status": "ready", "rows": result["rows"],
                           "bytes": result["bytes"], "expires_in": settings.url_expiry_seconds,
                           "url": presigned_url(clients, settings, result["key"], export_id)})


def status(event: dict[str, Any], clients: Clients, settings: ExportSettings) -> dict[str, Any]:
    """GET /api/account/export/{export_id} — only ever the caller's own exports."""
    user_id = user_of(event)
    if user_id is None:
        return _response(401, {"error": "not authenticated"})
    export_id = str((event.get("pathParameters") or {}).get("export_id", ""))
    try:
        export_id = str(uuid.UUID(export_id))
    except ValueError:
        return _response(404, {"error": "no such export"})
    item = clients.dynamodb.get_item(TableName=settings.table, ConsistentRead=True,
                                     Key={"pk": {"S": user_id}, "sk": {"S": f"export#{export_id}"}}).get("Item")
    if item is None:
        return _response(404, {"error": "no such export"})
    state = item["status"]["S"]
    body: dict[str, Any] = {"export_id": export_id, "status": state, "created_at": item["created_at"]["S"]}
    if state == "ready":
        body.update(rows=int(item["rows"]["N"]), bytes=int(item["bytes"]["N"]),
                    expires_in=settings.url_expiry_seconds,
                    url=presigned_url(clients, settings, item["object_key"]["S"], export_id))
    return _response(200, body, {"retry-after": "10"} if state == "running" else None)


def route(event: dict[str, Any], clients: Clients, settings: ExportSettings) -> dict[str, Any]:
    if (event.get("pathParameters") or {}).get("export_id") is not None:
        return status(event, clients, settings)
    return start(event, clients, settings)


def work(event: dict[str, Any], clients: Clients, settings: ExportSettings) -> dict[str, Any]:
    """The worker's entry: a job the API dispatched."""
    user_id, export_id = str(uuid.UUID(event["user_id"])), str(uuid.UUID(event["export_id"]))
    return run_export(clients, settings, user_id, export_id, database_url(clients, settings))
