"""The project's own CloudWatch metrics, published as Embedded Metric Format (EMF) lines.

A Lambda prints one JSON line per record; CloudWatch Logs turns it into metrics with no API
call (EMF is a documented log format, see docs/operate/alerts.md "Metrics"). Every name and dimension the alarms
use is defined here once, and the stacks import this module to build those alarms: which is why
it stays ours rather than Powertools Metrics, which the synth must not need (docs/decisions/0018).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TextIO

NAMESPACE = "Tavari/Backup"

# name -> (unit, meaning). Dimensions: Source (supabase|offsite|database|bucket), Check, Job.
BACKUP_AGE_HOURS = "BackupAgeHours"
BACKUP_SIZE_BYTES = "BackupSizeBytes"
CHECK_PASSED = "CheckPassed"
CHECK_FAILED = "CheckFailed"
RESTORE_TEST_DURATION_SECONDS = "RestoreTestDurationSeconds"
JOB_SUCCEEDED = "JobSucceeded"
JOB_FAILED = "JobFailed"
BACKUP_DURATION_SECONDS = "BackupDurationSeconds"
ALERTS_DELIVERED = "AlertsDelivered"
DRILL_STEP_SECONDS = "DrillStepSeconds"
DRILL_OBJECTIVE_MISSED = "DrillObjectiveMissed"
EXPORT_SUCCEEDED = "ExportSucceeded"
EXPORT_FAILED = "ExportFailed"
EXPORT_REFUSED = "ExportRefused"
BACKUP_TAMPERED = "BackupTampered"
EXPORT_SIGNING_KEYS_UNAVAILABLE = "ExportSigningKeysUnavailable"
ERASURE_LEDGER_FAILED = "ErasureLedgerFailed"
SUPABASE_CONFIG_SNAPSHOT_FAILED = "SupabaseConfigSnapshotFailed"
HEARTBEAT_PING_FAILED = "HeartbeatPingFailed"  # the dead man's switch outside AWS (ADR 0025)
# The continuous capture (`db stream`, ADR 0020), Source=changes.
REPLICATION_LAG_SECONDS = "ReplicationLagSeconds"
RETAINED_WAL_BYTES = "RetainedWalBytes"
CHANGE_SEGMENT_AGE_SECONDS = "ChangeSegmentAgeSeconds"
CHANGE_SEGMENTS_WRITTEN = "ChangeSegmentsWritten"
CHANGE_BASE_RESET = "ChangeBaseReset"
CHANGE_COVERAGE_GAP = "ChangeCoverageGap"


def capture_stalled_after_seconds(segment_seconds: int) -> int:
    """The newest segment's age past which the capture is stalled (ChangeCaptureStalled): two segment periods
    (one closing late) and a minute for the upload."""
    return 2 * segment_seconds + 60


def capture_stall_period_seconds(segment_seconds: int) -> int:
    """That alarm's period: at least five minutes and never shorter than the bound, so a healthy capture
    publishes in every period and an empty one means a dead one."""
    return max(300, -(-capture_stalled_after_seconds(segment_seconds) // 60) * 60)
RETAINED_WAL_FRACTION = "RetainedWalFraction"
CHANGE_CHAIN_BROKEN = "ChangeChainBroken"  # the weekly change_chain check (tavari_dr.verification.chain)
RESTORE_TEST_WITH_LOG_FAILED = "RestoreTestWithLogFailed"  # the monthly restore test of dump + log
# Planning without listing (ADR 0022): the age of the invoice bucket's newest S3 Inventory report.
INVENTORY_AGE_HOURS = "InventoryAgeHours"

# The Job dimension: every job whose outcome the alarms watch, by the one name its metrics, its alarms
# and (for the Lambdas) its lambdas/<name> folder use.
DB_BACKUP = "db_backup"                        # the nightly dump (Fargate)
DB_VERIFY_QUICK = "db_verify_quick"            # the weekly sha256 + table of contents check (Fargate)
DB_RESTORE_TEST = "db_restore_test"            # the monthly full restore test (Fargate)
DAILY_MONITOR = "daily_monitor"                # the verification Lambdas
WEEKLY_INTEGRITY = "weekly_integrity"
MONTHLY_RESTORE_TEST = "monthly_restore_test"
QUARTERLY_DRILL = "quarterly_drill"            # the quarterly drill in AWS (Step Functions)
DB_STREAM = "db_stream"                        # the continuous capture of committed changes (Fargate service)
INVENTORY_CANARY = "inventory_canary"          # writes under _canary/ so a quiet bucket still feeds (Lambda)

METRICS: dict[str, tuple[str, str]] = {
    BACKUP_AGE_HOURS: ("None", "Hours since the newest complete backup, per Source (supabase, offsite)."),
    BACKUP_SIZE_BYTES: ("Bytes", "Size of the newest backup, per Source."),
    CHECK_PASSED: ("Count", "1 per verification check that passed; per Check and in total (no dimension)."),
    CHECK_FAILED: ("Count", "1 per check that failed or could not run (ERROR); per Check and in total."),
    RESTORE_TEST_DURATION_SECONDS: ("Seconds", "Wall time of a restore test, per Source (database, bucket)."),
    JOB_SUCCEEDED: ("Count", "1 each time a scheduled job finishes; per Job. Its absence is the missing-run alarm."),
    ALERTS_DELIVERED: ("Count", "Alerts the router posted to the webhook."),
    JOB_FAILED: ("Count", "1 each time a scheduled job fails; per Job."),
    BACKUP_DURATION_SECONDS: ("Seconds", "Wall time of a database dump and upload, per Source."),
    DRILL_STEP_SECONDS: ("Seconds", "Duration of one quarterly-drill step (the RTO achieved for it), per Step."),
    DRILL_OBJECTIVE_MISSED: ("Count", "1 when a quarterly drill missed an objective or a step failed, else 0."),
    EXPORT_SUCCEEDED: ("Count", "1 per account export delivered."),
    EXPORT_FAILED: ("Count", "1 per account export that failed (alarmed)."),
    EXPORT_REFUSED: ("Count", "1 per export request refused by the per-user limits."),
    BACKUP_TAMPERED: ("Count", "1 each time a reader finds a database backup overwritten, hidden by a delete marker, "
                               "planted, or with a manifest that does not verify; per Source and in total (alarmed)."),
    EXPORT_SIGNING_KEYS_UNAVAILABLE: ("Count", "1 per token the authorizer refused because the project's JWKS "
                                               "could not be fetched (alarmed)."),
    ERASURE_LEDGER_FAILED: ("Count", "1 each time the erasure ledger could not be read or re-applied after a restore "
                                     "(the restored database may hold erased accounts) or by the weekly check "
                                     "(alarmed)."),
    SUPABASE_CONFIG_SNAPSHOT_FAILED: ("Count", "1 each time the nightly backup could not snapshot the Supabase "
                                               "project's configuration (alarmed)."),
    HEARTBEAT_PING_FAILED: ("Count", "1 each time the daily monitor could not deliver its all-green ping to the "
                                     "heartbeat URL (the dead man's switch outside AWS; alarmed)."),
    REPLICATION_LAG_SECONDS: ("Seconds", "Seconds between the newest change committed on the source and the newest "
                                         "durably written off-site; Source=changes (alarmed)."),
    RETAINED_WAL_BYTES: ("Bytes", "WAL the capture's replication slot holds on the source; Source=changes (alarmed "
                                  "before the hard bound at which the slot is dropped)."),
    CHANGE_SEGMENT_AGE_SECONDS: ("Seconds", "Age of the newest closed change segment; Source=changes (the daily "
                                            "monitor checks it against the RPO; alarmed)."),
    CHANGE_SEGMENTS_WRITTEN: ("Count", "Change segments durably written; Source=changes."),
    CHANGE_BASE_RESET: ("Count", "1 each time the capture started a new base (slot lost or dropped past the bound, "
                                 "schema changed) and forced a fresh dump; Source=changes (alarmed)."),
    CHANGE_COVERAGE_GAP: ("Count", "1 each time the capture found a table (or large objects) on the source that its "
                                   "base does not capture; it publishes what it may and starts a new base; "
                                   "Source=changes (alarmed)."),
    RETAINED_WAL_FRACTION: ("None", "WAL the slot holds as a fraction of the server's max_slot_wal_keep_size (0 when "
                                    "the server sets none); Source=changes (alarmed at half: the server invalidates "
                                    "the slot at 1)."),
    CHANGE_CHAIN_BROKEN: ("Count", "1 when the weekly change_chain check found a retained dump's change log broken "
                                   "(a segment missing, overlapping, tampered with, unsigned, or of another source), "
                                   "0 when it verified; Source=changes (alarmed)."),
    RESTORE_TEST_WITH_LOG_FAILED: ("Count", "1 when the monthly restore test of the newest dump plus its change log "
                                            "to the newest segment failed (or could not run), 0 when it passed; "
                                            "Source=database (alarmed)."),
    INVENTORY_AGE_HOURS: ("None", "Hours since the creationTimestamp of the invoice bucket's newest S3 Inventory "
                                  "report (before the first, hours since the feed started less S3's 48 h first-"
                                  "delivery allowance), from each canary run (alarmed)."),
}


def put(cloudwatch: object, metrics: Mapping[str, float], dimensions: Mapping[str, str] | None = None) -> None:
    """The same metrics through PutMetricData, for jobs outside Lambda (ECS tasks, the CLI):
    EMF lines are only turned into metrics for Lambda and the CloudWatch agent."""
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise ValueError(f"undocumented metric(s) {unknown}; add them to tavari_dr.core.metrics.METRICS")
    dims = [{"Name": k, "Value": v} for k, v in (dimensions or {}).items()]
    cloudwatch.put_metric_data(  # type: ignore[attr-defined]
        Namespace=NAMESPACE,
        MetricData=[{"MetricName": name, "Value": value, "Unit": METRICS[name][0], "Dimensions": dims}
                    for name, value in metrics.items()])


def emf_line(metrics: Mapping[str, float], dimensions: Mapping[str, str] | None = None, *,
             aggregate: bool = False, timestamp_ms: int | None = None) -> str:
    """One EMF record. ``aggregate`` also publishes the metrics without dimensions, so a
    single alarm can watch every Check (alarms cannot use SEARCH)."""
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise ValueError(f"undocumented metric(s) {unknown}; add them to tavari_dr.core.metrics.METRICS")
    dims = dict(dimensions or {})
    dimension_sets = [sorted(dims)] + ([[]] if aggregate and dims else [])
    record: dict[str, object] = {
        "_aws": {
            "Timestamp": timestamp_ms if timestamp_ms is not None else int(time.time() * 1000),
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": dimension_sets,
                "Metrics": [{"Name": name, "Unit": METRICS[name][0]} for name in metrics],
            }],
        },
        **dims,
        **metrics,
    }
    return json.dumps(record, separators=(",", ":"), sort_keys=True)


def publish(metrics: Mapping[str, float], dimensions: Mapping[str, str] | None = None, *,
            aggregate: bool = False, stream: TextIO | None = None) -> None:
    print(emf_line(metrics, dimensions, aggregate=aggregate), file=stream or sys.stdout, flush=True)


# publish() and cloudwatch_emitter(client) alike: emit(metrics, dimensions=None, *, aggregate=False).
Emit = Callable[..., None]


def cloudwatch_emitter(cloudwatch: Any) -> Emit:
    """put() in publish()'s shape, for jobs outside Lambda: ``aggregate`` is a second call without the
    dimensions, as one EMF record carries both dimension sets."""

    def emit(metrics: Mapping[str, float], dimensions: Mapping[str, str] | None = None, *,
             aggregate: bool = False) -> None:
        put(cloudwatch, metrics, dimensions)
        if aggregate and dimensions:
            put(cloudwatch, metrics)

    return emit


def publish_outcome(job: str, *, checks: Mapping[str, bool] | None = None,
                    measurements: Iterable[tuple[Mapping[str, float], Mapping[str, str] | None]] = (),
                    succeeded: bool | None = True, emit: Emit = publish) -> None:
    """A job's outcome, the one way every job reports it (the scheduled Lambdas through EMF, the Fargate
    jobs and the CLI through PutMetricData): CheckPassed or CheckFailed per check and in total, the job's
    measurements, then JobSucceeded (or, for ``succeeded=False``, JobFailed) per Job; ``succeeded=None``
    publishes neither (a run whose verdict another metric carries)."""
    for name, ok in (checks or {}).items():
        emit({CHECK_PASSED if ok else CHECK_FAILED: 1}, {"Check": name}, aggregate=True)
    for values, dimensions in measurements:
        emit(values, dimensions)
    if succeeded is not None:
        emit({JOB_SUCCEEDED if succeeded else JOB_FAILED: 1}, {"Job": job})
