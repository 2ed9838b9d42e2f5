"""`tavari-dr db backup|list|restore|verify`: off-site database backups (tavari_dr.database)."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from tavari_dr.cli.common import (
    Deployed,
    Failed,
    answer,
    audited,
    aws_command,
    echo_json,
    format_bytes,
    format_option,
    report_bucket_option,
)
from tavari_dr.core import metrics, observability, outputs, reports
from tavari_dr.core.audit import AuditRecord
from tavari_dr.core.aws import AwsTarget
from tavari_dr.core.config import EnvironmentConfig, Tier
from tavari_dr.database import backup as db_lib
from tavari_dr.database.signing import KmsSigner, KmsVerifier

log = logging.getLogger("tavari.database")


@click.group("db")
def group() -> None:
    """Off-site database backups: backup, list, restore, verify."""


def _backup_bucket(config: EnvironmentConfig | None, target: AwsTarget, bucket: str | None) -> str:
    return Deployed(config, target).resource(bucket, outputs.DATABASE_BACKUPS, outputs.BACKUP_BUCKET_NAME,
                                             what="backup bucket", option="--bucket",
                                             hint="deploy it or pass --bucket")


def _signing_key(config: EnvironmentConfig | None, target: AwsTarget, key: str | None) -> str:
    return Deployed(config, target).resource(key, outputs.DATABASE_BACKUPS, outputs.MANIFEST_SIGNING_KEY_ARN,
                                             what="manifest signing key", option="--signing-key")


def _verifier(config: EnvironmentConfig | None, target: AwsTarget, key: str | None) -> KmsVerifier:
    return KmsVerifier(target.client("kms"), _signing_key(config, target, key))


def _tiers(config: EnvironmentConfig | None) -> tuple[Tier, ...]:
    """The environment's grandfather-father-son tiers (the defaults without --env)."""
    return config.database_backups.tiers if config else db_lib.DEFAULT_TIERS


def _publish_tampered(emit: metrics.Emit | None) -> None:
    if emit:
        emit({metrics.BACKUP_TAMPERED: 1}, {"Source": "offsite"}, aggregate=True)


def _database_url(config: EnvironmentConfig | None, target: AwsTarget, url: str | None) -> str:
    if url:
        return url
    if config is None:
        raise click.UsageError("name the database: --env ENV (secret BACKUP_DATABASE_URL) or --database-url URL")
    arn = Deployed(config, target).secret_arns()["BACKUP_DATABASE_URL"]
    value = target.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"]
    if outputs.is_placeholder(value):
        raise Failed("BACKUP_DATABASE_URL is still a placeholder: run tavari-dr secrets push")
    return value


def _db_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except db_lib.BackupError as err:
            raise Failed(str(err)) from None

    return wrapper


bucket_option = click.option("--bucket", help="Backup bucket (default: the DatabaseBackups stack output).")
signing_key_option = click.option("--signing-key", help="KMS key ARN that signs the manifests (default: the "
                                                        "DatabaseBackups stack's ManifestSigningKeyArn output).")
manifest_version_option = click.option(
    "--manifest-version", help="Read a backup whose keys were overwritten or hidden through this version of its "
                               "manifest.json (its signature is still checked); what was found is reported.")
pg_bin_option = click.option("--pg-bin", type=click.Path(file_okay=False, path_type=Path),
                             help="Directory of pg_dump/pg_restore (default: PATH).")


@aws_command(group, "backup", "Take a backup now, e.g. before a migration.", env_required=False)
@click.option("--reason", required=True, help="Why: 'nightly', 'before migration 0042', ...")
@click.option("--database-url", envvar="TAVARI_DATABASE_URL",
              help="Instead of the BACKUP_DATABASE_URL secret (env TAVARI_DATABASE_URL; the ECS task's way).")
@bucket_option
@signing_key_option
@pg_bin_option
@click.option("--publish-metrics", is_flag=True, help="Publish size, duration and success to CloudWatch.")
@_db_errors
def backup(config, target, reason, database_url, bucket, signing_key, pg_bin, publish_metrics):
    url = _database_url(config, target, database_url)
    bucket = _backup_bucket(config, target, bucket)
    signer = KmsSigner(target.client("kms"), _signing_key(config, target, signing_key))
    settings = config.database_backups if config else None
    started = time.monotonic()
    emit = metrics.cloudwatch_emitter(target.client("cloudwatch")) if publish_metrics else None
    try:
        manifest = db_lib.run_backup(target.client("s3"), bucket, url, reason=reason, signer=signer,
                                     tiers=_tiers(config),
                                     timezone=settings.timezone if settings else "UTC",
                                     lock_mode=settings.lock_mode if settings else "GOVERNANCE", pg_bin=pg_bin)
    except Exception:
        if emit:
            metrics.publish_outcome(metrics.DB_BACKUP, succeeded=False, emit=emit)
        raise
    duration = time.monotonic() - started
    observability.correlate(job=metrics.DB_BACKUP, backup_id=manifest.backup_id)
    log.info("backup_written", extra={"tier": manifest.tier, "bytes": manifest.total_bytes,
                                      "tables": len(manifest.tables), "seconds": round(duration, 3)})
    if emit:
        metrics.publish_outcome(metrics.DB_BACKUP, emit=emit, measurements=[(
            {metrics.BACKUP_SIZE_BYTES: manifest.total_bytes, metrics.BACKUP_DURATION_SECONDS: duration},
            {"Source": "offsite"})])
    click.echo(f"backup {manifest.backup_id} ({manifest.tier}, retained until {manifest.retain_until}, "
               f"{manifest.lock_mode} lock): {format_bytes(manifest.total_bytes)} in {duration:.1f} s, "
               f"{len(manifest.tables)} tables, {sum(manifest.tables.values())} rows")


def _state(entry: db_lib.BackupEntry) -> str:
    """What the version listing alone shows (the signature is checked by verify and restore)."""
    if entry.expired:
        return "expired (lifecycle)"
    if entry.findings():
        return "TAMPERED: " + "; ".join(entry.findings())
    return "complete" if entry.complete else "INCOMPLETE (no manifest; never used)"


@aws_command(group, "list", "Backups, newest first: tier, size, and complete, incomplete or tampered.",
             env_required=False)
@bucket_option
@format_option
@_db_errors
def list_(config, target, bucket, output_format):
    backups = db_lib.list_backups(target.client("s3"), _backup_bucket(config, target, bucket), _tiers(config))

    def table():
        if not backups:
            return
        yield f"{'BACKUP':<44} {'TIER':<8} {'SIZE':>10}  STATE"
        for b in backups:
            yield f"{b.backup_id:<44} {b.tier:<8} {format_bytes(b.bytes):>10}  {_state(b)}"

    answer(output_format, {"backups": [{"backup_id": b.backup_id, "tier": b.tier, "bytes": b.bytes,
                                        "complete": b.complete, "expired": b.expired, "findings": b.findings(),
                                        "last_modified": b.last_modified.isoformat()}
                                       for b in backups]}, table, failure=None if backups else "no backups yet")


def _print_counts(result: db_lib.VerifyResult) -> None:
    for name, passed, detail in result.checks:
        click.echo(f"  {'ok ' if passed else 'FAIL'} {name}: {detail}")
    if result.table_counts:
        width = max(len(t) for t in result.table_counts)
        click.echo(f"  {'TABLE':<{width}}  {'MANIFEST':>10}  {'RESTORED':>10}")
        for table, (expected, found) in sorted(result.table_counts.items()):
            mark = "" if expected == found else "   <-- MISMATCH"
            click.echo(f"  {table:<{width}}  {expected:>10}  {found if found is not None else '-':>10}{mark}")


@aws_command(group, "restore", "Verify, then restore roles, schema and data into --target-url.", env_required=False)
@click.option("--backup", "which", default="latest", show_default=True, help="latest, or a backup ID.")
@click.option("--target-url", required=True, help="The database to restore into (Supabase or plain PostgreSQL).")
@click.option("--force", is_flag=True, help="Replace user tables the target already holds.")
@bucket_option
@signing_key_option
@manifest_version_option
@report_bucket_option
@click.option("--publish-metrics", is_flag=True, help="Publish BackupTampered when the backup was tampered with.")
@pg_bin_option
@_db_errors
def restore(config, target, which, target_url, force, bucket, signing_key, manifest_version, report_bucket,
            publish_metrics, pg_bin):
    bucket = _backup_bucket(config, target, bucket)
    verifier = _verifier(config, target, signing_key)
    emit = metrics.cloudwatch_emitter(target.client("cloudwatch")) if publish_metrics else None
    record = AuditRecord("db_restore", caller="", source={"bucket": bucket, "backup": which,
                                                           "manifest_version": manifest_version},
                         target={"database": db_lib.parse_database_url(target_url).url_without_password},
                         details={"force": force})
    with audited(config, target, report_bucket, record) as audit:
        try:
            result = db_lib.restore(target.client("s3"), bucket, which, target_url, verifier=verifier,
                                    manifest_version=manifest_version, tiers=_tiers(config), force=force,
                                    pg_bin=pg_bin, log=lambda m: click.echo(f"  {m}"))
        except db_lib.BackupTampered:
            _publish_tampered(emit)
            raise
        observability.correlate(job="db_restore", backup_id=result.backup_id)
        log.info("restore_finished", extra={"trust": result.trust, "tampered": result.tampered,
                                            "seconds": round(result.duration_seconds, 3)})
        record.source.update(backup=result.backup_id, trust=result.trust)
        record.details.update(findings=result.findings, rows={t: f for t, (_, f) in result.table_counts.items()})
        _print_counts(result)
        if result.tampered:
            _publish_tampered(emit)
        if any(found != expected for expected, found in result.table_counts.values()):
            raise Failed(f"restored {result.backup_id}, but row counts differ from the manifest")
        audit["outcome"] = "restored" + (" from a tampered backup through the named manifest version"
                                         if result.tampered else "")
    click.echo(f"restored {result.backup_id} ({result.trust}) in {result.duration_seconds:.1f} s; every row count "
               "matches" + (" — the bucket was tampered with, see TAMPERING above" if result.tampered else ""))


def verify_report(result: db_lib.VerifyResult) -> dict[str, Any]:
    """What a verification found, as its report in the reports bucket and its --format json answer."""
    return {"status": "PASS" if result.ok else "FAIL", "backup_id": result.backup_id, "trust": result.trust,
            "tampered": result.tampered, "findings": result.findings,
            "duration_seconds": round(result.duration_seconds, 3),
            "checks": [{"name": n, "passed": p, "detail": d} for n, p, d in result.checks],
            "table_counts": {t: {"manifest": e, "restored": f} for t, (e, f) in result.table_counts.items()}}


@aws_command(group, "verify", "Check a backup: --quick (sha256 + table of contents) or a full restore test.",
             env_required=False)
@click.option("--backup", "which", default="latest", show_default=True)
@click.option("--scratch-url", help="Empty database for the full test (required without --quick).")
@click.option("--quick", is_flag=True)
@bucket_option
@signing_key_option
@manifest_version_option
@pg_bin_option
@click.option("--publish-metrics", is_flag=True, help="Publish RestoreTestDurationSeconds and CheckPassed/Failed.")
@click.option("--report-bucket", help="Also write the JSON report to reports/<check>/<date>.json in this bucket.")
@format_option
@_db_errors
def verify(config, target, which, scratch_url, quick, bucket, signing_key, manifest_version, pg_bin, publish_metrics,
           report_bucket, output_format):
    if not quick and not scratch_url:
        raise click.UsageError("the full verify restores into --scratch-url (or pass --quick)")
    as_json = output_format == "json"
    s3 = target.client("s3")
    bucket = _backup_bucket(config, target, bucket)
    check = metrics.DB_VERIFY_QUICK if quick else metrics.DB_RESTORE_TEST
    emit = metrics.cloudwatch_emitter(target.client("cloudwatch")) if publish_metrics else None
    opening = {"verifier": _verifier(config, target, signing_key), "manifest_version": manifest_version,
               "tiers": _tiers(config)}
    try:
        if quick:
            result = db_lib.verify_quick(s3, bucket, which, pg_bin=pg_bin, **opening)
        else:
            result = db_lib.restore(s3, bucket, which, scratch_url, pg_bin=pg_bin, **opening,
                                    log=(lambda _m: None) if as_json else (lambda m: click.echo(f"  {m}")))
    except db_lib.BackupTampered as err:  # the full test refuses to restore it: a FAIL with what was found
        result = db_lib.tampered_result(err)
    except db_lib.BackupError:
        if emit:  # could not even run: a failed check and a failed job, never silence
            metrics.publish_outcome(check, checks={check: False}, succeeded=False, emit=emit)
        raise
    if result.tampered:
        _publish_tampered(emit)
    report = verify_report(result)
    observability.correlate(job=check, backup_id=result.backup_id)
    log.info("backup_verified", extra={"status": report["status"], "trust": result.trust,
                                       "seconds": report["duration_seconds"]})
    if not as_json:
        _print_counts(result)
    key = None
    if report_bucket:
        key = reports.write_report(s3, report_bucket, check, report)
        if not as_json:
            click.echo(f"report: s3://{report_bucket}/{key}")
    if emit:
        metrics.publish_outcome(check, checks={check: result.ok}, emit=emit, measurements=[] if quick else [
            ({metrics.RESTORE_TEST_DURATION_SECONDS: result.duration_seconds}, {"Source": "database"})])
    if as_json:
        echo_json({"check": check, **report, "report": f"s3://{report_bucket}/{key}" if key else None})
    if not result.ok:
        raise Failed(f"{result.backup_id}: verification failed")
    if not as_json:
        click.echo(f"{result.backup_id}: {'quick check' if quick else 'restore test'} passed "
                   f"in {result.duration_seconds:.1f} s")
