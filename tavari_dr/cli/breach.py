"""`tavari-dr breach scope`: which accounts a breach touched since T, from the data (the live database
against the last backup before T) and from the logs (the invoice bucket's server access logs and the
trail's data events), with the notification CSV and the GDPR deadlines (tavari_dr.breach)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click

from tavari_dr.breach import diff as diff_lib
from tavari_dr.breach import logs
from tavari_dr.breach import scope as scope_lib
from tavari_dr.cli.common import Deployed, answer, aws_command, backup_errors, format_option
from tavari_dr.cli.db import (
    _backup_bucket,
    _database_url,
    _verifiers,
    bucket_option,
    change_signing_key_option,
    jobs_option,
    pg_bin_option,
    signing_key_option,
    work_dir_option,
)
from tavari_dr.cli.erasure import _when
from tavari_dr.core import outputs
from tavari_dr.core.aws import DiscoveryError

FILES = ("breach-scope.json", "accounts.csv")


@click.group("breach")
def group() -> None:
    """Personal-data breach: scope (which accounts, which sources, the deadlines)."""


@aws_command(group, "scope", "Restore the last backup before --since into a scratch database, compare it with the live "
                             "one, read the object requests since --since, and list the accounts touched (CSV for the "
                             "notification) with the GDPR deadlines."
                             "\n\n\b\nExamples:"
                             "\n  tavari-dr breach scope --env prod --since "
                             "2026-11-30T14:00:00Z --out breach/")
@click.option("--since", required=True, callback=_when, metavar="TIME",
              help="When the breach began at the earliest (ISO 8601, e.g. 2026-11-30T14:00:00Z).")
@click.option("--aware-at", callback=_when, metavar="TIME",
              help="When the controller became aware of the breach: the 72-hour clock starts there (default: now).")
@click.option("--database-url", help="The live database (default: the secret BACKUP_DATABASE_URL).")
@click.option("--scratch-url", help="An empty database to restore the backup into (default: a new one on the live "
                                    "database's server, dropped afterwards).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for breach-scope.json and accounts.csv (default: breach-scope-<since>).")
@click.option("--force", is_flag=True, help="Overwrite the files of an earlier scope in --out.")
@click.option("--invoice-bucket", help="The invoice bucket (default: the InvoiceStorage stack output).")
@click.option("--trail-arn", help="The trail whose data events are read (default: security.trail_arn, else the "
                                  "TamperWatch stack's TrailArn output).")
@bucket_option
@signing_key_option
@change_signing_key_option
@pg_bin_option
@jobs_option
@work_dir_option
@format_option
@backup_errors
def scope(config, target, since, aware_at, database_url, scratch_url, out, force, invoice_bucket, trail_arn, bucket,
          signing_key, change_signing_key, pg_bin, jobs, work_dir, output_format):
    now = datetime.now(UTC)
    aware_at = aware_at or now
    if since > now:
        raise click.UsageError(f"--since {since.isoformat()} is in the future")
    out = out or Path(f"breach-scope-{since:%Y%m%dT%H%M%SZ}")
    existing = [name for name in FILES if (out / name).exists()]
    if existing and not force:
        raise click.UsageError(f"{out / existing[0]} exists; pass --force to overwrite it, or another --out")
    deployed = Deployed(config, target)
    live = _database_url(config, target, database_url)
    backups = _backup_bucket(config, target, bucket)
    s3 = target.client("s3")

    def say(message: str) -> None:
        click.echo(f"  {message}", err=True)

    datasets = config.data_export.datasets
    manifests, changes = _verifiers(config, target, signing_key, change_signing_key)
    manifest, data, replayed_to = scope_lib.restore_before(
        s3, backups, since, live, verifier=manifests, change_verifier=changes,
        tiers=config.database_backups.tiers, scratch_url=scratch_url, log=say,
        compare=lambda scratch: diff_lib.compare(scratch, live, datasets), pg_bin=pg_bin, jobs=jobs,
        work_dir=work_dir, datasets=datasets)
    invoices = deployed.resource(invoice_bucket, outputs.INVOICE_STORAGE, outputs.INVOICE_BUCKET_NAME,
                                 what="invoice bucket", option="--invoice-bucket")
    sources = [logs.read_access_logs(s3, invoices, since)]
    trail, why = trail_arn or config.security.trail_arn, "no trail named (--trail-arn)"
    if trail is None:
        try:
            trail = deployed.outputs(outputs.TAMPER_WATCH).get(outputs.TRAIL_ARN)
        except DiscoveryError as err:  # a source not read is reported, never the end of the scope
            why = f"no trail named (--trail-arn), and {err}"
    sources.append(logs.read_trail(target.client("cloudtrail"), s3, trail, invoices, since) if trail else
                   logs.Source("CloudTrail data events", False, why))
    found = scope_lib.Scope(since, manifest.backup_id, manifest.started_at, data, sources,
                            scope_lib.deadlines(aware_at, now), replayed_to=replayed_to)
    out.mkdir(parents=True, exist_ok=True)
    document = found.document()
    (out / "breach-scope.json").write_text(json.dumps(document, indent=1, sort_keys=True))
    (out / "accounts.csv").write_text(found.csv())
    document["files"] = {name: str(out / name) for name in FILES}
    answer(output_format, document, found.lines,
           summary=f"wrote {out / 'accounts.csv'} ({len(document['accounts'])} account(s)) and "
                   f"{out / 'breach-scope.json'}")
