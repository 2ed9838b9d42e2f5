"""What a change segment is on S3, and how a reader knows the capture wrote it.

Key (a contract the daily monitor and the alarms rely on)::

    changes/segments/<YYYY>/<MM>/<DD>/<HH>/<first commit %Y%m%dT%H%M%SZ>-<start LSN 16 hex>-<end LSN 16 hex>.tcs

One object per segment: a first line holding a signed envelope (the header, verbatim, beside its KMS
signature, tavari_dr.database.signing) and then the gzip body, JSON lines in commit order::

    ["T", xid, commit LSN, end LSN, commit time, number of changes]      one per transaction, then its changes:
    ["I", rel, new]  ["U", rel, old kind, old, new]  ["D", rel, old kind, old]  ["X", [rel...], cascade, restart]

``rel`` names an entry of the header's ``relations`` (schema, table, columns, replica identity). Values
are PostgreSQL's text output; None is NULL, UNCHANGED (0) an unchanged TOASTed column. The header pins
the body's sha256 and size, so the signature covers every byte. Bases (one continuous, one-schema run of
the log, ADR 0020) are signed records at ``changes/bases/<base id>.json``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import itertools
import json
import re
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import IO, Any

from tavari_dr.changes.pgoutput import lsn_text, parse_lsn
from tavari_dr.core import guardrails, s3sink
from tavari_dr.database.signing import KmsSigner, KmsVerifier, SignatureInvalid, envelope

PREFIX = guardrails.CHANGE_SEGMENTS_PREFIX
BASES = guardrails.CHANGE_BASES_PREFIX
EXT = "tcs"
FORMAT = "tavari-changes/1"
BASE_FORMAT = "tavari-changes-base/1"
TIME = "%Y%m%dT%H%M%SZ"
# The optional last part tags the source (source_tag of its identity): two databases' logs in one bucket, or a
# failover's new database beside the old one's, are told apart from the key alone. Keys without it predate it.
KEY = re.compile(r"^changes/segments/(\d{4})/(\d{2})/(\d{2})/(\d{2})/(\d{8}T\d{6}Z)-([0-9A-F]{16})-([0-9A-F]{16})"
                 r"(?:-([0-9a-f]{12}))?\." + EXT + "$")
PART_SIZE = 8 * 1024 * 1024


class SegmentError(RuntimeError):
    """A segment or base record cannot be trusted or read; the message says which and why."""


def source_tag(identity: dict[str, Any] | None) -> str | None:
    """A short, stable name of one source database (system identifier, timeline, database OID and name)."""
    if not identity:
        return None
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]


def segment_key(first_commit: datetime, start_lsn: int, end_lsn: int, tag: str | None = None) -> str:
    t = first_commit.astimezone(UTC)
    return f"{PREFIX}{t:%Y/%m/%d/%H}/{t:{TIME}}-{start_lsn:016X}-{end_lsn:016X}{f'-{tag}' if tag else ''}.{EXT}"


@dataclass(frozen=True)
class SegmentKey:
    key: str
    first_commit: datetime
    start_lsn: int
    end_lsn: int
    source: str | None = None  # source_tag of the database it came from (None: a key from before the tag)

    @classmethod
    def parse(cls, key: str) -> SegmentKey | None:
        found = KEY.match(key)
        if not found:
            return None
        when = datetime.strptime(found.group(5), TIME).replace(tzinfo=UTC)
        return cls(key, when, int(found.group(6), 16), int(found.group(7), 16), found.group(8))


@dataclass
class Header:
    base_id: str
    seq: int  # per capture process: 0, 1, 2... (a restart starts again; the LSNs order segments)
    prev_end_lsn: str  # the position the log was complete up to when this segment began
    start_lsn: str  # the first transaction's commit LSN
    end_lsn: str  # the last transaction's end LSN (what the slot is confirmed to once this is written)
    first_commit: str
    last_commit: str
    closed_at: str  # the source's clock when the segment was closed
    transactions: int
    changes: int
    xid_min: int
    xid_max: int
    relations: dict[str, dict[str, Any]]
    sequences: dict[str, int | None]  # "schema.name" -> last_value sampled at close (>= any value used)
    schema_fingerprint: str
    tables: dict[str, dict[str, int]]  # "schema.table" -> {"I": n, "U": n, "D": n, "X": n}
    body_sha256: str
    body_bytes: int
    format: str = FORMAT
    # The source database (source_identity()); None only in segments from before it was recorded.
    identity: dict[str, Any] | None = None
    # Tables the source held when the segment closed that its base does not capture, beyond the base's own
    # `uncaptured` (read after the server time `covered_at`); None: from before the check existed.
    uncovered: list[str] | None = None
    covered_at: str | None = None
    # The tavari-dr version that wrote it (tavari_dr.__version__), signed with the rest; None: from before it was.
    tool_version: str | None = None

    @property
    def key(self) -> str:
        return segment_key(_time(self.first_commit), parse_lsn(self.start_lsn), parse_lsn(self.end_lsn),
                           source_tag(self.identity))


@dataclass
class Base:
    base_id: str
    slot: str
    publication: str
    created_at: str
    start_lsn: str
    reason: str
    schema_fingerprint: str
    schema: dict[str, list[list[Any]]]  # "schema.table" -> [[column, type oid], ...] (what pgoutput sends)
    previous: str | None = None
    format: str = BASE_FORMAT
    # The source database (system identifier, timeline, database name and OID): a base is resumed, and a dump
    # replayed in it, only by the same source. None: a base from before it was recorded (never resumed).
    identity: dict[str, Any] | None = None
    # Tables the source held at the start that this base cannot capture (not published: owned by a role the
    # capture's is not a member of; "pg_largeobject" while large objects exist): a restore --to refuses them
    # unless the operator names each as restored as of the dump.
    uncaptured: list[str] = field(default_factory=list)
    partitioned: list[str] = field(default_factory=list)  # partitioned roots: no rows of their own, leaves published
    # The source's clock when the previous base was last seen covering every table: past it, a restore in the
    # previous base is refused (a table it did not capture may have existed).
    previous_covered_until: str | None = None
    tool_version: str | None = None  # as Header.tool_version
    # The row versions of the published tables' columns in the catalog at the start (capture.catalog_version):
    # DDL is not in the log, and one undone before the capture looks again (a column renamed, then back) leaves
    # the columns as they were but not these; while they differ the capture vouches for no point (covered_at).
    # None: a base from before it was recorded.
    catalog_version: str | None = None

    @property
    def key(self) -> str:
        return f"{BASES}{self.base_id}.json"


def base_id_for(created: datetime, start_lsn: int) -> str:
    """The creation time to the microsecond and the start position: two resets at one position within one
    second (a coverage gap, then the schema change the table brought) are two bases, never one ID written
    twice (which put_new refuses, and which stopped the capture)."""
    t = created.astimezone(UTC)
    return f"{t:%Y%m%dT%H%M%S}{t.microsecond:06d}Z-{start_lsn:016X}"


def _time(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _compact_envelope(payload: bytes, signature: dict[str, str], format_: str) -> bytes:
    return json.dumps({"format": format_, "header": payload.decode(), "signature": signature},
                      separators=(",", ":"), sort_keys=True).encode() + b"\n"


# --------------------------------------------------------------------------- writing


class BodyWriter:
    """The gzip body of one segment, spilled to disk past ``memory_bytes``: a segment's size is
    bounded by segment_max_bytes, the memory it takes is not that."""

    def __init__(self, memory_bytes: int = 4 * 1024 * 1024) -> None:
        self.file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=memory_bytes)  # noqa: SIM115 - closed in close()
        self._gzip = gzip.GzipFile(fileobj=self.file, mode="wb", compresslevel=5, mtime=0)
        self.raw_bytes = 0

    def write_line(self, line: bytes) -> None:
        self._gzip.write(line)
        self.raw_bytes += len(line)

    def copy_from(self, spool: IO[bytes], size: int) -> None:
        spool.seek(0)
        for chunk in iter(lambda: spool.read(1024 * 1024), b""):
            self._gzip.write(chunk)
        self.raw_bytes += size

    def finish(self) -> IO[bytes]:
        self._gzip.close()
        self.file.seek(0)
        return self.file

    def close(self) -> None:
        self.file.close()


def line(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def write_segment(s3: Any, bucket: str, header: Header, body: IO[bytes], signer: KmsSigner) -> dict[str, Any]:
    """Upload one segment (If-None-Match: the key is new or already holds these very bytes); the
    header must already carry the body's sha256 and size. Returns {key, bytes, sha256, version_id}."""
    payload = json.dumps(asdict(header), separators=(",", ":"), sort_keys=True).encode()
    first = _compact_envelope(payload, signer.sign(payload), FORMAT)
    if len(first) + header.body_bytes <= PART_SIZE:  # one request; a multipart upload only past one part
        body.seek(0)
        whole = first + body.read()
        version = s3sink.put_new(s3, bucket, header.key, whole, error=SegmentError,
                                 ContentType="application/octet-stream", ChecksumAlgorithm="SHA256")
        return {"key": header.key, "bytes": len(whole), "sha256": hashlib.sha256(whole).hexdigest(),
                "version_id": version}
    sink = s3sink.MultipartSink(s3, bucket, header.key, lock={}, part_size=PART_SIZE, if_none_match=True,
                                content_type="application/octet-stream")
    sink.error = SegmentError
    try:
        sink.write(first)
        body.seek(0)
        for chunk in iter(lambda: body.read(1024 * 1024), b""):
            sink.write(chunk)
        return sink.close()
    except BaseException:
        sink.abort()
        raise


def write_base(s3: Any, bucket: str, base: Base, signer: KmsSigner) -> None:
    payload = json.dumps(asdict(base), indent=1, sort_keys=True).encode()
    s3sink.put_new(s3, bucket, base.key, envelope(payload, signer.sign(payload), BASE_FORMAT), error=SegmentError,
                   ContentType="application/json", ChecksumAlgorithm="SHA256")


def digest_file(body: IO[bytes]) -> tuple[str, int]:
    body.seek(0)
    digest, size = hashlib.sha256(), 0
    for chunk in iter(lambda: body.read(1024 * 1024), b""):
        digest.update(chunk)
        size += len(chunk)
    body.seek(0)
    return digest.hexdigest(), size


# --------------------------------------------------------------------------- reading


def _single_version(s3: Any, bucket: str, key: str) -> str:
    """The one version of ``key``: a second version or a delete marker is not something the capture wrote."""
    answer = s3.list_object_versions(Bucket=bucket, Prefix=key)
    versions = [v for v in answer.get("Versions", []) if v["Key"] == key]
    markers = [m for m in answer.get("DeleteMarkers", []) if m["Key"] == key]
    if len(versions) != 1 or markers:
        raise SegmentError(f"s3://{bucket}/{key}: {len(versions)} version(s) and {len(markers)} delete marker(s); "
                           "the capture writes each key once — refusing it as tampered with")
    return versions[0]["VersionId"]


def read_base(s3: Any, bucket: str, base_id: str, verifier: KmsVerifier) -> Base:
    key = f"{BASES}{base_id}.json"
    version = _single_version(s3, bucket, key)
    document = json.loads(s3.get_object(Bucket=bucket, Key=key, VersionId=version)["Body"].read())
    if not isinstance(document, dict) or document.get("format") != BASE_FORMAT:
        raise SegmentError(f"{key} is not a base record ({BASE_FORMAT})")
    try:
        verifier.verify(document["manifest"].encode(), document.get("signature"))
    except (SignatureInvalid, KeyError, AttributeError) as err:
        raise SegmentError(f"{key}: {err}") from None
    base = Base(**json.loads(document["manifest"]))
    if base.key != key:
        raise SegmentError(f"{key} holds the record of base {base.base_id}")
    return base


def list_bases(s3: Any, bucket: str) -> list[str]:
    """Every base ID, oldest first (IDs start with their creation time)."""
    ids = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=BASES):
        ids += [o["Key"][len(BASES):-len(".json")] for o in page.get("Contents", []) if o["Key"].endswith(".json")]
    return sorted(ids)


def list_segments(s3: Any, bucket: str, since: datetime, until: datetime | None = None, *,
                  source: str | None = None) -> list[SegmentKey]:
    """The segments whose first commit falls in [the hour of ``since``, ``until``], oldest first,
    listing one day's prefix at a time. Keys that do not parse are refused (nothing the capture wrote).
    ``source``: only that source_tag's segments."""
    found: list[SegmentKey] = []
    day = since.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    end = (until or datetime.now(UTC)).astimezone(UTC)
    start_hour = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    while day <= end:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{PREFIX}{day:%Y/%m/%d}/"):
            for item in page.get("Contents", []):
                parsed = SegmentKey.parse(item["Key"])
                if parsed is None:
                    raise SegmentError(f"s3://{bucket}/{item['Key']}: not a key the capture writes")
                if start_hour <= parsed.first_commit <= end and (source is None or parsed.source == source):
                    found.append(parsed)
        day += timedelta(days=1)
    return sorted(found, key=lambda k: (k.start_lsn, k.end_lsn))


@dataclass
class OpenedSegment:
    header: Header
    body: IO[bytes] = field(repr=False)  # the verified gzip body, on local disk

    def lines(self) -> Iterator[list[Any]]:
        self.body.seek(0)
        with gzip.GzipFile(fileobj=self.body, mode="rb") as unzipped:
            for raw in io.BufferedReader(unzipped):  # type: ignore[arg-type]
                yield json.loads(raw)

    def close(self) -> None:
        self.body.close()


def open_segment(s3: Any, bucket: str, key: str, verifier: KmsVerifier) -> OpenedSegment:
    """Download one segment to local disk, verify its signature, its key and its body's sha256 and
    size before anything reads it."""
    version = _single_version(s3, bucket, key)
    stream = s3.get_object(Bucket=bucket, Key=key, VersionId=version)["Body"]
    first = bytearray()
    while b"\n" not in first:
        piece = stream.read(64 * 1024)
        if not piece or len(first) > 64 * 1024 * 1024:
            raise SegmentError(f"{key}: no header line")
        first += piece
    cut = first.index(b"\n") + 1
    rest, first = bytes(first[cut:]), first[:cut]
    try:
        document = json.loads(first)
        if document.get("format") != FORMAT:
            raise SegmentError(f"{key} is not a change segment ({FORMAT})")
        verifier.verify(document["header"].encode(), document.get("signature"))
        header = Header(**json.loads(document["header"]))
    except SignatureInvalid as err:
        raise SegmentError(f"{key}: {err}") from None
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        raise SegmentError(f"{key}: the header is not one the capture writes ({err})") from None
    if header.key != key:
        raise SegmentError(f"{key} holds the segment of {header.key} (copied to another key)")
    body: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - owned by the OpenedSegment
    digest, size = hashlib.sha256(), 0
    for chunk in itertools.chain((rest,), iter(lambda: stream.read(1024 * 1024), b"")):
        digest.update(chunk)
        size += len(chunk)
        body.write(chunk)
    if digest.hexdigest() != header.body_sha256 or size != header.body_bytes:
        body.close()
        raise SegmentError(f"{key}: body sha256 {digest.hexdigest()} ({size} bytes) is not the signed header's "
                           f"{header.body_sha256} ({header.body_bytes} bytes); refusing it")
    return OpenedSegment(header, body)


__all__ = ["Base", "BodyWriter", "Header", "OpenedSegment", "SegmentError", "SegmentKey", "base_id_for", "source_tag",
           "digest_file", "line", "list_bases", "list_segments", "lsn_text", "open_segment", "read_base",
           "segment_key", "write_base", "write_segment"]
