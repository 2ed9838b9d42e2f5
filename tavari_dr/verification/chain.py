"""The weekly change_chain check: the change log each retained dump would be replayed with, verified in AWS
without a restore and without downloading a dump (issue 27, item 8; pgBackRest's `verify` for a WAL archive).

For every retained dump it finds the base a restore would replay it in (replay.base_of) and, from that dump's
WAL position (the oldest retained dump of each base) to now, every segment of that base: downloaded and
verified as a restore's plan does (segment.open_segment: one version, the signature, the key, the body's
sha256), then linked to the one before by replay.link, the one continuity rule a restore applies (same
source, same base, begins where the log was complete). Beyond what a restore tolerates it also refuses an
overlap (a segment beginning before the log was complete: a resumed capture begins exactly where it was) and
a segment whose key names a source no base record names. The first broken segment of each base is named.

Requests: per retained dump one manifest GET and one kms:Verify (after one listing of dumps/); per base one
ListObjectVersions, one GET, one kms:Verify; per segment one ListObjectVersions, one GET (the whole segment,
streamed to a temporary file and removed) and one kms:Verify; plus one ListObjectsV2 page per day listed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tavari_dr.changes import replay
from tavari_dr.changes.pgoutput import lsn_text, parse_lsn
from tavari_dr.changes.segment import Base, SegmentError, SegmentKey, list_segments, source_tag
from tavari_dr.database.manifest import DEFAULT_TIERS, BackupError, Manifest, list_backups, open_backup
from tavari_dr.verification.checks import CheckResult, fail


def retained_manifests(result: CheckResult, s3: Any, bucket: str, verifier: Any, tiers: Any) -> list[Manifest]:
    """Every retained, complete dump's verified manifest (a dump that does not verify fails the check, named)."""
    found = []
    for entry in list_backups(s3, bucket, tiers):
        if not entry.complete or entry.expired or entry.pre_restore:
            continue
        try:
            found.append(open_backup(s3, bucket, entry, verifier=verifier).manifest)
        except BackupError as err:
            fail(result, f"backup {entry.backup_id}: {err}")
    return found


def change_chain(result: CheckResult, *, s3: Any, bucket: str, manifest_verifier: Any, change_verifier: Any,
                 enabled: bool, now: datetime, tiers: Any = DEFAULT_TIERS) -> None:
    if manifest_verifier is None or change_verifier is None:
        raise ValueError("the manifest and the change signing keys are both needed to verify the change log "
                         "(ManifestSigningKeyArn and ChangeSigningKeyArn outputs)")
    all_bases = replay.bases(s3, bucket, change_verifier)
    result.measured.update(bases=len(all_bases), segments_verified=0, first_broken=None)
    if not all_bases:
        if enabled:
            fail(result, "the capture is deployed but the bucket holds no change log (no base under changes/bases/)")
        else:
            result.details.append("no change log in this bucket: nothing to verify")
        return
    manifests = retained_manifests(result, s3, bucket, manifest_verifier, tiers)
    # Each base a retained dump is replayed in, from the oldest such dump's WAL position.
    floors: dict[str, int] = {}
    starts: list[datetime] = []
    for manifest in manifests:
        base, _ = replay.base_of(manifest, all_bases)
        served = replay.served_from(manifest)
        if base is None or served is None:
            result.details.append(f"backup {manifest.backup_id}: no change log covers it (taken before the capture "
                                  "or its base began); it restores as it is")
            continue
        before = parse_lsn(manifest.wal_lsn_before or "0/0")
        floors[base.base_id] = min(floors.get(base.base_id, before), before)
        starts.append(served)
    result.measured["dumps"] = len(manifests)
    if not floors:
        result.details.append("no retained dump is covered by the change log: nothing a restore would replay")
        return
    ordered = sorted(all_bases, key=lambda b: (parse_lsn(b.start_lsn), b.base_id))
    oldest = min((b for b in ordered if b.base_id in floors), key=lambda b: replay._time(b.created_at))
    # From the oldest retained dump's base on, every base to now: later bases (a reset's, a failover's) too.
    since = replay._time(oldest.created_at)
    checked = [b for b in ordered if b.base_id in floors or replay._time(b.created_at) >= since]
    keys = list_segments(s3, bucket, min(starts) - replay.LOOKBACK, now)
    mine = _assign(result, keys, checked, all_bases)
    for base in checked:
        floor = floors.get(base.base_id, parse_lsn(base.start_lsn))
        _verify_base(result, s3, bucket, base, [k for k in mine[base.base_id] if k.end_lsn > floor], floor,
                     change_verifier)
    if result.ok:
        result.details.append(f"{result.measured['segments_verified']} segment(s) of {len(checked)} base(s) verified "
                              f"from {len(floors)} retained dump(s)' WAL positions to now: signed, one source each, "
                              "continuous")


def _assign(result: CheckResult, keys: list[SegmentKey], checked: list[Base],
            all_bases: list[Base]) -> dict[str, list[SegmentKey]]:
    """Each listed segment to the checked base of its key's source tag whose LSN range holds it. A tag no
    base record names is a source nothing can replay: named and failed. Older bases' segments (listed by the
    look-back) and keys from before the tag are left alone."""
    tags = {source_tag(b.identity) for b in all_bases}
    mine: dict[str, list[SegmentKey]] = {b.base_id: [] for b in checked}
    for key in keys:
        if key.source is None:
            continue
        if key.source not in tags:
            fail(result, f"{key.key}: a segment of source {key.source}, which no base record names (another "
                         "database's log, or a planted object): no restore would replay it")
            result.measured["first_broken"] = result.measured["first_broken"] or key.key
            continue
        same = [b for b in all_bases if source_tag(b.identity) == key.source]
        ranges = sorted(same, key=lambda b: (parse_lsn(b.start_lsn), b.base_id))
        holder = None
        for base, following in zip(ranges, [*ranges[1:], None], strict=True):
            if key.start_lsn >= parse_lsn(base.start_lsn) and (following is None
                                                              or key.start_lsn < parse_lsn(following.start_lsn)):
                holder = base
        if holder is not None and holder.base_id in mine:
            mine[holder.base_id].append(key)
    return mine


def _verify_base(result: CheckResult, s3: Any, bucket: str, base: Base, keys: list[SegmentKey], floor: int,
                 verifier: Any) -> None:
    complete_to = parse_lsn(base.start_lsn)
    first = True
    current = None
    try:
        with replay._Prefetch(s3, bucket, keys, verifier) as segments:
            for key, opened in segments:
                current = key
                header = opened.header
                opened.close()  # the header is what the chain needs; the body's sha256 was verified on download
                if not first and parse_lsn(header.prev_end_lsn) < complete_to:
                    raise replay.ReplayError(
                        f"{key.key} overlaps the log before it: it begins where the log was complete up to "
                        f"{header.prev_end_lsn}, the segments before already reach {lsn_text(complete_to)} — a "
                        "resumed capture begins exactly where the log was complete")
                complete_to = replay.link(key, header, base, complete_to, floor if first else 0)
                first = False
                result.measured["segments_verified"] += 1
    except (replay.ReplayError, SegmentError) as err:
        fail(result, f"base {base.base_id}: {err}")
        result.measured["first_broken"] = result.measured["first_broken"] or _named(err, keys, current)
        return
    result.details.append(f"base {base.base_id}: {len(keys)} segment(s), complete to {lsn_text(complete_to)}")


def _named(err: Exception, keys: list[SegmentKey], current: SegmentKey | None) -> str | None:
    """The segment the error names (a download's error names its key; the prefetch may be ahead of the loop)."""
    text = str(err)
    named = [k.key for k in keys if k.key in text]
    return named[0] if named else (current.key if current else None)
