"""`tavari-dr bucket restore`: point-in-time restore of the invoice bucket (tavari_dr.bucket)."""

from __future__ import annotations

import io
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from tavari_dr.bucket import restore as restore_lib
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
from tavari_dr.core import observability, outputs
from tavari_dr.core.audit import AuditRecord
from tavari_dr.core.aws import AwsTarget
from tavari_dr.core.config import DEFAULT_INVOICE_KEY_PREFIX, EnvironmentConfig
from tavari_dr.database import erasure

log = logging.getLogger("tavari.bucket")
LARGE_PLAN = 100_000  # actions beyond which one machine's copies take hours (docs/operate/restore-invoices.md)


@click.group("bucket")
def group() -> None:
    """The invoice bucket: point-in-time restore, and the restore's Batch Operations jobs."""


def _user_state_dir() -> Path:
    """The user's state directory (XDG Base Directory spec), never the working directory: the journals
    were written to .tavari-restore/ inside whatever checkout the command ran from, untracked files in
    the repository."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "tavari-dr" / "bucket-restore"


@aws_command(group, "restore", "Bring a versioned bucket back to how it was at --to (dry run unless --apply)."
                               "\n\n\b\nExamples:"
                               "\n  tavari-dr bucket restore --env prod --to "
                               "2026-11-20T14:00:00Z --plan-out plan.json"
                               "\n  tavari-dr bucket restore --env prod --plan-in plan.json "
                               "--apply",
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
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=lambda: _user_state_dir(),
              show_default="$XDG_STATE_HOME/tavari-dr/bucket-restore, else ~/.local/state/...",
              help="Where the journal (resume) and the per-key report go.")
@click.option("--batch-operations", is_flag=True,
              help="Create S3 Batch Operations jobs instead of copying from this machine (needs --env).")
@click.option("--confirm", is_flag=True, help="With --batch-operations: start the jobs without a confirmation step.")
@click.option("--backup-bucket", help="Where the erasure ledger is (default with --env: the environment's backup "
                                     "bucket); an erased account's objects are never brought back.")
@click.option("--no-tags", is_flag=True,
              help="Leave object tags as they are; keys whose tags differ from the version at --to are reported.")
@click.option("--from-inventory", is_flag=True,
              help="Plan from the newest S3 Inventory report and the change feed instead of listing every version "
                   "(needs --env; in place only).")
@click.option("--engine", type=click.Choice(["duckdb", "athena"]), default="duckdb", show_default=True,
              help="With --from-inventory: run the query here (DuckDB, offline) or in the environment's Athena "
                   "workgroup.")
@click.option("--memory-limit", default="3GB", show_default=True,
              help="With --from-inventory --engine duckdb: DuckDB's memory limit (it spills to disk beyond it).")
@report_bucket_option
@format_option
def restore(config, target, bucket, to_text, prefix, target_bucket, plan_out, plan_in, apply, concurrency,
            state_dir, batch_operations, confirm, no_tags, backup_bucket, from_inventory, engine, memory_limit,
            report_bucket, output_format):
    client = target.client("s3")
    ledger, erased_prefixes = _erased_prefixes(config, target, backup_bucket)
    if from_inventory and (plan_in or target_bucket):
        raise click.UsageError("--from-inventory plans an in-place restore: not with --plan-in or --target-bucket")
    if from_inventory:
        if not to_text:
            raise click.UsageError("--to is required")
        if config is None:
            raise click.UsageError("--from-inventory needs --env: the inventory, the feed and Athena are stack outputs")
        try:
            to = restore_lib.parse_time(to_text)
            source = Deployed(config, target).resource(bucket, outputs.INVOICE_STORAGE, outputs.INVOICE_BUCKET_NAME,
                                                       what="bucket", option="--bucket")

            plan, feed = _plan_from_inventory(config, target, source, to, prefix, not no_tags, engine, memory_limit,
                                              erased_prefixes=erased_prefixes)
        except restore_lib.PlanError as err:
            raise click.UsageError(str(err)) from None
    elif plan_in:
        try:
            plan = restore_lib.Plan.from_json(plan_in.read_text())
        except restore_lib.PlanError as err:
            raise click.UsageError(f"--plan-in {plan_in}: {err}") from None
        plan.leave_out_erased(erased_prefixes)  # the ledger now, not as it was when the plan was saved
    else:
        if not to_text:
            raise click.UsageError("--to is required (or --plan-in a saved plan)")
        try:
            to = restore_lib.parse_time(to_text)
            source = Deployed(config, target).resource(bucket, outputs.INVOICE_STORAGE, outputs.INVOICE_BUCKET_NAME,
                                                       what="bucket", option="--bucket")
            plan = restore_lib.plan_restore(client, source, to, prefix=prefix, target_bucket=target_bucket,
                                            tags=not no_tags, erased_prefixes=erased_prefixes)
        except restore_lib.PlanError as err:
            raise click.UsageError(str(err)) from None
    as_json = output_format == "json"
    say: Callable[[str], None] = (lambda _line: None) if as_json else click.echo
    # The dry run's answer, and with --apply the result beside it (--format json prints it whole).
    outcome: dict[str, Any] = {"bucket": plan.bucket, "destination": plan.destination, "prefix": plan.prefix,
                               "to": plan.to, "keys_in_scope": plan.keys_in_scope, "summary": plan.summary(),
                               "plan_out": str(plan_out) if plan_out else None, "applied": False}
    destination = f"s3://{plan.destination}/{plan.prefix}"
    say(f"restore {destination} to {plan.to} ({plan.keys_in_scope} keys in scope)")
    if from_inventory:
        outcome["planned_from"] = feed
        say(f"planned from the inventory of {feed['inventory_created']} and the change feed up to "
            f"{feed['feed_last_record']}: writes after that are not in this plan (the apply checks each key it "
            "writes against S3)")
        if len(plan.actions) > LARGE_PLAN and not batch_operations:
            say(f"{len(plan.actions)} actions: consider --batch-operations (S3 Batch Operations copies inside S3; "
                "its manifest lists each version ID)")
    for action, row in plan.summary().items():
        say(f"  {action:<22} {row['keys']:>8} keys  {format_bytes(row['bytes']):>12}")
    if plan_out:
        plan_out.write_text(plan.to_json())
        say(f"plan written to {plan_out}")
    outcome["erased"] = {"ledger": ledger, "prefixes": len(erased_prefixes), "left_out": len(plan.erased),
                         "keys": plan.erased}
    say(f"erasure ledger {ledger}: {len(erased_prefixes)} erased key prefix(es); {len(plan.erased)} key(s) of erased "
        "accounts left out (never brought back)")
    for entry in plan.ambiguous:
        say(f"  ambiguous {entry['key']}: {entry['reason']}; left alone")
    for entry in plan.contradicted:
        say(f"  contradicted {entry['key']}: {entry['reason']}; left alone")
    for key in plan.tags_not_restored:
        say(f"  tags differ {key}: its tags are not those of the version at T (not restored: --no-tags)")
    if not plan.target_bucket and plan.unchanged:
        say(f"note: {plan.unchanged} keys still have their version at T; S3 keeps no history of a version's "
            "tags, so a tag change made on that version after T cannot be seen or restored")
    outcome["ambiguous"] = plan.ambiguous
    outcome["tags_not_restored"] = plan.tags_not_restored
    outcome["contradicted"] = plan.contradicted
    try:
        if not apply:
            say("dry run: nothing written (pass --apply)")
            _refuse_ambiguous(plan)
        elif not plan.actions:
            outcome.update(applied=True, result={"counts": {}, "seconds": 0.0, "report": None, "problems": []})
            if plan.ambiguous:
                say("nothing to do for the keys whose state at that time is known")
            else:
                say("nothing to do: the bucket already matches the state at that time")
            _refuse_ambiguous(plan)
        else:
            if batch_operations and config is None:
                raise click.UsageError("--batch-operations needs --env: the job role, function and manifest bucket "
                                       "are stack outputs")
            record = AuditRecord("bucket_batch_restore" if batch_operations else "bucket_restore", caller="",
                                 source={"bucket": plan.bucket, "to": plan.to, "prefix": plan.prefix},
                                 target={"bucket": plan.destination, "prefix": plan.prefix},
                                 details={"plan": plan.fingerprint(), "actions": len(plan.actions),
                                          "summary": plan.summary()})
            with audited(config, target, report_bucket, record, say=say) as audit:
                outcome["audit_record"] = audit
                if batch_operations:
                    jobs = _batch_restore(config, target, plan, confirm, say)
                    outcome.update(applied=True, batch_operations=jobs)
                    record.details["jobs"] = jobs
                    _refuse_ambiguous(plan)
                    audit["outcome"] = "batch jobs created" + (" (awaiting confirmation)"
                                                               if jobs["confirmation_required"] else "")
                else:
                    result = _apply(client, plan, state_dir, concurrency, say, progress_bar=not as_json)
                    outcome.update(applied=True, result=result)
                    record.details["counts"] = result["counts"]
                    _refuse_ambiguous(plan)
                    audit["outcome"] = "restored"
    finally:
        if as_json:
            echo_json(outcome)


def _erased_prefixes(config: EnvironmentConfig | None, target: AwsTarget, backup_bucket: str | None
                     ) -> tuple[str, list[str]]:
    """The erasure ledger's location and every erased account's invoice key prefixes (the account map's
    data_export.invoice_key_prefix). No ledger, no restore: without it an erased account's PDFs could
    come back, so a bucket restore names it (--env or --backup-bucket) or refuses."""
    if backup_bucket is None and config is None:
        raise click.UsageError("name the backup bucket that holds the erasure ledger: --env ENV or --backup-bucket "
                               "NAME (an erased account's objects must not come back)")
    bucket = Deployed(config, target).resource(backup_bucket, outputs.DATABASE_BACKUPS, outputs.BACKUP_BUCKET_NAME,
                                               what="backup bucket (the erasure ledger)", option="--backup-bucket")
    template = config.data_export.invoice_key_prefix if config else DEFAULT_INVOICE_KEY_PREFIX
    try:
        prefixes = erasure.invoice_prefixes(erasure.read_ledger(target.client("s3"), bucket), template)
    except erasure.ErasureError as err:
        raise Failed(f"refused before writing anything: {err}") from None
    return f"s3://{bucket}/{erasure.PREFIX}", prefixes


def _refuse_ambiguous(plan: restore_lib.Plan) -> None:
    if plan.contradicted:
        keys = ", ".join(c["key"] for c in plan.contradicted[:10]) + (" ..." if len(plan.contradicted) > 10 else "")
        raise Failed(f"{len(plan.contradicted)} key(s) where the inventory or change feed contradicts S3 ({keys}): "
                     "left alone (see above); check the feed for forged or missing records, then restore them by "
                     "hand or plan from the listing (without --from-inventory)")
    if plan.ambiguous:
        raise Failed(f"{len(plan.ambiguous)} key(s) ambiguous: the listing cannot say which entry was current, so "
                     "they were left alone (see above); restore them by hand from their versions")


def _apply(client: Any, plan: restore_lib.Plan, state_dir: Path, concurrency: int,
           say: Callable[[str], None], *, progress_bar: bool = True) -> dict[str, Any]:
    state_dir.mkdir(parents=True, exist_ok=True)
    stem = state_dir / plan.fingerprint()
    observability.correlate(job="bucket_restore", restore_id=plan.fingerprint())  # the journal's name too
    journal = restore_lib.Journal(stem.with_suffix(".journal.jsonl"))
    started = time.monotonic()
    # A program reading --format json gets one document and nothing else, on any stream (click's CliRunner
    # mixes stderr into result.output, the output a caller reads).
    with click.progressbar(length=len(plan.actions), label="restoring", file=sys.stderr if progress_bar
                           else io.StringIO(), show_eta=True, show_pos=True, item_show_func=lambda rate: rate) as bar:
        def progress(_result):
            rate = (bar.pos + 1) / max(time.monotonic() - started, 1e-6)
            bar.update(1, f"{rate:.1f} keys/s")

        try:
            summary = restore_lib.apply_plan(client, plan, journal=journal,
                                             report_path=stem.with_suffix(".report.jsonl"),
                                             concurrency=concurrency, on_result=progress)
        except restore_lib.NotVersioned as err:
            raise Failed(f"refused before writing anything: {err}") from None
    seconds = time.monotonic() - started
    log.info("restore_applied", extra={"counts": dict(summary.counts), "seconds": round(seconds, 3)})
    counts = ", ".join(f"{n} {status}" for status, n in sorted(summary.counts.items()))
    say(f"{counts} in {seconds:.1f} s; per-key report: {stem.with_suffix('.report.jsonl')}")
    problems = [r for r in summary.results if r.status in ("failed", "pending", "changed")]
    for result in problems:
        say(f"  {result.status:<8} {result.key}: {result.detail}")
    if summary.counts.get("pending"):
        say("archived versions are being restored from Glacier; run the same command again when done")
    if summary.counts.get("changed"):
        say(f"{summary.counts['changed']} key(s) changed during restore (something else wrote them): the bucket "
            f"is not the state at {plan.to}; stop the writers, then plan again and apply the new plan")
    answer = {"counts": dict(summary.counts), "seconds": round(seconds, 3),
              "report": str(stem.with_suffix(".report.jsonl")),
              "problems": [{"key": r.key, "status": r.status, "detail": r.detail} for r in problems]}
    if not summary.ok:
        raise Failed(f"{summary.counts.get('failed', 0)} failed, {summary.counts.get('pending', 0)} pending, "
                     f"{summary.counts.get('changed', 0)} changed during restore; re-running resumes from the "
                     "journal (changed keys need a new plan)")
    return answer


def _plan_from_inventory(config: EnvironmentConfig, target: AwsTarget, source: str, to, prefix: str, tags: bool,
                         engine: str, memory_limit: str, *, written: dict[str, str] | None = None,
                         erased_prefixes: list[str]
                         ) -> tuple[restore_lib.Plan, dict[str, Any]]:
    """Fetch the newest inventory report and the feed (DuckDB) or name them to Athena, and plan."""
    from tavari_dr.bucket import inventory_plan

    deployed = Deployed(config, target)

    def output(key: str) -> str:
        return deployed.resource(None, outputs.INVOICE_STORAGE, key, what="inventory",
                                 hint="deploy the current app (inventory.enabled) or plan without --from-inventory")

    s3 = target.client("s3")
    ops = output(outputs.RESTORE_OPS_BUCKET_NAME)
    snapshot = inventory_plan.newest_snapshot(s3, ops, output(outputs.INVENTORY_PREFIX), source)
    files = inventory_plan.feed_files(s3, ops, output(outputs.FEED_PREFIX))
    options = {"prefix": prefix, "tags": tags, "feed_first_day": files.first_day,
               "feed_retention_days": config.inventory.feed_retention_days, "written": written,
               "erased_prefixes": erased_prefixes}
    if engine == "athena":
        runner = inventory_plan.AthenaEngine(target.client("athena"), output(outputs.INVENTORY_WORKGROUP),
                                             output(outputs.INVENTORY_DATABASE), snapshot.dt)
        plan, feed = inventory_plan.plan_from_inventory(s3, runner, source, to, **options)
    else:
        with inventory_plan.temporary_workdir() as work:
            local = inventory_plan.local_engine(s3, ops, snapshot, files, Path(work), memory_limit=memory_limit)
            plan, feed = inventory_plan.plan_from_inventory(s3, local, source, to, **options)
    return plan, {"inventory": snapshot.manifest_key, "inventory_created": snapshot.created.isoformat(),
                  "feed_records": feed.records,
                  "feed_last_record": feed.last_record.isoformat() if feed.last_record else None, "engine": engine}


def _batch_restore(config: EnvironmentConfig | None, target: AwsTarget, plan: restore_lib.Plan, confirm: bool,
                   say: Callable[[str], None]) -> dict[str, Any]:
    from tavari_dr.bucket import batch

    assert config is not None  # refused earlier, before anything is recorded
    deployed = Deployed(config, target)
    if plan.destination != deployed.outputs(outputs.INVOICE_STORAGE).get(outputs.INVOICE_BUCKET_NAME):
        raise click.UsageError("--batch-operations restores the invoice bucket in place; its role may write "
                               "nowhere else (use the CLI path for --target-bucket)")

    def output(key: str) -> str:
        return deployed.resource(None, outputs.INVOICE_STORAGE, key, what="restore operations")

    account = target.client("sts").get_caller_identity()["Account"]
    try:
        jobs = batch.create_jobs(
            target.client("s3"), target.client("s3control"), plan, account_id=account,
            role_arn=output(outputs.BATCH_OPERATIONS_ROLE_ARN),
            delete_marker_function_arn=output(outputs.DELETE_MARKER_FUNCTION_ARN),
            manifest_bucket=output(outputs.RESTORE_OPS_BUCKET_NAME), confirm=confirm)
    except restore_lib.NotVersioned as err:
        raise Failed(f"refused before writing anything: {err}") from None
    for label, job in (("copy job", jobs.copy_job_id), ("delete-marker job", jobs.delete_marker_job_id)):
        if job:
            say(f"{label}: {job}")
    for manifest in jobs.manifests:
        say(f"manifest: {manifest}")
    if jobs.confirmation_required:
        say("the jobs await confirmation: once S3 has prepared them (status Suspended), check and start each with "
            "`tavari-dr bucket jobs confirm JOB_ID`; follow them with `tavari-dr bucket jobs list --active`")
    if jobs.cli_path:
        say(f"{len(jobs.cli_path)} key(s) are over 5 GB, archived or need their tags back, and stay on the CLI "
            "path: re-run without --batch-operations once the jobs are done")
    say("once the jobs are done, `tavari-dr bucket jobs report JOB_ID` reads each one's completion report into the "
        "audit trail (`retry` re-runs the failed tasks); then plan the same restore again (dry run): a key with an "
        "action left was changed during the restore")
    return {"copy_job_id": jobs.copy_job_id, "delete_marker_job_id": jobs.delete_marker_job_id,
            "manifests": jobs.manifests, "confirmation_required": jobs.confirmation_required,
            "cli_path": [a.key for a in jobs.cli_path]}


# --------------------------------------------------------------------------- the Batch Operations jobs


@group.group("jobs")
def jobs_group() -> None:
    """The restore's S3 Batch Operations jobs: follow them to the end (list, show, confirm, cancel, report, retry)."""


def _job_id(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    from tavari_dr.bucket.jobs import JobError, check_job_id

    try:
        return check_job_id(value)
    except JobError as err:  # refused before any AWS call
        raise click.BadParameter(str(err)) from None


job_id_argument = click.argument("job_id", metavar="JOB_ID", callback=_job_id)


def _jobs_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """A job that cannot be acted on as asked: one line, exit 1."""
    import functools

    from tavari_dr.bucket.jobs import JobError

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except JobError as err:
            raise Failed(str(err)) from None

    return wrapper


def _account(target: AwsTarget) -> str:
    return target.client("sts").get_caller_identity()["Account"]


def _progress(total: int, succeeded: int, failed: int) -> str:
    return f"{succeeded}/{total} succeeded, {failed} failed"


def _progress_of(job: dict[str, Any]) -> str:
    """DescribeJob's ProgressSummary, as _progress says it."""
    progress = job.get("ProgressSummary", {})
    return _progress(progress.get("TotalNumberOfTasks", 0), progress.get("NumberOfTasksSucceeded", 0),
                     progress.get("NumberOfTasksFailed", 0))


@aws_command(jobs_group, "list", "This tool's Batch Operations jobs (newest first), with status and progress."
                                 "\n\n\b\nExamples:"
                                 "\n  tavari-dr bucket jobs list --env prod --active",
             env_required=False)
@click.option("--active", is_flag=True, help="Only jobs in flight (not Complete, Cancelled or Failed).")
@format_option
@_jobs_errors
def jobs_list(config, target, active, output_format):
    from tavari_dr.bucket import jobs as jobs_lib

    found = jobs_lib.list_jobs(target.client("s3control"), _account(target),
                               statuses=jobs_lib.ACTIVE if active else None)
    answer(output_format, {"jobs": [j.as_dict() for j in found]}, lambda: [
        f"{j.job_id}  {j.status:<10}  {j.created or '-':<25}  {_progress(j.total, j.succeeded, j.failed):<32}  "
        f"{j.description}" for j in found] or [f"no {'active ' if active else ''}tavari-dr jobs"])


@aws_command(jobs_group, "show", "One job in full (DescribeJob)."
                                 "\n\n\b\nExamples:"
                                 "\n  tavari-dr bucket jobs show "
                                 "9f8e7d6c-5b4a-4321-8fed-cba987654321 --env prod", env_required=False)
@job_id_argument
@format_option
@_jobs_errors
def jobs_show(config, target, job_id, output_format):
    from tavari_dr.bucket import jobs as jobs_lib

    job = jobs_lib.describe(target.client("s3control"), _account(target), job_id, ours=False)

    def lines():
        operation = next(iter(job.get("Operation", {})), "?")
        report = job.get("Report", {})
        yield f"job {job['JobId']}: {job.get('Status')}" + (f" ({job['StatusUpdateReason']})"
                                                              if job.get("StatusUpdateReason") else "")
        yield f"  description   {job.get('Description', '')}"
        if not jobs_lib.is_ours(job.get("Description")):
            yield "  (not created by tavari-dr: confirm, cancel and retry leave it alone)"
        yield f"  operation     {operation}, priority {job.get('Priority')}, confirmation required " \
              f"{job.get('ConfirmationRequired')}"
        yield f"  progress      {_progress_of(job)}"
        yield f"  created       {job.get('CreationTime')}" + (f", ended {job['TerminationDate']}"
                                                              if job.get("TerminationDate") else "")
        yield f"  manifest      {job.get('Manifest', {}).get('Location', {}).get('ObjectArn')}"
        yield f"  report        {report.get('Bucket')}/{report.get('Prefix', '')} ({report.get('ReportScope')})"
        yield f"  role          {job.get('RoleArn')}"
        if jobs_lib.restore_id(job):
            yield f"  restore       {jobs_lib.restore_id(job)}"
        for reason in job.get("FailureReasons", []):
            yield f"  failure       {reason.get('FailureCode')}: {reason.get('FailureReason')}"

    answer(output_format, {"job": job}, lines)


def _job_record(action: str, job: dict[str, Any], account: str, **details: Any) -> AuditRecord:
    from tavari_dr.bucket import jobs as jobs_lib

    return AuditRecord(action, caller="", source={"job_id": job["JobId"], "description": job.get("Description"),
                                                  "restore_id": jobs_lib.restore_id(job)},
                       target={"account": account, "status_before": job.get("Status")}, details=details)


def _ask(question: str, yes: bool) -> bool:
    if yes:
        return True
    try:
        return click.confirm(question, default=False)
    except click.Abort:  # end of input: no answer is no
        return False


@aws_command(jobs_group, "confirm", "Start a job that awaits confirmation (Suspended -> Ready), once its task "
                                    "count is the plan's."
                                    "\n\n\b\nExamples:"
                                    "\n  tavari-dr bucket jobs confirm "
                                    "9f8e7d6c-5b4a-4321-8fed-cba987654321 --env prod", env_required=False)
@job_id_argument
@click.option("--yes", is_flag=True, help="Do not ask.")
@report_bucket_option
@_jobs_errors
def jobs_confirm(config, target, job_id, yes, report_bucket):
    from tavari_dr.bucket import jobs as jobs_lib

    control, account = target.client("s3control"), _account(target)
    job = jobs_lib.describe(control, account, job_id)
    total = job.get("ProgressSummary", {}).get("TotalNumberOfTasks", 0)
    click.echo(f"job {job_id}: {job.get('Status')}, {total} tasks: {job.get('Description')}")
    if not _ask(f"Start job {job_id} ({total} tasks write to the bucket)?", yes):
        raise Failed("not confirmed; nothing changed")
    record = _job_record("bucket_batch_confirm", job, account, tasks=total, planned=jobs_lib.planned_tasks(job))
    with audited(config, target, report_bucket, record) as audit:
        status = jobs_lib.confirm(control, account, job)
        audit["outcome"] = f"confirmed: {status}"
    click.echo(f"job {job_id} confirmed ({status}); follow it with: tavari-dr bucket jobs show {job_id}")


@aws_command(jobs_group, "cancel", "Cancel a job that has not finished (tasks already run stay done)."
                                   "\n\n\b\nExamples:"
                                   "\n  tavari-dr bucket jobs cancel "
                                   "9f8e7d6c-5b4a-4321-8fed-cba987654321 --env prod --yes",
             env_required=False)
@job_id_argument
@click.option("--yes", is_flag=True, help="Do not ask.")
@report_bucket_option
@_jobs_errors
def jobs_cancel(config, target, job_id, yes, report_bucket):
    from tavari_dr.bucket import jobs as jobs_lib

    control, account = target.client("s3control"), _account(target)
    job = jobs_lib.describe(control, account, job_id)
    progress = job.get("ProgressSummary", {})
    click.echo(f"job {job_id}: {job.get('Status')}, {_progress_of(job)}")
    if not _ask(f"Cancel job {job_id}? The tasks it has run stay done; plan the restore again afterwards.", yes):
        raise Failed("not cancelled; nothing changed")
    record = _job_record("bucket_batch_cancel", job, account, progress=progress)
    with audited(config, target, report_bucket, record) as audit:
        status = jobs_lib.cancel(control, account, job)
        audit["outcome"] = f"cancelled: {status}"
    click.echo(f"job {job_id}: {status}; once it is Cancelled, `tavari-dr bucket jobs report {job_id}` says what ran")


@aws_command(jobs_group, "report", "Summarise a finished job's completion report (succeeded, failed per error "
                                   "code, the first failures); records the outcome in the audit trail. Exit 1 "
                                   "when a task failed."
                                   "\n\n\b\nExamples:"
                                   "\n  tavari-dr bucket jobs report 9f8e7d6c-5b4a-4321-8fed-cba987654321 --env prod",
             env_required=False)
@job_id_argument
@click.option("--first", type=click.IntRange(0, 10_000), default=20, show_default=True,
              help="How many failures to list.")
@report_bucket_option
@format_option
@_jobs_errors
def jobs_report(config, target, job_id, first, report_bucket, output_format):
    from tavari_dr.bucket import jobs as jobs_lib

    control, account = target.client("s3control"), _account(target)
    job = jobs_lib.describe(control, account, job_id)
    report = jobs_lib.read_report(target.client("s3"), job, first=first)
    document = {**report.as_dict(first=first), "restore_id": jobs_lib.restore_id(job)}
    say: Callable[[str], None] = (lambda _line: None) if output_format == "json" else click.echo
    if job.get("Status") in jobs_lib.TERMINAL:
        # The restore's outcome, beside the record of its start (which names this job): appended, never edited.
        record = _job_record("bucket_batch_result", job, account, **{k: v for k, v in document.items()
                                                                      if k != "first_failures"})
        with audited(config, target, report_bucket, record, say=say) as audit:
            document["audit_record"] = audit
            audit["outcome"] = f"job {job.get('Status')}: {report.succeeded} succeeded, {report.failed} failed"

    def lines():
        yield f"job {job_id}: {job.get('Status')}: {report.succeeded} succeeded, {report.failed} failed"
        for code, n in report.by_error.most_common():
            yield f"  {n:>8}  {code}"
        for f in report.first_failures:
            yield f"  failed {f.key} ({f.version_id or 'no version'}): {f.error_code} {f.http_status} {f.message}"
        if report.failed > len(report.first_failures):
            yield f"  ... and {report.failed - len(report.first_failures)} more (--first N, or --format json)"

    # Exit 1 unless every task succeeded: the restore is not done while a task has failed.
    failure = None
    if report.failed:
        failure = (f"{report.failed} task(s) failed; retry them with `tavari-dr bucket jobs retry {job_id}` (or "
                   "plan the restore again)")
    elif job.get("Status") != "Complete":
        failure = f"job {job.get('Status')}: the tasks above ran, the others did not; plan the restore again"
    answer(output_format, document, lines, failure=failure)


@aws_command(jobs_group, "retry", "A new job over a finished job's failed tasks only (same operation, role and "
                                  "report), awaiting confirmation unless --confirm."
                                  "\n\n\b\nExamples:"
                                  "\n  tavari-dr bucket jobs retry "
                                  "9f8e7d6c-5b4a-4321-8fed-cba987654321 --env prod", env_required=False)
@job_id_argument
@click.option("--confirm", is_flag=True, help="Start the new job without the confirmation step.")
@click.option("--yes", is_flag=True, help="Do not ask.")
@report_bucket_option
@format_option
@_jobs_errors
def jobs_retry(config, target, job_id, confirm, yes, report_bucket, output_format):
    from tavari_dr.bucket import jobs as jobs_lib

    if output_format == "json" and not yes:
        raise click.UsageError("--format json needs --yes: a program reading the answer cannot answer a question")
    control, account = target.client("s3control"), _account(target)
    job = jobs_lib.describe(control, account, job_id)
    report = jobs_lib.read_report(target.client("s3"), job, first=0)
    say: Callable[[str], None] = (lambda _line: None) if output_format == "json" else click.echo
    say(f"job {job_id}: {job.get('Status')}: {report.failed} failed task(s) "
        f"({', '.join(f'{n} {c}' for c, n in report.by_error.most_common()) or 'none'})")
    if job.get("Status") in jobs_lib.TERMINAL and report.failed and not _ask(
            f"Create a new job over the failed tasks of {job_id}?", yes):
        raise Failed("no retry created")
    record = _job_record("bucket_batch_retry", job, account, failed=report.failed,
                         failed_by_error=dict(report.by_error))
    with audited(config, target, report_bucket, record, say=say) as audit:
        made = jobs_lib.retry(target.client("s3"), control, account, job, report, confirm=confirm)
        record.details["retry"] = vars(made)
        audit["outcome"] = f"retry job {made.job_id} created" + (" (awaiting confirmation)"
                                                                 if made.confirmation_required else "")
    say(f"retry job: {made.job_id} ({made.tasks} tasks, manifest {made.manifest})")
    if made.left_for_a_new_plan:
        say(f"{made.left_for_a_new_plan} task(s) were refused as changed during restore: plan the restore again "
            "for those")
    if made.confirmation_required:
        say(f"it awaits confirmation: tavari-dr bucket jobs confirm {made.job_id}")
    if output_format == "json":
        echo_json({**vars(made), "audit_record": audit})
