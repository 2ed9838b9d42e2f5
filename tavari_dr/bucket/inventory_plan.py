"""Plan a bucket restore from S3 Inventory and the change feed instead of listing every version (ADR 0023).

The listing planner (tavari_dr.bucket.restore) reads each key's history in S3's own order from
ListObjectVersions: at 1,000 versions a page, 100 M versions take hours. Here the same decision is
made from the newest inventory report (every version, unordered within a key) plus the change feed
(every write and delete, with S3's per-key ``sequencer``), formats in docs/formats/inventory-and-feed.md,
by one SQL query run in DuckDB on this machine (default) or in Athena. The result feeds the same
per-key decision (restore.decide) and so the same Plan, report and apply.

What orders a key's entries, newest first (each rule proven only where it holds):
1. two entries with feed records: the greater sequencer, right-padded with zeros, is the later
   (S3 User Guide, "Event message structure");
2. an entry with a feed record is later than one without: the feed starts before the first inventory
   and misses nothing after (contract §4); where older feed files have expired, only records more than
   FEED_LATE_DAYS after the oldest one kept count, since a record lands up to two days late. A listed
   version younger than the feed with no record of its own means the feed has a gap: its key is
   reported, not planned;
3. between entries without feed records (older than the feed): the inventory's is_latest entry is
   the newest; otherwise a later LastModified second is later, unless the older-looking one is a
   multipart upload (its LastModified is when the upload began).
What those rules cannot order (two such entries in one second, or a multipart upload among them) is
reported ambiguous where it decides the state at T or now, exactly as the listing planner does where
its document cannot show the order; nothing is guessed.

The current state is the inventory plus every feed record after it: it is as fresh as the feed's
newest record (printed with the plan); the apply checks each key it writes against S3 itself.
"""

# ruff: noqa: S608 -- the queries are built as text so that one text runs in both engines (their bind-parameter
# syntaxes differ); every value in them goes through sql_string (quotes doubled) or sql_time (a datetime), and
# every name comes from this module.
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from tavari_dr.bucket.restore import (
    CANARY_PREFIX,
    DELETE_MARKER,
    Plan,
    PlanError,
    Version,
    _require_versioned,
    decide,
    head_current,
    history_by_key,
    list_versions,
    state_at,
    written_in_t_second,
)

SEQUENCER_WIDTH = 256  # right-padded to this width before comparing (longer ones are refused, not cut)
FEED_LATE_DAYS = 2  # "EventBridge and Firehose retry for up to 24 hours each" (the contract, §2)
FEED_GAP_GRACE = timedelta(hours=1)  # a version this long after the feed's first record must have one
# A feed-only version's LastModified is not in the feed (event_time is when S3 finished the request; a
# LastModified is earlier, for a multipart upload by as long as the upload took). Where that can decide
# "at or before T", the version is asked for it (HEAD); a single PUT is taken to finish within an hour.
LAST_MODIFIED_WINDOW = timedelta(hours=1)
HEAD_CONCURRENCY = 16  # as the apply's (--concurrency default): boto3 clients are thread-safe
CANARY_ENCODED, CANARY_RAW = "/probe+a%2Bb", "/probe a+b"  # the canary's key "probe a+b", form-encoded or not
MANIFEST_FOLDER = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}-\d{2}Z)/manifest\.json$")
FEED_DAY = re.compile(r"dt=(\d{4}-\d{2}-\d{2})/")
UNKNOWN = "its place among the key's entries cannot be known from the inventory and the change feed"


# --------------------------------------------------------------------------- the inputs


@dataclass(frozen=True)
class Snapshot:
    """One inventory report: its manifest and data files (restore-ops bucket keys)."""

    manifest_key: str
    created: datetime           # creationTimestamp: when S3 began listing
    data_keys: tuple[str, ...]
    checksums: tuple[str, ...]  # MD5 of each data file, from the manifest

    @property
    def dt(self) -> str:
        """The Hive partition (yyyy-MM-dd-HH-mm) of this report, as the Glue table names it."""
        folder = MANIFEST_FOLDER.search(self.manifest_key)
        assert folder is not None
        return folder.group(1).replace("T", "-").removesuffix("Z")


def newest_snapshot(s3: Any, ops_bucket: str, inventory_prefix: str, source_bucket: str) -> Snapshot:
    """The newest inventory report under ``inventory_prefix``, checked: manifest.checksum matches,
    the report is of ``source_bucket`` and in Parquet."""
    from botocore.exceptions import ClientError

    manifests = sorted(obj["Key"] for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=ops_bucket, Prefix=inventory_prefix) for obj in page.get("Contents", [])
        if MANIFEST_FOLDER.search(obj["Key"]))
    if not manifests:
        raise PlanError(f"no inventory report under s3://{ops_bucket}/{inventory_prefix} (S3 delivers the first "
                        "within 48 hours of the configuration); plan from the listing (without --from-inventory)")
    key = max(manifests, key=lambda k: MANIFEST_FOLDER.search(k).group(1))  # type: ignore[union-attr]
    body = s3.get_object(Bucket=ops_bucket, Key=key)["Body"].read()
    try:
        expected = s3.get_object(Bucket=ops_bucket, Key=key.removesuffix("json") + "checksum")["Body"].read()
    except ClientError:
        expected = None
    actual = hashlib.md5(body, usedforsecurity=False).hexdigest()
    if expected is not None and expected.decode().strip().lower() != actual:
        raise PlanError(f"s3://{ops_bucket}/{key} does not match its manifest.checksum; not planning from it")
    try:
        manifest = json.loads(body)
        files = manifest["files"]
        created = datetime.fromtimestamp(int(manifest["creationTimestamp"]) / 1000, UTC)
    except (ValueError, KeyError, TypeError):
        raise PlanError(f"s3://{ops_bucket}/{key} is not an S3 Inventory manifest") from None
    if manifest.get("sourceBucket") not in (None, source_bucket):
        raise PlanError(f"s3://{ops_bucket}/{key} is the inventory of {manifest['sourceBucket']}, "
                        f"not {source_bucket}")
    if str(manifest.get("fileFormat", "")).lower() != "parquet":
        raise PlanError(f"s3://{ops_bucket}/{key} is a {manifest.get('fileFormat')} inventory; the planner "
                        "reads Parquet")
    return Snapshot(key, created, tuple(f["key"] for f in files), tuple(f.get("MD5checksum", "") for f in files))


@dataclass(frozen=True)
class FeedFiles:
    keys: tuple[str, ...]
    first_day: datetime | None  # the oldest dt= partition kept


def feed_files(s3: Any, ops_bucket: str, feed_prefix: str) -> FeedFiles:
    """Every change-feed object (all partitions: the ordering of versions older than the inventory
    needs their records too, and the feed is no larger than the versions written)."""
    keys = tuple(sorted(obj["Key"] for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=ops_bucket, Prefix=feed_prefix) for obj in page.get("Contents", []) if obj["Key"].endswith(".gz")))
    days = sorted(m.group(1) for k in keys if (m := FEED_DAY.search(k)))
    first = datetime.strptime(days[0], "%Y-%m-%d").replace(tzinfo=UTC) if days else None
    return FeedFiles(keys, first)


def download(s3: Any, ops_bucket: str, keys: tuple[str, ...], into: Path,
             checksums: tuple[str, ...] = ()) -> list[Path]:
    """The objects as local files (DuckDB reads them offline); MD5-checked where the manifest gives one."""
    paths = []
    for i, key in enumerate(keys):
        path = into / f"{i:06d}-{Path(key).name}"
        digest = hashlib.md5(usedforsecurity=False)
        with path.open("wb") as out:
            for chunk in s3.get_object(Bucket=ops_bucket, Key=key)["Body"].iter_chunks(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if i < len(checksums) and checksums[i] and checksums[i].lower() != digest.hexdigest():
            raise PlanError(f"s3://{ops_bucket}/{key} does not match the MD5 its inventory manifest gives")
        paths.append(path)
    return paths


# --------------------------------------------------------------------------- the query


def sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def sql_time(when: datetime) -> str:
    return f"TIMESTAMP '{when.astimezone(UTC).replace(tzinfo=None).isoformat(sep=' ', timespec='microseconds')}'"


@dataclass(frozen=True)
class Window:
    """What the query is asked: the scope, T, and what the feed can be trusted for."""

    bucket: str
    prefix: str
    to: datetime
    decode_keys: bool           # the feed's keys are form-encoded (the canary says)
    trusted_since: datetime     # feed records before this do not order against entries without one (rule 2)
    gap_after: datetime         # a listed version after this with no feed record: the feed has a gap
    # (key, version, LastModified or None: not said, gone): what HEAD said of feed-only versions near T
    heads: tuple[tuple[str, str, datetime | None, bool], ...] = ()


def _feed_cte(source: str, w: Window) -> str:
    key = "url_decode(replace(key, '+', '%20'))" if w.decode_keys else "key"
    return f"""feed_lines AS (
  SELECT {key} AS key, version_id, kind, upper(sequencer) AS sequencer, size, etag, event_time
  FROM {source}
  WHERE bucket = {sql_string(w.bucket)}
),
feed AS (
  -- at least once: every record of a version, deduplicated (contract §2)
  SELECT key, version_id,
    max(CASE WHEN kind IN ('put', 'delete_marker') THEN rpad(sequencer, {SEQUENCER_WIDTH}, '0') END) AS seq,
    bool_or(kind = 'delete_marker') AS f_marker,
    bool_or(kind = 'permanent_delete') AS gone,
    max(CASE WHEN kind = 'put' THEN size END) AS f_size,
    max(CASE WHEN kind = 'put' THEN etag END) AS f_etag,
    min(CASE WHEN kind IN ('put', 'delete_marker') THEN event_time END) AS event_time
  FROM feed_lines
  WHERE starts_with(key, {sql_string(w.prefix)}) AND NOT starts_with(key, {sql_string(CANARY_PREFIX)})
  GROUP BY key, version_id
),
inv AS (
  SELECT key, version_id, is_latest, is_delete_marker AS marker, size, e_tag AS etag, storage_class,
    coalesce(is_multipart_uploaded, false) AS multipart, date_trunc('second', last_modified_date) AS lm"""


def inputs_sql(inventory: str, feed: str, w: Window) -> str:
    """The CTEs both queries share: deduplicated feed records and the inventory rows in scope."""
    return f"""WITH {_feed_cte(feed, w)}
  FROM {inventory}
  WHERE bucket = {sql_string(w.bucket)} AND starts_with(key, {sql_string(w.prefix)})
    AND NOT starts_with(key, {sql_string(CANARY_PREFIX)})
)"""


def heads_needed_sql(inventory: str, feed: str, w: Window) -> str:
    """Feed-only versions whose LastModified may fall either side of T (see LAST_MODIFIED_WINDOW)."""
    return inputs_sql(inventory, feed, w) + f"""
SELECT f.key, f.version_id
FROM feed f LEFT JOIN inv i ON i.key = f.key AND i.version_id = f.version_id
WHERE i.key IS NULL AND f.seq IS NOT NULL AND NOT f.gone
  AND f.event_time >= {sql_time(w.to - timedelta(seconds=2))}
  AND (f.event_time <= {sql_time(w.to + LAST_MODIFIED_WINDOW)} OR strpos(coalesce(f.f_etag, ''), '-') > 0)"""


def _heads_values(w: Window) -> str:
    rows = [f"({sql_string(k)}, {sql_string(v)}, {sql_time(lm) if lm else 'CAST(NULL AS TIMESTAMP)'}, "
            f"{'true' if gone else 'false'})" for k, v, lm, gone in w.heads]
    if not rows:
        return ("SELECT CAST(NULL AS VARCHAR) AS key, CAST(NULL AS VARCHAR) AS version_id, "
                "CAST(NULL AS TIMESTAMP) AS lm, false AS gone WHERE 1 = 0")
    return "SELECT * FROM (VALUES " + ", ".join(rows) + ") AS h(key, version_id, lm, gone)"


def plan_sql(inventory: str, feed: str, w: Window) -> str:
    """Per key: the entry at T and the current one, whether either cannot be known, and whether the key
    needs a decision at all. Returns the keys that do, plus the first key carrying the totals."""
    to = sql_time(w.to)
    return inputs_sql(inventory, feed, w) + f""",
heads AS ({_heads_values(w)}),
entries AS (
  SELECT coalesce(i.key, f.key) AS key, coalesce(i.version_id, f.version_id) AS version_id,
    -- rule 2 holds for a record only from trusted_since on (older files may have expired)
    CASE WHEN i.key IS NULL OR f.event_time >= {sql_time(w.trusted_since)} THEN f.seq END AS seq,
    coalesce(i.is_latest, false) AS is_latest,
    coalesce(i.marker, f.f_marker) AS marker,
    coalesce(i.size, f.f_size, 0) AS size,
    coalesce(i.etag, f.f_etag) AS etag,
    i.storage_class,
    coalesce(i.multipart, strpos(coalesce(f.f_etag, ''), '-') > 0) AS multipart,
    coalesce(i.lm, h.lm, f.event_time) AS lm,
    i.key IS NOT NULL AS listed,
    (i.key IS NOT NULL AND f.seq IS NULL AND i.lm > {sql_time(w.gap_after)}) AS missing_record,
    -- a feed record of a version the inventory lists, saying something else of it
    coalesce(i.key IS NOT NULL AND f.seq IS NOT NULL AND (i.marker <> f.f_marker
             OR (NOT i.marker AND (i.size <> f.f_size OR i.etag <> f.f_etag))), false) AS contradicts
  FROM inv i
  FULL OUTER JOIN feed f ON f.key = i.key AND f.version_id = i.version_id
  LEFT JOIN heads h ON h.key = f.key AND h.version_id = f.version_id
  WHERE NOT coalesce(f.gone, false) AND NOT coalesce(h.gone, false) AND (i.key IS NOT NULL OR f.seq IS NOT NULL)
),
seconds AS (
  -- entries without a feed record, per second: rule 3 cannot order two in one second
  SELECT key, lm, count(*) AS n, sum(CASE WHEN multipart THEN 1 ELSE 0 END) AS n_multipart,
    max(version_id) AS one_id, bool_or(marker) AS one_marker
  FROM entries WHERE seq IS NULL GROUP BY key, lm
),
unordered AS (
  SELECT key,
    max_by(n, lm) AS n_top_now, sum(n_multipart) AS mp_now, max_by(n_multipart, lm) AS top_mp_now,
    max_by(one_id, lm) AS id_now, max_by(one_marker, lm) AS marker_now,
    max_by(n, lm) FILTER (WHERE lm <= {to}) AS n_top_t, sum(n_multipart) FILTER (WHERE lm <= {to}) AS mp_t,
    max_by(n_multipart, lm) FILTER (WHERE lm <= {to}) AS top_mp_t,
    max_by(one_id, lm) FILTER (WHERE lm <= {to}) AS id_t, max_by(one_marker, lm) FILTER (WHERE lm <= {to}) AS marker_t
  FROM seconds GROUP BY key
),
keyed AS (
  SELECT key,
    max_by(version_id, seq) FILTER (WHERE seq IS NOT NULL) AS seq_now,
    max_by(marker, seq) FILTER (WHERE seq IS NOT NULL) AS seq_now_marker,
    max_by(version_id, seq) FILTER (WHERE seq IS NOT NULL AND lm <= {to}) AS seq_t,
    max_by(marker, seq) FILTER (WHERE seq IS NOT NULL AND lm <= {to}) AS seq_t_marker,
    max(CASE WHEN is_latest THEN version_id END) AS latest_id,
    max(CASE WHEN is_latest THEN lm END) AS latest_lm,
    bool_or(is_latest AND marker) AS latest_marker,
    bool_or(missing_record) AS missing_record,
    bool_or(contradicts) AS contradicts,
    -- the plan cannot leave such a key alone on the inputs' word: S3 is asked (_decide_row)
    bool_or(NOT listed OR lm > {to}) AS unverified,
    -- an entry written in T's own second: before or after T, whole-second times cannot say (restore.in_second_of)
    bool_or(date_trunc('second', lm) = date_trunc('second', {to})) AS in_t_second,
    min(lm) AS oldest
  FROM entries GROUP BY key
),
gone_t AS (
  -- the newest permanently deleted version at or before T: were its record forged, the entry at T would be it
  SELECT f.key, max(coalesce(i.lm, f.event_time)) AS gone_lm
  FROM feed f LEFT JOIN inv i ON i.key = f.key AND i.version_id = f.version_id
  WHERE f.gone AND coalesce(i.lm, f.event_time) <= {to}
  GROUP BY f.key
),
decided AS (
  -- the newest entry at T and now: by sequencer (rules 1, 2), else is_latest, else the newest second (rule 3)
  SELECT k.key, k.oldest, k.missing_record, k.contradicts, k.unverified, k.in_t_second,
    coalesce(k.seq_now, k.latest_id, u.id_now) AS now_id,
    CASE WHEN k.seq_now IS NOT NULL THEN k.seq_now_marker WHEN k.latest_id IS NOT NULL THEN k.latest_marker
         ELSE u.marker_now END AS now_marker,
    (k.seq_now IS NULL AND k.latest_id IS NULL
     AND coalesce(u.n_top_now > 1 OR u.mp_now > u.top_mp_now, false)) AS now_unknown,
    coalesce(k.seq_t, CASE WHEN k.latest_lm <= {to} THEN k.latest_id END, u.id_t) AS t_id,
    CASE WHEN k.seq_t IS NOT NULL THEN k.seq_t_marker WHEN k.latest_lm <= {to} THEN k.latest_marker
         ELSE u.marker_t END AS t_marker,
    (k.seq_t IS NULL AND NOT coalesce(k.latest_lm <= {to}, false)
     AND coalesce(u.n_top_t > 1 OR u.mp_t > u.top_mp_t, false)) AS t_unknown
  FROM keyed k LEFT JOIN unordered u ON u.key = k.key
),
classified AS (
  SELECT key, oldest, missing_record, contradicts, t_unknown, now_unknown, t_id, now_id, in_t_second,
    CASE WHEN missing_record OR contradicts OR t_unknown OR now_unknown OR in_t_second THEN 'decide'
         WHEN (t_id IS NULL OR t_marker) AND now_marker THEN 'absent'
         WHEN t_id = now_id AND NOT t_marker AND NOT unverified THEN 'unchanged'
         ELSE 'decide' END AS status
  FROM decided
),
totals AS (
  -- one row; a cross join, not window functions: DuckDB runs an unpartitioned window on one thread
  SELECT count(*) AS keys_in_scope, sum(CASE WHEN status = 'unchanged' THEN 1 ELSE 0 END) AS unchanged_keys,
    sum(CASE WHEN status = 'absent' THEN 1 ELSE 0 END) AS absent_keys, min(oldest) AS oldest_in_scope,
    min(key) AS first_key
  FROM classified
),
picked AS (
  SELECT c.*, s.* FROM classified c CROSS JOIN totals s WHERE c.status = 'decide' OR c.key = s.first_key
)
-- only the keys to decide (about the changed share) are joined back for their entries' attributes
SELECT p.*, t.marker AS t_marker, t.size AS t_size, t.etag AS t_etag, t.storage_class AS t_class,
  t.lm AS t_lm, t.listed AS t_listed,
  n.marker AS now_marker, n.size AS now_size, n.etag AS now_etag, n.storage_class AS now_class, n.lm AS now_lm,
  (g.gone_lm IS NOT NULL AND (t.lm IS NULL OR g.gone_lm >= t.lm)) AS gone_near_t
FROM picked p
LEFT JOIN entries t ON t.key = p.key AND t.version_id = p.t_id
LEFT JOIN entries n ON n.key = p.key AND n.version_id = p.now_id
LEFT JOIN gone_t g ON g.key = p.key"""


def feed_facts_sql(feed: str, bucket: str) -> str:
    """What the planner checks before trusting the feed: its time span, the longest sequencer, and the
    canary's keys (whether keys are form-encoded)."""
    return f"""SELECT min(event_time) AS first_record, max(event_time) AS last_record,
  max(length(sequencer)) AS longest_sequencer, count(*) AS records,
  max(CASE WHEN starts_with(key, {sql_string(CANARY_PREFIX)}) AND strpos(key, '{CANARY_ENCODED[1:]}') > 0
      THEN 1 ELSE 0 END) AS canary_encoded,
  max(CASE WHEN starts_with(key, {sql_string(CANARY_PREFIX)}) AND strpos(key, '{CANARY_RAW[1:]}') > 0
      THEN 1 ELSE 0 END) AS canary_raw
FROM {feed} WHERE bucket = {sql_string(bucket)}"""


# --------------------------------------------------------------------------- engines


class Engine(Protocol):
    inventory: str  # the FROM of the inventory rows (one report)
    feed: str       # the FROM of the feed lines, event_time a TIMESTAMP

    def rows(self, sql: str) -> Iterator[dict[str, Any]]: ...

    def partitions(self, w: Window) -> list[tuple[str, str]]:
        """(inventory, feed) FROMs that split the keys in scope into disjoint sets, in key order."""
        ...


FEED_COLUMNS = {"event_id": "VARCHAR", "event_time": "VARCHAR", "bucket": "VARCHAR", "key": "VARCHAR",
                "version_id": "VARCHAR", "sequencer": "VARCHAR", "kind": "VARCHAR", "size": "BIGINT",
                "etag": "VARCHAR"}


INVENTORY_COLUMNS = ("bucket", "key", "version_id", "is_latest", "is_delete_marker", "size", "e_tag", "storage_class",
                     "is_multipart_uploaded", "last_modified_date")  # what inputs_sql reads of a report
# Memory_limit / this = the versions one key range holds. The plan query's joins and aggregations take
# ~1.5 GiB for 1 M versions and spill beyond ~3 M at 3 GB (benches/plan_scale.py); ranges of ~1 M
# versions at 3 GB stay in memory and were the fastest per version measured (10 M: 4.1 s per
# million in 10 ranges, 5.2 in 4).
BYTES_PER_VERSION = 3_000
BOUNDARY_SAMPLE = 100_000  # keys sampled to place the partition boundaries (any boundaries give the same plan)
MEMORY_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "KIB": 2**10, "MIB": 2**20,
                "GIB": 2**30, "TIB": 2**40}


def memory_bytes(limit: str) -> int:
    """A DuckDB memory_limit ('3GB', '512MiB') in bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?I?B?)\s*", limit.upper())
    if not match or match.group(2) not in MEMORY_UNITS:
        raise PlanError(f"--memory-limit {limit!r} is not a size (e.g. 3GB, 512MB)")
    return int(float(match.group(1)) * MEMORY_UNITS[match.group(2)])


def partition_expr(column: str, bounds: list[str]) -> str:
    """The index of ``column``'s key range among ``bounds`` (sorted): how many bounds are <= it, as a
    binary tree of comparisons (log2 of the partitions per row, not one per boundary)."""
    def tree(lo: int, hi: int) -> str:
        if lo == hi:
            return str(lo)
        mid = (lo + hi + 1) // 2
        return f"CASE WHEN {column} < {sql_string(bounds[mid - 1])} THEN {tree(lo, mid - 1)} ELSE {tree(mid, hi)} END"
    return tree(0, len(bounds))


@dataclass
class DuckDbEngine:
    """DuckDB in this process over local copies of the files: its Parquet and JSON readers are built
    in, and extension loading is switched off so nothing is fetched at run time.

    A report too large for one query in ``memory_limit`` is planned by key range: the rows in scope are
    written once into Parquet partitioned by range (only the columns the query reads), then the same
    plan query runs per range. A key's entries all fall in one range, so the per-key result is the
    same; ranges are taken in key order, so the decided keys come out in the same order."""

    inventory_files: list[Path]
    feed_paths: list[Path]
    memory_limit: str = "3GB"
    threads: int = 2
    temp_directory: Path | None = None
    partition_count: int | None = None  # None: from the report's row count and memory_limit
    connection: Any = field(init=False, repr=False)
    _staged: dict[tuple[str, str, bool], list[tuple[str, str]]] = field(init=False, repr=False,
                                                                         default_factory=dict)
    # the range files: removed with the engine (or at exit), wherever temp_directory is
    _stage_dirs: list[tempfile.TemporaryDirectory[str]] = field(init=False, repr=False, default_factory=list)

    def __post_init__(self) -> None:
        import duckdb

        # preserve_insertion_order off: no query here relies on row order (the plan sorts by key), and
        # keeping it makes DuckDB buffer results it could stream
        config = {"autoinstall_known_extensions": False, "autoload_known_extensions": False,
                  "memory_limit": self.memory_limit, "threads": self.threads, "preserve_insertion_order": False}
        if self.temp_directory:
            config["temp_directory"] = str(self.temp_directory)
        self.connection = duckdb.connect(config=config)
        self.connection.execute("SET TimeZone = 'UTC'")  # inventory timestamps are UTC; so are the literals
        if not self.inventory_files:
            raise PlanError("the inventory report lists no data files")
        files = ", ".join(sql_string(str(p)) for p in self.inventory_files)
        self.inventory = f"read_parquet([{files}])"
        if self.feed_paths:
            paths = ", ".join(sql_string(str(p)) for p in self.feed_paths)
            columns = "{" + ", ".join(f"{sql_string(k)}: {sql_string(v)}" for k, v in FEED_COLUMNS.items()) + "}"
            self.feed = (f"(SELECT event_id, strptime(event_time, '%Y-%m-%dT%H:%M:%SZ') AS event_time, bucket, key, "
                         f"version_id, sequencer, kind, size, etag FROM read_json([{paths}], "
                         f"format = 'newline_delimited', compression = 'gzip', columns = {columns}))")
        else:
            nulls = ", ".join(f"CAST(NULL AS {'TIMESTAMP' if k == 'event_time' else v}) AS {k}"
                              for k, v in FEED_COLUMNS.items())
            self.feed = f"(SELECT {nulls} WHERE 1 = 0)"

    def partitions(self, w: Window) -> list[tuple[str, str]]:
        key = (w.bucket, w.prefix, w.decode_keys)
        if key not in self._staged:
            self._staged[key] = self._partition(w)
        return self._staged[key]

    def _partition(self, w: Window) -> list[tuple[str, str]]:
        in_scope = f"bucket = {sql_string(w.bucket)} AND starts_with(key, {sql_string(w.prefix)})"
        wanted = self.partition_count
        if wanted is None:
            versions = next(self.rows(f"SELECT count(*) AS n FROM {self.inventory}"))["n"]
            wanted = -(-versions * BYTES_PER_VERSION // memory_bytes(self.memory_limit))
        if wanted <= 1:
            return [(self.inventory, self.feed)]
        sample = sorted({r["key"] for r in self.rows(
            f"SELECT key FROM (SELECT key FROM {self.inventory} WHERE {in_scope}) "
            f"USING SAMPLE reservoir({BOUNDARY_SAMPLE} ROWS) REPEATABLE (23)")})
        bounds = sorted({sample[len(sample) * i // wanted] for i in range(1, wanted)} - {sample[0]}) if sample else []
        if not bounds:
            return [(self.inventory, self.feed)]
        self._stage_dirs.append(tempfile.TemporaryDirectory(prefix="partitions-", dir=self.temp_directory))
        stage = Path(self._stage_dirs[-1].name)
        columns = ", ".join(INVENTORY_COLUMNS)
        feed_key = "url_decode(replace(key, '+', '%20'))" if w.decode_keys else "key"
        self._copy(f"SELECT {columns}, {partition_expr('key', bounds)} AS p FROM {self.inventory} WHERE {in_scope}",
                   stage / "inventory")
        self._copy(f"SELECT *, {partition_expr(feed_key, bounds)} AS p FROM {self.feed} "
                   f"WHERE bucket = {sql_string(w.bucket)} AND starts_with({feed_key}, {sql_string(w.prefix)})",
                   stage / "feed")
        inventory = self._staged_source(stage / "inventory", self.inventory)
        feed = self._staged_source(stage / "feed", self.feed)
        return [(inventory(i), feed(i)) for i in range(len(bounds) + 1)]

    def _copy(self, select: str, into: Path) -> None:
        import duckdb

        try:
            self.connection.execute(f"COPY ({select}) TO {sql_string(str(into))} (FORMAT parquet, PARTITION_BY (p))")
        except duckdb.Error as err:
            raise PlanError(f"the inventory or change feed could not be read: {err}") from None

    @staticmethod
    def _staged_source(folder: Path, empty_like: str) -> Callable[[int], str]:
        if not any(folder.glob("p=*/*.parquet")):  # nothing in scope there: no file to read
            return lambda _i: f"(SELECT * FROM {empty_like} WHERE 1 = 0)"
        files = sql_string(str(folder / "p=*" / "*.parquet"))
        # hive partitioning: the filter on p reads only that range's files
        return lambda i: f"(SELECT * FROM read_parquet({files}, hive_partitioning = true) WHERE p = {i})"

    def rows(self, sql: str) -> Iterator[dict[str, Any]]:
        import duckdb

        try:
            cursor = self.connection.execute(sql)
        except duckdb.Error as err:
            raise PlanError(f"the inventory or change feed could not be read: {err}") from None
        names = [d[0] for d in cursor.description]
        while batch := cursor.fetchmany(10_000):
            for row in batch:
                yield dict(zip(names, row, strict=True))


@dataclass
class AthenaEngine:
    """The same query in Athena (Trino), over the Glue tables `inventory` and `change_feed`."""

    athena: Any
    workgroup: str
    database: str
    snapshot_dt: str
    poll_seconds: float = 1.0
    sleep: Callable[[float], None] = time.sleep
    executions: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.inventory = f"(SELECT * FROM inventory WHERE dt = {sql_string(self.snapshot_dt)})"
        self.feed = ("(SELECT event_id, date_parse(event_time, '%Y-%m-%dT%H:%i:%sZ') AS event_time, bucket, key, "
                     "version_id, sequencer, kind, size, etag FROM change_feed)")

    def partitions(self, w: Window) -> list[tuple[str, str]]:
        return [(self.inventory, self.feed)]  # Athena spreads one query over its own workers

    def rows(self, sql: str) -> Iterator[dict[str, Any]]:
        execution = self.athena.start_query_execution(
            QueryString=sql, WorkGroup=self.workgroup, QueryExecutionContext={"Database": self.database})
        query_id = execution["QueryExecutionId"]
        self.executions.append(query_id)
        while True:
            status = self.athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]["Status"]
            if status["State"] == "SUCCEEDED":
                break
            if status["State"] in ("FAILED", "CANCELLED"):
                raise PlanError(f"Athena query {query_id} {status['State'].lower()}: "
                                f"{status.get('StateChangeReason', 'no reason given')}")
            self.sleep(self.poll_seconds)
        names: list[str] = []
        types: list[str] = []
        for page in self.athena.get_paginator("get_query_results").paginate(QueryExecutionId=query_id):
            rows = page["ResultSet"]["Rows"]
            if not names:
                columns = page["ResultSet"]["ResultSetMetadata"]["ColumnInfo"]
                names, types = [c["Name"] for c in columns], [c["Type"] for c in columns]
                rows = rows[1:]  # the first row of the first page repeats the column names
            for row in rows:
                values = [cell.get("VarCharValue") for cell in row["Data"]]
                yield {n: _athena_value(v, t) for n, v, t in zip(names, values, types, strict=True)}


def _athena_value(text: str | None, kind: str) -> Any:
    if text is None:
        return None
    if kind == "boolean":
        return text == "true"
    if kind in ("bigint", "integer", "smallint", "tinyint"):
        return int(text)
    if kind.startswith("timestamp"):
        return datetime.fromisoformat(text)
    return text


# --------------------------------------------------------------------------- the plan


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def head_last_modified(client: Any, bucket: str, key: str, version_id: str) -> tuple[datetime | None, bool]:
    """(LastModified, gone) of a version, from S3. "If the specified version in the request is a delete
    marker, the response returns a 405 Method Not Allowed error and the Last-Modified: timestamp response
    header" (S3 API Reference, HeadObject); without that header (emulators: moto sends none) the marker's
    feed time stands in, a delete having no body to take long over."""
    from botocore.exceptions import ClientError

    try:
        return client.head_object(Bucket=bucket, Key=key, VersionId=version_id)["LastModified"], False
    except ClientError as err:
        headers = err.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if headers.get("last-modified"):
            from email.utils import parsedate_to_datetime

            return parsedate_to_datetime(headers["last-modified"]), False
        if status == 405 or err.response.get("Error", {}).get("Code") == "MethodNotAllowed":
            return None, False
        if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NoSuchVersion", "NotFound"):
            return None, True
        raise


@dataclass
class FeedState:
    first_record: datetime | None
    last_record: datetime | None
    records: int


def plan_from_inventory(client: Any, engine: Engine, bucket: str, to: datetime, *, prefix: str = "",
                        now: datetime | None = None, tags: bool = True, feed_first_day: datetime | None = None,
                        feed_retention_days: int = 400, written: dict[str, str] | None = None,
                        erased_prefixes: Iterable[str] = ()) -> tuple[Plan, FeedState]:
    """The plan the listing planner would make for an in-place restore, from the engine's inventory and
    feed. ``client``: S3, for versioning, the few HEADs (LastModified of versions written near T, storage
    class of feed-only versions to copy) and the content comparison restore.decide makes. ``erased_prefixes``:
    the erased accounts' keys, which restore.decide never brings back."""
    now = now or datetime.now(UTC)
    if to > now:
        raise PlanError(f"--to {to.isoformat()} is in the future (now {now.isoformat(timespec='seconds')})")
    _require_versioned(client, bucket)
    facts = next(engine.rows(feed_facts_sql(engine.feed, bucket)))
    state = FeedState(_utc(facts["first_record"]), _utc(facts["last_record"]), int(facts["records"] or 0))
    if state.records == 0:
        raise PlanError("the change feed has no record of this bucket; without it the versions written since the "
                        "inventory are unknown: plan from the listing (without --from-inventory)")
    if (facts["longest_sequencer"] or 0) > SEQUENCER_WIDTH:
        raise PlanError(f"a feed sequencer is longer than {SEQUENCER_WIDTH} hex digits; the planner cannot compare it")
    encoded, raw = bool(facts["canary_encoded"]), bool(facts["canary_raw"])
    if encoded == raw:
        raise PlanError("the change feed's canary records " + ("disagree on" if encoded else "are missing, so cannot "
                        "show") + " whether its keys are URL-encoded (docs/formats/inventory-and-feed.md §2); "
                        "check the canary, or plan from the listing")
    assert state.first_record is not None
    expired = feed_first_day is not None and feed_first_day < now - timedelta(days=feed_retention_days - 1)
    trusted_since = (feed_first_day + timedelta(days=FEED_LATE_DAYS) if expired and feed_first_day
                     else datetime(1970, 1, 1, tzinfo=UTC))
    gap_after = max(trusted_since, state.first_record) + FEED_GAP_GRACE
    window = Window(bucket, prefix, to, encoded, trusted_since, gap_after)
    parts = engine.partitions(window)
    needed = [(r["key"], r["version_id"]) for inventory, feed in parts
              for r in engine.rows(heads_needed_sql(inventory, feed, window))]
    with ThreadPoolExecutor(max_workers=HEAD_CONCURRENCY) as pool:  # one HEAD per version written around T
        heads = tuple((k, v, *said) for (k, v), said in zip(
            needed, pool.map(lambda kv: head_last_modified(client, bucket, *kv), needed), strict=True))
    window = dataclasses.replace(window, heads=heads)

    plan = Plan(bucket=bucket, to=to.isoformat(), prefix=prefix, created=now.isoformat(timespec="seconds"), tags=tags,
                erased_prefixes=sorted(set(erased_prefixes)))
    seen, oldest = False, None
    for inventory, feed in parts:  # one key range at a time: only its decided rows are held
        rows = list(engine.rows(plan_sql(inventory, feed, window)))
        if not rows:
            continue
        first, seen = rows[0], True
        part_oldest = _utc(first["oldest_in_scope"])
        assert part_oldest is not None
        oldest = part_oldest if oldest is None else min(oldest, part_oldest)
        plan.keys_in_scope += int(first["keys_in_scope"])
        plan.unchanged += int(first["unchanged_keys"])
        plan.absent += int(first["absent_keys"])
        # Before the oldest version (checked below, once every range is read) no key has an entry at T,
        # so decide makes no S3 request for any key: deciding first changes nothing but the time spent.
        for row in sorted((r for r in rows if r["status"] == "decide"), key=lambda r: r["key"]):
            _decide_row(client, plan, row, to, written)
    if not seen:
        raise PlanError(f"no versions under s3://{bucket}/{prefix} in the inventory or the change feed; nothing to "
                        "restore")
    assert oldest is not None
    if to < oldest:
        raise PlanError(f"--to {to.isoformat()} is before the oldest version in scope ({oldest.isoformat()}); "
                        "nothing existed then")
    return plan, state


def _decide_row(client: Any, plan: Plan, row: dict[str, Any], to: datetime, written: dict[str, str] | None) -> None:
    """One decided key: its entries at T and now from the query, checked against S3 where the plan
    would rest on them (see check_with_s3), then restore.decide."""
    from botocore.exceptions import ClientError

    key = row["key"]
    if row["contradicts"]:
        plan.contradicted.append({"key": key, "reason": "a change-feed record of a version the inventory lists "
                                  "gives it another size, ETag or kind"})
        return
    if row["in_t_second"]:
        decide(client, plan, key, None, None, unknown_at_t=written_in_t_second(to))
        return
    at_t, current = _entry(row, "t", to), _entry(row, "now", to)
    if written and key in written and current is not None:
        # This run's own write (the check after an apply): the feed may not have its record yet.
        gone = at_t is None or at_t.delete_marker
        current = dataclasses.replace(current, version_id=written[key], delete_marker=gone, uncertain="")
    if not (at_t and at_t.uncertain) and not (current and current.uncertain):
        try:
            at_t, why = check_with_s3(client, plan.bucket, key, at_t, current, to)
        except ClientError as err:
            why = f"S3 could not be asked ({err.response.get('Error', {}).get('Code', err)})"
        if why:
            plan.contradicted.append({"key": key, "reason": why})
            return
    before = len(plan.actions)
    decide(client, plan, key, at_t, current, written=written)
    new = plan.actions[before:]
    if not new or written is not None:
        return
    # An action that writes from what the inputs say was at T: where they may have missed (or been told to
    # drop) an entry at T, the key's own listing says what S3 had then.
    if new[0].action == DELETE_MARKER or row["gone_near_t"]:
        why = _listing_disagrees(client, plan.bucket, key, at_t, to)
        if why:
            del plan.actions[before:]
            plan.contradicted.append({"key": key, "reason": why})


def _etag(text: str | None) -> str:
    return (text or "").strip('"')


def check_with_s3(client: Any, bucket: str, key: str, at_t: Version | None, current: Version | None,
                  to: datetime) -> tuple[Version | None, str]:
    """The entry at T as S3 has it, or why S3 contradicts the inputs (""; at most one HEAD):
    - a version the plan would copy (or take the tags of): HeadObject with its VersionId must find it,
      a version (not a delete marker) of the same size and ETag, last modified at or before T; its
      storage class comes from the answer (the feed does not carry one);
    - the version the plan leaves in place as current since T: HeadObject of the key must answer that
      version, at or before T, of the same size and ETag."""
    from botocore.exceptions import ClientError

    if at_t is None or at_t.delete_marker:
        return at_t, ""
    same = current is not None and current.version_id == at_t.version_id and not current.delete_marker
    what = "the version current since T" if same else "the version to copy"
    if same:
        now, marker, head = head_current(client, bucket, key)
        if now != at_t.version_id or marker:
            return at_t, (f"S3's current entry is {now or 'none'}{' (a delete marker)' if marker else ''}, not "
                          f"{at_t.version_id}, which the inventory and change feed make current since T")
    else:
        try:
            head = client.head_object(Bucket=bucket, Key=key, VersionId=at_t.version_id)
        except ClientError as err:
            status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status in (400, 404, 405):
                kind = "is a delete marker" if status == 405 else "does not exist"
                return at_t, f"{what} {at_t.version_id} {kind} in S3"
            raise
    if head.get("ContentLength") != at_t.size or (at_t.etag and _etag(head.get("ETag")) != _etag(at_t.etag)):
        return at_t, (f"{what} {at_t.version_id} is {head.get('ContentLength')} bytes, ETag {_etag(head.get('ETag'))} "
                      f"in S3; the inventory and change feed say {at_t.size} bytes, ETag {_etag(at_t.etag)}")
    modified = head.get("LastModified")
    if modified is not None and modified.replace(microsecond=0) > to:
        return at_t, f"{what} {at_t.version_id} was last modified at {modified.isoformat()} in S3, after T"
    return dataclasses.replace(at_t, storage_class=head.get("StorageClass", "STANDARD")), ""


def _listing_disagrees(client: Any, bucket: str, key: str, at_t: Version | None, to: datetime) -> str:
    """The key's own ListObjectVersions (Prefix=key: usually one request) against the plan's entry at T;
    "" when they agree."""
    entries = []
    for v in list_versions(client, bucket, key):
        if v.key == key:
            entries.append(v)
        elif entries:
            break  # keys are listed in order: the key's entries are one run
    truth = state_at(history_by_key(entries).get(key, []), to)
    if truth is not None and truth.uncertain:
        return f"S3's listing of the key cannot confirm its entry at T ({truth.uncertain})"
    live = truth is not None and not truth.delete_marker
    planned = at_t is not None and not at_t.delete_marker
    if live and (not planned or truth.version_id != at_t.version_id):  # type: ignore[union-attr]
        return (f"S3 lists version {truth.version_id} as current at T; the inventory and change feed "
                + ("have no version then" if not planned else f"make it {at_t.version_id}"))  # type: ignore[union-attr]
    if not live and planned:
        return f"S3 lists no version current at T; the inventory and change feed make it {at_t.version_id}"  # type: ignore[union-attr]
    return ""


def _entry(row: dict[str, Any], side: str, to: datetime) -> Version | None:
    version_id = row[f"{side}_id"]
    if version_id is None:
        return None
    unknown = (row["missing_record"] and "the change feed has no record of a version the inventory lists after "
               "the feed began (the feed has a gap)") or (row[f"{side}_unknown"] and UNKNOWN) or ""
    when = _utc(row[f"{side}_lm"]) or to
    return Version(row["key"], version_id, when, side == "now", bool(row[f"{side}_marker"]),
                   int(row[f"{side}_size"] or 0), row[f"{side}_etag"], row[f"{side}_class"] or "STANDARD",
                   uncertain=unknown)


def local_engine(s3: Any, ops_bucket: str, snapshot: Snapshot, feed: FeedFiles, workdir: Path, *,
                 memory_limit: str = "3GB", threads: int = 2) -> DuckDbEngine:
    """Fetch the report's data files and the feed into ``workdir`` and open DuckDB over them."""
    (workdir / "inventory").mkdir(parents=True, exist_ok=True)
    (workdir / "feed").mkdir(exist_ok=True)
    (workdir / "spill").mkdir(exist_ok=True)
    inventory = download(s3, ops_bucket, snapshot.data_keys, workdir / "inventory", snapshot.checksums)
    lines = download(s3, ops_bucket, feed.keys, workdir / "feed")
    return DuckDbEngine(inventory, lines, memory_limit=memory_limit, threads=threads,
                        temp_directory=workdir / "spill")


def temporary_workdir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="tavari-inventory-")


def gzip_lines(records: list[dict[str, Any]]) -> bytes:
    """Feed lines as Firehose writes them (one JSON object a line, GZIP): used by the bench and tests."""
    return gzip.compress("".join(json.dumps(r) + "\n" for r in records).encode())
