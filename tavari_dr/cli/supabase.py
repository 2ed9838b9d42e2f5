"""`tavari-dr supabase restore-config`: write a backup's snapshot of the Supabase project's configuration
back through the Management API (tavari_dr.configbackup.supabase_config)."""

from __future__ import annotations

import io

import click

from tavari_dr.cli.common import Failed, audited, aws_command, backup_errors, report_bucket_option
from tavari_dr.cli.db import (
    _backup_bucket,
    _tiers,
    _verifier,
    bucket_option,
    manifest_version_option,
    signing_key_option,
    supabase_access,
    supabase_api_option,
)
from tavari_dr.configbackup import supabase_config
from tavari_dr.core.audit import AuditRecord
from tavari_dr.core.supabase_api import SupabaseApiError
from tavari_dr.database import backup as db_lib


@click.group("supabase")
def group() -> None:
    """The Supabase project's configuration, as the nightly backup snapshots it."""


@aws_command(group, "restore-config", "Show how the project's configuration differs from a backup's snapshot, "
                                      "then write the snapshot back (unless --dry-run)."
                                      "\n\n\b\nExamples:"
                                      "\n  tavari-dr supabase restore-config --env prod --from "
                                      "latest --dry-run", env_required=False)
@click.option("--from", "which", default="latest", show_default=True, help="latest, or a backup ID.")
@click.option("--dry-run", is_flag=True, help="Show the differences; change nothing.")
@click.option("--project-ref", help="Write into this project (e.g. a new one) instead of SUPABASE_URL's.")
@click.option("--restart-database", is_flag=True,
              help="Restart the database with the Postgres settings (a short outage). Without it they are stored "
                   "and take effect at its next restart.")
@supabase_api_option
@bucket_option
@signing_key_option
@manifest_version_option
@report_bucket_option
@backup_errors
def restore_config(config, target, which, dry_run, project_ref, restart_database, supabase_api_url, bucket,
                   signing_key, manifest_version, report_bucket):
    s3 = target.client("s3")
    bucket = _backup_bucket(config, target, bucket)
    opened = db_lib.find_backup(s3, bucket, which, verifier=_verifier(config, target, signing_key),
                                manifest_version=manifest_version, tiers=_tiers(config))
    manifest = opened.manifest
    if supabase_config.ARTIFACT not in manifest.artifacts:
        raise Failed(f"backup {manifest.backup_id} holds no Supabase configuration snapshot (taken without "
                     "--supabase-config); pick a later one with tavari-dr db list")
    body = io.BytesIO()
    db_lib.fetch_verified(s3, bucket, manifest, supabase_config.ARTIFACT, body)  # the signed manifest's sha256
    try:
        document = supabase_config.decode(body.getvalue())
    except ValueError as err:
        raise Failed(f"{manifest.backup_id}: {err}") from None
    api, ref, token = supabase_access(config, target, supabase_api_url)
    ref = project_ref or ref
    click.echo(f"snapshot of {document['project_ref']} taken {document['taken_at']} (backup {manifest.backup_id}, "
               f"{opened.trust}); project now: {ref}")
    for name, why in sorted(document.get("unavailable", {}).items()):
        click.echo(f"  not in the snapshot: {name} ({why})")
    try:
        changes, _ = supabase_config.diff(document, api, ref, token)
    except (SupabaseApiError, ValueError) as err:
        raise Failed(f"could not read the project's configuration: {err}") from None
    for change in changes:
        click.echo(f"  {change.line()}")
    secrets = supabase_config.excluded_names(document)
    if secrets:
        click.echo(f"  never snapshotted (secrets; set them by hand): {', '.join(secrets)}")
    if not changes:
        click.echo("the project's configuration already matches the snapshot")
        return
    for change in supabase_config.unwritable(changes):
        click.echo(f"  cannot be written back through the API (it takes no null here): {change.section}.{change.key};"
                   " set it by hand")
    postgres = [c for c in changes if c.section == "postgres"]
    if postgres:
        full = document["sections"]["postgres"]["values"]
        click.echo(f"  postgres: PUT replaces every override with the snapshot's {len(full)} (the full set is sent); "
                   + ("the database WILL RESTART (--restart-database)" if restart_database else
                      "restart_database=false: no restart, settings that need one take effect at the database's "
                      "next restart (--restart-database to restart now)"))
    if dry_run:
        click.echo(f"dry run: {len(changes)} setting(s) differ; nothing was changed")
        return
    record = AuditRecord("supabase_restore_config", caller="", source={"bucket": bucket, "backup": manifest.backup_id},
                         target={"project_ref": ref}, details={"settings": [f"{c.section}.{c.key}" for c in changes],
                                                              "restart_database": restart_database})
    with audited(config, target, report_bucket, record) as audit:
        try:
            written = supabase_config.apply(document, changes, api, ref, token, restart_database=restart_database,
                                            log=lambda m: click.echo(f"  {m}"))
            left, _ = supabase_config.diff(document, api, ref, token)
        except SupabaseApiError as err:
            raise Failed(f"the Management API refused the update: {err}") from None
        if left:
            raise Failed("written, but the project still differs: " + "; ".join(c.line() for c in left))
        audit["outcome"] = f"restored: {', '.join(written)}"
    click.echo(f"restored {len(changes)} setting(s) in {len(written)} section(s); the project now matches the "
               "snapshot")
