"""`tavari-dr erasure record|list|apply`: the erasure ledger that keeps erased accounts erased through
restores (tavari_dr.database.erasure)."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from tavari_dr.cli.common import (
    Failed,
    answer,
    audited,
    aws_command,
    backup_errors,
    format_option,
    report_bucket_option,
)
from tavari_dr.cli.db import _backup_bucket, _datasets, _tiers, bucket_option
from tavari_dr.core import accountmap, metrics
from tavari_dr.core.audit import AuditRecord
from tavari_dr.database import backup as db_lib
from tavari_dr.database import erasure
from tavari_dr.database.failures import database_step


@click.group("erasure")
def group() -> None:
    """The erasure ledger: record an erased account, list the ledger, re-apply it to a database."""


def _account(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    try:
        return erasure.account_id(value)
    except ValueError as err:
        raise click.BadParameter(str(err)) from None


def _accounts(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> list[str]:
    try:
        return [erasure.account_id(v) for v in values]
    except ValueError as err:
        raise click.BadParameter(str(err)) from None


def _when(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time such as 2026-11-30T14:00:00Z") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@aws_command(group, "record", "Record that an account was erased (after deleting its rows): a new ledger object, "
                              "never an overwrite."
                              "\n\n\b\nExamples:"
                              "\n  tavari-dr erasure record --env prod --account "
                              "6f1c1a52-8d5e-4f3c-9a0b-3c2d1e0f9a8b", env_required=False)
@click.option("--account", required=True, callback=_account, help="The erased account's user ID (UUID).")
@click.option("--business", "businesses", multiple=True, callback=_accounts,
              help="One of the account's business IDs (repeat for each): its invoice PDFs' keys name it.")
@click.option("--database-url", help="Read the account's business IDs from this database instead (before its rows "
                                     "are deleted).")
@click.option("--erased-at", callback=_when, help="When it was erased (ISO 8601; default: now).")
@bucket_option
@report_bucket_option
@backup_errors
def record(config, target, account, businesses, database_url, erased_at, bucket, report_bucket):
    if bool(businesses) == bool(database_url):
        raise click.UsageError("name the account's businesses: --business ID (repeatable) or --database-url to read "
                               "them (a bucket restore leaves out their invoice PDFs)")
    if database_url:
        with database_step(database_url, "reading the account's businesses"), \
                db_lib._connect(db_lib.parse_database_url(database_url)) as conn:
            businesses = [str(b) for b in accountmap.business_ids(conn, [account])]
    bucket = _backup_bucket(config, target, bucket)
    audit_record = AuditRecord("erasure_record", caller="", source={"bucket": bucket}, target={"account": account})
    with audited(config, target, report_bucket, audit_record) as audit:
        try:
            entry = erasure.record(target.client("s3"), bucket, account, business_ids=businesses,
                                   erased_at=erased_at, tiers=_tiers(config))
        except erasure.ErasureError as err:
            raise Failed(str(err)) from None
        audit_record.details.update(key=entry.key, version_id=entry.version_id)
        audit["outcome"] = "recorded"
    click.echo(f"recorded the erasure of {account} ({len(entry.business_ids or ())} business(es)) at "
               f"{entry.erased_at.isoformat(timespec='seconds')}: "
               f"s3://{bucket}/{entry.key} (version {entry.version_id}); every restore now removes its rows")


@aws_command(group, "list", "The ledger: each erased account and when."
                            "\n\n\b\nExamples:"
                            "\n  tavari-dr erasure list --env prod", env_required=False)
@bucket_option
@format_option
@backup_errors
def list_(config, target, bucket, output_format):
    bucket = _backup_bucket(config, target, bucket)
    entries = erasure.read_ledger(target.client("s3"), bucket)

    def lines():
        yield f"{'ACCOUNT':<36}  {'ERASED AT':<25}  KEY"
        for e in entries:
            yield f"{e.account_id:<36}  {e.erased_at.isoformat(timespec='seconds'):<25}  {e.key}"

    answer(output_format, {"bucket": bucket, "entries": [{**e.document(), "key": e.key} for e in entries]}, lines,
           summary=f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}, "
                   f"{len({e.account_id for e in entries})} account(s)")


@aws_command(group, "apply", "Delete every ledger account's rows from --target-url (after a restore the CLI did not "
                             "run, e.g. Supabase's own point-in-time restore)."
                             "\n\n\b\nExamples:"
                             "\n  tavari-dr erasure apply --env prod --target-url "
                             "postgresql://localhost/restored", env_required=False)
@click.option("--target-url", required=True, help="The database to apply the ledger to.")
@bucket_option
@report_bucket_option
@click.option("--publish-metrics", is_flag=True, help="Publish ErasureLedgerFailed when the ledger cannot be applied.")
@backup_errors
def apply(config, target, target_url, bucket, report_bucket, publish_metrics):
    bucket = _backup_bucket(config, target, bucket)
    connection = db_lib.parse_database_url(target_url)
    audit_record = AuditRecord("erasure_apply", caller="", source={"bucket": bucket},
                               target={"database": connection.url_without_password})
    with audited(config, target, report_bucket, audit_record) as audit:
        try:
            removed = erasure.reapply(target.client("s3"), bucket, lambda: db_lib._connect(connection),
                                      datasets=_datasets(config), log=lambda m: click.echo(f"  {m}"))
        except erasure.ErasureError:
            if publish_metrics:
                metrics.cloudwatch_emitter(target.client("cloudwatch"))({metrics.ERASURE_LEDGER_FAILED: 1})
            raise
        audit_record.details.update(erased_rows=removed)
        audit["outcome"] = f"applied: {sum(removed.values())} row(s) removed"
    for table, rows in sorted(removed.items()):
        click.echo(f"  {table}: {rows} row(s) removed")
    click.echo(f"erasure ledger applied: {sum(removed.values())} row(s) removed")
