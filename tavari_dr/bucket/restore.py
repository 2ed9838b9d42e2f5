"""Point-in-time restore of a versioned bucket: plan, then apply only what changed.

Per key, the state at T is the newest version or delete marker with LastModified <= T
(S3 lists a key's versions newest first). S3's times are whole seconds: an entry written in T's own
second may have come before T or after it, so a key with an entry in that second is reported
ambiguous and left alone (the CLI exits 1 naming it), never guessed; T a second earlier or later
decides it.

    at T        now                       action
    object v    v (or same content)       nothing (unchanged)
    object v    other / delete marker     copy v back as the newest version
    absent      object                    add a delete marker (never delete a version)
    absent      absent / delete marker    nothing
    archived v  anything but v            restore request first (Glacier), copy on a later run

Restoring into another bucket copies the state at T there: keys present at T are copied
unless the target already holds the same content, keys the target has beyond them get a
delete marker. Nothing is ever permanently deleted: both buckets must be versioned, which is
checked again right before the first write and while writing.

"Newest first" is S3's own listing order, read from the ListObjectVersions document: S3 lists a
key's versions and delete markers interleaved, newest first, in one XML document; boto3 splits
them into two lists and loses the order between them, and whole-second LastModified cannot give
it back. A document that does not interleave (emulators such as moto list every version, then
every marker) is merged by time where the times differ; where they do not, the key is reported
ambiguous and left alone, never guessed. IsLatest is not trusted (moto gets it wrong across pages).

Erased accounts stay erased: the caller passes the key prefixes of every account in the erasure
ledger (tavari_dr.database.erasure.invoice_prefixes, read by the CLI), and no plan copies, restores
from Glacier or re-tags a key under them; such keys are counted in ``Plan.erased`` and the report.
A delete marker (the key absent at T) is still written: it hides, never brings back.

Tags are part of the state: a key whose content is the version at T's but whose tags differ gets
that version's tags back (or is reported, with tags=False). S3 keeps no history of one version's
tags, so a tag change on the very version that was current at T cannot be seen.

While applying, each write carries the plan's view of the key as an S3 condition (CopyObject and
CompleteMultipartUpload: If-Match with the current version's ETag, or If-None-Match: * where the key
had no live version; DeleteObject: If-Match), so S3 itself refuses to overwrite a key someone changed
since the plan; after the last write each written key is read back once (one HEAD a write): its
current entry must be the one this run wrote. A key the application changed meanwhile is reported
"changed during restore" (re-plan), never silently overwritten nor reported done. Keys this run did
not write are not read again: no second listing (ADR 0031).

One module over 400 lines: planning and applying share the version model, the plan (saved with
--plan-out, applied with --plan-in) and the journal that makes a re-run resume; the Batch
Operations path (tavari_dr.bucket.batch) is the part that stands apart, and does.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import threading
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from tavari_dr.core import outputs

ARCHIVED_CLASSES = ("GLACIER", "DEEP_ARCHIVE")  # GLACIER_IR is readable in milliseconds
CHECKSUM_ALGORITHMS = ("CRC64NVME", "CRC32", "CRC32C", "SHA1", "SHA256")
MAX_SINGLE_COPY = 5 * 1024**3  # CopyObject's limit; above it, multipart copy
PART_SIZE = 512 * 1024**2
COPY = "copy"
DELETE_MARKER = "delete-marker"
RESTORE_ARCHIVED = "restore-archived"
RESTORE_TAGS = "restore-tags"
LIST_PAGE_SIZE = 1000  # S3's maximum and default page; said explicitly because emulators default lower (moto: 100)
# 2: actions carry the destination's current version at plan time; ambiguous keys; tags
# 3: and that version's ETag (or that it is a delete marker), which each write is conditioned on
PLAN_FORMAT = 3
VERSIONING_RECHECK_SECONDS = 30.0
# The change feed's canary writes here in the invoice bucket every hour (docs/formats/inventory-and-feed.md §3):
# planners, restores and verifications ignore it, so both planners see the same keys.
CANARY_PREFIX = outputs.CANARY_KEY_PREFIX
REPLAN_HINT = "plan again (tavari-dr bucket restore --to T ...) and apply the new plan"


class PlanError(ValueError):
    """The restore cannot be planned as asked; the message says why."""


class NotVersioned(PlanError):
    """A bucket's versioning is not Enabled: writing would overwrite or remove a version."""


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
    page: int = 0           # which ListObjectVersions page listed it
    in_order: bool = True   # that page's order between versions and delete markers is S3's (see list_versions)
    uncertain: str = ""      # why its place among the key's entries cannot be known ("" if it can)

    @property
    def multipart(self) -> bool:
        # A multipart object's LastModified is when the upload began, not when it became a version.
        return "-" in (self.etag or "")


@dataclass(frozen=True)
class Action:
    key: str
    action: str                   # copy | delete-marker | restore-archived | restore-tags
    version_id: str | None = None  # the version to copy (copy, restore-archived) or whose tags to put back
    size: int = 0
    storage_class: str | None = None
    reason: str = ""
    current: str | None = None    # the destination's current version or delete marker at plan time (None: no key)
    current_etag: str | None = None  # that version's ETag (None: a delete marker, no key, or not known)
    current_marker: bool = False     # the current entry at plan time is a delete marker


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
    format: int = PLAN_FORMAT
    tags: bool = True                                  # False: tag differences are reported, not restored
    ambiguous: list[dict[str, str]] = field(default_factory=list)  # {"key", "reason"}: left alone
    tags_not_restored: list[str] = field(default_factory=list)      # keys whose tags differ (tags=False)
    # {"key", "reason"}: what the planner read (inventory, change feed) and S3 disagree on; left alone
    contradicted: list[dict[str, str]] = field(default_factory=list)
    erased_prefixes: list[str] = field(default_factory=list)  # erased accounts' key prefixes (the ledger)
    erased: list[str] = field(default_factory=list)            # keys left out: an erased account's

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
        if self.ambiguous:
            out["ambiguous (left alone)"] = {"keys": len(self.ambiguous), "bytes": 0}
        if self.contradicted:
            out["contradicted (left alone)"] = {"keys": len(self.contradicted), "bytes": 0}
        if self.tags_not_restored:
            out["tags differ (--no-tags)"] = {"keys": len(self.tags_not_restored), "bytes": 0}
        if self.erased:
            out["erased (left out)"] = {"keys": len(self.erased), "bytes": 0}
        return out

    def leave_out_erased(self, prefixes: Iterable[str]) -> None:
        """Drop every action that would bring back a key under ``prefixes`` (a plan saved before an
        erasure, read with --plan-in); delete markers stay. The keys go to ``erased``."""
        self.erased_prefixes = sorted(set(self.erased_prefixes) | set(prefixes))
        kept = []
        for action in self.actions:
            if action.action != DELETE_MARKER and erased_key(self, action.key):
                if action.key not in self.erased:
                    self.erased.append(action.key)
            else:
                kept.append(action)
        self.actions = kept

    def to_json(self) -> str:
        return json.dumps({**{k: v for k, v in asdict(self).items() if k != "actions"},
                           "actions": [asdict(a) for a in self.actions]}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Plan:
        try:
            data = json.loads(text)
        except ValueError:
            raise PlanError("the plan file is not JSON written by --plan-out") from None
        if not isinstance(data, dict) or data.get("format") != PLAN_FORMAT:
            # Older plans lack each key's current version, which the apply checks before writing.
            raise PlanError("the plan file was written by an older tavari-dr (or is not a plan); plan again "
                            "with --to ... --plan-out")
        try:
            actions = [Action(**a) for a in data.pop("actions")]
            return cls(**data, actions=actions)
        except (TypeError, KeyError):
            raise PlanError("the plan file is not a plan written by --plan-out") from None

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


ENTRY_ORDER = "TavariDrEntryOrder"  # added to each parsed page: True (delete marker) / False (version), in order


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _record_entry_order(response_dict: dict[str, Any], customized_response_dict: dict[str, Any],
                        **_: Any) -> None:
    """botocore ``before-parse`` hook: the order of the Version and DeleteMarker elements, which
    the parsed response (two separate lists) no longer has. The n-th Version element is the n-th
    entry of ``Versions`` (likewise for markers), so the kinds in order are all that is needed."""
    body = response_dict.get("body")
    if response_dict.get("status_code") != 200 or not body:
        return
    try:
        # The same document botocore's own parser reads with the same library, from the endpoint
        # the client was made for.
        root = ElementTree.fromstring(body)  # noqa: S314
    except ElementTree.ParseError:
        return
    customized_response_dict[ENTRY_ORDER] = [_local(child.tag) == "DeleteMarker" for child in root
                                             if _local(child.tag) in ("Version", "DeleteMarker")]


def list_versions(client: Any, bucket: str, prefix: str = "") -> Iterator[Version]:
    """Every version and delete marker under ``prefix`` (ListObjectVersions, 1,000 a page), in the
    listing's own order. Each entry says whether its page's order between versions and markers is
    S3's: proven when a delete marker comes before a version anywhere in the document (a server
    that lists all versions first cannot produce that), or moot when the page has only one kind."""
    client.meta.events.register("before-parse.s3.ListObjectVersions", _record_entry_order,
                                unique_id="tavari-dr-entry-order")
    paginator = client.get_paginator("list_object_versions")
    pages = paginator.paginate(Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": LIST_PAGE_SIZE})
    for number, page in enumerate(pages):
        versions = [Version(v["Key"], v["VersionId"], v["LastModified"], v["IsLatest"], False,
                            v.get("Size", 0), v.get("ETag"), v.get("StorageClass", "STANDARD"), number)
                    for v in page.get("Versions", [])]
        markers = [Version(d["Key"], d["VersionId"], d["LastModified"], d["IsLatest"], True, page=number)
                   for d in page.get("DeleteMarkers", [])]
        kinds = page.get(ENTRY_ORDER)
        if kinds is None or sum(kinds) != len(markers) or len(kinds) != len(versions) + len(markers):
            kinds = [False] * len(versions) + [True] * len(markers)  # no document: order unknown
            proven = False
        else:
            proven = any(kind and not later for kind, later in zip(kinds, kinds[1:], strict=False))
        in_order = proven or not (versions and markers)
        queues = {False: iter(versions), True: iter(markers)}
        for kind in kinds:
            entry = next(queues[kind])
            yield entry if in_order else dataclasses.replace(entry, in_order=False)


def _uncertain(entries: list[Version], why: str, which: Callable[[Version], bool] = lambda _v: True) -> list[Version]:
    return [dataclasses.replace(v, uncertain=why) if which(v) else v for v in entries]


def _merge_by_time(segment: list[Version]) -> list[Version]:
    """One page's entries of one key from a document that does not interleave: versions and markers
    each in listing order, merged by LastModified (ties between them: see _order_key)."""
    for kind in (False, True):
        same = [v for v in segment if v.delete_marker is kind]
        if any(a.last_modified < b.last_modified for a, b in itertools.pairwise(same)):
            return _uncertain(segment, "its listing's order and its times disagree")
    merged = sorted(segment, key=lambda v: -v.last_modified.timestamp())  # stable: listing order within a kind
    for i, marker in enumerate(merged):
        if marker.delete_marker and any(v.multipart for v in merged[i + 1:] if not v.delete_marker):
            # A multipart version's LastModified is its upload's start: a marker that looks newer by
            # time may be older in S3's order, and a document that does not interleave cannot say.
            return _uncertain(merged, "a delete marker is newer by time than a multipart version, in a "
                              "ListObjectVersions response that does not interleave them")
    return merged


def _order_key(entries: list[Version]) -> list[Version]:
    """One key's entries, newest first: S3's listing order, page after page (both S3's and moto's
    pages follow one order across boundaries). Only a page that does not interleave versions and
    markers is merged by time; where a version and a marker of the key share a second and one of
    them comes from such a page (on either side of a page boundary), their order is unknown."""
    ordered: list[Version] = []
    for _, on_page in itertools.groupby(entries, key=lambda v: v.page):
        segment = list(on_page)
        in_order = segment[0].in_order or len({v.delete_marker for v in segment}) == 1
        ordered.extend(segment if in_order else _merge_by_time(segment))
    if all(v.in_order for v in ordered):
        return ordered
    for when, tied in itertools.groupby(ordered, key=lambda v: v.last_modified):
        group = list(tied)
        if len({v.delete_marker for v in group}) > 1 and not all(v.in_order for v in group):
            why = (f"a version and a delete marker share the second {when.isoformat()} in a ListObjectVersions "
                   "response that does not interleave them")
            ordered = _uncertain(ordered, why, lambda v, when=when: v.last_modified == when and not v.uncertain)
    return ordered


def history_by_key(versions: Iterable[Version]) -> dict[str, list[Version]]:
    """Each key's entries newest first, in S3's listing order (never by IsLatest, and by time only
    where the document does not interleave; there, entries whose order is unknown are uncertain).
    Keys under CANARY_PREFIX are left out: they are the change feed's canary, not data."""
    keys: dict[str, list[Version]] = {}
    for v in versions:
        if v.key.startswith(CANARY_PREFIX):
            continue
        keys.setdefault(v.key, []).append(v)
    return {key: _order_key(entries) for key, entries in keys.items()}


def state_at(entries: list[Version], when: datetime) -> Version | None:
    for v in entries:  # newest first
        if v.last_modified <= when:
            return v
    return None


def written_in_t_second(when: datetime) -> str:
    """Why a key's state at ``when`` is unknown when one of its entries was written in ``when``'s own second."""
    return (f"written in T's own second ({when.replace(microsecond=0).isoformat()}): S3's times are whole "
            "seconds, so whether that came before or after T is unknown; restore to a second earlier or later")


def in_second_of(entries: Iterable[Version], when: datetime) -> str | None:
    """Why the state at ``when`` cannot be known from whole-second times, if it cannot: an entry of the
    key was written in ``when``'s own second (before or after ``when``: S3 does not say)."""
    second = when.replace(microsecond=0)
    if any(v.last_modified.replace(microsecond=0) == second for v in entries):
        return written_in_t_second(when)
    return None


def _ambiguity(at_t: Version | None, current: Version | None) -> str | None:
    """Why the state at T, or now, cannot be known from the listing, if it cannot."""
    for what, entry in (("at T", at_t), ("now", current)):
        if entry is not None and entry.uncertain:
            return f"which entry was current {what} is unknown: {entry.uncertain}"
    return None


def _require_versioned(client: Any, bucket: str) -> None:
    status = client.get_bucket_versioning(Bucket=bucket).get("Status")
    if status != "Enabled":
        raise NotVersioned(f"bucket {bucket} has versioning {status or 'never enabled'}; a restore writes new "
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


def _tags(client: Any, bucket: str, v: Version) -> list[dict[str, str]]:
    tags = client.get_object_tagging(Bucket=bucket, Key=v.key, VersionId=v.version_id).get("TagSet", [])
    return sorted(tags, key=lambda t: t["Key"])


def plan_restore(client: Any, bucket: str, to: datetime, *, prefix: str = "", target_bucket: str | None = None,
                 now: datetime | None = None, tags: bool = True, written: dict[str, str] | None = None,
                 erased_prefixes: Iterable[str] = ()) -> Plan:
    """The actions that bring the destination to the state at ``to``. ``written``: key -> version or
    marker this run wrote (the check after an apply): such a key is taken as restored without a HEAD.
    ``erased_prefixes``: the erased accounts' keys, never brought back (counted in ``Plan.erased``)."""
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
                created=now.isoformat(timespec="seconds"), keys_in_scope=len(set(source) | set(target)), tags=tags,
                erased_prefixes=sorted(set(erased_prefixes)))
    written = written or {}
    for key in sorted(set(source) | set(target)):
        entries = source.get(key, [])
        decide(client, plan, key, state_at(entries, to), (target.get(key) or [None])[0], written=written,
               unknown_at_t=in_second_of(entries, to))
    return plan


def erased_key(plan: Plan, key: str) -> bool:
    return any(key.startswith(p) for p in plan.erased_prefixes)


class _Seen(NamedTuple):
    current: str | None
    current_etag: str | None
    current_marker: bool


def decide(client: Any, plan: Plan, key: str, at_t: Version | None, current: Version | None, *,
           written: dict[str, str] | None = None, unknown_at_t: str | None = None) -> None:
    """One key's part of the plan, from its entry at T and its current entry (None: none), whichever
    planner found them (the listing here, the inventory and change feed in
    tavari_dr.bucket.inventory_plan): an action, a count, or an ambiguous key. An entry whose place
    is unknown carries ``uncertain``; the key is then reported, never guessed. ``unknown_at_t``: why the
    planner cannot say which entry was current at T (in_second_of)."""
    why = unknown_at_t or _ambiguity(at_t, None) or _ambiguity(None, current)
    if why:
        plan.ambiguous.append({"key": key, "reason": why})
        return
    bucket, target_bucket, written = plan.bucket, plan.target_bucket, written or {}
    current_live = current is not None and not current.delete_marker
    current_id = current.version_id if current else None
    # What the plan saw of the destination's key (each write is conditional on it: ADR 0031).
    etag = current.etag if current is not None and current_live else None
    if etag and not etag.startswith('"'):  # the inventory gives it bare; S3's listing and If-Match quote it
        etag = f'"{etag}"'
    seen = _Seen(current_id, etag, current is not None and current.delete_marker)
    if at_t is None or at_t.delete_marker:
        if current_live:
            plan.actions.append(Action(key, DELETE_MARKER, reason="absent at T", **seen._asdict()))
        else:
            plan.absent += 1
        return
    if current_live and written.get(key) == current.version_id:
        plan.unchanged += 1  # this run's own copy of the version at T, tags included
        return
    if current_live and current.version_id == at_t.version_id and not target_bucket:
        plan.unchanged += 1  # the very version: its tags are its tags (S3 keeps no history of them)
        return
    if erased_key(plan, key):
        plan.erased.append(key)  # an erased account's object: whatever T held, it is not brought back
        return
    if current_live and same_content(client, bucket, at_t, plan.destination, current):
        if _tags(client, bucket, at_t) == _tags(client, plan.destination, current):
            plan.unchanged += 1
        elif plan.tags:
            plan.actions.append(Action(key, RESTORE_TAGS, at_t.version_id, reason="tags changed after T",
                                       **seen._asdict()))
        else:
            plan.tags_not_restored.append(key)
        return
    archived = at_t.storage_class in ARCHIVED_CLASSES and not _restored(client, bucket, at_t)
    plan.actions.append(Action(
        key, RESTORE_ARCHIVED if archived else COPY, at_t.version_id, at_t.size, at_t.storage_class,
        reason="deleted after T" if not current_live else "changed after T", **seen._asdict()))


# --------------------------------------------------------------------------- apply


@dataclass
class Result:
    key: str
    action: str
    status: str           # done | failed | pending | changed (during the restore) | skipped (in the journal)
    detail: str = ""
    version_id: str | None = None  # the new version or delete marker written


def encryption_args(client: Any, bucket: str) -> dict[str, Any]:
    """The destination's default encryption, stated explicitly on every write."""
    from botocore.exceptions import ClientError

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


def write_conditions(action: Action) -> dict[str, str] | None:
    """The S3 condition that makes a write fail (412) unless the destination's current entry is still
    what the plan saw: If-Match its ETag, or If-None-Match: * where the key had no live version (no
    entry, or a delete marker: S3 lets such a write through). None: the plan does not know the ETag
    (a live version without one), so the caller checks with a HEAD instead."""
    if action.current is None or action.current_marker:
        return {"IfNoneMatch": "*"}
    if action.current_etag:
        return {"IfMatch": action.current_etag}
    return None


def copy_version(client: Any, source_bucket: str, key: str, version_id: str, target_bucket: str, *,
                 encryption: dict[str, Any], multipart_threshold: int = MAX_SINGLE_COPY,
                 part_size: int = PART_SIZE, size: int | None = None,
                 conditions: dict[str, str] | None = None) -> str | None:
    """Server-side copy of one version as the newest version; returns the new VersionId. ``size``
    (the listing's) below the threshold: one CopyObject, which keeps the source's metadata, tags and
    checksum algorithm (S3 copies the algorithm when the request names none), without a HEAD of the
    source. ``conditions``: see write_conditions (CopyObject and CompleteMultipartUpload take them)."""
    source = {"Bucket": source_bucket, "Key": key, "VersionId": version_id}
    conditions = conditions or {}
    if size is not None and size <= multipart_threshold:
        response = client.copy_object(Bucket=target_bucket, Key=key, CopySource=source, MetadataDirective="COPY",
                                      TaggingDirective="COPY", **encryption, **conditions)
        return response.get("VersionId")
    head = client.head_object(Bucket=source_bucket, Key=key, VersionId=version_id, ChecksumMode="ENABLED")
    checksum = _checksum(head)
    extra = {**encryption, **({"ChecksumAlgorithm": checksum[0]} if checksum else {})}
    if head["ContentLength"] <= multipart_threshold:
        response = client.copy_object(Bucket=target_bucket, Key=key, CopySource=source, MetadataDirective="COPY",
                                      TaggingDirective="COPY", **extra, **conditions)
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
                                                MultipartUpload={"Parts": parts}, **conditions)
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
        return not any(self.counts.get(status) for status in ("failed", "pending", "changed"))


def current_entry(client: Any, bucket: str, key: str) -> str | None:
    """The VersionId of the key's current version or delete marker (S3's own answer, no listing
    order involved); None when the key has neither."""
    from botocore.exceptions import ClientError

    try:
        return client.head_object(Bucket=bucket, Key=key).get("VersionId") or "null"
    except ClientError as err:
        headers = err.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        if headers.get("x-amz-delete-marker") == "true":
            return headers.get("x-amz-version-id") or "null"
        if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


class VersioningGuard:
    """Both buckets' versioning, checked before the first write and again every ``interval`` seconds
    while writing: on a suspended bucket a copy overwrites the ``null`` version and a delete removes
    it, for good."""

    def __init__(self, client: Any, buckets: Iterable[str], *, interval: float = VERSIONING_RECHECK_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client, self.buckets, self.interval, self.clock = client, sorted(set(buckets)), interval, clock
        self._lock = threading.Lock()
        self._checked: float | None = None

    def check(self) -> None:
        with self._lock:
            if self._checked is not None and self.clock() - self._checked < self.interval:
                return
            for bucket in self.buckets:
                _require_versioned(self.client, bucket)
            self._checked = self.clock()


PRECONDITION_FAILED = ("PreconditionFailed", "412", "ConditionalRequestConflict", "409")


def apply_plan(client: Any, plan: Plan, *, journal: Journal, report_path: Path | None = None,
               concurrency: int = 8, multipart_threshold: int = MAX_SINGLE_COPY, part_size: int = PART_SIZE,
               on_result: Callable[[Result], None] | None = None, verify: bool = True,
               versioning_interval: float = VERSIONING_RECHECK_SECONDS) -> ApplySummary:
    """Write the plan's actions. Raises NotVersioned before writing anything if either bucket's
    versioning is not Enabled. Each write carries the plan's view of the key as an S3 condition
    (write_conditions; a HEAD just before the write where the plan has no ETag): a key that is not
    as the plan saw it is ``changed`` (not written). With ``verify``, each key this run wrote is read
    back from S3 after the last write (one HEAD a key): its current entry must be the one written (a
    copy of the planned size, or a delete marker), else ``changed``. Keys the run did not write are not
    read again (ADR 0031).
    Throttling (503 SlowDown) and 5xx answers are retried per call by the client's botocore retry
    policy (tavari_dr.core.aws.RETRIES: standard mode, 10 attempts for S3); an action whose calls
    still fail is reported failed, and the same command run again resumes from the journal."""
    guard = VersioningGuard(client, {plan.bucket, plan.destination}, interval=versioning_interval)
    guard.check()
    encryption = encryption_args(client, plan.destination)

    def changed(action: Action, now: str | None, when: str) -> Result:
        return Result(action.key, action.action, "changed",
                      f"changed during restore ({when}): current version {now or 'none'}, the plan saw "
                      f"{action.current or 'none'}; {REPLAN_HINT}")

    def write(action: Action, conditions: dict[str, str]) -> str | None:
        if action.action == COPY:
            assert action.version_id is not None
            return copy_version(client, plan.bucket, action.key, action.version_id, plan.destination,
                                encryption=encryption, multipart_threshold=multipart_threshold, part_size=part_size,
                                size=action.size, conditions=conditions)
        if action.action == DELETE_MARKER:
            # No VersionId: S3 adds a delete marker; a version is never removed. DeleteObject takes
            # If-Match only (If-None-Match has no meaning there).
            only = {k: v for k, v in conditions.items() if k == "IfMatch"}
            return client.delete_object(Bucket=plan.destination, Key=action.key, **only).get("VersionId")
        if action.action == RESTORE_TAGS:
            assert action.version_id is not None and action.current is not None
            tag_set = client.get_object_tagging(
                Bucket=plan.bucket, Key=action.key, VersionId=action.version_id).get("TagSet", [])
            # The tags go on the version the plan saw, and only that one; the check after the last
            # write finds it still current, or reports the key.
            client.put_object_tagging(Bucket=plan.destination, Key=action.key, VersionId=action.current,
                                      Tagging={"TagSet": tag_set})
            return action.current
        raise PlanError(f"unknown action {action.action!r}")

    def run(action: Action) -> Result:
        from botocore.exceptions import ClientError

        if journal.contains(action):
            return Result(action.key, action.action, "skipped", "already done (journal)")
        try:
            if action.action == RESTORE_ARCHIVED:  # a request to the source; nothing is written
                _request_restore(client, plan.bucket, action)
                return Result(action.key, action.action, "pending",
                              "Glacier restore requested; run the same command again once it completes "
                              "(Standard tier: 3-5 h, DEEP_ARCHIVE: 12 h)")
            guard.check()
            conditions = write_conditions(action)
            if conditions is None or action.action == RESTORE_TAGS:
                if action.action != RESTORE_TAGS:  # tags: the check after the last write covers the version
                    before = current_entry(client, plan.destination, action.key)
                    if before != action.current:
                        return changed(action, before, "before its write")
                conditions = {}
            try:
                new = write(action, conditions)
            except ClientError as err:
                if err.response.get("Error", {}).get("Code") in PRECONDITION_FAILED:
                    return Result(action.key, action.action, "changed",
                                  f"changed during restore (before its write): S3 refused the write, the key's "
                                  f"current entry is no longer the plan's {action.current or 'none'}; {REPLAN_HINT}")
                raise
        except NotVersioned as err:
            return Result(action.key, action.action, "failed", f"{err}; nothing written for this key")
        except (ClientError, PlanError) as err:
            return Result(action.key, action.action, "failed", str(err))
        journal.record(action)
        return Result(action.key, action.action, "done", version_id=new)

    results: list[Result] = []
    report = report_path.open("a") if report_path else None

    def record(result: Result) -> None:
        results.append(result)
        if report:
            report.write(json.dumps(asdict(result)) + "\n")
        if on_result:
            on_result(result)

    try:
        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            for future in as_completed([pool.submit(run, a) for a in plan.actions]):
                record(future.result())
        if verify:
            for result in _verify_written(client, plan, results, concurrency):
                record(result)
    finally:
        if report:
            report.close()
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    return ApplySummary(counts, results)


def head_current(client: Any, bucket: str, key: str) -> tuple[str | None, bool, dict[str, Any]]:
    """(VersionId, is a delete marker, HeadObject's answer) of the key's current entry, from S3;
    (None, False, {}) when the key has no entry."""
    from botocore.exceptions import ClientError

    try:
        head = client.head_object(Bucket=bucket, Key=key)
        return head.get("VersionId") or "null", False, head
    except ClientError as err:
        headers = err.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        if headers.get("x-amz-delete-marker") == "true":
            return headers.get("x-amz-version-id") or "null", True, {}
        if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None, False, {}
        raise


def _verify_written(client: Any, plan: Plan, results: list[Result], concurrency: int = 8) -> list[Result]:
    """Each key this run wrote, read back from S3 after the last write (one HEAD a key): its current
    entry must be the one written (a copy of the planned size, or a delete marker; for tags, the
    version the plan saw)."""
    planned = {a.key: a for a in plan.actions}
    written = [r for r in results if r.status == "done" and r.version_id and r.key in planned]

    def check(r: Result) -> Result | None:
        action = planned[r.key]
        now, marker, head = head_current(client, plan.destination, r.key)
        expected_marker = action.action == DELETE_MARKER
        wrong = (now != r.version_id or marker != expected_marker
                 or (action.action == COPY and head.get("ContentLength") != action.size))
        if not wrong:
            return None
        return Result(r.key, "verify", "changed",
                      f"changed during restore (after its write): S3's current entry is "
                      f"{now or 'none'}{' (a delete marker)' if marker else ''}, this restore wrote "
                      f"{r.version_id}; {REPLAN_HINT}")

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        return [found for found in pool.map(check, written) if found is not None]


def _request_restore(client: Any, bucket: str, action: Action) -> None:
    from botocore.exceptions import ClientError

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
