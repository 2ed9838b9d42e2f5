"""What a recovery step would take in production, from what it does: requests, bytes and rows.

The drill runs against an emulator on a shared 2-core machine, where wall time says more about the
machine's load and moto's listing (which copies the whole bucket for every page) than about S3. So
a verdict never rests on it: each data-moving step records its counts, the counts are scaled to the
production sizes in ``cdk.json`` by what drives them (keys, changed keys, versions, dump bytes), and
this module turns them into seconds with

* S3's documented behaviour (constants below, each with its source),
* PostgreSQL dump / restore / scan throughput and the CLI's start-up, from a calibration file
  (``tavari_dr/core/data/calibration.json``) written by ``benches/calibrate.py`` on a named host at a
  named date — never measured during a drill, so a loaded machine cannot move the verdict,
* a few stated assumptions where AWS or Supabase publish no figure (marked ``ASSUMPTION``); the
  quarterly drill in AWS records the same counts beside real durations and reports this model's
  error per step, which is how those get corrected.

Every estimate carries its inputs and formula, so the report can show how each figure came about.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any

# --------------------------------------------------------------------------- S3, as documented

# "consistent small object latencies (and first-byte-out latencies for larger objects) of roughly
# 100-200 milliseconds" — Amazon S3 User Guide, Performance design patterns
# (https://docs.aws.amazon.com/AmazonS3/latest/userguide/optimizing-performance-design-patterns.html).
# The upper end is used: a recovery estimate should not be optimistic.
S3_REQUEST_SECONDS = 0.2
# A ListObjectVersions / ListObjectsV2 page holds at most 1,000 entries (S3 API Reference, MaxKeys)
# and pages are sequential: each needs the previous page's continuation marker.
LIST_PAGE_ENTRIES = 1000
# "Make one concurrent request for each 85-90 MB/s of desired network throughput" — Amazon S3 User
# Guide, Performance guidelines (optimizing-performance-guidelines.html, "Scale storage connections
# horizontally"). The lower end, per connection.
S3_CONNECTION_BYTES_PER_SECOND = 85e6
# "at least 3,500 PUT/COPY/POST/DELETE or 5,500 GET/HEAD requests per second per partitioned
# Amazon S3 prefix" — Amazon S3 User Guide, Best practices design patterns (optimizing-performance.html).
# The invoice keys share one prefix (invoices/), so one partition is assumed.
PREFIX_WRITE_REQUESTS_PER_SECOND = 3500
PREFIX_READ_REQUESTS_PER_SECOND = 5500
# Restore requests (RestoreObject) finish asynchronously: "typically made available within 1-5
# minutes" (Expedited), "3-5 hours" (Standard, Flexible Retrieval), "within 12 hours" (Standard,
# Deep Archive), "5-12 hours" / "within 48 hours" (Bulk) — Amazon S3 User Guide, Understanding
# archive retrieval options (restoring-objects-retrieval-options.html). The upper ends; Glacier
# Instant Retrieval needs no restore request (milliseconds, like Standard).
GLACIER_RESTORE_SECONDS = {
    ("GLACIER", "Expedited"): 5 * 60, ("GLACIER", "Standard"): 5 * 3600, ("GLACIER", "Bulk"): 12 * 3600,
    ("DEEP_ARCHIVE", "Standard"): 12 * 3600, ("DEEP_ARCHIVE", "Bulk"): 48 * 3600,
}
# ASSUMPTION: other AWS API calls (Secrets Manager, CloudFormation, CloudWatch, KMS) in the same
# region take no longer than an S3 request; AWS publishes no latency figure for them.
AWS_API_SECONDS = S3_REQUEST_SECONDS
# ASSUMPTION: an HTTPS health check of the application answers within S3's request latency.
HEALTH_CHECK_SECONDS = S3_REQUEST_SECONDS
# ASSUMPTION: a new Supabase project (scenario 2's replacement database) is ready within 10 minutes
# of the operator asking for it; Supabase publishes no figure. Operator time to type is not modelled.
PROVISION_DATABASE_SECONDS = 600

# The tools' own concurrency (what the estimate divides by).
DB_DOWNLOAD_CONCURRENCY = 8  # tavari_dr.database.backup.download_verified (its default)
BUCKET_RESTORE_CONCURRENCY = 16  # `tavari-dr bucket restore --concurrency` (its default; the drill passes it)
DRILL_VERIFY_CONCURRENCY = 8  # tavari_dr.drill.state.bucket_state

READ_KINDS = ("get", "head")
WRITE_KINDS = ("put", "copy", "delete", "glacier_restore")

# S3 operations -> the kinds the model prices (and the report shows); others count as "api".
S3_KINDS = {
    "ListObjectVersions": "list", "ListObjectsV2": "list", "ListObjects": "list",
    "HeadObject": "head", "GetObject": "get", "GetObjectTagging": "head", "GetObjectAttributes": "head",
    "CopyObject": "copy", "UploadPartCopy": "copy",
    "PutObject": "put", "UploadPart": "put", "CreateMultipartUpload": "put", "CompleteMultipartUpload": "put",
    "AbortMultipartUpload": "delete", "DeleteObject": "delete", "DeleteObjects": "delete",
    "RestoreObject": "glacier_restore",
}


def kind_of(service: str, operation: str) -> str:
    """The priced kind of one API call: list, head, get, copy, put, delete, glacier_restore or api."""
    if service == "s3":
        return S3_KINDS.get(operation, "api")
    return "api"


# --------------------------------------------------------------------------- counts


@dataclass
class Counts:
    """What a step did: requests by kind, bytes moved, rows; the same on every run for the same data."""

    requests: dict[str, int] = field(default_factory=dict)
    bytes_read: int = 0
    bytes_written: int = 0
    rows: int = 0
    processes: int = 0  # tavari-dr commands started (each pays the CLI's start-up)

    def add(self, other: Counts) -> Counts:
        for kind, n in other.requests.items():
            self.requests[kind] = self.requests.get(kind, 0) + n
        self.bytes_read += other.bytes_read
        self.bytes_written += other.bytes_written
        self.rows += other.rows
        self.processes += other.processes
        return self

    def n(self, *kinds: str) -> int:
        return sum(self.requests.get(k, 0) for k in kinds)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "requests": dict(sorted(self.requests.items()))}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Counts:
        return cls(requests=dict(data.get("requests", {})), bytes_read=int(data.get("bytes_read", 0)),
                   bytes_written=int(data.get("bytes_written", 0)), rows=int(data.get("rows", 0)),
                   processes=int(data.get("processes", 0)))


# --------------------------------------------------------------------------- calibration


@dataclass(frozen=True)
class Linear:
    """seconds = fixed_seconds + seconds_per_byte x bytes (least squares over the calibration points)."""

    fixed_seconds: float
    seconds_per_byte: float

    def __call__(self, n_bytes: float) -> float:
        return self.fixed_seconds + self.seconds_per_byte * n_bytes


@dataclass(frozen=True)
class Calibration:
    """PostgreSQL and CLI costs measured by benches/calibrate.py (host and date in ``source``)."""

    dump: Linear  # run_backup (pg_dump of roles, schema and data), by backup bytes
    restore: Linear  # restore() after its download, by backup bytes
    scan: Linear  # reading and hashing every row (the drill's integrity check), by backup bytes
    cli_start_seconds: float  # one `tavari-dr` process: interpreter, imports, config
    source: dict[str, Any]
    # restore()'s phases after the download, in the order they run (ADR 0014): roles (and a plain
    # target's platform schemas), pre-data, data, post-data, row counts. Empty in a calibration
    # from before ADR 0014: the restore is then priced whole.
    restore_sections: dict[str, Linear] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Calibration:
        def linear(name: str) -> Linear:
            fit = data[name]
            return Linear(float(fit["fixed_seconds"]), float(fit["seconds_per_byte"]))

        sections = {name: Linear(float(fit["fixed_seconds"]), float(fit["seconds_per_byte"]))
                    for name, fit in data.get("restore_sections", {}).items()}
        return cls(dump=linear("dump"), restore=linear("restore"), scan=linear("scan"),
                   cli_start_seconds=float(data["cli_start_seconds"]),
                   source={k: data.get(k) for k in ("written_by", "command", "host", "date", "postgres", "jobs")},
                   restore_sections=sections)


@dataclass(frozen=True)
class InventoryPlanRate:
    """`bucket restore --from-inventory`'s planning (ADR 0023), as benches/plan_scale.py measured it:
    DuckDB's seconds per version (2 threads) and the inventory + feed bytes per version to fetch."""

    fixed_seconds: float
    seconds_per_version: float
    bytes_per_version: float
    source: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InventoryPlanRate:
        return cls(float(data["fixed_seconds"]), float(data["seconds_per_version"]), float(data["bytes_per_version"]),
                   {k: data.get(k) for k in ("written_by", "command", "host", "date", "threads", "memory_limit")})


def load_inventory_plan_rate() -> InventoryPlanRate | None:
    """The measured rate (tavari_dr/core/data/inventory_plan.json), None before the bench has written one."""
    path = resources.files("tavari_dr.core").joinpath("data/inventory_plan.json")
    if not path.is_file():
        return None
    return InventoryPlanRate.from_json(json.loads(path.read_text()))


def inventory_plan_parts(versions: float, rate: InventoryPlanRate) -> dict[str, float]:
    """Fetch the newest report and the feed (one connection's throughput), then plan in DuckDB."""
    return {"fetch inventory and feed": versions * rate.bytes_per_version / S3_CONNECTION_BYTES_PER_SECOND,
            "plan in DuckDB": rate.fixed_seconds + rate.seconds_per_version * versions}


def load_calibration() -> Calibration:
    text = resources.files("tavari_dr.core").joinpath("data/calibration.json").read_text()
    return Calibration.from_json(json.loads(text))


def fit_linear(points: list[tuple[float, float]]) -> Linear:
    """Least squares through (bytes, seconds); a negative intercept is clamped to zero (and the slope
    refitted through the origin), since no step takes negative time, and a negative slope is flat
    at the mean, since no step gets faster with more bytes."""
    n = len(points)
    if n < 2:
        raise ValueError("a linear fit needs at least two points")
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    if sxx == 0:
        raise ValueError("a linear fit needs points of different sizes")
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / sxx
    if slope < 0:  # noise on a step that does not grow with the bytes: its mean, flat
        return Linear(round(mean_y, 6), 0.0)
    intercept = mean_y - slope * mean_x
    if intercept < 0:
        slope = sum(x * y for x, y in points) / sum(x * x for x, _ in points)
        intercept = 0.0
    return Linear(round(intercept, 6), slope)


# --------------------------------------------------------------------------- estimates


@dataclass
class Estimate:
    """A step's modelled duration at production size, with what went into it."""

    seconds: float
    inputs: dict[str, Any]
    formula: str
    parts: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"seconds": round(self.seconds, 1), "inputs": self.inputs, "formula": self.formula,
                "parts": {k: round(v, 2) for k, v in self.parts.items()}}


def _estimate(parts: dict[str, float], inputs: dict[str, Any], formula: str) -> Estimate:
    return Estimate(sum(parts.values()), inputs, formula, parts)


def s3_object_requests_seconds(reads: float, writes: float, bytes_moved: float, concurrency: int) -> float:
    """Per-object requests spread over ``concurrency`` connections, each paying S3's latency and its
    bytes at one connection's throughput, and never faster than the per-prefix request limits."""
    per_connection = ((reads + writes) * S3_REQUEST_SECONDS + bytes_moved / S3_CONNECTION_BYTES_PER_SECOND) \
        / max(1, concurrency)
    limit = reads / PREFIX_READ_REQUESTS_PER_SECOND + writes / PREFIX_WRITE_REQUESTS_PER_SECOND
    return max(per_connection, limit)


def list_seconds(entries: float) -> float:
    """Listing ``entries`` versions or keys: sequential pages of 1,000, at least one."""
    return max(1, math.ceil(entries / LIST_PAGE_ENTRIES)) * S3_REQUEST_SECONDS


def fixed_requests_seconds(counts: Counts) -> float:
    """Requests that do not grow with the data (discovery, secrets, metrics), one after another."""
    return counts.n("api") * AWS_API_SECONDS


def glacier_wait_seconds(storage_class: str, tier: str = "Standard") -> float:
    """How long an archived version takes to become copyable (0 for classes read directly)."""
    return GLACIER_RESTORE_SECONDS.get((storage_class, tier), 0.0)


# A point-in-time restore's replay (tavari_dr.changes.replay, ADR 0020) applies the change log row by row:
# benches/changes.py measured 1,676 and 2,215 changes/s on this shared 2-core machine (0.03-0.06 x a COPY
# beside it); below the lower end, so the estimate is not optimistic.
REPLAY_CHANGES_PER_SECOND = 1500.0
REPLAY_PREFETCH = 4  # tavari_dr.changes.replay.PREFETCH: segments downloaded ahead of the one applied


@dataclass(frozen=True)
class Production:
    """The production sizes a drill is judged at (cdk.json ``drill``)."""

    dump_bytes: float
    invoice_count: int
    invoice_bytes: float
    breach_changed_share: float
    versions_per_key: float  # from the drill's own bucket: listing entries per key
    # A restore --to replays at most a day of changes after the newest dump (drill.changes_per_day),
    # read from this many segments, one GET each, in order.
    replay_changes: float = 0.0
    replay_segments: float = 0.0

    @property
    def versions(self) -> float:
        return self.invoice_count * self.versions_per_key


def cli_steps(counts: Counts, calibration: Calibration) -> Estimate:
    """Commands that only read or write configuration: process start-up and their API calls."""
    parts = {"process start-up": counts.processes * calibration.cli_start_seconds,
             "AWS API calls": fixed_requests_seconds(counts) + counts.n(*READ_KINDS, *WRITE_KINDS, "list")
             * S3_REQUEST_SECONDS}
    return _estimate(parts, {"processes": counts.processes, "requests": dict(counts.requests)},
                     "processes x cli_start + requests x request latency (none grows with the data)")


def database_restore(counts: Counts, production: Production, calibration: Calibration) -> Estimate:
    """`tavari-dr db restore` as it runs (ADR 0014): download every artifact and check its sha256
    (nothing is written to the target before), then roles, pre-data, data and post-data one after
    the other (pg_restore -j within each), then every table's row count.

    The download's requests spread over the restore's connections; its bytes are priced on one
    connection, because the largest table's file is one object streamed by one GET and bounds it."""
    dump = production.dump_bytes
    gets = counts.n("get")
    parts = {"process start-up": counts.processes * calibration.cli_start_seconds,
             "AWS API calls": fixed_requests_seconds(counts) + counts.n("list", "head") * S3_REQUEST_SECONDS,
             "download artifacts": gets * S3_REQUEST_SECONDS / min(DB_DOWNLOAD_CONCURRENCY, max(1, gets))
             + dump / S3_CONNECTION_BYTES_PER_SECOND}
    if calibration.restore_sections:
        parts.update({f"pg_restore {name}" if name in ("pre-data", "data", "post-data") else name: fit(dump)
                      for name, fit in calibration.restore_sections.items()})
        fits = {name: asdict(fit) for name, fit in calibration.restore_sections.items()}
        formula = ("start-up + API calls + (GETs x latency / concurrency + bytes / 85 MB/s), then "
                   + " + ".join(f"{name}_fit(bytes)" for name in calibration.restore_sections))
    else:
        parts["pg_restore"] = calibration.restore(dump)
        fits = {"restore": asdict(calibration.restore)}
        formula = "start-up + API calls + (GETs x latency / concurrency + bytes / 85 MB/s) + restore_fit(bytes)"
    inputs = {"dump_bytes": dump, "artifact_gets": gets, "processes": counts.processes,
              "download_concurrency": DB_DOWNLOAD_CONCURRENCY, "fits": fits}
    if production.replay_changes:
        # The segments are applied one after the other (commit order), each verified first; REPLAY_PREFETCH
        # of them are fetched ahead, so their GETs' latency spreads over that many connections.
        parts["replay change log"] = (production.replay_segments * S3_REQUEST_SECONDS / REPLAY_PREFETCH
                                      + production.replay_changes / REPLAY_CHANGES_PER_SECOND)
        inputs.update(replay_changes=production.replay_changes, replay_segments=production.replay_segments,
                      replay_changes_per_second=REPLAY_CHANGES_PER_SECOND, replay_prefetch=REPLAY_PREFETCH)
        formula += " + segments x latency / prefetch + changes / replay rate"
    return _estimate(parts, inputs, formula)


def database_scan(production: Production, calibration: Calibration) -> Estimate:
    """Read and hash every row of the restored database (row counts and content hashes)."""
    return _estimate({"scan": calibration.scan(production.dump_bytes)},
                     {"dump_bytes": production.dump_bytes, "scan_fit": asdict(calibration.scan)},
                     "scan_fit(dump bytes)")


def database_backup(production: Production, calibration: Calibration) -> Estimate:
    """One nightly dump: pg_dump at the calibrated rate, its upload overlapping (the slower bounds it)."""
    dump = production.dump_bytes
    parts = {"pg_dump": calibration.dump(dump),
             "upload beyond pg_dump": max(0.0, dump / S3_CONNECTION_BYTES_PER_SECOND - calibration.dump(dump))}
    return _estimate(parts, {"dump_bytes": dump, "dump_fit": asdict(calibration.dump)},
                     "max(dump_fit(dump bytes), dump bytes / 85 MB/s)")


def bucket_restore(counts: Counts, toy_actions: int, production: Production, calibration: Calibration, *,
                   into_new_bucket: bool, archived_class: str | None = None,
                   inventory: InventoryPlanRate | None = None) -> Estimate:
    """List the whole bucket, then requests per changed key (per key at T, into a new bucket), then
    list it again (the check after the apply). With ``inventory`` (in place only: the inventory is the
    source bucket's), both plans come from the inventory and the feed instead of the listing
    (`--from-inventory`, ADR 0023) — whichever of the two paths is faster at this size is priced, the
    other kept in the inputs.

    Per-object requests are counted per action in the drill and scaled to the production number of
    actions: every key for a new bucket, the breach's share of keys for an in-place restore."""
    actions = production.invoice_count * (1.0 if into_new_bucket else production.breach_changed_share)
    scale = actions / toy_actions if toy_actions else 0.0
    reads, writes = counts.n(*READ_KINDS) * scale, counts.n(*WRITE_KINDS) * scale
    object_bytes = production.invoice_bytes / max(1, production.invoice_count)
    parts = {"process start-up": counts.processes * calibration.cli_start_seconds,
             "AWS API calls": fixed_requests_seconds(counts),
             # Listed to plan and once more after the last write (the check for keys changed during the
             # restore); a new target too: empty when planned, one version per key at T after.
             "list versions": 2 * list_seconds(production.versions)
                              + (list_seconds(0) + list_seconds(production.invoice_count) if into_new_bucket else 0),
             "per-object requests": s3_object_requests_seconds(reads, writes, writes * object_bytes,
                                                               BUCKET_RESTORE_CONCURRENCY)}
    if archived_class:
        parts["Glacier restore wait"] = glacier_wait_seconds(archived_class)
    inputs: dict[str, Any] = {"versions": round(production.versions), "actions": round(actions),
                              "toy_actions": toy_actions, "reads": round(reads), "writes": round(writes),
                              "object_bytes": round(object_bytes), "concurrency": BUCKET_RESTORE_CONCURRENCY}
    formula = ("start-up + 2 x ceil(versions / 1000) x latency + max((requests x latency + bytes / 85 MB/s) / "
               "concurrency, requests / per-prefix limit)")
    if inventory is not None and not into_new_bucket:
        planned = {f"{name} (x2: plan, check after)": 2 * seconds
                   for name, seconds in inventory_plan_parts(production.versions, inventory).items()}
        inputs["planning_seconds"] = {"listing": round(parts["list versions"], 1),
                                      "inventory": round(sum(planned.values()), 1)}
        inputs["inventory_plan_rate"] = {"seconds_per_version": inventory.seconds_per_version,
                                         "bytes_per_version": inventory.bytes_per_version, **inventory.source}
        if sum(planned.values()) < parts["list versions"]:
            del parts["list versions"]
            parts = {**dict(list(parts.items())[:2]), **planned, **dict(list(parts.items())[2:])}
            formula = ("start-up + 2 x (versions x bytes per version / 85 MB/s + fixed + versions x seconds per "
                       "version) + max((requests x latency + bytes / 85 MB/s) / concurrency, requests / per-prefix "
                       "limit)")
    return _estimate(parts, inputs, formula)


def bucket_verify(counts: Counts, production: Production) -> Estimate:
    """List the visible keys and read every object (the drill's own check of the restored bucket)."""
    parts = {"list keys": list_seconds(production.invoice_count),
             "read every object": s3_object_requests_seconds(production.invoice_count, 0, production.invoice_bytes,
                                                             DRILL_VERIFY_CONCURRENCY)}
    return _estimate(parts, {"keys": production.invoice_count, "bytes": production.invoice_bytes,
                             "toy_gets": counts.n("get"), "concurrency": DRILL_VERIFY_CONCURRENCY},
                     "ceil(keys / 1000) x latency + max((keys x latency + bytes / 85 MB/s) / concurrency, "
                     "keys / 5500 per s)")


def requests_as_counted(counts: Counts) -> Estimate:
    """A step priced exactly as counted, on one connection (the quarterly drill's branches in AWS,
    whose real duration stands beside this to give the model's error)."""
    moved = counts.bytes_read + counts.bytes_written
    parts = {"requests": fixed_requests_seconds(counts) + counts.n("list") * S3_REQUEST_SECONDS
             + s3_object_requests_seconds(counts.n(*READ_KINDS), counts.n(*WRITE_KINDS), moved, 1)}
    return _estimate(parts, {"requests": dict(counts.requests), "bytes": moved},
                     "requests x latency + bytes / 85 MB/s (one connection)")


def health(endpoints: int) -> Estimate:
    return _estimate({"health checks": endpoints * HEALTH_CHECK_SECONDS}, {"endpoints": endpoints},
                     "endpoints x latency")


def provision(counts: Counts, calibration: Calibration) -> Estimate:
    parts = {"new Supabase project (assumption)": PROVISION_DATABASE_SECONDS,
             "new bucket": (counts.n("api", "put") or 2) * AWS_API_SECONDS}
    return _estimate(parts, {"bucket_requests": counts.n("api", "put")},
                     "a new Supabase project (ASSUMPTION, 10 min) + bucket API calls")


def constants() -> dict[str, Any]:
    """The documented and assumed figures the model uses, for the report."""
    return {"S3_REQUEST_SECONDS": S3_REQUEST_SECONDS,
            "S3_CONNECTION_BYTES_PER_SECOND": S3_CONNECTION_BYTES_PER_SECOND,
            "LIST_PAGE_ENTRIES": LIST_PAGE_ENTRIES,
            "PREFIX_WRITE_REQUESTS_PER_SECOND": PREFIX_WRITE_REQUESTS_PER_SECOND,
            "PREFIX_READ_REQUESTS_PER_SECOND": PREFIX_READ_REQUESTS_PER_SECOND, "AWS_API_SECONDS (assumption)":
            AWS_API_SECONDS, "HEALTH_CHECK_SECONDS (assumption)": HEALTH_CHECK_SECONDS,
            "PROVISION_DATABASE_SECONDS (assumption)": PROVISION_DATABASE_SECONDS,
            "BUCKET_RESTORE_CONCURRENCY": BUCKET_RESTORE_CONCURRENCY,
            "DB_DOWNLOAD_CONCURRENCY": DB_DOWNLOAD_CONCURRENCY,
            "DRILL_VERIFY_CONCURRENCY": DRILL_VERIFY_CONCURRENCY}


def model_error(measured_seconds: float, predicted_seconds: float) -> float | None:
    """measured / predicted - 1 (what the quarterly drill reports per step); None without a prediction."""
    if predicted_seconds <= 0:
        return None
    return round(measured_seconds / predicted_seconds - 1, 3)
