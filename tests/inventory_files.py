"""The S3 Inventory report and change-feed lines S3, EventBridge and Firehose would deliver for a
tests/s3_listing.Model history (formats: docs/formats/inventory-and-feed.md), and a listing stub
that also answers HEAD for a version, as S3 does (a delete marker: 405 with Last-Modified)."""

from __future__ import annotations

import random
import urllib.parse
from email.utils import format_datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from botocore.awsrequest import AWSResponse

from tavari_dr.bucket.inventory_plan import gzip_lines
from tests.s3_listing import BASE, Event, ListingStub, Model, _Raw, render_pages

INVENTORY_SCHEMA = pa.schema([
    ("bucket", pa.string()), ("key", pa.string()), ("version_id", pa.string()), ("is_latest", pa.bool_()),
    ("is_delete_marker", pa.bool_()), ("size", pa.int64()), ("last_modified_date", pa.timestamp("ms", tz="UTC")),
    ("e_tag", pa.string()), ("storage_class", pa.string()), ("is_multipart_uploaded", pa.bool_()),
])


def sequencer(index: int) -> str:
    """S3-like hex sequencers of varying length, increasing when right-padded (S3's documented
    comparison) but not when left-padded: trailing zeros dropped, some lower-case."""
    text = format((index + 1) * 8, "012X").rstrip("0")
    return text.lower() if index % 3 == 0 else text


def etag(e: Event) -> str:
    return f"{e.version_id:0>32}" + ("-2" if e.multipart else "")


def inventory_rows(m: Model, upto: int, bucket: str = "bkt") -> list[dict]:
    """Every version that existed after the first ``upto`` events; is_latest: each key's newest then."""
    events = m.events[:upto]
    latest = {e.key: e.version_id for e in events}
    return [{"bucket": bucket, "key": e.key, "version_id": e.version_id, "is_latest": latest[e.key] == e.version_id,
             "is_delete_marker": e.delete, "size": None if e.delete else e.size, "last_modified_date": e.when,
             "e_tag": None if e.delete else etag(e), "storage_class": None if e.delete else "STANDARD",
             "is_multipart_uploaded": None if e.delete else e.multipart} for e in events]


def write_inventory(rows: list[dict], into: Path, parts: int = 1, rng: random.Random | None = None) -> list[Path]:
    """Parquet data files as S3 writes them: rows in no particular order, split into ``parts`` files."""
    rows = list(rows)
    (rng or random.Random(0)).shuffle(rows)
    into.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(max(1, parts)):
        chunk = rows[i::max(1, parts)]
        table = pa.Table.from_pylist(chunk, schema=INVENTORY_SCHEMA)
        path = into / f"part-{i}.parquet"
        pq.write_table(table, path)
        paths.append(path)
    return paths


def feed_records(m: Model, since: int, *, bucket: str = "bkt", encode: bool = True) -> list[dict]:
    """One line per event from index ``since`` on, as the contract's Firehose delivers them."""
    out = []
    for i, e in enumerate(m.events[since:], start=since):
        key = urllib.parse.quote_plus(e.key, safe="/") if encode else e.key
        out.append({"event_id": f"ev-{i}", "event_time": e.when.strftime("%Y-%m-%dT%H:%M:%SZ"), "bucket": bucket,
                    "key": key, "version_id": e.version_id, "sequencer": sequencer(i),
                    "kind": "delete_marker" if e.delete else "put", "size": None if e.delete else e.size,
                    "etag": None if e.delete else etag(e)})
    return out


def canary_record(*, encode: bool = True, bucket: str = "bkt") -> dict:
    key = "_canary/2026-11-20T08-00-00Z/" + ("probe+a%2Bb" if encode else "probe a+b")
    return {"event_id": "canary", "event_time": "2026-11-20T08:00:00Z", "bucket": bucket, "key": key,
            "version_id": "canary-v", "sequencer": "0A", "kind": "put", "size": 1, "etag": "c"}


def write_feed(records: list[dict], into: Path, parts: int = 1, *, duplicate: float = 0.0,
               rng: random.Random | None = None) -> list[Path]:
    """GZIP files of JSON lines, out of order, some lines twice (at least once)."""
    rng = rng or random.Random(0)
    lines = list(records) + [r for r in records if rng.random() < duplicate]
    rng.shuffle(lines)
    into.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(max(1, parts)):
        path = into / f"tavari-feed-{i}.gz"
        path.write_bytes(gzip_lines(lines[i::max(1, parts)]))
        paths.append(path)
    return paths


class VersionStub(ListingStub):
    """ListingStub that also answers HeadObject for a version of the model (S3's headers)."""

    def __init__(self, m: Model, cuts: list[int], *, interleave: bool = True) -> None:
        entries = m.s3_order()
        pages = render_pages(entries, cuts, interleave=interleave)
        bounds = sorted({c for c in cuts if 0 < c < len(entries)}) + [len(entries)]
        super().__init__(pages, [(entries[b - 1].key, entries[b - 1].version_id) for b in bounds])
        self.by_version = {e.version_id: e for e in m.events}
        self.heads: list[str] = []

    def _answer(self, request, **kwargs):
        if request.method != "HEAD":
            return super()._answer(request, **kwargs)
        url = urllib.parse.urlsplit(request.url)
        query = urllib.parse.parse_qs(url.query)
        self.heads.append(request.url)
        if "versionId" not in query:  # the key's current entry (a delete marker: 404 saying so)
            key = urllib.parse.unquote(url.path.split("/", 2)[-1] if url.netloc.startswith("s3.") else url.path[1:])
            of = [e for e in self.by_version.values() if e.key == key]
            if not of:
                return AWSResponse(request.url, 404, {}, _Raw(b""))
            e = max(of, key=lambda x: int(x.version_id[1:]))
            if e.delete:
                return AWSResponse(request.url, 404, {"x-amz-delete-marker": "true", "x-amz-version-id": e.version_id},
                                   _Raw(b""))
        else:
            e = self.by_version.get(query["versionId"][0])
        if e is None:
            return AWSResponse(request.url, 404, {}, _Raw(b""))
        headers = {"Last-Modified": format_datetime(e.when, usegmt=True), "x-amz-version-id": e.version_id}
        if e.delete:
            return AWSResponse(request.url, 405, {**headers, "x-amz-delete-marker": "true"}, _Raw(b""))
        return AWSResponse(request.url, 200, {**headers, "Content-Length": str(e.size), "ETag": f'"{etag(e)}"'},
                           _Raw(b""))


__all__ = ["BASE", "Model", "VersionStub", "canary_record", "feed_records", "inventory_rows", "write_feed",
           "write_inventory"]
