"""`tavari-dr db backup|list|restore|verify`: off-site database backups (tavari_dr.database)."""

from __future__ import annotations

import functools
import re
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
from tavari_dr.configbackup import supabase_config
from tavari_dr.core import metrics, outputs, reports, supabase_api
from tavari_dr.core.audit import AuditRecord
from tavari_dr.core.aws import AwsTarget
from tavari_dr.core.config import EnvironmentConfig, Tier
from tavari_dr.database import backup as db_lib
from tavari_dr.database import erasure
from tavari_dr.database.signing import KmsSigner, KmsVerifier


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


def supabase_access(config: EnvironmentConfig | None, target: AwsTarget, api_url: str | None
                    ) -> tuple[str, str, str]:
    """(Management API URL, project ref, token): TAVARI_SUPABASE_URL / TAVARI_SUPABASE_ACCESS_TOKEN (the
    ECS task's way), else the SUPABASE_URL and SUPABASE_ACCESS_TOKEN secrets of --env."""
    import os

    values = {name: os.environ.get(f"TAVARI_{name}") for name in ("SUPABASE_URL", "SUPABASE_ACCESS_TOKEN")}
    missing = [name for name, value in values.items() if not value]
    if missing:
        if config is None:
            raise click.UsageError("name the Supabase project: --env ENV (secrets SUPABASE_URL and "
                                   "SUPABASE_ACCESS_TOKEN) or TAVARI_SUPABASE_URL and TAVARI_SUPABASE_ACCESS_TOKEN")
        arns = Deployed(config, target).secret_arns()
        client = target.client("secretsmanager")
        for name in missing:
            value = client.get_secret_value(SecretId=arns[name])["SecretString"]
            if outputs.is_placeholder(value):
                raise Failed(f"{name} is still a placeholder: run tavari-dr secrets push")
            values[name] = value
    api = api_url or (config.verification.supabase_api_url if config else "https://api.supabase.com")
    try:
        ref = supabase_api.project_ref_from_url(values["SUPABASE_URL"] or "")
    except ValueError as err:
        raise Failed(str(err)) from None
    return api, ref, values["SUPABASE_ACCESS_TOKEN"] or ""


supabase_api_option = click.option("--supabase-api-url", help="Management API (default: the environment's "
                                                              "verification.supabase_api_url).")


def _config_snapshot(config: EnvironmentConfig | None, target: AwsTarget, api_url: str | None
                     ) -> tuple[bytes | None, str | None]:
    """The Supabase configuration to write beside the dump, or why there is none: its failure must not
    cost the night's dump."""
    try:
        api, ref, token = supabase_access(config, target, api_url)
        document = supabase_config.snapshot(api, ref, token)
    except (supabase_api.SupabaseApiError, click.ClickException) as err:
        message = err.format_message() if isinstance(err, click.ClickException) else str(err)
        return None, message
    problem = "; ".join(f"{k}: {v}" for k, v in document["unavailable"].items()) or None
    return supabase_config.encode(document), problem


# A migration's name as it becomes part of the backup ID (and so of its S3 keys).
_MIGRATION_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _reason(reason: str | None, before_migration: str | None, config: EnvironmentConfig | None) -> str:
    """--reason, or the before-migration hook's: that one needs --env named on the command line, so a
    developer's ``npm run migrate`` never backs up an environment nobody chose."""
    if before_migration is None:
        if not reason:
            raise click.UsageError("say why: --reason TEXT, or --before-migration NAME")
        return reason
    if reason:
        raise click.UsageError("--before-migration sets the reason itself; drop --reason")
    if config is None:
        raise click.UsageError("--before-migration needs --env ENV: name the environment whose database the "
                               "migration changes (nothing is backed up by default)")
    if not _MIGRATION_NAME_RE.match(before_migration):
        raise click.UsageError(f"--before-migration {before_migration!r}: use the migration's name or commit "
                               "(letters, digits, '.', '_', '-'; at most 64)")
    return f"before-migration-{before_migration}"


@aws_command(group, "backup", "Take a backup now, e.g. before a migration.", env_required=False)
@click.option("--reason", help="Why: 'nightly', 'manual before the upgrade', ...")
@click.option("--before-migration", metavar="NAME",
              help="The migration hook: reason before-migration-NAME; needs --env; prints the backup ID "
                   "(exit 0: migrate; non-zero: do not).")
@click.option("--database-url", envvar="TAVARI_DATABASE_URL",
              help="Instead of the BACKUP_DATABASE_URL secret (env TAVARI_DATABASE_URL; the ECS task's way).")
@bucket_option
@signing_key_option
@pg_bin_option
@click.option("--publish-metrics", is_flag=True, help="Publish size, duration and success to CloudWatch.")
@click.option("--supabase-config", "with_config", is_flag=True,
              help="Also snapshot the Supabase project's configuration (Management API, no secrets) beside the dump.")
@supabase_api_option
@_db_errors
def backup(config, target, reason, before_migration, database_url, bucket, signing_key, pg_bin,
           publish_metrics, with_config, supabase_api_url):
    reason = _reason(reason, before_migration, config)
    url = _database_url(config, target, database_url)
    bucket = _backup_bucket(config, target, bucket)
    signer = KmsSigner(target.client("kms"), _signing_key(config, target, signing_key))
    settings = config.database_backups if config else None
    started = time.monotonic()
    emit = metrics.cloudwatch_emitter(target.client("cloudwatch")) if publish_metrics else None
    snapshot, config_problem = _config_snapshot(config, target, supabase_api_url) if with_config else (None, None)
    try:
        manifest = db_lib.run_backup(target.client("s3"), bucket, url, reason=reason, signer=signer,
                                     tiers=_tiers(config),
                                     timezone=settings.timezone if settings else "UTC",
                                     lock_mode=settings.lock_mode if settings else "GOVERNANCE", pg_bin=pg_bin,
                                     extra_artifacts={supabase_config.ARTIFACT: snapshot} if snapshot else None)
    except Exception:
        if emit:
            metrics.publish_outcome(metrics.DB_BACKUP, succeeded=False, emit=emit)
        raise
    duration = time.monotonic() - started
    if emit:
        metrics.publish_outcome(metrics.DB_BACKUP, emit=emit, measurements=[(
            {metrics.BACKUP_SIZE_BYTES: manifest.total_bytes, metrics.BACKUP_DURATION_SECONDS: duration},
            {"Source": "offsite"})])
    click.echo(f"backup {manifest.backup_id} ({manifest.tier}, retained until {manifest.retain_until}, "
               f"{manifest.lock_mode} lock): {format_bytes(manifest.total_bytes)} in {duration:.1f} s, "
               f"{len(manifest.tables)} tables, {sum(manifest.tables.values())} rows")
    if snapshot:
        click.echo(f"Supabase configuration snapshotted beside it ({supabase_config.ARTIFACT}, signed with the "
                   "manifest)")
    if config_problem:
        if emit:
            emit({metrics.SUPABASE_CONFIG_SNAPSHOT_FAILED: 1})
        raise Failed(f"the dump was taken, but the Supabase configuration snapshot "
                     f"{'is incomplete' if snapshot else 'failed'}: {config_problem}")
    if before_migration is not None and config is not None:
        click.echo(f"before migration {before_migration}: to undo it, tavari-dr db restore --env {config.name} "
                   f"--backup {manifest.backup_id} --target-url …")


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
        wrong = result.mismatches()
        click.echo(f"  {'TABLE':<{width}}  {'MANIFEST':>10}  {'ERASED':>8}  {'RESTORED':>10}")
        for table, (expected, found) in sorted(result.table_counts.items()):
            mark = "   <-- MISMATCH" if table in wrong else ""
            click.echo(f"  {table:<{width}}  {expected:>10}  {result.erased.get(table, 0):>8}  "
                       f"{found if found is not None else '-':>10}{mark}")
    if result.erased:
        click.echo(f"  erasure ledger: {sum(result.erased.values())} row(s) of erased accounts removed after the "
                   "restore")


def _publish_erasure_failed(emit: metrics.Emit | None, err: Exception) -> None:
    """The ledger could not be applied: a restored database may hold erased accounts (alarmed)."""
    if emit and isinstance(err, erasure.ErasureError):
        emit({metrics.ERASURE_LEDGER_FAILED: 1})


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
        except erasure.ErasureError as err:
            _publish_erasure_failed(emit, err)
            raise
        record.source.update(backup=result.backup_id, trust=result.trust)
        record.details.update(findings=result.findings, rows={t: f for t, (_, f) in result.table_counts.items()},
                              erased_rows=result.erased)
        _print_counts(result)
        if result.tampered:
            _publish_tampered(emit)
        if result.mismatches():
            raise Failed(f"restored {result.backup_id}, but row counts differ from the manifest")
        audit["outcome"] = "restored" + (" from a tampered backup through the named manifest version"
                                         if result.tampered else "")
    erased = f" ({sum(result.erased.values())} row(s) of erased accounts removed)" if result.erased else ""
    tampered = " — the bucket was tampered with, see TAMPERING above" if result.tampered else ""
    click.echo(f"restored {result.backup_id} ({result.trust}) in {result.duration_seconds:.1f} s; every row count "
               f"matches{erased}{tampered}")


def verify_report(result: db_lib.VerifyResult) -> dict[str, Any]:
    """What a verification found, as its report in the reports bucket and its --format json answer."""
    return {"status": "PASS" if result.ok else "FAIL", "backup_id": result.backup_id, "trust": result.trust,
            "tampered": result.tampered, "findings": result.findings,
            "duration_seconds": round(result.duration_seconds, 3),
            "checks": [{"name": n, "passed": p, "detail": d} for n, p, d in result.checks],
            "table_counts": {t: {"manifest": e, "erased": result.erased.get(t, 0), "restored": f}
                             for t, (e, f) in result.table_counts.items()},
            "erased_rows": sum(result.erased.values())}


def _check_ledger(result: db_lib.VerifyResult, s3: Any, bucket: str, emit: metrics.Emit | None) -> None:
    """The weekly check reads the erasure ledger a restore would apply: a broken one is found before a
    restore needs it."""
    try:
        entries = erasure.read_ledger(s3, bucket)
    except erasure.ErasureError as err:
        result.checks.append(("erasure ledger", False, str(err)))
        _publish_erasure_failed(emit, err)
        return
    result.checks.append(("erasure ledger", True, f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}, "
                                                  "each an account UUID and a time"))


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
            _check_ledger(result, s3, bucket, emit)
        else:
            result = db_lib.restore(s3, bucket, which, scratch_url, pg_bin=pg_bin, **opening,
                                    log=(lambda _m: None) if as_json else (lambda m: click.echo(f"  {m}")))
    except db_lib.BackupTampered as err:  # the full test refuses to restore it: a FAIL with what was found
        result = db_lib.tampered_result(err)
    except db_lib.BackupError as err:
        if emit:  # could not even run: a failed check and a failed job, never silence
            metrics.publish_outcome(check, checks={check: False}, succeeded=False, emit=emit)
            _publish_erasure_failed(emit, err)
        raise
    if result.tampered:
        _publish_tampered(emit)
    report = verify_report(result)
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
