"""`tavari-dr verify`: the scheduled verification checks, run now (tavari_dr.verification)."""

from __future__ import annotations

import click

from tavari_dr.cli.common import Deployed, answer, aws_command, format_option
from tavari_dr.core import guardrails, outputs
from tavari_dr.core.config import EnvironmentConfig
from tavari_dr.core.guardrails import Custodians
from tavari_dr.verification import jobs as verification


def custodian_arns(config: EnvironmentConfig, target) -> tuple[str, ...]:
    """The deploy and break-glass roles the deny statements exempt where removal_policy is retain
    (none where it is destroy): those of the primary account and region, as the stacks name them."""
    if not config.retain:
        return ()
    account = config.account or target.client("sts").get_caller_identity()["Account"]
    return Custodians.of(config.security, partition="aws", account=account, region=config.region).arns


def dr_backups(config: EnvironmentConfig, target, deployed: Deployed) -> dict[str, object]:
    """The DR side of backup_drift, as the stack gives it to the daily monitor (same account only)."""
    if not config.replication.enabled:
        return {}
    if config.cross_account_replication:
        return {"dr_backups_unchecked": guardrails.dr_side_unchecked(config.replica_account)}
    region = config.replication.region or ""
    account = config.account or target.client("sts").get_caller_identity()["Account"]
    bucket = deployed.outputs(outputs.DATABASE_BACKUPS + "Replica", dr=True).get(outputs.BACKUP_BUCKET_NAME)
    if bucket is None:
        return {"dr_backups_unchecked": f"{config.stack_name(outputs.DATABASE_BACKUPS + 'Replica')} has no output "
                                        f"{outputs.BACKUP_BUCKET_NAME}"}
    custodians = Custodians.of(config.security, partition="aws", account=account, region=region) \
        if config.retain else None
    return {"dr_backups": guardrails.dr_side(region=region, account=account, bucket=bucket,
                                             key_aliases=outputs.dr_key_aliases(config.name), custodians=custodians)}


@aws_command(None, "verify", "Run the scheduled verification checks now and print a table; exit 1 if any fails."
                             "\n\n\b\nExamples:"
                             "\n  tavari-dr verify --env prod --check tamper_watch")
@click.option("--check", "names", multiple=True, type=click.Choice(verification.CHECKS),
              help="Only this check (repeatable; default: all of them).")
@click.option("--invoice-bucket", help="Instead of the InvoiceStorage stack output.")
@click.option("--backup-bucket", help="Instead of the DatabaseBackups stack output.")
@click.option("--reports-bucket", help="Instead of the DatabaseBackups stack output.")
@format_option
def command(config, target, names, invoice_bucket, backup_bucket, reports_bucket, output_format):
    deployed = Deployed(config, target)
    replica = None
    if config.replication.enabled:
        replica = deployed.outputs(outputs.INVOICE_REPLICA, dr=True).get(outputs.REPLICA_BUCKET_NAME)
    arns = deployed.secret_arns()
    storage, backups = deployed.outputs(outputs.INVOICE_STORAGE), deployed.outputs(outputs.DATABASE_BACKUPS)
    targets = verification.Targets(
        invoice_bucket=deployed.resource(invoice_bucket, outputs.INVOICE_STORAGE, outputs.INVOICE_BUCKET_NAME,
                                         what="invoice bucket", option="--invoice-bucket"),
        invoice_key_arn=deployed.outputs(outputs.INVOICE_STORAGE).get(outputs.INVOICE_KEY_ARN),
        archive_after_days=config.invoice_bucket.archive_after_days,
        archive_storage_class=config.invoice_bucket.archive_storage_class,
        backup_bucket=deployed.resource(backup_bucket, outputs.DATABASE_BACKUPS, outputs.BACKUP_BUCKET_NAME,
                                        what="backup bucket", option="--backup-bucket"),
        reports_bucket=deployed.resource(reports_bucket, outputs.DATABASE_BACKUPS, outputs.REPORTS_BUCKET_NAME,
                                         what="reports bucket", option="--reports-bucket"),
        scratch_bucket=deployed.resource(None, outputs.DATABASE_BACKUPS, outputs.RESTORE_TEST_BUCKET_NAME,
                                         what="restore-test bucket"),
        replica_bucket=replica,
        signing_key_arn=backups.get(outputs.MANIFEST_SIGNING_KEY_ARN),
        supabase_url_secret=arns["SUPABASE_URL"], supabase_token_secret=arns["SUPABASE_ACCESS_TOKEN"],
        tamper_watch=deployed.outputs(outputs.TAMPER_WATCH).get(outputs.TAMPER_WATCH_EXPECTATION)
        if not names or "tamper_watch" in names else None,
        invoice_access_log_bucket=storage.get(outputs.INVOICE_ACCESS_LOG_BUCKET_NAME),
        backup_lock_mode=config.database_backups.lock_mode,
        backup_default_retention_days=config.database_backups.default_retention_days,
        protected_keys={"backup": backups.get(outputs.BACKUP_KEY_ARN),
                        "manifest signing": backups.get(outputs.MANIFEST_SIGNING_KEY_ARN),
                        "reports": backups.get(outputs.REPORTS_KEY_ARN),
                        "invoice": storage.get(outputs.INVOICE_KEY_ARN),
                        "secrets": deployed.outputs(outputs.SECRETS).get(outputs.SECRETS_KEY_ARN)},
        custodian_arns=custodian_arns(config, target), **dr_backups(config, target, deployed),
        # The capture runs where its service was deployed (the stack's output says so).
        changes_enabled=config.changes.enabled and outputs.CHANGE_CAPTURE_SERVICE_NAME in backups,
        changes_max_lag_seconds=config.changes.max_lag_seconds,
        change_signing_key_arn=backups.get(outputs.CHANGE_SIGNING_KEY_ARN))
    clients = verification.Clients(s3=target.client("s3"), replica_s3=target.client("s3", dr=True),
                                   cloudwatch=target.client("cloudwatch"), kms=target.client("kms"),
                                   secretsmanager=target.client("secretsmanager"),
                                   regional=lambda service, region: target.client(service, region=region))
    results = verification.run_checks(names or verification.CHECKS, clients=clients, targets=targets,
                                      settings=config.verification, rpo_hours=config.monitoring.rpo_hours,
                                      now=verification.now_utc())
    failed = [r.name for r in results if not r.ok]

    def table():
        width = max(len(r.name) for r in results)
        yield f"{'CHECK':<{width}}  STATUS  SECONDS  DETAILS"
        for r in results:
            detail = "; ".join(r.details) or ", ".join(f"{k}={v}" for k, v in r.measured.items())
            yield f"{r.name:<{width}}  {r.status:<6}  {r.duration_seconds:7.2f}  {detail[:200]}"

    answer(output_format, {"checks": [r.to_dict() for r in results], "failed": failed}, table,
           failure=None if not failed else f"{len(failed)} check(s) did not pass: {', '.join(failed)}",
           summary=f"all {len(results)} checks passed")
