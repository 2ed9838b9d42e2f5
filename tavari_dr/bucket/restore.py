"""Point-in-time restore of a versioned bucket: plan, then apply only what changed.

Per key, the state at T is the newest version or delete marker with LastModified <= T
(S3 lists a key's versions newest first; second precision, an entry *at* T counts).

    at T        now                       action
    object v    v (or same content)       nothing (unchanged)
    object v    other / delete marker     copy v back as the newest version
    absent      object                    add a delete marker (never delete a version)
    absent      absent / delete marker    nothing
    archived v  anything but v            restore request first (Glacier), copy on a later run

Restoring into another bucket copies the state at T there: keys present at T are copied
unless the target already holds the same content, keys the target has beyond them get a
delete marker. Nothing is ever permanently deleted: both buckets must be versioned.

One module over 400 lines: planning and applying share the version model, the plan (saved with
--plan-out, applied with --plan-in) and the journal that makes a re-run resume; the Batch
Operations path (tavari_dr.bucket.batch) is the part that stands apart, and does.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

ARCHIVED_CLASSES = ("GLACIER", "DEEP_ARCHIVE")  # GLACIER_IR is readable in milliseconds
CHECKSUM_ALGORITHMS = ("CRC64NVME", "CRC32", "CRC32C", "SHA1", "SHA256")
MAX_SINGLE_COPY = 5 * 1024**3  # CopyObject's limit; above it, multipart copy
PART_SIZE = 512 * 1024**2
COPY = "copy"
DELETE_MARKER = "delete-marker"
RESTORE_ARCHIVED = "restore-archived"


class PlanError(ValueError):
    """The restore cannot be planned as asked; the message says why."""


@dataclass(frozen=True)
class Version:
    key: str
    version_id: str
    last_modified: datetime
    is_latest: bool
    delete_marker: bool
    size: int = 0
    etag: str | None = None
    storage_class: str = "STANDARD"


@dataclass(frozen=True)
class Action:
    key: str
    action: str                   # copy | delete-marker | restore-archived
    version_id: str | None = None  # the version to copy (copy, restore-archived)
    size: int = 0
    storage_class: str | None = None
    reason: str = ""


@dataclass
class Plan:
    bucket: str
    to: str
    prefix: str = ""
    target_bucket: str | None = None
    created: str = ""
    actions: list[Action] = field(default_factory=list)
    unchanged: int = 0
    absent: int = 0
    keys_in_scope: int = 0

    @property
    def destination(self) -> str:
        return self.target_bucket or self.bucket

    def summary(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for a in self.actions:
            row = out.setdefault(a.action, {"keys": 0, "bytes": 0})
            row["keys"] += 1
            row["bytes"] += a.size
        out["unchanged"] = {"keys": self.unchanged, "bytes": 0}
        out["absent at T and now"] = {"keys": self.absent, "bytes": 0}
        return out

    def to_json(self) -> str:
        return json.dumps({**{k: v for k, v in asdict(self).items() if k != "actions"},
                           "actions": [asdict(a) for a in self.actions]}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Plan:
        data = json.loads(text)
        actions = [Action(**a) for a in data.pop("actions")]
        return cls(**data, actions=actions)

    def fingerprint(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- time


def parse_time(text: str) -> datetime:
    """ISO 8601 with an explicit zone, e.g. 2026-11-20T14:00:00Z or ...+01:00."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise PlanError(f"--to {text!r} is not an ISO 8601 time such as 2026-11-20T14:00:00Z") from None
    if when.tzinfo is None:
        raise PlanError(f"--to {text!r} has no time zone; add Z (UTC) or an offset such as +01:00")
    return when.astimezone(UTC)


# --------------------------------------------------------------------------- listing


def list_versions(client: Any, bucket: str, prefix: str = "") -> Iterator[Version]:
    """Every version and delete marker under ``prefix`` (ListObjectVersions, 1,000 a page)."""
    paginator = client.get_paginator("list_object_versions")
    # S3's maximum and default page; said explicitly because emulators default lower (moto: 100).
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": 1000}):
        for v in page.get("Versions", []):
            yield Version(v["Key"], v["VersionId"], v["LastModified"], v["IsLatest"], False,
                          v.get("Size", 0), v.get("ETag"), v.get("StorageClass", "STANDARD"))
        for d in page.get("DeleteMarkers", []):
            yield Version(d["Key"], d["VersionId"], d["LastModified"], d["IsLatest"], True)


def history_by_key(versions: Iterable[Version]) -> dict[str, list[Version]]:
    """Each key's entries newest first (the current one first, whatever the clock says)."""
    keys: dict[str, list[Version]] = {}
    for v in versions:
        keys.setdefault(v.key, []).append(v)
    for entries in keys.values():
        entries.sort(key=lambda v: (not v.is_latest, -v.last_modified.timestamp()))
    return keys


def state_at(entries: list[Version], when: datetime) -> Version | None:
    for v in entries:  # newest first
        if v.last_modified <= when:
            return v
    return None


def _require_versioned(client: Any, bucket: str) -> None:
    status = client.get_bucket_versioning(Bucket=bucket).get("Status")
    if status != "Enabled":
        raise PlanError(f"bucket {bucket} has versioning {status or 'never enabled'}; a restore writes new "
                        "versions and delete markers only, which needs versioning Enabled")


def _checksum(head: dict[str, Any]) -> tuple[str, str] | None:
    for algorithm in CHECKSUM_ALGORITHMS:
        value = head.get(f"Checksum{algorithm}")
        if value:
            return algorithm, value
    return None


_COMPARED_HEADERS = ("Metadata", "ContentType", "ContentEncoding", "ContentDisposition", "ContentLanguage",
                     "CacheControl")


def same_content(client: Any, bucket_a: str, a: Version, bucket_b: str, b: Version) -> bool:
    """Would a reader see the same object? Bytes (ETag, or S3 checksums, since SSE-KMS ETags
    differ per copy) and the user-visible headers and metadata. Tags are not compared."""
    if a.delete_marker or b.delete_marker or a.size != b.size:
        return False
    head_a = client.head_object(Bucket=bucket_a, Key=a.key, VersionId=a.version_id, ChecksumMode="ENABLED")
    head_b = client.head_object(Bucket=bucket_b, Key=b.key, VersionId=b.version_id, ChecksumMode="ENABLED")
    if any(head_a.get(h) != head_b.get(h) for h in _COMPARED_HEADERS):
        return False
    if a.etag == b.etag:
        return True
    checksum_a = _checksum(head_a)
    return checksum_a is not None and checksum_a == _checksum(head_b)


def _restored(client: Any, bucket: str, v: Version) -> bool:
    head = client.head_object(Bucket=bucket, Key=v.key, VersionId=v.version_id)
    return 'ongoing-request="false"' in (head.get("Restore") or "")


# --------------------------------------------------------------------------- plan


def plan_restore(client: Any, bucket: str, to: datetime, *, prefix: str = "", target_bucket: str | None = None,
                 now: datetime | None = None) -> Plan:
    now = now or datetime.now(UTC)
    if to > now:
        raise PlanError(f"--to {to.isoformat()} is in the future (now {now.isoformat(timespec='seconds')})")
    _require_versioned(client, bucket)
    if target_bucket and target_bucket != bucket:
        _require_versioned(client, target_bucket)
    else:
        target_bucket = None
    source = history_by_key(list_versions(client, bucket, prefix))
    if not source:
        raise PlanError(f"no versions under s3://{bucket}/{prefix}; nothing to restore")
    oldest = min(v.last_modified for entries in source.values() for v in entries)
    if to < oldest:
        raise PlanError(f"--to {to.isoformat()} is before the oldest version in scope "
                        f"({oldest.isoformat()}); nothing existed then")
    target = history_by_key(list_versions(client, target_bucket, prefix)) if target_bucket else source
    plan = Plan(bucket=bucket, to=to.isoformat(), prefix=prefix, target_bucket=target_bucket,
                created=now.isoformat(timespec="seconds"), keys_in_scope=len(set(source) | set(target)))
    for key in sorted(set(source) | set(target)):
        at_t = state_at(source.get(key, []), to)
        current = (target.get(key) or [None])[0]
        current_live = current is not None and not current.delete_marker
        if at_t is None or at_t.delete_marker:
            if current_live:
                plan.actions.append(Action(key, DELETE_MARKER, reason="absent at T"))
            else:
                plan.absent += 1
            continue
        if current_live and (current.version_id == at_t.version_id and not target_bucket
                             or same_content(client, bucket, at_t, plan.destination, current)):
            plan.unchanged += 1
            continue
        archived = at_t.storage_class in ARCHIVED_CLASSES and not _restored(client, bucket, at_t)
        plan.actions.append(Action(
            key, RESTORE_ARCHIVED if archived else COPY, at_t.version_id, at_t.size, at_t.storage_class,
            reason="deleted after T" if not current_live else "changed after T"))
    return plan


# --------------------------------------------------------------------------- apply


@dataclass
class Result:
    key: str
    action: str
    status: str           # done | failed | pending | skipped (already in the journal)
    detail: str = ""
    version_id: str | None = None  # the new version or delete marker written


def encryption_args(client: Any, bucket: str) -> dict[str, Any]:
    """The destination's default encryption, stated explicitly on every write."""
    try:
        rules = client.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    except ClientError as err:
        if err.response["Error"]["Code"] == "ServerSideEncryptionConfigurationNotFoundError":
            return {}
        raise
    default = rules[0].get("ApplyServerSideEncryptionByDefault", {})
    if default.get("SSEAlgorithm") == "aws:kms":
        args = {"ServerSideEncryption": "aws:kms"}
        if default.get("KMSMasterKeyID"):
            args["SSEKMSKeyId"] = default["KMSMasterKeyID"]
        return args
    return {}


_HEAD_TO_CREATE = ("ContentType", "ContentEncoding", "ContentDisposition", "ContentLanguage", "CacheControl",
                   "Expires", "Metadata")


def copy_version(client: Any, source_bucket: str, key: str, version_id: str, target_bucket: str, *,
                 encryption: dict[str, Any], multipart_threshold: int = MAX_SINGLE_COPY,
                 part_size: int = PART_SIZE) -> str | None:
    """Server-side copy of one version as the newest version; returns the new VersionId."""
    source = {"Bucket": source_bucket, "Key": key, "VersionId": version_id}
    head = client.head_object(Bucket=source_bucket, Key=key, VersionId=version_id, ChecksumMode="ENABLED")
    checksum = _checksum(head)
    extra = {**encryption, **({"ChecksumAlgorithm": checksum[0]} if checksum else {})}
    if head["ContentLength"] <= multipart_threshold:
        response = client.copy_object(Bucket=target_bucket, Key=key, CopySource=source, MetadataDirective="COPY",
                                      TaggingDirective="COPY", **extra)
        return response.get("VersionId")
    create = {k: head[k] for k in _HEAD_TO_CREATE if k in head}
    upload = client.create_multipart_upload(Bucket=target_bucket, Key=key, **create, **extra)
    parts = []
    try:
        for number, start in enumerate(range(0, head["ContentLength"], part_size), start=1):
            end = min(start + part_size, head["ContentLength"]) - 1
            part = client.upload_part_copy(Bucket=target_bucket, Key=key, UploadId=upload["UploadId"],
                                           PartNumber=number, CopySource=source, CopySourceRange=f"bytes={start}-{end}")
            result = part["CopyPartResult"]
            parts.append({"PartNumber": number, "ETag": result["ETag"],
                          **({f"Checksum{checksum[0]}": result[f"Checksum{checksum[0]}"]}
                             if checksum and result.get(f"Checksum{checksum[0]}") else {})})
        done = client.complete_multipart_upload(Bucket=target_bucket, Key=key, UploadId=upload["UploadId"],
                                                MultipartUpload={"Parts": parts})
    except Exception:
        client.abort_multipart_upload(Bucket=target_bucket, Key=key, UploadId=upload["UploadId"])
        raise
    tags = client.get_object_tagging(Bucket=source_bucket, Key=key, VersionId=version_id).get("TagSet", [])
    if tags:
        client.put_object_tagging(Bucket=target_bucket, Key=key, VersionId=done.get("VersionId"),
                                  Tagging={"TagSet": tags})
    return done.get("VersionId")


class Journal:
    """Completed actions, one JSON line each, so an interrupted run resumes where it stopped."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.done: set[tuple[str, str, str | None]] = set()
        if path.exists():
            for line in path.read_text().splitlines():
                if line.strip():
                    entry = json.loads(line)
                    self.done.add((entry["key"], entry["action"], entry.get("version_id")))

    def contains(self, action: Action) -> bool:
        return (action.key, action.action, action.version_id) in self.done

    def record(self, action: Action) -> None:
        with self._lock, self.path.open("a") as handle:
            handle.write(json.dumps({"key": action.key, "action": action.action,
                                     "version_id": action.version_id}) + "\n")
            handle.flush()


@dataclass
class ApplySummary:
    counts: dict[str, int]
    results: list[Result]

    @property
    def ok(self) -> bool:
        return self.counts.get("failed", 0) == 0 and self.counts.get("pending", 0) == 0


def apply_plan(client: Any, plan: Plan, *, journal: Journal, report_path: Path | None = None,
               concurrency: int = 8, multipart_threshold: int = MAX_SINGLE_COPY, part_size: int = PART_SIZE,
               on_result: Callable[[Result], None] | None = None) -> ApplySummary:
    """Apply ``plan`` with ``client``: throttling (503 SlowDown) and 5xx answers are retried per call by
    the client's botocore retry policy (tavari_dr.core.aws.RETRIES: standard mode, 10 attempts for S3); an action whose
    calls still fail is reported failed, and the same command run again resumes from the journal."""
    encryption = encryption_args(client, plan.destination)

    def run(action: Action) -> Result:
        if journal.contains(action):
            return Result(action.key, action.action, "skipped", "already done (journal)")
        try:
            if action.action == COPY:
                assert action.version_id is not None
                new = copy_version(client, plan.bucket, action.key, action.version_id, plan.destination,
                                   encryption=encryption, multipart_threshold=multipart_threshold, part_size=part_size)
            elif action.action == DELETE_MARKER:
                # No VersionId: S3 adds a delete marker; a version is never removed.
                new = client.delete_object(Bucket=plan.destination, Key=action.key).get("VersionId")
            elif action.action == RESTORE_ARCHIVED:
                _request_restore(client, plan.bucket, action)
                return Result(action.key, action.action, "pending",
                              "Glacier restore requested; run the same command again once it completes "
                              "(Standard tier: 3-5 h, DEEP_ARCHIVE: 12 h)")
            else:
                raise PlanError(f"unknown action {action.action!r}")
        except (ClientError, PlanError) as err:
            return Result(action.key, action.action, "failed", str(err))
        journal.record(action)
        return Result(action.key, action.action, "done", version_id=new)

    results: list[Result] = []
    report = report_path.open("a") if report_path else None
    try:
        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            for future in as_completed([pool.submit(run, a) for a in plan.actions]):
                result = future.result()
                results.append(result)
                if report:
                    report.write(json.dumps(asdict(result)) + "\n")
                if on_result:
                    on_result(result)
    finally:
        if report:
            report.close()
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    return ApplySummary(counts, results)


def _request_restore(client: Any, bucket: str, action: Action) -> None:
    try:
        client.restore_object(Bucket=bucket, Key=action.key, VersionId=action.version_id,
                              RestoreRequest={"Days": 7, "GlacierJobParameters": {"Tier": "Standard"}})
    except ClientError as err:
        if err.response["Error"]["Code"] != "RestoreAlreadyInProgress":
            raise


# --------------------------------------------------------------------------- visible state


def visible_state(client: Any, bucket: str, prefix: str = "") -> dict[str, dict[str, Any]]:
    """What a reader sees now: key -> bytes, metadata, content type (for verification)."""
    state = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            got = client.get_object(Bucket=bucket, Key=obj["Key"])
            state[obj["Key"]] = {"body": got["Body"].read(), "metadata": got.get("Metadata", {}),
                                 "content_type": got.get("ContentType")}
    return state
