"""`tavari-dr failover plan|apply`: recover into the DR region when the primary region is down.

Everything is read from the DR region (``replication.region``) and nothing from the primary, not even
its CloudFormation outputs: the DR stacks' own outputs name the invoice replica and the backups' replica;
the secrets' replicas are found by listing the DR region's secrets (a replica keeps its primary's
description and tags); the backup manifests are verified with the signing key's public key, exported
while the primary region was up, since the key itself lives there. ``plan`` says what would be used and
what is missing; ``apply`` restores the database from the replicated backups, writes the configuration
from the replicas, records what it did in the DR backup bucket's audit/, and prints what the application
must be pointed at (docs/decisions/0026, docs/runbooks/region-outage.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from tavari_dr.cli.common import Failed, answer, aws_command, backup_errors, format_option
from tavari_dr.cli.db import jobs_option, pg_bin_option, work_dir_option
from tavari_dr.configbackup import secrets as secrets_lib
from tavari_dr.core import outputs
from tavari_dr.core.audit import AuditRecord, caller_arn
from tavari_dr.core.aws import AwsTarget, DiscoveryError, stack_outputs
from tavari_dr.core.config import EnvironmentConfig
from tavari_dr.core.envfile import dump
from tavari_dr.database import backup as db_lib
from tavari_dr.database.manifest import BackupError, find_backup
from tavari_dr.database.signing import PublicKeyVerifier

BACKUPS_REPLICA = outputs.DATABASE_BACKUPS + "Replica"  # the stack purpose stacks/app.py gives it
STACK_TAG = "aws:cloudformation:stack-name"


@click.group("failover")
def group() -> None:
    """Recover into the DR region when the primary region is down: plan, apply."""


@dataclass
class Survey:
    """What the DR region holds for a failover, and what it lacks."""

    env: str
    primary_region: str
    dr_region: str
    invoice_bucket: str | None = None
    invoice_key: str | None = None
    backup_bucket: str | None = None
    backup_id: str | None = None
    backup_started_at: str | None = None
    backup_trust: str | None = None
    secret_arns: dict[str, str] = field(default_factory=dict)
    secret_values: dict[str, str] = field(default_factory=dict)
    secrets_key: str | None = None
    missing: list[str] = field(default_factory=list)
    # The replicated change log: the base the newest dump belongs to, and its newest commit (what the database
    # is restored to: the dump, then the log to its end). None: restored from the dump alone (--without-log).
    log_base: str | None = None
    log_end: str | None = None
    without_log: bool = False

    def document(self) -> dict[str, Any]:
        return {"env": self.env, "primary_region": self.primary_region, "dr_region": self.dr_region,
                "invoice_bucket": self.invoice_bucket, "invoice_key_arn": self.invoice_key,
                "backup_bucket": self.backup_bucket,
                "backup": {"backup_id": self.backup_id, "started_at": self.backup_started_at,
                           "trust": self.backup_trust} if self.backup_id else None,
                "secrets": self.secret_arns, "secrets_key_arn": self.secrets_key, "missing": self.missing,
                "change_log": None if self.without_log else {"base": self.log_base, "restores_to": self.log_end},
                "ready": not self.missing}

    def lines(self) -> list[str]:
        found = len(self.secret_values)
        return [
            f"fail over {self.env} from {self.primary_region} to {self.dr_region} (nothing is read from "
            f"{self.primary_region})",
            f"  invoice bucket: {self.invoice_bucket or '-'} (the DR replica becomes the app's bucket; "
            f"KMS key {self.invoice_key or '-'})",
            "  database: " + (f"backup {self.backup_id} ({self.backup_trust}, started {self.backup_started_at}) "
                               f"from s3://{self.backup_bucket}" if self.backup_id else "-"),
            "  change log: " + ("not replayed (--without-log): everything after the dump is lost" if self.without_log
                                else f"base {self.log_base}, replayed to its newest commit {self.log_end}"
                                if self.log_end else "-"),
            f"  configuration: {found} of {found + len([m for m in self.missing if m.startswith('secret ')])} "
            f"entries from the Secrets Manager replicas in {self.dr_region}",
            *(f"  MISSING {m}" for m in self.missing),
        ]


def _dr_outputs(target: AwsTarget, config: EnvironmentConfig, purpose: str, survey: Survey) -> dict[str, str]:
    try:
        return stack_outputs(target.client("cloudformation", dr=True), config.stack_name(purpose))
    except DiscoveryError as err:
        survey.missing.append(f"stack {config.stack_name(purpose)}: {err}")
        return {}


def _secret_replicas(client: Any, config: EnvironmentConfig, primary: str) -> dict[str, list[dict[str, Any]]]:
    """Entry name -> the DR region's replicas that can be its secret: replicas of the primary region's
    secrets whose description names the entry (the Secrets stack writes "NAME: ..."), of the Secrets
    stack (its CloudFormation tag, replicated with the secret; where a secret has no such tag, as in the
    local drill, its generated name carries the stack's)."""
    stack = config.stack_name(outputs.SECRETS)
    found: dict[str, list[dict[str, Any]]] = {e.name: [] for e in config.secrets.all_entries}
    for page in client.get_paginator("list_secrets").paginate():
        for secret in page.get("SecretList", []):
            if secret.get("PrimaryRegion") != primary:
                continue
            tags = {t["Key"]: t["Value"] for t in secret.get("Tags", [])}
            ours = tags[STACK_TAG] == stack if STACK_TAG in tags else stack.lower() in secret["Name"].lower()
            name = (secret.get("Description") or "").split(":", 1)[0]
            if ours and name in found:
                found[name].append(secret)
    return found


def survey(config: EnvironmentConfig, target: AwsTarget, public_key: bytes | None, which: str = "latest", *,
           change_public_key: bytes | None = None, without_log: bool = False) -> Survey:
    """Read the DR region only: every client below is made with dr=True. The database is the newest dump and
    the replicated change log to its end (the RPO after a region loss is the log's, not the dumps'), unless
    ``without_log``."""
    if not config.replication.enabled or not target.dr_region:
        raise click.UsageError(f"{config.name} has no DR region (replication.enabled is false): there is nothing "
                               "to fail over to")
    if target.dr_region == target.region:
        raise click.UsageError(f"--dr-region {target.dr_region} is the primary region")
    found = Survey(config.name, target.region or config.region, target.dr_region)
    invoice = _dr_outputs(target, config, outputs.INVOICE_REPLICA, found)
    found.invoice_bucket, found.invoice_key = invoice.get(outputs.REPLICA_BUCKET_NAME), invoice.get(
        outputs.REPLICA_KEY_ARN)
    backups = _dr_outputs(target, config, BACKUPS_REPLICA, found)
    found.backup_bucket = backups.get(outputs.BACKUP_BUCKET_NAME)
    found.secrets_key = _dr_outputs(target, config, outputs.SECRETS_REPLICA_KEY, found).get(
        outputs.SECRETS_REPLICA_KEY_ARN)
    if found.backup_bucket:
        if public_key is None:
            found.missing.append(
                f"backup signature: the manifest signing key lives in {found.primary_region} only; pass "
                "--signing-public-key FILE (its public key, exported while the region was up: see "
                "docs/runbooks/region-outage.md)")
        else:
            try:
                opened = find_backup(target.client("s3", dr=True), found.backup_bucket, which,
                                     verifier=PublicKeyVerifier(public_key), tiers=config.database_backups.tiers)
                found.backup_id, found.backup_trust = opened.manifest.backup_id, opened.trust
                found.backup_started_at = opened.manifest.started_at
            except BackupError as err:
                found.missing.append(f"backup in s3://{found.backup_bucket}: {err}")
        found.without_log = without_log
        if found.backup_id and not without_log:
            _log_end(target, found, opened.manifest, change_public_key)
    client = target.client("secretsmanager", dr=True)
    replicas = _secret_replicas(client, config, found.primary_region)
    for entry in config.secrets.all_entries:
        candidates = replicas[entry.name]
        if len(candidates) != 1:
            if entry.required:
                found.missing.append(f"secret {entry.name}: " + (
                    f"no replica in {found.dr_region}" if not candidates else
                    f"{len(candidates)} replicas could be it: {', '.join(c['ARN'] for c in candidates)}"))
            continue
        found.secret_arns[entry.name] = candidates[0]["ARN"]
    found.secret_values, unset = secrets_lib.pulled_values(_read_states(client, config, found.secret_arns))
    found.missing.extend(f"secret {name}: the replica holds no value" for name in unset)
    return found


def _log_end(target: AwsTarget, found: Survey, manifest: Any, change_public_key: bytes | None) -> None:
    """Where the replicated log of the newest dump's base ends, verified with the change key's exported public
    key; or what is missing to replay it."""
    from tavari_dr.changes import replay as replay_lib

    if change_public_key is None:
        found.missing.append(
            f"change log: its signing key lives in {found.primary_region} only; pass --change-signing-public-key "
            "FILE (exported while the region was up), or --without-log to restore the dump alone and lose "
            "everything committed after it")
        return
    verifier = PublicKeyVerifier(change_public_key, "the change signing key's exported public key")
    s3 = target.client("s3", dr=True)
    try:  # every base record read and verified once, for the window and the base alike
        all_bases = replay_lib.bases(s3, found.backup_bucket, verifier)  # type: ignore[arg-type]
        span = replay_lib.window(s3, found.backup_bucket, manifest, all_bases,  # type: ignore[arg-type]
                                 verifier, datetime.now(UTC))
    except (replay_lib.ReplayError, replay_lib.SegmentError) as err:
        found.missing.append(f"change log: {err}")
        return
    if span is None:
        found.missing.append(f"change log: no base of backup {manifest.backup_id}'s source in "
                             f"s3://{found.backup_bucket}; pass --without-log to restore the dump alone")
        return
    base, _ = replay_lib.base_of(manifest, all_bases)
    found.log_base, found.log_end = base.base_id if base else None, span[1].isoformat()


def _read_states(client: Any, config: EnvironmentConfig, arns: dict[str, str]) -> list[secrets_lib.SecretState]:
    entries = tuple(e for e in config.secrets.all_entries if e.name in arns)
    return secrets_lib.read_states(client, entries, arns)


public_key_option = click.option(
    "--signing-public-key", type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The manifest signing key's public key (DER from `aws kms get-public-key`, or PEM), exported while the "
         "primary region was up.")
backup_choice = click.option("--backup", "which", default="latest", show_default=True,
                             help="latest, or a backup ID, in the DR replica of the backup bucket.")
change_key_option = click.option(
    "--change-signing-public-key", type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The change log's signing key's public key (DER or PEM), exported while the primary region was up: the "
         "replicated log is replayed to its end after the dump.")
without_log_option = click.option("--without-log", is_flag=True,
                                  help="Restore the dump alone, not the replicated change log after it (everything "
                                       "committed after the dump is lost; said in the plan).")


def _survey(config: EnvironmentConfig, target: AwsTarget, signing_public_key: Path | None, which: str,
            change_signing_public_key: Path | None, without_log: bool) -> Survey:
    return survey(config, target, signing_public_key.read_bytes() if signing_public_key else None, which,
                  change_public_key=change_signing_public_key.read_bytes() if change_signing_public_key else None,
                  without_log=without_log)


@aws_command(group, "plan", "Say what a failover to the DR region would use, and what is missing; change nothing."
                            "\n\n\b\nExamples:"
                            "\n  tavari-dr failover plan --env prod --signing-public-key "
                            "signing-key.der")
@public_key_option
@change_key_option
@without_log_option
@backup_choice
@format_option
def plan(config, target, signing_public_key, change_signing_public_key, without_log, which, output_format):
    found = _survey(config, target, signing_public_key, which, change_signing_public_key, without_log)
    answer(output_format, found.document(), found.lines,
           failure=f"failover to {found.dr_region} is not possible yet: {len(found.missing)} thing(s) missing"
           if found.missing else None,
           summary=f"ready: `tavari-dr failover apply --env {config.name}` restores from {found.dr_region} alone")


@aws_command(group, "apply", "Restore into the DR region from its replicas (database, configuration) and print what "
                             "the application must be pointed at; never calls the primary region."
                             "\n\n\b\nExamples:"
                             "\n  tavari-dr failover apply --env prod --signing-public-key "
                             "signing-key.der --target-url postgresql://localhost/restored "
                             "--out failover.env")
@public_key_option
@change_key_option
@without_log_option
@backup_choice
@click.option("--target-url", required=True, help="The new, empty database in the DR region to restore into.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Where the configuration from the replicas is written (an env file, mode 0600).")
@click.option("--force", is_flag=True, help="Overwrite an existing --out file.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (what will be done is still printed).")
@click.option("--audit-bucket", help="Where the audit record goes (default: the DR replica of the backup bucket, "
                                     "under audit/).")
@pg_bin_option
@jobs_option
@work_dir_option
@backup_errors
def apply(config, target, signing_public_key, change_signing_public_key, without_log, which, target_url, out, force,
          yes, audit_bucket, pg_bin, jobs, work_dir):
    if out.exists() and not force:
        raise click.UsageError(f"{out} exists; pass --force to overwrite it")
    found = _survey(config, target, signing_public_key, which, change_signing_public_key, without_log)
    for line in found.lines():
        click.echo(line)
    if found.missing:
        raise Failed(f"failover to {found.dr_region} refused: {len(found.missing)} thing(s) missing (above)")
    database = db_lib.parse_database_url(target_url).url_without_password
    if not yes and not _confirmed(f"Restore {found.backup_id} into {database} and write the configuration to "
                                  f"{out}?"):
        raise Failed("not confirmed: nothing was changed")
    s3 = target.client("s3", dr=True)
    bucket = audit_bucket or found.backup_bucket
    record = AuditRecord("failover", caller=caller_arn(target.client("sts", dr=True)),
                         source={"region": found.dr_region, "backup_bucket": found.backup_bucket,
                                 "backup": found.backup_id, "invoice_bucket": found.invoice_bucket,
                                 "secrets": found.secret_arns},
                         target={"database": database, "env_file": str(out)})
    outcome = "failed: interrupted"
    try:
        options: dict[str, Any] = {"tiers": config.database_backups.tiers, "pg_bin": pg_bin, "jobs": jobs,
                                   "work_dir": work_dir, "datasets": config.data_export.datasets,
                                   "log": lambda message: click.echo(f"  {message}")}
        manifests = PublicKeyVerifier(signing_public_key.read_bytes())
        if found.log_end is not None:  # the dump, then the replicated log to its newest commit
            from tavari_dr.changes import pitr
            from tavari_dr.changes import replay as replay_lib

            to = datetime.fromisoformat(found.log_end)
            changes = PublicKeyVerifier(change_signing_public_key.read_bytes(),
                                        "the change signing key's exported public key")
            try:
                result, replayed = pitr.restore_to(s3, found.backup_bucket, to, target_url, verifier=manifests,
                                                   change_verifier=changes, **options)
            except (replay_lib.ReplayError, replay_lib.SegmentError) as err:
                raise Failed(f"refused before writing anything: {err}") from None
            record.details.update(restored_to=found.log_end, replayed_transactions=replayed.applied)
        else:
            result = db_lib.restore(s3, found.backup_bucket, found.backup_id, target_url, verifier=manifests,
                                    **options)
        record.details.update(rows={t: f for t, (_, f) in result.table_counts.items()}, erased_rows=result.erased,
                              trust=result.trust)
        if not result.ok:
            raise Failed(f"restored {result.backup_id}, but a check failed: "
                         f"{', '.join(result.mismatches()) or [c for c in result.checks if not c[1]]}")
        _write_env(out, found.secret_values)
        outcome = "failed over"
    except (click.ClickException, BackupError) as err:
        outcome = f"failed: {err.format_message() if isinstance(err, click.ClickException) else err}"
        raise
    finally:
        click.echo(f"audit record: s3://{bucket}/{record.write(s3, bucket, outcome)}", err=True)
    click.echo(f"restored {result.backup_id} ({result.trust})"
               + (f" and the change log to {found.log_end}" if found.log_end else " (the dump alone)")
               + f" into {database} in {result.duration_seconds:.1f} s; every row count matches")
    click.echo(f"wrote {len(found.secret_values)} value(s) to {out} (mode 0600)")
    for line in pointers(found, database, out):
        click.echo(line)


def pointers(found: Survey, database: str, out: Path) -> list[str]:
    return [
        "point the application at:",
        f"  region:        {found.dr_region} (AWS_REGION)",
        f"  database:      {database} (its connection string, and BACKUP_DATABASE_URL: `tavari-dr secrets push` "
        "once the configuration lives in a region that is up)",
        f"  invoice bucket: {found.invoice_bucket} (KMS key {found.invoice_key})",
        f"  configuration: {out} (from the replicas: {', '.join(sorted(found.secret_values))})",
        "  the backups:   the nightly job must not run against the old region; redeploy with the DR region as "
        "primary once the outage is understood (docs/runbooks/region-outage.md)",
    ]


def _write_env(out: Path, values: dict[str, str]) -> None:
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(dump(values))


def _confirmed(question: str) -> bool:
    try:
        return click.confirm(question, default=False)
    except click.Abort:  # end of input: no answer is no
        return False
