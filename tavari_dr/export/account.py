"""Data export (GDPR/CCPA): one user's data as a ZIP of JSON Lines, and table exports as CSV.

Account export ZIP layout::

    metadata.json          export date (UTC ISO 8601), user ID, business IDs, schema version,
                           and per file: rows and sha256
    <dataset>.jsonl        one JSON object per row (JSON Lines), for each dataset
    invoices/<pdf key>     the invoice PDFs, when asked for (otherwise referenced by pdf_key)

Lossless JSON forms: timestamps and dates as ISO 8601 strings, numeric as strings (no float
rounding), UUIDs as strings, bytea as {"$base64": "..."}, json/jsonb as JSON, NULL as null.
Rows stream from server-side cursors; nothing holds a whole table in memory.
"""

from __future__ import annotations

import base64
import csv
import functools
import hashlib
import io
import json
import uuid
import zipfile
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from tavari_dr.core import accountmap
from tavari_dr.core.config import DEFAULT_DATASETS, Dataset

SCHEMA_VERSION = "tavari-export/1"


DEFAULT_TABLES = tuple(d.table for d in DEFAULT_DATASETS)


def to_json_value(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$base64": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, (list, tuple)):
        return [to_json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json_value(v) for k, v in value.items()}
    return str(value)


# Which rows are the account's: the one map an erasure deletes too (tavari_dr.core.accountmap).
_ident = accountmap.ident


def _owner_filter(dataset: Dataset, user_id: str, business_ids: list[Any]) -> tuple[Any, Any]:
    """``WHERE`` clause tying the dataset's rows to the user, and its parameter."""
    return accountmap.owner_filter(dataset, [user_id], business_ids)


def _rows(conn: Any, dataset: Dataset, user_id: str, business_ids: list[Any]) -> Iterator[dict[str, Any]]:
    from psycopg import sql
    from psycopg.rows import dict_row

    where, value = _owner_filter(dataset, user_id, business_ids)
    query = sql.SQL("SELECT * FROM {} WHERE {} ORDER BY 1").format(_ident(dataset.table), where)
    with conn.cursor(name=f"export_{dataset.name}", row_factory=dict_row) as cur:  # server-side cursor
        cur.itersize = 2000
        cur.execute(query, (value,))
        yield from cur


def _business_ids(conn: Any, user_id: str) -> list[Any]:
    return accountmap.business_ids(conn, [user_id])


def count_rows(database_url: str, user_id: str, datasets: Sequence[Dataset] = DEFAULT_DATASETS) -> int:
    """How many rows an account export would hold (decides between answering at once and the background)."""
    import psycopg
    from psycopg import sql

    uuid.UUID(str(user_id))
    with psycopg.connect(database_url) as conn:
        conn.execute("SET TRANSACTION READ ONLY")
        business_ids = _business_ids(conn, user_id)
        total = 0
        for dataset in datasets:
            where, value = _owner_filter(dataset, user_id, business_ids)
            total += conn.execute(sql.SQL("SELECT count(*) FROM {} WHERE {}").format(_ident(dataset.table), where),
                                  (value,)).fetchone()[0]
        conn.rollback()
    return total


def export_account(database_url: str, user_id: str, out: IO[bytes] | Path, *,
                   datasets: Sequence[Dataset] = DEFAULT_DATASETS, s3: Any = None, pdf_bucket: str | None = None,
                   now: datetime | None = None) -> dict[str, Any]:
    """Write the ZIP; returns its metadata. With ``s3`` and ``pdf_bucket``, invoice PDFs are included."""
    import psycopg

    uuid.UUID(str(user_id))  # refuse anything that is not a user ID before touching the database
    files: dict[str, dict[str, Any]] = {}
    with psycopg.connect(database_url) as conn, zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")  # one consistent view
        business_ids = _business_ids(conn, user_id)
        pdf_keys: list[str] = []
        for dataset in datasets:
            digest, rows = hashlib.sha256(), 0
            name = f"{dataset.name}.jsonl"
            with zf.open(name, "w") as entry:
                for row in _rows(conn, dataset, user_id, business_ids):
                    line = (json.dumps({k: to_json_value(v) for k, v in row.items()}, ensure_ascii=False,
                                       sort_keys=True) + "\n").encode()
                    entry.write(line)
                    digest.update(line)
                    rows += 1
                    if dataset.name == "invoices" and row.get("pdf_key"):
                        pdf_keys.append(row["pdf_key"])
            files[name] = {"rows": rows, "sha256": digest.hexdigest()}
        if s3 is not None and pdf_bucket:
            for key in pdf_keys:
                digest, size = hashlib.sha256(), 0
                with zf.open(f"invoices/{key}", "w") as entry:
                    body = s3.get_object(Bucket=pdf_bucket, Key=key)["Body"]
                    for chunk in iter(functools.partial(body.read, 1024 * 1024), b""):
                        entry.write(chunk)
                        digest.update(chunk)
                        size += len(chunk)
                files[f"invoices/{key}"] = {"bytes": size, "sha256": digest.hexdigest()}
        metadata = {"schema_version": SCHEMA_VERSION, "exported_at": (now or datetime.now(UTC)).isoformat(
            timespec="seconds"), "user_id": str(user_id), "business_ids": [str(b) for b in business_ids],
            "format": "JSON Lines, one object per row", "files": files}
        zf.writestr("metadata.json", json.dumps(metadata, indent=1, sort_keys=True))
        conn.rollback()
    return metadata


# --------------------------------------------------------------------------- table exports (CSV)


def export_tables(database_url: str, tables: Sequence[str], write: Any) -> dict[str, Any]:
    """COPY each table TO STDOUT as CSV with a header, streamed through ``write(name) -> binary sink``;
    all tables from one snapshot, with row counts from the same snapshot. Returns the manifest."""
    import psycopg
    from psycopg import sql

    manifest: dict[str, Any] = {"exported_at": datetime.now(UTC).isoformat(timespec="seconds"), "tables": {}}
    with psycopg.connect(database_url) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        for table in tables:
            rows = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(_ident(table))).fetchone()[0]
            digest, size = hashlib.sha256(), 0
            name = f"{table}.csv"
            with write(name) as sink, conn.cursor().copy(
                    sql.SQL("COPY {} TO STDOUT WITH (FORMAT csv, HEADER)").format(_ident(table))) as copy:
                for chunk in copy:
                    data = bytes(chunk)
                    sink.write(data)
                    digest.update(data)
                    size += len(data)
            manifest["tables"][table] = {"file": name, "rows": rows, "bytes": size, "sha256": digest.hexdigest()}
        conn.rollback()
    return manifest


def csv_rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode())))
