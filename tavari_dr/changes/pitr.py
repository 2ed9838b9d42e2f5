"""`tavari-dr db restore --to T`: the newest dump before T, restored through the database restore
path, then the change log replayed up to the last transaction committed at or before T (before the
erasure ledger's reapply and the views' refresh, which the restore runs after it)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from tavari_dr.changes import replay as replay_lib
from tavari_dr.core.config import Tier
from tavari_dr.database import backup as db_lib
from tavari_dr.database.manifest import DEFAULT_TIERS, BackupError, Manifest, id_time, list_backups, open_backup
from tavari_dr.database.signing import KmsVerifier


def newest_dump_before(s3: Any, bucket: str, to: datetime, *, verifier: KmsVerifier,
                       tiers: tuple[Tier, ...] = DEFAULT_TIERS) -> Manifest:
    """The newest complete dump (not a pre-restore copy) that serves ``to``: its snapshot was taken (by the
    server's clock, read after it) at or before ``to``. A dump whose snapshot came later holds transactions
    committed after ``to`` — the previous one serves. Dumps from before the snapshot time was recorded serve
    no point in time."""
    for entry in list_backups(s3, bucket, tiers):
        started = id_time(entry.backup_id)
        # The ID is the job's clock before the snapshot: a dump whose ID is after ``to`` cannot serve it
        # (a skewed job clock only makes this skip a dump the check below would also refuse, or read one more).
        if not entry.complete or entry.expired or entry.pre_restore or started is None \
                or started > to + CLOCK_SKEW:
            continue
        manifest = open_backup(s3, bucket, entry, verifier=verifier).manifest  # listed above: not listed again
        if replay_lib.serves(manifest, to):
            return manifest
    raise BackupError(f"no complete backup's snapshot was taken at or before {to.isoformat()} (by the source's "
                      "clock, as its manifest records it)")


# How far the backup job's clock (in a backup's ID) may run behind the source's, read after its snapshot.
CLOCK_SKEW = timedelta(minutes=5)


def plan_to(s3: Any, bucket: str, to: datetime, *, verifier: KmsVerifier, change_verifier: KmsVerifier,
            tiers: tuple[Tier, ...] = DEFAULT_TIERS, dump_only: tuple[str, ...] = (),
            keep: bool = True) -> replay_lib.Plan:
    """The dump and the verified log a restore to ``to`` would use (`--dry-run` and the real run alike)."""
    manifest = newest_dump_before(s3, bucket, to, verifier=verifier, tiers=tiers)
    return replay_lib.plan(s3, bucket, manifest, to, change_verifier, dump_only=dump_only, keep=keep)


def restore_to(s3: Any, bucket: str, to: datetime, target_url: str, *, verifier: KmsVerifier,
               change_verifier: KmsVerifier, tiers: tuple[Tier, ...] = DEFAULT_TIERS,
               log: Callable[[str], None] = lambda _m: None, dump_only: tuple[str, ...] = (),
               **restore_options: Any) -> tuple[db_lib.VerifyResult, replay_lib.ReplayResult]:
    """Plan first: every segment up to T is downloaded and verified, and a T the log cannot reach, a mixed or
    uncovered log, is refused before anything is written. Then restore, and replay the verified segments.
    ``verifier`` trusts the manifest signing key (the dump), ``change_verifier`` the change signing key
    (the log's bases and segments): each its own records only."""
    the_plan = plan_to(s3, bucket, to, verifier=verifier, change_verifier=change_verifier, tiers=tiers,
                       dump_only=dump_only)
    manifest = the_plan.manifest
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

    try:
        result = db_lib.restore(s3, bucket, manifest.backup_id, target_url, verifier=verifier, tiers=tiers, log=log,
                                replay=replay, **restore_options)
    finally:
        the_plan.close()  # when the restore failed before the replay
    outcome = done[0]
    result.checks.append(("change log replayed to the second", True,
                          f"{outcome.applied} transaction(s) after backup {manifest.backup_id}, the last committed "
                          f"at {outcome.last_commit or manifest.started_at}"))
    if outcome.uncaptured:  # the operator named them (--dump-only): said in the report, not a failure
        result.checks.append(("every table captured", True, "restored as of the dump only, as --dump-only "
                              f"named: {', '.join(outcome.uncaptured)}"))
    return result, outcome
