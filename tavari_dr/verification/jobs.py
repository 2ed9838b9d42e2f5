"""The three scheduled verification jobs, shared by their Lambdas and `tavari-dr verify`.

daily_monitor:        Supabase backups, invoice bucket drift, backup guardrail drift, replication health,
                      off-site freshness, the tamper watch (trail logging, rules enabled with their targets),
                      the continuous capture's newest change segment
weekly_integrity:     integrity sample, sizes and growth, newest dump's sha256, the change log of every retained
                      dump (signed, one source, continuous: tavari_dr.verification.chain)
monthly_restore_test: restore a sample of noncurrent invoice versions into a scratch prefix

Each run leaves evidence: one JSON report per check (reports/<check>/<date>.json) and metrics
(CheckPassed/CheckFailed per check and in total, BackupAgeHours, RestoreTestDurationSeconds,
JobSucceeded). Runs are idempotent: a second run the same day overwrites the day's report with
a new version and changes nothing else.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tavari_dr.core import metrics, reports
from tavari_dr.core.aws import RequestCounter
from tavari_dr.core.config import VerificationConfig
from tavari_dr.core.guardrails import Custodians
from tavari_dr.core.outputs import is_placeholder
from tavari_dr.verification import chain, checks

log = logging.getLogger("tavari.verification")

JOBS = {
    metrics.DAILY_MONITOR: ("supabase_backups", "bucket_drift", "backup_drift", "replication_health",
                            "offsite_freshness", "tamper_watch", "change_freshness"),
    metrics.WEEKLY_INTEGRITY: ("integrity_sample", "sizes", "offsite_sha256", "change_chain"),
    metrics.MONTHLY_RESTORE_TEST: ("s3_restore_test",),
}
CHECKS = tuple(name for names in JOBS.values() for name in names)


@dataclass(frozen=True)
class Targets:
    """What the checks look at (stack outputs, or given explicitly)."""

    invoice_bucket: str
    invoice_key_arn: str | None
    archive_after_days: int
    archive_storage_class: str
    backup_bucket: str
    reports_bucket: str
    scratch_bucket: str
    replica_bucket: str | None = None
    signing_key_arn: str | None = None  # the manifests' signing key: no key, no trusted off-site backup
    supabase_url_secret: str | None = None
    supabase_token_secret: str | None = None
    tamper_watch: str | None = None  # the TamperWatch stack's expectation (JSON)
    invoice_access_log_bucket: str | None = None
    backup_lock_mode: str | None = None
    backup_default_retention_days: int | None = None
    protected_keys: dict[str, str | None] = field(default_factory=dict)  # name -> key ARN
    custodian_arns: tuple[str, ...] = ()  # (deploy role, break-glass role) where removal_policy is retain
    # The DR side of backup_drift: {region, bucket, keys: name -> alias ARN, custodian_arns}, where it
    # shares the account; else why it is not checked.
    dr_backups: dict[str, Any] | None = None
    dr_backups_unchecked: str | None = None
    heartbeat_url_secret: str | None = None  # the dead man's switch the daily monitor pings when all passed
    # The continuous capture (`db stream`): whether it runs, and the bound its newest segment must meet.
    changes_enabled: bool = False
    changes_max_lag_seconds: int | None = None
    change_signing_key_arn: str | None = None  # the change log's key (change_chain verifies with it, never signs)

    def backup_expectation(self) -> checks.BackupExpectation:
        if self.backup_lock_mode is None or self.backup_default_retention_days is None:
            raise ValueError("backup_lock_mode and backup_default_retention_days are not configured")
        if len(self.custodian_arns) not in (0, 2):
            raise ValueError(f"custodian_arns must name the deploy and the break-glass role, not "
                             f"{list(self.custodian_arns)}")
        return checks.BackupExpectation(
            self.backup_bucket, self.backup_lock_mode, self.backup_default_retention_days, self.reports_bucket,
            dict(self.protected_keys), Custodians(*self.custodian_arns) if self.custodian_arns else None)

    def dr_backup_expectation(self) -> checks.BackupExpectation | None:
        """The same guardrails on the DR replica of the backup bucket and the DR region's keys."""
        if self.dr_backups is None:
            return None
        primary, dr = self.backup_expectation(), self.dr_backups
        custodians = tuple(dr.get("custodian_arns") or ())
        return checks.BackupExpectation(dr["bucket"], primary.lock_mode, primary.default_retention_days, None,
                                        dict(dr["keys"]), Custodians(*custodians) if custodians else None,
                                        where=f"DR ({dr['region']})")


@dataclass
class Clients:
    s3: Any
    replica_s3: Any
    cloudwatch: Any
    secretsmanager: Any
    kms: Any = None
    regional: Callable[[str, str], Any] | None = None  # (service, region) -> client: the tamper watch's regions


def _verifier(clients: Clients, targets: Targets) -> Any:
    from tavari_dr.database.signing import KmsVerifier

    return KmsVerifier(clients.kms, targets.signing_key_arn) if targets.signing_key_arn and clients.kms else None


def _change_verifier(clients: Clients, targets: Targets) -> Any:
    """The change log's reader: trusts the change signing key only, never the manifests' (issue 27)."""
    from tavari_dr.database.signing import change_verifier

    if not targets.change_signing_key_arn or not clients.kms:
        return None
    return change_verifier(clients.kms, targets.change_signing_key_arn)


def _secret(clients: Clients, secret_id: str | None, name: str) -> str:
    if not secret_id:
        raise ValueError(f"{name} is not configured")
    value = clients.secretsmanager.get_secret_value(SecretId=secret_id)["SecretString"]
    if is_placeholder(value):
        raise ValueError(f"{name} is still a placeholder: run tavari-dr secrets push")
    return value


def _previous_report(s3: Any, bucket: str, check: str, now: datetime) -> dict[str, Any] | None:
    """The newest report of ``check`` from before today (for growth comparisons)."""
    today = reports.report_key(check, now)
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                           Prefix=f"reports/{check}/")
            for o in page.get("Contents", []) if o["Key"] < today]
    if not keys:
        return None
    return json.loads(s3.get_object(Bucket=bucket, Key=max(keys))["Body"].read()).get("measured")


def run_checks(names: tuple[str, ...], *, clients: Clients, targets: Targets, settings: VerificationConfig,
               rpo_hours: float, now: datetime, rng: random.Random | None = None,
               supabase_get: Callable[..., Any] = checks.supabase_get) -> list[checks.CheckResult]:
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        raise ValueError(f"unknown check(s) {unknown}; choose from {', '.join(CHECKS)}")
    rng = rng or random.Random()  # noqa: S311 - sampling, not secrets
    s3 = clients.s3
    plans: dict[str, Callable[[checks.CheckResult], None]] = {
        "supabase_backups": lambda r: checks.supabase_backups(
            r, api_url=settings.supabase_api_url,
            project_ref=checks.project_ref_from_url(_secret(clients, targets.supabase_url_secret, "SUPABASE_URL")),
            token=_secret(clients, targets.supabase_token_secret, "SUPABASE_ACCESS_TOKEN"),
            rpo_hours=rpo_hours, expect_pitr=settings.expect_pitr, now=now, get=supabase_get),
        "bucket_drift": lambda r: checks.bucket_drift(r, s3=s3, expect=checks.BucketExpectation(
            targets.invoice_bucket, targets.archive_after_days, targets.archive_storage_class, targets.invoice_key_arn,
            f"arn:aws:s3:::{targets.replica_bucket}" if targets.replica_bucket else None,
            targets.invoice_access_log_bucket)),
        "backup_drift": lambda r: _backup_drift(r, clients, targets),
        # The trail check (CloudTrail logging and the backup buckets' data events) joins the daily
        # monitor here, as its own check beside the two drift checks.
        "replication_health": lambda r: _replication(r, clients, targets, settings, now),
        "offsite_freshness": lambda r: checks.offsite_freshness(r, s3=s3, bucket=targets.backup_bucket,
                                                                verifier=_verifier(clients, targets),
                                                                rpo_hours=rpo_hours, now=now),
        "tamper_watch": lambda r: checks.tamper_watch(r, client=_regional(clients),
                                                      expect=_tamper_expectation(targets)),
        "change_freshness": lambda r: checks.change_freshness(r, s3=s3, bucket=targets.backup_bucket,
                                                              enabled=targets.changes_enabled,
                                                              max_lag_seconds=targets.changes_max_lag_seconds,
                                                              now=now, cloudwatch=clients.cloudwatch),
        "change_chain": lambda r: chain.change_chain(r, s3=s3, bucket=targets.backup_bucket,
                                                     manifest_verifier=_verifier(clients, targets),
                                                     change_verifier=_change_verifier(clients, targets),
                                                     enabled=targets.changes_enabled, now=now),
        "integrity_sample": lambda r: checks.integrity_sample(
            r, s3=s3, bucket=targets.invoice_bucket, n=settings.integrity_sample_size,
            baselines=checks.BaselineStore(s3, targets.reports_bucket, targets.invoice_bucket),
            max_pages=settings.max_list_pages, rng=rng),
        "sizes": lambda r: checks.sizes(r, cloudwatch=clients.cloudwatch, bucket=targets.invoice_bucket,
                                        previous=_previous_report(s3, targets.reports_bucket, "sizes", now),
                                        max_shrink_percent=settings.size_shrink_percent, now=now),
        "offsite_sha256": lambda r: checks.offsite_freshness(r, s3=s3, bucket=targets.backup_bucket,
                                                             verifier=_verifier(clients, targets),
                                                             rpo_hours=rpo_hours, now=now, verify_sha256=True),
        "s3_restore_test": lambda r: checks.s3_restore_test(
            r, s3=s3, bucket=targets.invoice_bucket, scratch_bucket=targets.scratch_bucket,
            n=settings.restore_test_sample_size, rto_seconds=settings.rto_minutes * 60,
            run_id=now.strftime("%Y%m%dT%H%M%SZ"), max_pages=settings.max_list_pages, rng=rng),
    }
    return [checks.run_check(name, plans[name]) for name in names]


def _backup_drift(result: checks.CheckResult, clients: Clients, targets: Targets) -> None:
    checks.backup_drift(result, s3=clients.s3, kms=clients.kms, expect=targets.backup_expectation())
    dr = targets.dr_backup_expectation()
    if dr is not None:
        region = targets.dr_backups["region"]  # type: ignore[index]
        checks.backup_drift(result, s3=_regional(clients)("s3", region), kms=_regional(clients)("kms", region),
                            expect=dr)
    elif targets.dr_backups_unchecked:
        result.details.append(f"DR side not checked: {targets.dr_backups_unchecked}")


def _regional(clients: Clients) -> Callable[[str, str], Any]:
    if clients.regional is None:
        raise ValueError("no regional clients for the tamper watch check")
    return clients.regional


def _tamper_expectation(targets: Targets) -> dict[str, Any]:
    if not targets.tamper_watch:
        raise ValueError("the tamper watch's expectation is not configured (TAVARI_TAMPER_WATCH, or the "
                         "TamperWatch stack's TamperWatchExpectation output)")
    return json.loads(targets.tamper_watch)


def _replication(result: checks.CheckResult, clients: Clients, targets: Targets, settings: VerificationConfig,
                 now: datetime) -> None:
    if not targets.replica_bucket:
        result.details.append("replication is off in this environment: nothing to check")
        return
    checks.replication_health(result, s3=clients.s3, replica_s3=clients.replica_s3, bucket=targets.invoice_bucket,
                              replica_bucket=targets.replica_bucket, n=settings.replication_sample_size,
                              max_pages=settings.max_list_pages, pending_threshold=timedelta(minutes=15), now=now)


def record(results: list[checks.CheckResult], *, job: str, s3: Any, reports_bucket: str, now: datetime,
           emit: Callable[..., None] = metrics.publish, run: str | None = None) -> list[str]:
    """Leave the evidence: a report per check (with the ``run`` that wrote it: the ID in that run's log
    lines), then the job's outcome metrics (per check and in total, backup ages, the restore test's
    duration, JobSucceeded)."""
    keys = []
    for result in results:
        body = {"job": job, **({"run": run} if run else {}), **result.to_dict()}
        keys.append(reports.write_report(s3, reports_bucket, result.name, body, now=now))
        log.info("report_written", extra={"check": result.name, "status": result.status, "report": keys[-1]})
    measurements: list[tuple[dict[str, float], dict[str, str] | None]] = []
    for result in results:
        age = result.measured.get("backup_age_hours")
        if age is not None:
            source = "supabase" if result.name == "supabase_backups" else "offsite"
            measurements.append(({metrics.BACKUP_AGE_HOURS: age}, {"Source": source}))
        if result.measured.get("tampered"):
            measurements.append(({metrics.BACKUP_TAMPERED: 1}, {"Source": "offsite"}))
            measurements.append(({metrics.BACKUP_TAMPERED: 1}, None))  # what the alarm watches
        if result.name == "change_chain" and result.status != checks.ERROR:  # an ERROR is CheckFailed's alarm
            measurements.append(({metrics.CHANGE_CHAIN_BROKEN: 0 if result.ok else 1}, {"Source": "changes"}))
        if result.name == "s3_restore_test" and "seconds" in result.measured:
            measurements.append(({metrics.RESTORE_TEST_DURATION_SECONDS: result.measured["seconds"]},
                                 {"Source": "bucket"}))
    metrics.publish_outcome(job, checks={r.name: r.ok for r in results}, measurements=measurements, emit=emit)
    return keys


def now_utc() -> datetime:
    return datetime.now(UTC)


def handle(job: str, environ: Any = None, *, run: str | None = None) -> dict[str, Any]:
    """The Lambda entry: settings and targets come from the function's environment (set by CDK);
    ``run`` (the scheduler's execution id) goes into every report."""
    import os

    from tavari_dr.core import aws

    environ = environ if environ is not None else os.environ
    settings = VerificationConfig(**json.loads(environ["TAVARI_VERIFICATION"]))
    given = json.loads(environ["TAVARI_TARGETS"])
    targets = Targets(**{**given, "custodian_arns": tuple(given.get("custodian_arns", ()))},
                      tamper_watch=environ.get("TAVARI_TAMPER_WATCH"))
    # What the checks asked of AWS, for the quarterly drill's cost-model comparison (counted before
    # the reports are written, which are not part of the check).
    counter = RequestCounter()
    clients = Clients(s3=counter.attach(aws.client("s3")),
                      replica_s3=counter.attach(aws.client("s3", region=environ.get("TAVARI_DR_REGION") or None)),
                      cloudwatch=counter.attach(aws.client("cloudwatch")),
                      secretsmanager=counter.attach(aws.client("secretsmanager")),
                      kms=counter.attach(aws.client("kms")),
                      regional=lambda service, region: counter.attach(aws.client(service, region=region)))
    now = now_utc()
    results = run_checks(JOBS[job], clients=clients, targets=targets, settings=settings,
                         rpo_hours=float(environ["TAVARI_RPO_HOURS"]), now=now)
    counts = counter.counts.to_json()
    record(results, job=job, s3=clients.s3, reports_bucket=targets.reports_bucket, now=now, run=run)
    answer: dict[str, Any] = {"job": job, "results": {r.name: r.status for r in results}, "counts": counts}
    if job == metrics.DAILY_MONITOR:
        answer["heartbeat"] = heartbeat(results, clients=clients, targets=targets)
    return answer


def heartbeat(results: list[checks.CheckResult], *, clients: Clients, targets: Targets,
              ping: Callable[[str], int] | None = None, emit: Callable[..., None] = metrics.publish) -> str:
    """Ping the heartbeat URL only when every check passed (tavari_dr.verification.heartbeat); say what
    was done. A ping that failed is HeartbeatPingFailed, never only a log line."""
    from tavari_dr.verification import heartbeat as beat

    if not targets.heartbeat_url_secret:
        return "not configured"
    url = clients.secretsmanager.get_secret_value(SecretId=targets.heartbeat_url_secret)["SecretString"].strip()
    if is_placeholder(url):
        return "not configured (HEARTBEAT_URL is unset)"
    failed = [r.name for r in results if not r.ok]
    if failed:  # silence: the outside service alerts when the ping does not come
        log.warning("heartbeat_withheld", extra={"failed": failed})
        return f"withheld: {', '.join(failed)} did not pass"
    try:
        status = (ping or beat.ping)(url)
    except beat.HeartbeatError as err:
        log.error("heartbeat_failed", extra={"error": str(err)})
        emit({metrics.HEARTBEAT_PING_FAILED: 1})
        return f"failed: {err}"
    log.info("heartbeat_sent", extra={"status": status})
    return f"sent (HTTP {status})"
