"""`tavari-dr`: the operator CLI. Exit codes: 0 ok, 1 a check or operation failed, 2 usage error.

Every command takes --env (config from cdk.json through tavari_dr.core.config, the loader app.py
uses) and finds deployed resources through the stacks' CloudFormation outputs; each
resource can also be named explicitly. --region, --dr-region and --endpoint-url are
honoured everywhere (an emulator such as moto server, or real AWS).
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from botocore.exceptions import BotoCoreError, ClientError

from tavari_dr.bucket import restore as restore_lib
from tavari_dr.configbackup import secrets as secrets_lib
from tavari_dr.core import metrics, outputs, reports, s3sink
from tavari_dr.core.aws import AwsTarget, DiscoveryError, count_requests_of_this_process, stack_outputs
from tavari_dr.core.config import DEFAULT_DATASETS, ConfigError, EnvironmentConfig, load_from_file
from tavari_dr.core.envfile import EnvFileError, dump, parse
from tavari_dr.database import backup as db_lib
from tavari_dr.verification import jobs as verification


class Failed(click.ClickException):
    """The operation ran and failed (exit 1), as opposed to a usage error (exit 2)."""

    exit_code = 1


def _reports_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """One readable line instead of a traceback, with the right exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (ConfigError, EnvFileError) as err:
            raise click.UsageError(str(err)) from None
        except DiscoveryError as err:
            raise Failed(str(err)) from None
        except ClientError as err:
            error = err.response.get("Error", {})
            raise Failed(f"AWS refused {err.operation_name}: {error.get('Code')}: {error.get('Message')}") from None
        except BotoCoreError as err:
            raise Failed(f"AWS call failed: {err}") from None

    return wrapper


def aws_command(group: click.Group, name: str, help_text: str, *,
                env_required: bool = True) -> Callable[[Callable[..., Any]], click.Command]:
    """A subcommand with the options every command shares, called as ``func(config, target, ...)``;
    with ``env_required=False`` config is None when --env is not given."""

    def decorate(func: Callable[..., Any]) -> click.Command:
        @functools.wraps(func)
        def with_config(env_name: str, cdk_json: Path, region: str | None, dr_region: str | None,
                        endpoint_url: str | None, **kwargs: Any) -> Any:
            return func(*load(env_name, cdk_json, region, dr_region, endpoint_url), **kwargs)

        command = _reports_errors(with_config)
        for option in reversed([
            click.option("--env", "env_name", required=env_required,
                         help="Environment in cdk.json (e.g. dev, prod)."),
            click.option("--cdk-json", type=click.Path(dir_okay=False, path_type=Path), default=Path("cdk.json"),
                         show_default=True, help="The project's cdk.json."),
            click.option("--region", help="Primary region (default: the environment's)."),
            click.option("--dr-region", help="DR region (default: the environment's replication region)."),
            click.option("--endpoint-url", envvar="TAVARI_DR_ENDPOINT_URL",
                         help="AWS endpoint, e.g. a local emulator (env TAVARI_DR_ENDPOINT_URL)."),
        ]):
            command = option(command)
        return group.command(name, help=help_text)(command)

    return decorate


def load(env_name: str | None, cdk_json: Path, region: str | None, dr_region: str | None,
         endpoint_url: str | None) -> tuple[EnvironmentConfig | None, AwsTarget]:
    if env_name is None:
        return None, AwsTarget(region=region, dr_region=dr_region, endpoint_url=endpoint_url)
    config = load_from_file(env_name, cdk_json)
    target = AwsTarget(region=region or config.region, dr_region=dr_region or config.replication.region,
                       endpoint_url=endpoint_url)
    return config, target


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Tavari backup and disaster-recovery operator tool."""


@main.group("secrets")
def secrets_group() -> None:
    """Configuration backups in Secrets Manager: push, pull, check."""


def _secret_arns(config: EnvironmentConfig, target: AwsTarget, explicit: tuple[str, ...]) -> dict[str, str]:
    declared = {e.name for e in config.secrets.all_entries}
    given: dict[str, str] = {}
    for item in explicit:
        name, sep, arn = item.partition("=")
        if not sep or not arn:
            raise click.UsageError(f"--secret-arn {item!r}: use NAME=ARN")
        if name not in declared:
            raise click.UsageError(f"--secret-arn {name}: not a declared entry of {config.name}")
        given[name] = arn
    if len(given) == len(declared):
        return given
    found = stack_outputs(target.client("cloudformation"), config.stack_name(outputs.SECRETS))
    arns = {}
    for entry in config.secrets.all_entries:
        arn = given.get(entry.name) or found.get(outputs.secret_output_key(entry.name))
        if arn is None:
            raise DiscoveryError(
                f"{config.stack_name(outputs.SECRETS)} has no output {outputs.secret_output_key(entry.name)}; "
                f"deploy the current app, or pass --secret-arn {entry.name}=ARN"
            )
        arns[entry.name] = arn
    return arns


def _states(config: EnvironmentConfig, target: AwsTarget, explicit: tuple[str, ...], from_replica: bool = False):
    arns = _secret_arns(config, target, explicit)
    if from_replica:
        if not target.dr_region:
            raise click.UsageError(f"--from-replica: {config.name} has no DR region; pass --dr-region")
        # A replica keeps the primary's name; only the region in its ARN differs.
        arns = {name: secrets_lib.replica_arn(arn, target.dr_region) for name, arn in arns.items()}
    client = target.client("secretsmanager", dr=from_replica)
    return client, secrets_lib.read_states(client, config.secrets.all_entries, arns)


from_replica_option = click.option(
    "--from-replica", is_flag=True,
    help="Read the replicas in the DR region (the primary region is down); ARNs as given or discovered.")


secret_arn_option = click.option(
    "--secret-arn", "secret_arns", multiple=True, metavar="NAME=ARN",
    help="Use this secret for an entry instead of the stack output (repeatable).")


@aws_command(secrets_group, "push", "Map an env file onto the declared entries; write only with --apply.")
@click.option("--env-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.option("--apply", is_flag=True, help="Write the added and changed values (default: show the diff only).")
@click.option("--skip-unknown", is_flag=True, help="Ignore keys that are not declared entries.")
@secret_arn_option
def push(config, target, env_file, apply, skip_unknown, secret_arns):
    values = parse(env_file.read_text(), str(env_file))
    client, states = _states(config, target, secret_arns)
    plan = secrets_lib.plan_push(values, states)
    for label, names in (("added", plan.added), ("changed", plan.changed), ("unchanged", plan.unchanged),
                         ("unknown", plan.unknown), ("not in file", plan.not_in_file)):
        for name in names:
            click.echo(f"  {label:<11} {name}")
    click.echo(f"{len(plan.added)} added, {len(plan.changed)} changed, {len(plan.unchanged)} unchanged, "
               f"{len(plan.unknown)} unknown, {len(plan.not_in_file)} not in file")
    if plan.unknown and not skip_unknown:
        raise Failed(f"{len(plan.unknown)} key(s) in {env_file} are not declared entries of {config.name}: "
                     f"{', '.join(plan.unknown)}; declare them in cdk.json or pass --skip-unknown")
    if not apply:
        click.echo("dry run: nothing written (pass --apply to write)")
        return
    secrets_lib.apply_push(client, plan, values, states)
    click.echo(f"wrote {len(plan.writes)} secret(s)")


@aws_command(secrets_group, "pull", "Rebuild an env file (mode 0600) from the secrets.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@secret_arn_option
@from_replica_option
def pull(config, target, out, force, secret_arns, from_replica):
    if out.exists() and not force:
        raise click.UsageError(f"{out} exists; pass --force to overwrite it")
    _, states = _states(config, target, secret_arns, from_replica)
    values, missing = secrets_lib.pulled_values(states)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | (0 if force else os.O_EXCL)
    fd = os.open(out, flags, 0o600)
    os.fchmod(fd, 0o600)  # an overwritten file keeps no looser mode
    with os.fdopen(fd, "w") as handle:
        handle.write(dump(values))
    click.echo(f"wrote {len(values)} value(s) to {out} (mode 0600)")
    if missing:
        raise Failed(f"required entries without a value: {', '.join(missing)}")


@aws_command(secrets_group, "check", "Every required entry exists, is not a placeholder, and is fresh enough.")
@click.option("--max-age-days", type=click.IntRange(min=1), help="Fail entries not changed within N days.")
@secret_arn_option
@from_replica_option
def check(config, target, max_age_days, secret_arns, from_replica):
    _, states = _states(config, target, secret_arns, from_replica)
    rows = secrets_lib.check(states, max_age_days=max_age_days)
    width = max(len(r.name) for r in rows)
    click.echo(f"{'ENTRY':<{width}}  REQUIRED  STATUS            LAST CHANGED")
    for r in rows:
        changed = r.last_changed.strftime("%Y-%m-%d %H:%M UTC") if r.last_changed else "-"
        click.echo(f"{r.name:<{width}}  {'yes' if r.required else 'no':<8}  {r.status:<16}  {changed}")
    failed = [r.name for r in rows if r.failed]
    if failed:
        raise Failed(f"{len(failed)} entr{'y' if len(failed) == 1 else 'ies'} failed: {', '.join(failed)}")
    click.echo(f"all {len(rows)} entries ok")


@main.group("bucket")
def bucket_group() -> None:
    """The invoice bucket: point-in-time restore."""


def _format_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _invoice_bucket(config: EnvironmentConfig | None, target: AwsTarget, bucket: str | None) -> str:
    if bucket:
        return bucket
    if config is None:
        raise click.UsageError("name the bucket: --env ENV (stack output) or --bucket NAME")
    found = stack_outputs(target.client("cloudformation"), config.stack_name(outputs.INVOICE_STORAGE))
    if outputs.INVOICE_BUCKET_NAME not in found:
        raise DiscoveryError(f"{config.stack_name(outputs.INVOICE_STORAGE)} has no output "
                             f"{outputs.INVOICE_BUCKET_NAME}; deploy the current app or pass --bucket")
    return found[outputs.INVOICE_BUCKET_NAME]


@aws_command(bucket_group, "restore", "Bring a versioned bucket back to how it was at --to (dry run unless --apply).",
             env_required=False)
@click.option("--bucket", help="The bucket (default: the environment's invoice bucket).")
@click.option("--to", "to_text", metavar="TIME", help="ISO 8601 with a zone, e.g. 2026-11-20T14:00:00Z.")
@click.option("--prefix", default="", help="Only keys under this prefix.")
@click.option("--target-bucket", help="Write the state at --to into this (versioned) bucket instead.")
@click.option("--plan-out", type=click.Path(dir_okay=False, path_type=Path), help="Write the whole plan (JSON).")
@click.option("--plan-in", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Apply a saved plan instead of planning again.")
@click.option("--apply", is_flag=True, help="Write the new versions and delete markers (default: dry run).")
@click.option("--concurrency", type=click.IntRange(1, 256), default=16, show_default=True)
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=Path(".tavari-restore"),
              show_default=True, help="Where the journal (resume) and the per-key report go.")
@click.option("--batch-operations", is_flag=True,
              help="Create S3 Batch Operations jobs instead of copying from this machine (needs --env).")
@click.option("--confirm", is_flag=True, help="With --batch-operations: start the jobs without a confirmation step.")
def bucket_restore(config, target, bucket, to_text, prefix, target_bucket, plan_out, plan_in, apply, concurrency,
                   state_dir, batch_operations, confirm):
    client = target.client("s3")
    if plan_in:
        plan = restore_lib.Plan.from_json(plan_in.read_text())
    else:
        if not to_text:
            raise click.UsageError("--to is required (or --plan-in a saved plan)")
        try:
            to = restore_lib.parse_time(to_text)
            plan = restore_lib.plan_restore(client, _invoice_bucket(config, target, bucket), to, prefix=prefix,
                                            target_bucket=target_bucket)
        except restore_lib.PlanError as err:
            raise click.UsageError(str(err)) from None
    destination = f"s3://{plan.destination}/{plan.prefix}"
    click.echo(f"restore {destination} to {plan.to} ({plan.keys_in_scope} keys in scope)")
    for action, row in plan.summary().items():
        click.echo(f"  {action:<22} {row['keys']:>8} keys  {_format_bytes(row['bytes']):>12}")
    if plan_out:
        plan_out.write_text(plan.to_json())
        click.echo(f"plan written to {plan_out}")
    if not apply:
        click.echo("dry run: nothing written (pass --apply)")
        return
    if not plan.actions:
        click.echo("nothing to do: the bucket already matches the state at that time")
        return
    if batch_operations:
        _batch_restore(config, target, plan, confirm)
        return
    state_dir.mkdir(parents=True, exist_ok=True)
    stem = state_dir / plan.fingerprint()
    journal = restore_lib.Journal(stem.with_suffix(".journal.jsonl"))
    started = time.monotonic()
    with click.progressbar(length=len(plan.actions), label="restoring", file=sys.stderr, show_eta=True,
                           show_pos=True, item_show_func=lambda rate: rate) as bar:
        def progress(_result):
            rate = (bar.pos + 1) / max(time.monotonic() - started, 1e-6)
            bar.update(1, f"{rate:.1f} keys/s")

        summary = restore_lib.apply_plan(client, plan, journal=journal,
                                         report_path=stem.with_suffix(".report.jsonl"),
                                         concurrency=concurrency, on_result=progress)
    counts = ", ".join(f"{n} {status}" for status, n in sorted(summary.counts.items()))
    click.echo(f"{counts} in {time.monotonic() - started:.1f} s; per-key report: {stem.with_suffix('.report.jsonl')}")
    for result in summary.results:
        if result.status in ("failed", "pending"):
            click.echo(f"  {result.status:<8} {result.key}: {result.detail}")
    if summary.counts.get("pending"):
        click.echo("archived versions are being restored from Glacier; run the same command again when done")
    if not summary.ok:
        raise Failed(f"{summary.counts.get('failed', 0)} failed, {summary.counts.get('pending', 0)} pending; "
                     "re-running resumes from the journal")


def _batch_restore(config: EnvironmentConfig | None, target: AwsTarget, plan: restore_lib.Plan, confirm: bool) -> None:
    from tavari_dr.bucket import batch as batch_restore

    if config is None:
        raise click.UsageError("--batch-operations needs --env: the job role, function and manifest bucket "
                               "are stack outputs")
    found = stack_outputs(target.client("cloudformation"), config.stack_name(outputs.INVOICE_STORAGE))
    if plan.destination != found.get(outputs.INVOICE_BUCKET_NAME):
        raise click.UsageError("--batch-operations restores the invoice bucket in place; its role may write "
                               "nowhere else (use the CLI path for --target-bucket)")
    account = target.client("sts").get_caller_identity()["Account"]
    jobs = batch_restore.create_jobs(
        target.client("s3"), target.client("s3control"), plan, account_id=account,
        role_arn=found[outputs.BATCH_OPERATIONS_ROLE_ARN],
        delete_marker_function_arn=found[outputs.DELETE_MARKER_FUNCTION_ARN],
        manifest_bucket=found[outputs.RESTORE_OPS_BUCKET_NAME], confirm=confirm)
    for label, job in (("copy job", jobs.copy_job_id), ("delete-marker job", jobs.delete_marker_job_id)):
        if job:
            click.echo(f"{label}: {job}")
    for manifest in jobs.manifests:
        click.echo(f"manifest: {manifest}")
    if jobs.confirmation_required:
        click.echo("jobs await confirmation: aws s3control update-job-status --account-id "
                   f"{account} --job-id JOB --requested-job-status Ready")
    if jobs.cli_path:
        click.echo(f"{len(jobs.cli_path)} key(s) are over 5 GB or archived and stay on the CLI path: "
                   "re-run without --batch-operations once the jobs are done")


@main.group("db")
def db_group() -> None:
    """Off-site database backups: backup, list, restore, verify."""


def _backup_bucket(config: EnvironmentConfig | None, target: AwsTarget, bucket: str | None) -> str:
    if bucket:
        return bucket
    if config is None:
        raise click.UsageError("name the backup bucket: --env ENV (stack output) or --bucket NAME")
    stack = config.stack_name(outputs.DATABASE_BACKUPS)
    found = stack_outputs(target.client("cloudformation"), stack)
    if outputs.BACKUP_BUCKET_NAME not in found:
        raise DiscoveryError(f"{stack} has no output {outputs.BACKUP_BUCKET_NAME}; deploy it or pass --bucket")
    return found[outputs.BACKUP_BUCKET_NAME]


def _database_url(config: EnvironmentConfig | None, target: AwsTarget, url: str | None) -> str:
    if url:
        return url
    if config is None:
        raise click.UsageError("name the database: --env ENV (secret BACKUP_DATABASE_URL) or --database-url URL")
    arns = _secret_arns(config, target, ())
    value = target.client("secretsmanager").get_secret_value(SecretId=arns["BACKUP_DATABASE_URL"])["SecretString"]
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
pg_bin_option = click.option("--pg-bin", type=click.Path(file_okay=False, path_type=Path),
                             help="Directory of pg_dump/pg_restore (default: PATH).")


@aws_command(db_group, "backup", "Take a backup now, e.g. before a migration.", env_required=False)
@click.option("--reason", required=True, help="Why: 'nightly', 'before migration 0042', ...")
@click.option("--database-url", envvar="TAVARI_DATABASE_URL",
              help="Instead of the BACKUP_DATABASE_URL secret (env TAVARI_DATABASE_URL; the ECS task's way).")
@bucket_option
@pg_bin_option
@click.option("--publish-metrics", is_flag=True, help="Publish size, duration and success to CloudWatch.")
@_db_errors
def db_backup_cmd(config, target, reason, database_url, bucket, pg_bin, publish_metrics):
    url = _database_url(config, target, database_url)
    bucket = _backup_bucket(config, target, bucket)
    settings = config.database_backups if config else None
    tiers = db_lib.DEFAULT_TIERS if settings is None else settings.tiers
    started = time.monotonic()
    cloudwatch = target.client("cloudwatch") if publish_metrics else None
    try:
        manifest = db_lib.run_backup(target.client("s3"), bucket, url, reason=reason, tiers=tiers,
                                     timezone=settings.timezone if settings else "UTC",
                                     lock_mode=settings.lock_mode if settings else "GOVERNANCE", pg_bin=pg_bin)
    except Exception:
        if cloudwatch:
            metrics.put(cloudwatch, {metrics.JOB_FAILED: 1}, {"Job": "db_backup"})
        raise
    duration = time.monotonic() - started
    if cloudwatch:
        metrics.put(cloudwatch, {metrics.BACKUP_SIZE_BYTES: manifest.total_bytes,
                                 metrics.BACKUP_DURATION_SECONDS: duration}, {"Source": "offsite"})
        metrics.put(cloudwatch, {metrics.JOB_SUCCEEDED: 1}, {"Job": "db_backup"})
    click.echo(f"backup {manifest.backup_id} ({manifest.tier}, retained until {manifest.retain_until}, "
               f"{manifest.lock_mode} lock): {_format_bytes(manifest.total_bytes)} in {duration:.1f} s, "
               f"{len(manifest.tables)} tables, {sum(manifest.tables.values())} rows")


@aws_command(db_group, "list", "Backups, newest first: tier, size, complete or not.", env_required=False)
@bucket_option
@_db_errors
def db_list_cmd(config, target, bucket):
    backups = db_lib.list_backups(target.client("s3"), _backup_bucket(config, target, bucket))
    if not backups:
        raise Failed("no backups yet")
    click.echo(f"{'BACKUP':<44} {'TIER':<8} {'SIZE':>10}  STATE")
    for b in backups:
        state = "complete" if b.complete else "INCOMPLETE (no manifest; never used)"
        click.echo(f"{b.backup_id:<44} {b.tier:<8} {_format_bytes(b.bytes):>10}  {state}")


def _print_counts(result: db_lib.VerifyResult) -> None:
    for name, passed, detail in result.checks:
        click.echo(f"  {'ok ' if passed else 'FAIL'} {name}: {detail}")
    if result.table_counts:
        width = max(len(t) for t in result.table_counts)
        click.echo(f"  {'TABLE':<{width}}  {'MANIFEST':>10}  {'RESTORED':>10}")
        for table, (expected, found) in sorted(result.table_counts.items()):
            mark = "" if expected == found else "   <-- MISMATCH"
            click.echo(f"  {table:<{width}}  {expected:>10}  {found if found is not None else '-':>10}{mark}")


@aws_command(db_group, "restore", "Verify, then restore roles, schema and data into --target-url.", env_required=False)
@click.option("--backup", "which", default="latest", show_default=True, help="latest, or a backup ID.")
@click.option("--target-url", required=True, help="The database to restore into (Supabase or plain PostgreSQL).")
@click.option("--force", is_flag=True, help="Replace user tables the target already holds.")
@bucket_option
@pg_bin_option
@_db_errors
def db_restore_cmd(config, target, which, target_url, force, bucket, pg_bin):
    result = db_lib.restore(target.client("s3"), _backup_bucket(config, target, bucket), which, target_url,
                            force=force, pg_bin=pg_bin, log=lambda m: click.echo(f"  {m}"))
    _print_counts(result)
    if not result.ok:
        raise Failed(f"restored {result.backup_id}, but row counts differ from the manifest")
    click.echo(f"restored {result.backup_id} in {result.duration_seconds:.1f} s; every row count matches")


@aws_command(db_group, "verify", "Check a backup: --quick (sha256 + table of contents) or a full restore test.",
             env_required=False)
@click.option("--backup", "which", default="latest", show_default=True)
@click.option("--scratch-url", help="Empty database for the full test (required without --quick).")
@click.option("--quick", is_flag=True)
@bucket_option
@pg_bin_option
@click.option("--publish-metrics", is_flag=True, help="Publish RestoreTestDurationSeconds and CheckPassed/Failed.")
@click.option("--report-bucket", help="Also write the JSON report to reports/<check>/<date>.json in this bucket.")
@_db_errors
def db_verify_cmd(config, target, which, scratch_url, quick, bucket, pg_bin, publish_metrics, report_bucket):
    if not quick and not scratch_url:
        raise click.UsageError("the full verify restores into --scratch-url (or pass --quick)")
    s3 = target.client("s3")
    bucket = _backup_bucket(config, target, bucket)
    check = "db_verify_quick" if quick else "db_restore_test"
    try:
        if quick:
            result = db_lib.verify_quick(s3, bucket, which, pg_bin=pg_bin)
        else:
            result = db_lib.restore(s3, bucket, which, scratch_url, pg_bin=pg_bin,
                                    log=lambda m: click.echo(f"  {m}"))
    except db_lib.BackupError:
        if publish_metrics:  # could not even run: a failed check and a failed job, never silence
            cloudwatch = target.client("cloudwatch")
            metrics.put(cloudwatch, {metrics.CHECK_FAILED: 1}, {"Check": check})
            metrics.put(cloudwatch, {metrics.CHECK_FAILED: 1})
            metrics.put(cloudwatch, {metrics.JOB_FAILED: 1}, {"Job": check})
        raise
    _print_counts(result)
    if report_bucket:
        key = reports.write_report(s3, report_bucket, check, {
            "status": "PASS" if result.ok else "FAIL", "backup_id": result.backup_id,
            "duration_seconds": round(result.duration_seconds, 3),
            "checks": [{"name": n, "passed": p, "detail": d} for n, p, d in result.checks],
            "table_counts": {t: {"manifest": e, "restored": f} for t, (e, f) in result.table_counts.items()}})
        click.echo(f"report: s3://{report_bucket}/{key}")
    if publish_metrics:
        cloudwatch = target.client("cloudwatch")
        metrics.put(cloudwatch, {metrics.CHECK_PASSED if result.ok else metrics.CHECK_FAILED: 1}, {"Check": check})
        metrics.put(cloudwatch, {metrics.CHECK_PASSED if result.ok else metrics.CHECK_FAILED: 1})
        if not quick:
            metrics.put(cloudwatch, {metrics.RESTORE_TEST_DURATION_SECONDS: result.duration_seconds},
                        {"Source": "database"})
        metrics.put(cloudwatch, {metrics.JOB_SUCCEEDED: 1}, {"Job": check})
    if not result.ok:
        raise Failed(f"{result.backup_id}: verification failed")
    click.echo(f"{result.backup_id}: {'quick check' if quick else 'restore test'} passed "
               f"in {result.duration_seconds:.1f} s")


@aws_command(main, "verify", "Run the scheduled verification checks now and print a table; exit 1 if any fails.")
@click.option("--check", "names", multiple=True, type=click.Choice(verification.CHECKS),
              help="Only this check (repeatable; default: all of them).")
@click.option("--invoice-bucket", help="Instead of the InvoiceStorage stack output.")
@click.option("--backup-bucket", help="Instead of the DatabaseBackups stack output.")
@click.option("--reports-bucket", help="Instead of the DatabaseBackups stack output.")
def verify_cmd(config, target, names, invoice_bucket, backup_bucket, reports_bucket):
    cfn = target.client("cloudformation")
    storage = stack_outputs(cfn, config.stack_name(outputs.INVOICE_STORAGE))
    backups = stack_outputs(cfn, config.stack_name(outputs.DATABASE_BACKUPS))
    replica = None
    if config.replication.enabled:
        replica = stack_outputs(target.client("cloudformation", dr=True),
                                config.stack_name(outputs.INVOICE_REPLICA)).get(outputs.REPLICA_BUCKET_NAME)
    arns = _secret_arns(config, target, ())
    targets = verification.Targets(
        invoice_bucket=invoice_bucket or storage[outputs.INVOICE_BUCKET_NAME],
        invoice_key_arn=storage.get(outputs.INVOICE_KEY_ARN),
        archive_after_days=config.invoice_bucket.archive_after_days,
        archive_storage_class=config.invoice_bucket.archive_storage_class,
        backup_bucket=backup_bucket or backups[outputs.BACKUP_BUCKET_NAME],
        reports_bucket=reports_bucket or backups[outputs.REPORTS_BUCKET_NAME],
        scratch_bucket=backups[outputs.RESTORE_TEST_BUCKET_NAME],
        replica_bucket=replica,
        supabase_url_secret=arns["SUPABASE_URL"], supabase_token_secret=arns["SUPABASE_ACCESS_TOKEN"])
    clients = verification.Clients(s3=target.client("s3"), replica_s3=target.client("s3", dr=True),
                                   cloudwatch=target.client("cloudwatch"),
                                   secretsmanager=target.client("secretsmanager"))
    results = verification.run_checks(names or verification.CHECKS, clients=clients, targets=targets,
                                      settings=config.verification, rpo_hours=config.monitoring.rpo_hours,
                                      now=verification.now_utc())
    width = max(len(r.name) for r in results)
    click.echo(f"{'CHECK':<{width}}  STATUS  SECONDS  DETAILS")
    for r in results:
        detail = "; ".join(r.details) or ", ".join(f"{k}={v}" for k, v in r.measured.items())
        click.echo(f"{r.name:<{width}}  {r.status:<6}  {r.duration_seconds:7.2f}  {detail[:200]}")
    failed = [r.name for r in results if not r.ok]
    if failed:
        raise Failed(f"{len(failed)} check(s) did not pass: {', '.join(failed)}")
    click.echo(f"all {len(results)} checks passed")


@main.group("export")
def export_group() -> None:
    """Data exports: one account (GDPR/CCPA ZIP) or whole tables (CSV)."""


@export_group.command("account", help="Export every row of one user's data as a ZIP of JSON Lines.")
@click.option("--user-id", required=True, help="The Supabase auth user ID (a UUID).")
@click.option("--database-url", required=True, envvar="TAVARI_DATABASE_URL")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@click.option("--env", "env_name", help="Take the datasets from this environment's data_export.datasets "
                                        "(default: the built-in Tavari datasets).")
@click.option("--cdk-json", type=click.Path(dir_okay=False, path_type=Path), default=Path("cdk.json"),
              show_default=True)
@_reports_errors
def export_account_cmd(user_id, database_url, out, force, env_name, cdk_json):
    import uuid

    try:
        uuid.UUID(user_id)
    except ValueError:
        raise click.UsageError(f"--user-id {user_id!r} is not a UUID") from None
    if out.exists() and not force:
        raise click.UsageError(f"{out} exists; pass --force to overwrite it")
    from tavari_dr.export import account as export_lib

    datasets = load_from_file(env_name, cdk_json).data_export.datasets if env_name else DEFAULT_DATASETS
    with open(out, "wb") as handle:
        metadata = export_lib.export_account(database_url, user_id, handle, datasets=datasets)
    rows = sum(f.get("rows", 0) for f in metadata["files"].values())
    click.echo(f"wrote {out}: {len(metadata['business_ids'])} business(es), {rows} rows in "
               f"{len(metadata['files'])} files")


@export_group.command("tables", help="COPY tables to CSV (header, one file per table) plus manifest.json.")
@click.option("--tables", default=None, help="Comma-separated schema.table names (default: the Tavari tables).")
@click.option("--database-url", required=True, envvar="TAVARI_DATABASE_URL")
@click.option("--out", required=True, help="A directory, or s3://bucket/prefix.")
@click.option("--region")
@click.option("--endpoint-url", envvar="TAVARI_DR_ENDPOINT_URL")
@_reports_errors
def export_tables_cmd(tables, database_url, out, region, endpoint_url):
    import contextlib

    from tavari_dr.export import account as export_lib

    names = [t.strip() for t in tables.split(",")] if tables else list(export_lib.DEFAULT_TABLES)
    if out.startswith("s3://"):
        bucket, _, prefix = out[5:].partition("/")
        s3 = AwsTarget(region=region, endpoint_url=endpoint_url).client("s3")

        @contextlib.contextmanager
        def write(name):
            sink = s3sink.MultipartSink(s3, bucket, f"{prefix.rstrip('/')}/{name}".lstrip("/"), lock={},
                                        content_type="text/csv")
            try:
                yield sink
            except BaseException:
                sink.abort()
                raise
            sink.close()

        manifest = export_lib.export_tables(database_url, names, write)
        s3.put_object(Bucket=bucket, Key=f"{prefix.rstrip('/')}/manifest.json".lstrip("/"),
                      Body=json.dumps(manifest, indent=1).encode())
    else:
        directory = Path(out)
        directory.mkdir(parents=True, exist_ok=True)
        # export_tables enters (and so closes) each file it is handed.
        manifest = export_lib.export_tables(database_url, names,
                                            lambda name: open(directory / name, "wb"))  # noqa: SIM115
        (directory / "manifest.json").write_text(json.dumps(manifest, indent=1))
    for table, info in manifest["tables"].items():
        click.echo(f"  {table:<28} {info['rows']:>10} rows  {info['file']}")


@main.command("drill", help="Disaster-recovery drill: --local plays the plan's three scenarios on this machine "
                             "(emulated AWS, throwaway PostgreSQL) and writes a report; exit 1 on any missed "
                             "objective or failed verification.")
@click.option("--local", is_flag=True, help="Run locally (the quarterly drill in AWS is the DrDrill state machine).")
@click.option("--env", "env_name", default="prod", show_default=True, help="Environment in cdk.json.")
@click.option("--cdk-json", type=click.Path(dir_okay=False, path_type=Path), default=Path("cdk.json"),
              show_default=True)
@click.option("--cdk-out", type=click.Path(file_okay=False, path_type=Path),
              help="Synthesized app (default: cdk.out/<env>, as `make synth` writes it).")
@click.option("--report-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("drill-report"),
              show_default=True)
@click.option("--businesses", type=click.IntRange(1), default=12, show_default=True, help="Toy data: businesses.")
@click.option("--messages", type=click.IntRange(1), default=4000, show_default=True, help="Messages per business.")
@click.option("--inject-fault", type=click.Choice(["corrupt-backup"]),
              help="Break something on purpose; the drill must then fail at the right step.")
@click.option("--operator", help="Who ran the drill, for the report (default: the OS user).")
@_reports_errors
def drill_cmd(local, env_name, cdk_json, cdk_out, report_dir, businesses, messages, inject_fault, operator):
    from tavari_dr.drill.runner import LocalDrill, Sizes

    if not local:
        raise click.UsageError("only --local runs here; in AWS the quarterly drill is the DrDrill state machine "
                               "(see docs/runbooks/quarterly-drill.md)")
    config = load_from_file(env_name, cdk_json)
    cdk_out = cdk_out or Path("cdk.out") / env_name
    if not (cdk_out / "manifest.json").is_file():
        raise click.UsageError(f"{cdk_out}/manifest.json not found: synthesize first (make synth)")
    report = LocalDrill(config, cdk_out, report_dir, sizes=Sizes(businesses=businesses, messages=messages),
                        fault=inject_fault, progress=click.echo, cdk_json=cdk_json, operator=operator).run()
    click.echo("")
    for name, data in report["scenarios"].items():
        c, n = data["rto_critical"], data["rto_non-critical"]
        click.echo(f"{name}: projected RTO critical {c['projected_seconds'] / 60:.1f} min (objective "
                   f"{c['objective_seconds'] / 60:.0f} min), all services {n['projected_seconds'] / 60:.1f} min "
                   f"(objective {n['objective_seconds'] / 60:.0f} min); {n['measured_seconds']:.1f} s wall time here")
    worst = report["rpo_worst_case"]
    click.echo(f"RPO worst case the configuration allows: {worst['worst_case_seconds'] / 3600:.1f} h (objective "
               f"{worst['objective_seconds'] / 3600:.0f} h)")
    click.echo(f"report (emulated): {report_dir / 'drill-report.md'} and {report_dir / 'drill-report.json'}, "
               f"sealed by {report_dir / 'SHA256SUMS'}")
    if not report["passed"]:
        raise Failed("drill FAILED: " + "; ".join(report["failures"] or ["an objective was missed"]))
    click.echo("drill passed")


def run() -> None:
    count_requests_of_this_process()
    main(prog_name="tavari-dr")


if __name__ == "__main__":
    sys.exit(run())
