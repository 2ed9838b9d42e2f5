"""`tavari-dr db backup|list|restore|verify|cleanup-restored`: off-site database backups (tavari_dr.database)."""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from tavari_dr.changes import capture as capture_lib
from tavari_dr.changes import pitr
from tavari_dr.changes import replay as replay_lib
from tavari_dr.cli.common import (
    Deployed,
    Failed,
    answer,
    audited,
    aws_command,
    backup_errors,
    echo_json,
    format_bytes,
    format_option,
    report_bucket_option,
)
from tavari_dr.configbackup import supabase_config
from tavari_dr.core import metrics, observability, outputs, reports, supabase_api
from tavari_dr.core.audit import AuditRecord
from tavari_dr.core.aws import AwsTarget
from tavari_dr.core.config import DEFAULT_DATASETS, Dataset, EnvironmentConfig, Tier
from tavari_dr.database import backup as db_lib
from tavari_dr.database import dump_task, erasure, overwrite, partial
from tavari_dr.database.manifest import open_backup
from tavari_dr.database.signing import KmsSigner, KmsVerifier, change_verifier, distinct_keys, manifest_verifier

log = logging.getLogger("tavari.database")


@click.group("db")
def group() -> None:
    """Off-site database backups: backup, list, restore, verify, cleanup-restored, stream."""


def _backup_bucket(config: EnvironmentConfig | None, target: AwsTarget, bucket: str | None) -> str:
    return Deployed(config, target).resource(bucket, outputs.DATABASE_BACKUPS, outputs.BACKUP_BUCKET_NAME,
                                             what="backup bucket", option="--bucket",
                                             hint="deploy it or pass --bucket")


def _signing_key(config: EnvironmentConfig | None, target: AwsTarget, key: str | None) -> str:
    return Deployed(config, target).resource(key, outputs.DATABASE_BACKUPS, outputs.MANIFEST_SIGNING_KEY_ARN,
                                             what="manifest signing key", option="--signing-key")


def _verifier(config: EnvironmentConfig | None, target: AwsTarget, key: str | None) -> KmsVerifier:
    """The dump manifests' reader: the manifest signing key only."""
    return manifest_verifier(target.client("kms"), _signing_key(config, target, key))


def _change_signing_key(config: EnvironmentConfig | None, target: AwsTarget, key: str | None) -> str:
    return Deployed(config, target).resource(key, outputs.DATABASE_BACKUPS, outputs.CHANGE_SIGNING_KEY_ARN,
                                             what="change signing key", option="--change-signing-key")


def _two_keys(manifest_key: str, change_key: str) -> None:
    try:
        distinct_keys(manifest_key, change_key)
    except ValueError as err:
        raise click.UsageError(str(err)) from None


def _verifiers(config: EnvironmentConfig | None, target: AwsTarget, key: str | None,
               change_key: str | None) -> tuple[KmsVerifier, KmsVerifier]:
    """(manifests, change records): each reader trusts its own key only (issue 27)."""
    manifests = _verifier(config, target, key)
    changes = change_verifier(target.client("kms"), _change_signing_key(config, target, change_key))
    _two_keys(manifests.key_id, changes.key_id)
    return manifests, changes


def _datasets(config: EnvironmentConfig | None) -> tuple[Dataset, ...]:
    """The environment's account map (data_export.datasets) the erasure ledger deletes by on every
    restore path; the built-in map without --env, as `export account` reads it."""
    return config.data_export.datasets if config else DEFAULT_DATASETS


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


bucket_option = click.option("--bucket", help="Backup bucket (default: the DatabaseBackups stack output).")
signing_key_option = click.option("--signing-key", help="KMS key ARN that signs the manifests (default: the "
                                                        "DatabaseBackups stack's ManifestSigningKeyArn output).")
change_signing_key_option = click.option(
    "--change-signing-key", help="KMS key ARN that signs the change log's segments and bases (default: the "
                                 "DatabaseBackups stack's ChangeSigningKeyArn output); never the manifests' key.")
manifest_version_option = click.option(
    "--manifest-version", help="Read a backup whose keys were overwritten or hidden through this version of its "
                               "manifest.json (its signature is still checked); what was found is reported.")
pg_bin_option = click.option("--pg-bin", type=click.Path(file_okay=False, path_type=Path),
                             help="Directory of pg_dump/pg_restore (default: PATH).")
jobs_option = click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
                           help="Parallel pg_dump/pg_restore workers (default: one per CPU, at least 2).")
work_dir_option = click.option(
    "--work-dir", type=click.Path(file_okay=False, exists=True, writable=True, path_type=Path), default=None,
    help="Where the dump is written or downloaded to (default: the temporary directory); it needs room for the "
         "whole backup.")


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


@aws_command(group, "backup", "Take a backup now, e.g. before a migration."
                              "\n\n\b\nExamples:"
                              "\n  tavari-dr db backup --env prod --reason 'before the upgrade'", env_required=False)
@click.option("--reason", envvar=dump_task.REASON_ENV,
              help="Why: 'nightly', 'manual before the upgrade', ... (env TAVARI_BACKUP_REASON: the nightly task's "
                   "way, which a base reset's run of it overrides).")
@click.option("--before-migration", metavar="NAME",
              help="The migration hook: reason before-migration-NAME; needs --env; prints the backup ID "
                   "(exit 0: migrate; non-zero: do not).")
@click.option("--database-url", envvar="TAVARI_DATABASE_URL",
              help="Instead of the BACKUP_DATABASE_URL secret (env TAVARI_DATABASE_URL; the ECS task's way).")
@bucket_option
@signing_key_option
@pg_bin_option
@jobs_option
@work_dir_option
@click.option("--publish-metrics", is_flag=True, help="Publish size, duration and success to CloudWatch.")
@click.option("--supabase-config", "with_config", is_flag=True,
              help="Also snapshot the Supabase project's configuration (Management API, no secrets) beside the dump.")
@supabase_api_option
@click.option("--cleanup-restored", is_flag=True,
              help="First drop the expired restored_<date> copies of `db restore --table` (as cleanup-restored "
                   "does), so they are not backed up; a failure there is reported and the backup still runs.")
@report_bucket_option
@backup_errors
def backup(config, target, reason, before_migration, database_url, bucket, signing_key, pg_bin,
           publish_metrics, with_config, supabase_api_url, cleanup_restored, report_bucket,
           jobs, work_dir):
    reason = _reason(reason, before_migration, config)
    if db_lib._slug(reason) == db_lib.PRE_RESTORE:
        raise click.UsageError(f"--reason {reason!r} is reserved for the copy `db restore --force` takes of its "
                               "target (never 'latest'); say why you take this backup")
    url = _database_url(config, target, database_url)
    bucket = _backup_bucket(config, target, bucket)
    signer = KmsSigner(target.client("kms"), _signing_key(config, target, signing_key))
    settings = config.database_backups if config else None
    if cleanup_restored:
        try:
            _cleanup(config, target, url, report_bucket)
        except (click.ClickException, db_lib.BackupError) as err:
            message = err.format_message() if isinstance(err, click.ClickException) else str(err)
            click.echo(f"warning: the expired restored copies were not dropped ({message}); backing up anyway",
                       err=True)
    started = time.monotonic()
    emit = metrics.cloudwatch_emitter(target.client("cloudwatch")) if publish_metrics else None
    snapshot, config_problem = _config_snapshot(config, target, supabase_api_url) if with_config else (None, None)
    try:
        manifest = db_lib.run_backup(target.client("s3"), bucket, url, reason=reason, signer=signer,
                                     tiers=_tiers(config),
                                     timezone=settings.timezone if settings else "UTC",
                                     lock_mode=settings.lock_mode if settings else "GOVERNANCE", pg_bin=pg_bin,
                                     extra_artifacts={supabase_config.ARTIFACT: snapshot} if snapshot else None,
                                     jobs=jobs, work_dir=work_dir)
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
    if entry.complete and entry.pre_restore:
        return "complete (pre-restore copy of a restore's target: never latest; by ID only)"
    return "complete" if entry.complete else "INCOMPLETE (no manifest; never used)"


@aws_command(group, "list", "Backups, newest first: tier, size, and complete, incomplete or tampered."
                            "\n\n\b\nExamples:"
                            "\n  tavari-dr db list --env prod",
             env_required=False)
@bucket_option
@signing_key_option
@change_signing_key_option
@format_option
@backup_errors
def list_(config, target, bucket, signing_key, change_signing_key, output_format):
    s3, bucket = target.client("s3"), _backup_bucket(config, target, bucket)
    backups = db_lib.list_backups(s3, bucket, _tiers(config))
    reach = _windows(config, target, s3, bucket, signing_key, change_signing_key, backups)

    def shown(backup_id: str) -> str:
        found = reach.get(backup_id)
        return f"--to up to {found[1]:%Y-%m-%dT%H:%M:%SZ}" if found else "-"

    def table():
        if not backups:
            return
        yield f"{'BACKUP':<44} {'TIER':<8} {'SIZE':>10}  {'RESTORES TO':<31} STATE"
        for b in backups:
            yield f"{b.backup_id:<44} {b.tier:<8} {format_bytes(b.bytes):>10}  {shown(b.backup_id):<31} {_state(b)}"

    answer(output_format, {"backups": [{"backup_id": b.backup_id, "tier": b.tier, "bytes": b.bytes,
                                        "complete": b.complete, "expired": b.expired, "findings": b.findings(),
                                        "pre_restore": b.pre_restore,
                                        "last_modified": b.last_modified.isoformat(),
                                        "restore_window": [t.isoformat() for t in reach[b.backup_id]]
                                        if reach.get(b.backup_id) else None}
                                       for b in backups]}, table, failure=None if backups else "no backups yet")


def _windows(config: EnvironmentConfig | None, target: AwsTarget, s3: Any, bucket: str, signing_key: str | None,
             change_signing_key: str | None,
             backups: list[db_lib.BackupEntry]) -> dict[str, tuple[datetime, datetime] | None]:
    """Per complete, untampered backup: the seconds `restore --to` can reach from it (its dump through the
    change log's newest commit; ADR 0020). Without both signing keys nothing can be trusted: none shown."""
    try:
        verifier = _verifier(config, target, signing_key)
        changes = change_verifier(target.client("kms"), _change_signing_key(config, target, change_signing_key))
    except click.ClickException:
        return {}
    _two_keys(verifier.key_id, changes.key_id)
    manifests = []
    for b in backups:
        if b.complete and not b.expired and not b.pre_restore and not b.findings():
            try:
                manifests.append(open_backup(s3, bucket, b, verifier=verifier).manifest)
            except db_lib.BackupError:
                continue
    return replay_lib.windows(s3, bucket, manifests, changes, datetime.now(UTC))


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


@contextlib.contextmanager
def _restore_failures_counted(emit: metrics.Emit | None) -> Iterator[None]:
    """A restore that found a tampered backup or could not apply the erasure ledger is counted (both alarm),
    then fails as it would."""
    try:
        yield
    except db_lib.BackupTampered:
        _publish_tampered(emit)
        raise
    except erasure.ErasureError as err:
        _publish_erasure_failed(emit, err)
        raise


@aws_command(group, "restore", "Verify, download, then restore roles, pre-data, data and post-data into "
                              "--target-url; or, with --table, copy chosen tables beside the live ones."
                               "\n\n\b\nExamples:"
                               "\n  tavari-dr db restore --env prod --backup latest "
                               "--target-url postgresql://localhost/restored"
                               "\n  tavari-dr db restore --env prod --to 2026-12-01T14:03:27Z "
                               "--target-url postgresql://localhost/restored --dry-run",
             env_required=False)
@click.option("--backup", "which", default="latest", show_default=True, help="latest, or a backup ID.")
@click.option("--to", "to", metavar="YYYY-MM-DDTHH:MM:SSZ",
              help="Point in time (fractions of a second allowed): the newest backup whose snapshot serves it, then "
                   "the change log up to the last transaction committed at or before it (`db list` shows how far "
                   "each backup reaches).")
@click.option("--dump-only", "dump_only", multiple=True, metavar="SCHEMA.TABLE",
              help="With --to: restore this table as of the dump although the change log does not capture it "
                   "(repeatable; without it such a restore is refused, naming the tables).")
@click.option("--target-url", required=True, help="The database to restore into (Supabase or plain PostgreSQL).")
@click.option("--force", is_flag=True, help="Replace the user schemas the target already holds: shows what is dropped "
                                            "(row counts), asks, and backs the target up first.")
@click.option("--yes", is_flag=True, help="With --force: do not ask (what is dropped is still printed).")
@click.option("--dry-run", is_flag=True, help="Print what the restore would drop or copy; change nothing anywhere.")
@click.option("--no-safety-backup", is_flag=True,
              help="With --force: overwrite without the pre-restore backup of the target (reason pre-restore).")
@click.option("--table", "tables", multiple=True, metavar="SCHEMA.TABLE",
              help="Partial restore: copy this table of the backup into restored_<date> of --target-url "
                   "(repeatable; quote odd names as in SQL).")
@click.option("--scratch-url", help="With --table: an empty database to restore the backup into first (default: a "
                                    "new tavari_restore_<backup> on the target's server, dropped afterwards).")
@click.option("--keep-hours", type=click.FloatRange(min=0, min_open=True), default=partial.DEFAULT_KEEP_HOURS,
              show_default=True, help="With --table: when the copies expire (cleanup-restored drops them).")
@bucket_option
@signing_key_option
@change_signing_key_option
@manifest_version_option
@report_bucket_option
@click.option("--publish-metrics", is_flag=True, help="Publish BackupTampered when the backup was tampered with.")
@pg_bin_option
@jobs_option
@work_dir_option
@backup_errors
def restore(config, target, which, to, dump_only, target_url, force, yes, dry_run, no_safety_backup, tables,
            scratch_url, keep_hours, bucket, signing_key, change_signing_key, manifest_version, report_bucket,
            publish_metrics, pg_bin, jobs, work_dir):
    if dump_only and to is None:
        raise click.UsageError("--dump-only goes with --to")
    if to is not None:
        point = _point_in_time(to)
        if which != "latest" or tables or force or manifest_version:
            raise click.UsageError("--to picks the backup itself and restores into an empty database: drop --backup, "
                                   "--table, --force and --manifest-version")
        return _restore_to(config, target, point, target_url, dry_run, bucket, (signing_key, change_signing_key),
                           report_bucket, publish_metrics, pg_bin, jobs, work_dir, tuple(dump_only))
    if tables and force:
        raise click.UsageError("--table copies tables beside the live ones and never overwrites: drop --force")
    if scratch_url and not tables:
        raise click.UsageError("--scratch-url is for --table (a full restore goes into --target-url itself)")
    if (yes or no_safety_backup) and not force:
        raise click.UsageError("--yes and --no-safety-backup go with --force")
    database = db_lib.parse_database_url(target_url).url_without_password
    bucket = _backup_bucket(config, target, bucket)
    verifier = _verifier(config, target, signing_key)
    opening = {"verifier": verifier, "manifest_version": manifest_version, "tiers": _tiers(config)}
    s3 = target.client("s3")

    def say(message: str) -> None:
        click.echo(f"  {message}")

    if dry_run:  # reads only: no audit record, no pre-restore backup, nothing written to the target
        if tables:
            _print_partial(partial.restore_tables(s3, bucket, which, target_url, list(tables), scratch_url=scratch_url,
                                                  keep_hours=keep_hours, dry_run=True, **opening))
        else:
            plan = overwrite.preview(s3, bucket, which, target_url, force=force, **opening)
            for line in plan.lines():
                click.echo(line)
            if plan.destructive and not plan.refused:
                click.echo("a pre-restore backup of the target would be taken first" if not no_safety_backup
                           else "no pre-restore backup would be taken (--no-safety-backup)")
        click.echo("dry run: nothing was changed")
        if not tables and plan.refused:
            raise Failed("without --force this restore would be refused (see above)")
        return
    emit = metrics.cloudwatch_emitter(target.client("cloudwatch")) if publish_metrics else None
    record = AuditRecord("db_restore", caller="", source={"bucket": bucket, "backup": which,
                                                           "manifest_version": manifest_version},
                         target={"database": database},
                         details={"force": force, "tables": list(tables), "safety_backup": None})
    with audited(config, target, report_bucket, record) as audit:
        with _restore_failures_counted(emit):
            if tables:
                copied = partial.restore_tables(s3, bucket, which, target_url, list(tables), scratch_url=scratch_url,
                                                keep_hours=keep_hours, pg_bin=pg_bin, log=say, jobs=jobs,
                                                work_dir=work_dir, datasets=_datasets(config), **opening)
                record.source.update(backup=copied.backup_id, trust=copied.trust)
                record.details.update(findings=copied.findings, partial=copied.document())
                if copied.findings:
                    _publish_tampered(emit)
                _print_partial(copied)
                if not copied.ok:
                    raise Failed(f"copied tables of {copied.backup_id}, but row counts differ from the manifest")
                audit["outcome"] = f"copied {len(copied.copies)} table(s) into {copied.schema}"
                return
            if force:
                outcome = overwrite.restore_over(
                    s3, bucket, which, target_url, confirm=lambda plan: _confirm(plan, yes),
                    safety=None if no_safety_backup else _safety(config, target, bucket, signing_key, pg_bin),
                    pg_bin=pg_bin, log=say, jobs=jobs, work_dir=work_dir, datasets=_datasets(config), **opening)
                result = outcome.result
                record.details.update(dropped=outcome.plan.document() if outcome.plan else None,
                                      safety_backup=outcome.safety.backup_id if outcome.safety else None)
            else:
                result = db_lib.restore(s3, bucket, which, target_url, pg_bin=pg_bin, log=say, jobs=jobs,
                                        work_dir=work_dir, datasets=_datasets(config), **opening)
        observability.correlate(job="db_restore", backup_id=result.backup_id)
        log.info("restore_finished", extra={"trust": result.trust, "tampered": result.tampered,
                                            "seconds": round(result.duration_seconds, 3)})
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


def _point_in_time(text: str) -> datetime:
    try:
        point = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a time such as 2026-12-01T14:03:27Z", param_hint="--to") from None
    if point.tzinfo is None:
        raise click.BadParameter(f"{text!r} has no time zone; write it in UTC, e.g. 2026-12-01T14:03:27Z",
                                 param_hint="--to")
    return point.astimezone(UTC)


def _restore_to(config: EnvironmentConfig | None, target: AwsTarget, point: datetime, target_url: str, dry_run: bool,
                bucket: str | None, keys: tuple[str | None, str | None], report_bucket: str | None,
                publish_metrics: bool, pg_bin: Path | None, jobs: int | None, work_dir: Path | None,
                dump_only: tuple[str, ...] = ()) -> None:
    bucket = _backup_bucket(config, target, bucket)
    verifier, changes = _verifiers(config, target, *keys)  # the dump's manifest; the change log's records
    s3 = target.client("s3")

    def say(message: str) -> None:
        click.echo(f"  {message}")

    try:
        if dry_run:  # the very plan and checks the real run makes before its first write
            the_plan = pitr.plan_to(s3, bucket, point, verifier=verifier, change_verifier=changes, tiers=_tiers(config),
                                    dump_only=dump_only, keep=False)
            click.echo(f"would restore backup {the_plan.manifest.backup_id}, then replay {the_plan.verified} "
                       f"verified change segment(s) of base {the_plan.base.base_id} up to {point.isoformat()}")
            click.echo("dry run: nothing was changed")
            return
        emit = metrics.cloudwatch_emitter(target.client("cloudwatch")) if publish_metrics else None
        record = AuditRecord("db_restore", caller="", source={"bucket": bucket, "to": point.isoformat()},
                             target={"database": db_lib.parse_database_url(target_url).url_without_password},
                             details={"point_in_time": True})
        with audited(config, target, report_bucket, record) as audit:
            with _restore_failures_counted(emit):
                result, outcome = pitr.restore_to(s3, bucket, point, target_url, verifier=verifier,
                                                  change_verifier=changes,
                                                  tiers=_tiers(config), log=say, pg_bin=pg_bin, jobs=jobs,
                                                  work_dir=work_dir, dump_only=dump_only,
                                                  datasets=_datasets(config))
            record.source.update(backup=result.backup_id, trust=result.trust)
            record.details.update(replayed_transactions=outcome.applied, last_commit=outcome.last_commit,
                                  rows={t: f for t, (_, f) in result.table_counts.items()}, erased_rows=result.erased)
            _print_counts(result)
            if not result.ok:
                raise Failed(f"restored {result.backup_id} and replayed the change log to "
                             f"{point:%Y-%m-%dT%H:%M:%SZ}, but a check failed (see above)")
            audit["outcome"] = f"restored to {point.isoformat()}"
    except (replay_lib.ReplayError, replay_lib.SegmentError) as err:
        raise Failed(str(err)) from None
    click.echo(f"restored to {point:%Y-%m-%dT%H:%M:%SZ}: backup {result.backup_id} and {outcome.applied} "
               f"transaction(s) of the change log (the last committed at {outcome.last_commit or 'the dump'}) in "
               f"{result.duration_seconds:.1f} s; every row count matches what the log says the tables held")


def _confirm(plan: overwrite.OverwritePlan, yes: bool) -> bool:
    for line in plan.lines():
        click.echo(line)
    if yes:
        return True
    try:
        return click.confirm(f"Drop all of this in {plan.target} and restore {plan.backup_id}?", default=False)
    except click.Abort:  # end of input: no answer is no
        return False


def _safety(config: EnvironmentConfig | None, target: AwsTarget, bucket: str, signing_key: str | None,
            pg_bin: Path | None) -> overwrite.SafetyBackup:
    settings = config.database_backups if config else None
    return overwrite.SafetyBackup(target.client("s3"), bucket,
                                  KmsSigner(target.client("kms"), _signing_key(config, target, signing_key)),
                                  tiers=_tiers(config), lock_mode=settings.lock_mode if settings else "GOVERNANCE",
                                  pg_bin=pg_bin)


def _print_partial(copied: partial.PartialRestore) -> None:
    verb = "would copy" if copied.dry_run else "copied"
    click.echo(f"{verb} from backup {copied.backup_id} (restored first into {copied.scratch}) into "
               f"{copied.target}, schema {copied.schema}, no access for PUBLIC/anon/authenticated, dropped after "
               f"{copied.expires_at.isoformat(timespec='seconds')}:")
    for c in copied.copies:
        erased = f" less {c.erased} of erased accounts" if c.erased else ""
        rows = "" if c.rows is None else f"{c.rows} rows" + (
            f" (manifest {c.expected}{erased})" if c.erased and c.ok else
            "" if c.ok else f"   <-- MISMATCH (manifest {c.expected}{erased})")
        click.echo(f"  {c.source} -> {c.copy}  {rows or f'{c.expected} rows in the manifest'}")
    if not copied.dry_run:
        click.echo("compare, then copy rows back with SQL (docs/runbooks/database-corruption.md)")


def _cleanup(config: EnvironmentConfig | None, target: AwsTarget, url: str, report_bucket: str | None) -> None:
    """Drop the expired copies, audited when there is anything to drop."""
    from tavari_dr.database.failures import server_of

    due = partial.cleanup_restored(url, dry_run=True)
    if not due.dropped:
        click.echo(f"no expired restored copies in {server_of(url)}" + (
            f" ({len(due.kept)} not yet due)" if due.kept else ""))
        return
    record = AuditRecord("db_cleanup_restored", caller="", source={},
                         target={"database": db_lib.parse_database_url(url).url_without_password},
                         details={"due": due.dropped})
    with audited(config, target, report_bucket, record) as audit:
        done = partial.cleanup_restored(url)
        record.details["dropped"] = done.dropped
        audit["outcome"] = f"dropped {len(done.dropped)} expired restored cop(ies)"
    for name in done.dropped:
        click.echo(f"dropped {name}")


@aws_command(group, "cleanup-restored", "Drop the restored_<date> copies of `db restore --table` whose time is up "
                                        "(the nightly backup does it too, before it dumps)."
                                        "\n\n\b\nExamples:"
                                        "\n  tavari-dr db cleanup-restored --env prod --dry-run", env_required=False)
@click.option("--database-url", envvar="TAVARI_DATABASE_URL",
              help="The live database (default: the BACKUP_DATABASE_URL secret; env TAVARI_DATABASE_URL).")
@click.option("--dry-run", is_flag=True, help="List what is due; drop nothing.")
@report_bucket_option
@backup_errors
def cleanup_restored(config, target, database_url, dry_run, report_bucket):
    url = _database_url(config, target, database_url)
    if dry_run:
        due = partial.cleanup_restored(url, dry_run=True)
        for name in due.dropped:
            click.echo(f"would drop {name}")
        for name, expires in due.kept:
            click.echo(f"kept {name} (expires {expires})")
        click.echo("dry run: nothing was changed")
        return
    _cleanup(config, target, url, report_bucket)


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


@aws_command(group, "verify", "Check a backup: --quick (sha256 + table of contents) or a full restore test."
                              "\n\n\b\nExamples:"
                              "\n  tavari-dr db verify --env prod --quick",
             env_required=False)
@click.option("--backup", "which", default="latest", show_default=True)
@click.option("--scratch-url", help="Empty database for the full test (required without --quick).")
@click.option("--quick", is_flag=True)
@bucket_option
@signing_key_option
@manifest_version_option
@pg_bin_option
@jobs_option
@work_dir_option
@click.option("--change-signing-key", help="The full test of the latest backup restores it PLUS its change log to "
                                           "the newest segment, verified with this key (default: the stack's "
                                           "ChangeSigningKeyArn output with --env; none: the dump alone).")
@click.option("--publish-metrics", is_flag=True, help="Publish RestoreTestDurationSeconds and CheckPassed/Failed.")
@click.option("--report-bucket", help="Also write the JSON report to reports/<check>/<date>.json in this bucket.")
@format_option
@backup_errors
def verify(config, target, which, scratch_url, quick, bucket, signing_key, manifest_version, pg_bin, jobs, work_dir,
           change_signing_key, publish_metrics, report_bucket, output_format):
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
            say = (lambda _m: None) if as_json else (lambda m: click.echo(f"  {m}"))
            result = _restore_test(config, target, s3, bucket, which, scratch_url, change_signing_key, opening,
                                   emit=emit, pg_bin=pg_bin, jobs=jobs, work_dir=work_dir, log=say)
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


def _restore_test(config, target, s3: Any, bucket: str, which: str, scratch_url: str, change_key: str | None,
                  opening: dict[str, Any], *, emit: metrics.Emit | None, log: Callable[[str], None],
                  **restore_options: Any) -> db_lib.VerifyResult:
    """The monthly restore test: the latest dump PLUS its change log to the newest segment where a log covers
    it (tavari_dr.verification.restore_with_log; RestoreTestWithLogFailed), else the dump alone, said in the
    report."""
    from tavari_dr.verification import restore_with_log

    if change_key is None and config is not None:
        change_key = Deployed(config, target).outputs(outputs.DATABASE_BACKUPS).get(outputs.CHANGE_SIGNING_KEY_ARN)
    point, why_not = None, "no change signing key (no capture deployed): restored as of the dump only"
    if change_key and which != "latest":
        why_not = f"backup {which} named: restored as of the dump only (the log is replayed onto the latest)"
    elif change_key:
        changes = change_verifier(target.client("kms"), change_key)
        _two_keys(opening["verifier"].key_id, changes.key_id)
        try:
            point = restore_with_log.newest_point(s3, bucket, verifier=opening["verifier"], change_verifier=changes,
                                                  now=datetime.now(UTC), tiers=opening["tiers"])
        except (replay_lib.ReplayError, replay_lib.SegmentError) as err:  # the log cannot even be read: a FAIL
            result = db_lib.VerifyResult(which, [("change log to the newest segment", False, str(err))])
            _publish_with_log(emit, result)
            return result
        why_not = point.why_not
    if point is not None and point.to is not None:
        log(f"restore test with the change log: backup {point.backup_id}, base {point.base_id}, to "
            f"{point.to.isoformat()} (the newest segment's last commit)")
        result = restore_with_log.restore_test(s3, bucket, scratch_url, point, verifier=opening["verifier"],
                                               change_verifier=changes, tiers=opening["tiers"], log=log,
                                               datasets=_datasets(config), **restore_options)
        _publish_with_log(emit, result)
        return result
    result = db_lib.restore(s3, bucket, which, scratch_url, **opening, **restore_options, datasets=_datasets(config),
                            log=log)
    result.checks.append(("change log", True, why_not or "restored as of the dump only"))
    return result


def _publish_with_log(emit: metrics.Emit | None, result: db_lib.VerifyResult) -> None:
    if emit:
        emit({metrics.RESTORE_TEST_WITH_LOG_FAILED: 0 if result.ok else 1}, {"Source": "database"})


def _stream_url(config: EnvironmentConfig | None, target: AwsTarget, url: str | None) -> str:
    if url:
        return url
    if config is None:
        raise click.UsageError("name the database: --env ENV (secret STREAM_DATABASE_URL) or --database-url URL")
    arn = Deployed(config, target).secret_arns().get("STREAM_DATABASE_URL")
    if not arn:
        raise Failed("no STREAM_DATABASE_URL secret in this environment: deploy the Secrets stack, then "
                     "tavari-dr secrets push")
    value = target.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"]
    if outputs.is_placeholder(value):
        raise Failed("STREAM_DATABASE_URL is still a placeholder: run tavari-dr secrets push (the DIRECT "
                     "connection, db.<ref>.supabase.co:5432: the poolers do not speak the replication protocol)")
    return value


def _fresh_dump(config: EnvironmentConfig | None, target: AwsTarget, url: str, bucket: str, change_key: str, *,
                dump_task_json: str | None, in_process: bool, backup_database_url: str | None,
                signing_key: str | None, pg_bin: Path | None) -> Callable[[str], None]:
    """What a base reset calls with its reason ("base-reset ..."): an explicit choice, never a fallback.
    --dump-task: ECS runs the nightly backup job's task (its identity signs and writes the dump; the
    capture holds neither); --dump-in-process: pg_dump here, signed with the manifest key (local runs)."""
    if bool(dump_task_json) == in_process:
        raise click.UsageError("name how a base reset's fresh dump is taken: --dump-task JSON (the nightly backup "
                               "job's task, as deployed) or --dump-in-process (here: local runs), one of the two")
    if dump_task_json:
        try:
            task = dump_task.DumpTask.parse(dump_task_json)
        except ValueError as err:
            raise click.UsageError(str(err)) from None
        ecs = target.client("ecs")

        def by_the_nightly_job(reason: str) -> None:
            started = dump_task.run(ecs, task, reason)
            click.echo(f"fresh dump after the base reset ({reason}): the nightly backup task {started} takes it")

        return by_the_nightly_job
    manifest_key = _signing_key(config, target, signing_key)
    _two_keys(manifest_key, change_key)
    signer = KmsSigner(target.client("kms"), manifest_key)
    dump_url = backup_database_url or (_database_url(config, target, None) if config else url)
    s3 = target.client("s3")

    def in_this_process(reason: str) -> None:
        # A dump that could not have its locks (a DDL queued behind the counts: db_lib.LOCK_WAIT_SECONDS) is
        # taken again once the DDL went through; a third failure stops the capture, loudly.
        import psycopg

        for attempt in range(3):
            try:
                manifest = db_lib.run_backup(s3, bucket, dump_url, reason=reason, signer=signer,
                                             tiers=_tiers(config), pg_bin=pg_bin)
                break
            except (db_lib.BackupError, psycopg.errors.LockNotAvailable) as err:
                if attempt == 2 or "lock" not in str(err):
                    raise
                click.echo(f"fresh dump after the base reset ({reason}) failed on a lock, taken again: {err}")
                time.sleep(1)
        click.echo(f"fresh dump {manifest.backup_id} after the base reset ({reason})")

    return in_this_process


@aws_command(group, "stream", "Continuously capture every committed change into signed segments beside the dumps "
                             "(long-running; exits non-zero when it cannot go on). --setup: create the publication "
                             "and the slot, once."
                              "\n\n\b\nExamples:"
                              "\n  tavari-dr db stream --env prod --setup"
                              "\n  tavari-dr db stream --env prod", env_required=False)
@click.option("--setup", "do_setup", is_flag=True, help="Create (idempotently) the publication, the slot and what "
                                                      "the role needs; print what was done and found; then exit.")
@click.option("--database-url", envvar="TAVARI_STREAM_DATABASE_URL",
              help="Instead of the STREAM_DATABASE_URL secret (env TAVARI_STREAM_DATABASE_URL; the ECS task's way).")
@click.option("--dump-task", "dump_task_json", envvar="TAVARI_DUMP_TASK", metavar="JSON",
              help="A base reset's fresh dump is taken by the nightly backup job: ECS runs its task with the reason "
                   "overridden ({cluster, task_definition, container, subnets, security_groups}; the stack's way). "
                   "Or --dump-in-process.")
@click.option("--dump-in-process", is_flag=True,
              help="Instead: take a base reset's fresh dump here, with this process's credentials (pg_dump, the "
                   "manifest signing key): local runs and the drill, never the deployed service.")
@click.option("--backup-database-url", envvar="TAVARI_DATABASE_URL",
              help="With --dump-in-process: where the fresh dump is taken from (default: BACKUP_DATABASE_URL with "
                   "--env, else the stream's URL).")
@click.option("--segment-seconds", type=click.FloatRange(min=0.1), default=None,
              help="Close a segment this often (default: changes.segment_seconds).")
@bucket_option
@change_signing_key_option
@signing_key_option
@pg_bin_option
@click.option("--publish-metrics", is_flag=True, help="Publish lag, retained WAL, segments and base resets, and "
                                                      "JobFailed on a fatal error, to CloudWatch.")
@backup_errors
def stream(config, target, do_setup, database_url, dump_task_json, dump_in_process, backup_database_url,
           segment_seconds, bucket, change_signing_key, signing_key, pg_bin, publish_metrics):
    changes = config.changes if config else None
    publication = changes.publication if changes else "tavari_backup"
    slot = changes.slot if changes else "tavari_backup"
    url = _stream_url(config, target, database_url)
    if do_setup:
        try:
            for said in capture_lib.setup(url, publication, slot):
                click.echo(said)
        except capture_lib.CaptureError as err:
            raise Failed(str(err)) from None
        return
    bucket = _backup_bucket(config, target, bucket)
    # The capture signs change records only, with their own key (never the manifests': issue 27).
    key = _change_signing_key(config, target, change_signing_key)
    kms = target.client("kms")
    signer, verifier = KmsSigner(kms, key), change_verifier(kms, key)
    emit = metrics.cloudwatch_emitter(target.client("cloudwatch")) if publish_metrics else None
    s3 = target.client("s3")
    fresh_dump = _fresh_dump(config, target, url, bucket, key, dump_task_json=dump_task_json,
                             in_process=dump_in_process, backup_database_url=backup_database_url,
                             signing_key=signing_key, pg_bin=pg_bin)

    settings = capture_lib.Settings(
        publication=publication, slot=slot,
        segment_seconds=segment_seconds or (changes.segment_seconds if changes else 60),
        segment_max_bytes=changes.segment_max_bytes if changes else 64 * 1024 * 1024,
        retained_wal_limit_bytes=changes.retained_wal_limit_bytes if changes else 4 * 1024 ** 3)
    capture = capture_lib.Capture(url, s3, bucket, signer, verifier, settings, fresh_dump=fresh_dump, emit=emit,
                                  say=lambda message: click.echo(message))
    stopping: list[int] = []

    def stop_on(signum: int, _frame: Any) -> None:
        stopping.append(signum)

    import signal
    import threading

    if threading.current_thread() is threading.main_thread():  # signal handlers may only be set there
        for signum in (signal.SIGTERM, signal.SIGINT):  # ECS stops a task with SIGTERM: close the open segment
            signal.signal(signum, stop_on)
    try:
        capture.run(stop=lambda: bool(stopping))
    except (capture_lib.CaptureError, replay_lib.SegmentError, db_lib.BackupError, dump_task.DumpTaskError) as err:
        if emit:
            metrics.publish_outcome(metrics.DB_STREAM, succeeded=False, emit=emit)
        raise Failed(f"the change capture stopped: {err}") from None
    except Exception as err:  # any other failure is as fatal: counted, then one line and non-zero for ECS
        if emit:
            metrics.publish_outcome(metrics.DB_STREAM, succeeded=False, emit=emit)
        raise Failed(f"the change capture stopped: {type(err).__name__}: {str(err).strip()}") from None
    click.echo(f"stopped: {capture.segments_written} segment(s) written, the slot confirmed to "
               f"{capture_lib.lsn_text(capture.confirmed)}")
