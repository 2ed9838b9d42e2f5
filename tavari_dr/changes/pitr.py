"""`tavari-dr db restore --to T`: the newest dump before T, restored through the database restore
path, then the change log replayed up to the last transaction committed at or before T (before the
erasure ledger's reapply and the views' refresh, which the restore runs after it)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from tavari_dr.changes import replay as replay_lib
from tavari_dr.core.config import Tier
from tavari_dr.database import backup as db_lib
from tavari_dr.database.manifest import DEFAULT_TIERS, BackupError, Manifest, find_backup, id_time, list_backups
from tavari_dr.database.signing import KmsVerifier


def newest_dump_before(s3: Any, bucket: str, to: datetime, *, verifier: KmsVerifier,
                       tiers: tuple[Tier, ...] = DEFAULT_TIERS) -> Manifest:
    """The newest complete dump (not a pre-restore copy) whose snapshot was taken at or before ``to``."""
    for entry in list_backups(s3, bucket, tiers):
        started = id_time(entry.backup_id)
        if not entry.complete or entry.expired or entry.pre_restore or started is None or started > to:
            continue
        manifest = find_backup(s3, bucket, entry.backup_id, verifier=verifier, tiers=tiers).manifest
        if datetime.fromisoformat(manifest.started_at) <= to:
            return manifest
    raise BackupError(f"no complete backup was taken before {to:%Y-%m-%dT%H:%M:%SZ}")


def restore_to(s3: Any, bucket: str, to: datetime, target_url: str, *, verifier: KmsVerifier,
               change_verifier: KmsVerifier, tiers: tuple[Tier, ...] = DEFAULT_TIERS,
               log: Callable[[str], None] = lambda _m: None,
               **restore_options: Any) -> tuple[db_lib.VerifyResult, replay_lib.ReplayResult]:
    """Plan first (so a T the log cannot reach is refused before anything is written), then restore.
    ``verifier`` trusts the manifest signing key (the dump), ``change_verifier`` the change signing key
    (the log's bases and segments): each its own records only."""
    manifest = newest_dump_before(s3, bucket, to, verifier=verifier, tiers=tiers)
    the_plan = replay_lib.plan(s3, bucket, manifest, to, change_verifier)
    log(f"point in time {to:%Y-%m-%dT%H:%M:%SZ}: backup {manifest.backup_id}, then {len(the_plan.segments)} change "
        f"segment(s) of base {the_plan.base.base_id}")
    done: list[replay_lib.ReplayResult] = []

    def replay(_manifest: Manifest, target: db_lib.Connection) -> dict[str, int]:
        options = db_lib.REPLICA_ROLE if db_lib._may_set_replica_role(target) else None
        outcome = replay_lib.replay(s3, bucket, the_plan, lambda: db_lib._connect(target, options=options),
                                    change_verifier, log=log)
        log(f"change log replayed: {outcome.applied} transaction(s), {outcome.changes} change(s) applied, "
            f"{outcome.skipped_visible} already in the dump, {outcome.skipped_repeated} repeated; last commit "
            f"{outcome.last_commit or '(none after the dump)'} in {outcome.seconds:.1f} s")
        done.append(outcome)
        return outcome.expected

    result = db_lib.restore(s3, bucket, manifest.backup_id, target_url, verifier=verifier, tiers=tiers, log=log,
                            replay=replay, **restore_options)
    outcome = done[0]
    result.checks.append(("change log replayed to the second", True,
                          f"{outcome.applied} transaction(s) after backup {manifest.backup_id}, the last committed "
                          f"at {outcome.last_commit or manifest.started_at}"))
    if outcome.uncaptured:
        result.checks.append(("every table captured", False, "restored as of the dump only (not in the "
                              f"publication): {', '.join(outcome.uncaptured)}"))
    return result, outcome
