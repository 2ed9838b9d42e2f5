"""Data export (GDPR/CCPA): one user's data as a ZIP of JSON Lines, and table exports as CSV.

Account export ZIP layout::

    metadata.json          export date (UTC ISO 8601), user ID, business IDs, schema version,
                           and per file: rows and sha256 of the bytes written
    <dataset>.jsonl        one JSON object per row (JSON Lines), for each dataset
    invoices/<pdf key>     the invoice PDFs, when asked for (otherwise referenced by pdf_key)

PostgreSQL serializes the rows (ADR 0024): one ``COPY (SELECT row_to_json(...)) TO STDOUT`` per
dataset, its output streamed into the ZIP entry as it arrives, so this process never builds a row.
The canonical form (docs/export-format.md, ``tavari-export/2``): compact JSON, keys in code-point
order, numeric as its exact PostgreSQL text, float4/float8 as JSON numbers (NaN and the infinities
as strings), timestamps in UTC ISO 8601, bytea as {"$base64": "..."}, json/jsonb embedded as JSON,
NULL as null.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import itertools
import json
import queue
import re
import threading
import uuid
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from tavari_dr.core import accountmap
from tavari_dr.core.config import DEFAULT_DATASETS, Dataset

SCHEMA_VERSION = "tavari-export/2"  # /1: the same values, serialized by Python (spaces, sorted jsonb keys)


DEFAULT_TABLES = tuple(d.table for d in DEFAULT_DATASETS)


# Which rows are the account's: the one map an erasure deletes too (tavari_dr.core.accountmap).
_ident = accountmap.ident


def _owner_filter(dataset: Dataset, user_id: str, business_ids: list[Any]) -> tuple[Any, Any]:
    """``WHERE`` clause tying the dataset's rows to the user, and its parameter."""
    return accountmap.owner_filter(dataset, [user_id], business_ids)


# Column types whose PostgreSQL JSON form is not already the canonical one, and the cast that makes it so.
# Everything else is PostgreSQL's own: int/bool as JSON literals, text, uuid, enums and the rest as JSON
# strings of their text form, date/time types in ISO 8601 (the session's TimeZone is UTC), json/jsonb
# embedded, arrays as JSON arrays of their elements' forms.
_NUMERIC_AS_TEXT = {"numeric": "text", "numeric[]": "text[]", "money": "text", "money[]": "text[]"}
_FLOATS = ("real", "double precision")


def column_expression(name: str, type_name: str) -> Any:
    """The SQL that yields column ``name`` (of ``format_type`` ``type_name``) in its canonical JSON form."""
    from psycopg import sql

    column = sql.Identifier(name)
    base = re.sub(r"\(.*?\)", "", type_name)  # numeric(12,2)[] -> numeric[]
    if base in _NUMERIC_AS_TEXT:
        return sql.SQL("{}::{}").format(column, sql.SQL(_NUMERIC_AS_TEXT[base]))
    if base in _FLOATS:
        # PostgreSQL writes a whole float as "2" (or "-0"): a reader would get an integer where
        # tavari-export/1 wrote 2.0. The shortest exact digits otherwise (extra_float_digits 1), and
        # NaN/Infinity as JSON strings (to_json's own choice: they are not JSON numbers).
        return sql.SQL("CASE WHEN {c}::text ~ '^-?[0-9]+$' THEN ({c}::text || '.0')::json ELSE to_json({c}) END"
                       ).format(c=column)
    if base == "bytea":
        # encode(base64) breaks lines every 76 characters; the canonical form has none.
        return sql.SQL("CASE WHEN {c} IS NULL THEN NULL ELSE json_build_object('$base64', "
                       "translate(encode({c}, 'base64'), E'\\n', '')) END").format(c=column)
    if base == "bytea[]":
        return sql.SQL("CASE WHEN {c} IS NULL THEN NULL ELSE coalesce((SELECT json_agg(CASE WHEN e IS NULL "
                       "THEN NULL ELSE json_build_object('$base64', translate(encode(e, 'base64'), E'\\n', '')) END) "
                       "FROM unnest({c}) AS e), '[]') END").format(c=column)
    return column


def _columns(conn: Any, table: str) -> list[tuple[str, str]]:
    """(name, format_type) of the relation's columns, in code-point order of the name (the key order)."""
    rows = conn.execute("SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                        "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped", (table,)).fetchall()
    return sorted(((str(n), str(t)) for n, t in rows), key=lambda c: c[0])


def rows_query(conn: Any, dataset: Dataset, user_id: str, business_ids: list[Any]) -> tuple[Any, Any]:
    """``SELECT row_to_json(...)`` of the dataset's rows for the user (ordered by the first column),
    and its parameter."""
    from psycopg import sql

    where, value = _owner_filter(dataset, user_id, business_ids)
    columns = _columns(conn, dataset.table)
    order = conn.execute("SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
                         "AND NOT attisdropped ORDER BY attnum LIMIT 1", (dataset.table,)).fetchone()[0]
    # The ORDER BY is inside: row_to_json's subquery names the output keys, the outer query only wraps.
    select = sql.SQL(", ").join(sql.SQL("{} AS {}").format(column_expression(n, t), sql.Identifier(n))
                                for n, t in columns)
    query = sql.SQL("SELECT row_to_json(r) FROM (SELECT {} FROM {} WHERE {} ORDER BY {}) AS r").format(
        select, _ident(dataset.table), where, sql.Identifier(order))
    return query, value


# COPY's CSV mode with a quote and a delimiter JSON never holds raw (it escapes every control
# character): each row comes out as its JSON text and a newline, no quoting, no escaping.
_COPY_JSON = "COPY ({}) TO STDOUT WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"


def copy_rows(conn: Any, dataset: Dataset, user_id: str, business_ids: list[Any]) -> Iterator[bytes]:
    """The dataset's JSON Lines as PostgreSQL writes them, in chunks (not aligned to lines)."""
    from psycopg import sql

    query, value = rows_query(conn, dataset, user_id, business_ids)
    with conn.cursor() as cur, cur.copy(sql.SQL(_COPY_JSON).format(query), (value,)) as copy:
        for chunk in copy:
            yield bytes(chunk)


def _pdf_keys(conn: Any, dataset: Dataset, user_id: str, business_ids: list[Any]) -> list[str]:
    """The invoices' PDF keys, from the same snapshot as their rows."""
    from psycopg import sql

    if "pdf_key" not in {n for n, _ in _columns(conn, dataset.table)}:
        return []
    where, value = _owner_filter(dataset, user_id, business_ids)
    return [r[0] for r in conn.execute(sql.SQL("SELECT pdf_key FROM {} WHERE {} AND pdf_key IS NOT NULL ORDER BY 1")
                                       .format(_ident(dataset.table), where), (value,))]


def _business_ids(conn: Any, user_id: str) -> list[Any]:
    return accountmap.business_ids(conn, [user_id])


BLOCK_BYTES = 1024 * 1024
QUEUE_BLOCKS = 8  # blocks waiting for the compressor: bounds memory to ~10 MiB whatever the export's size


class _EntryWriter:
    """Writes blocks into a ZIP entry on a second thread. zlib (and zipfile's CRC-32) run there
    without the GIL while the caller's thread reads the next rows from PostgreSQL: deflating is as
    much work as PostgreSQL's serializing, and the two now overlap instead of taking turns."""

    def __init__(self, entry: IO[bytes]) -> None:
        self._entry = entry
        self._queue: queue.Queue[bytes | None] = queue.Queue(QUEUE_BLOCKS)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="zip-entry", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (block := self._queue.get()) is not None:
            if self._error is None:  # after a failure, keep draining so the producer never blocks
                try:
                    self._entry.write(block)
                except BaseException as err:  # handed to the caller's thread by write/close
                    self._error = err

    def write(self, block: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(block)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


def write_entry(zf: zipfile.ZipFile, name: str, chunks: Iterable[bytes]) -> dict[str, Any]:
    """Stream ``chunks`` (JSON Lines) into the ZIP entry ``name``; its rows and the sha256 of the bytes."""
    digest, rows = hashlib.sha256(), 0
    pending: list[bytes] = []
    size = 0
    with zf.open(name, "w") as entry:
        writer = _EntryWriter(entry)
        try:
            for chunk in itertools.chain(chunks, [b""]):
                pending.append(chunk)
                size += len(chunk)
                if size >= BLOCK_BYTES or (not chunk and size):  # a full block, or the end
                    block = b"".join(pending)
                    pending, size = [], 0
                    digest.update(block)
                    rows += block.count(b"\n")  # one per row: JSON holds no raw newline
                    writer.write(block)
        finally:
            writer.close()
    return {"rows": rows, "sha256": digest.hexdigest()}


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
        # The canonical form's zone and encoding, whatever the role's or the server's defaults.
        conn.execute("SET LOCAL TIME ZONE 'UTC'")
        conn.execute("SET LOCAL client_encoding TO 'UTF8'")
        conn.execute("SET LOCAL IntervalStyle TO 'iso_8601'")  # intervals as ISO 8601 durations (P1DT2H)
        conn.execute("SET LOCAL extra_float_digits TO 1")  # floats' shortest exact digits, never rounded
        business_ids = _business_ids(conn, user_id)
        pdf_keys: list[str] = []
        for dataset in datasets:
            name = f"{dataset.name}.jsonl"
            files[name] = write_entry(zf, name, copy_rows(conn, dataset, user_id, business_ids))
            if dataset.name == "invoices":
                pdf_keys += _pdf_keys(conn, dataset, user_id, business_ids)
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
