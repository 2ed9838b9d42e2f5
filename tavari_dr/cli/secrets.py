"""`tavari-dr secrets push|pull|check`: configuration backups in Secrets Manager (tavari_dr.configbackup)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from tavari_dr.cli.common import Deployed, Failed, answer, aws_command, format_option
from tavari_dr.configbackup import secrets as secrets_lib
from tavari_dr.core.aws import AwsTarget
from tavari_dr.core.config import EnvironmentConfig
from tavari_dr.core.envfile import dump, parse


@click.group("secrets")
def group() -> None:
    """Configuration backups in Secrets Manager: push, pull, check."""


def _states(config: EnvironmentConfig, target: AwsTarget, explicit: tuple[str, ...], from_replica: bool = False):
    arns = Deployed(config, target).secret_arns(explicit)
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


@aws_command(group, "push", "Map an env file onto the declared entries; write only with --apply."
                            "\n\n\b\nExamples:"
                            "\n  tavari-dr secrets push --env prod --env-file .env.production"
                            "\n  tavari-dr secrets push --env prod --env-file .env.production "
                            "--apply")
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


@aws_command(group, "pull", "Rebuild an env file (mode 0600) from the secrets."
                            "\n\n\b\nExamples:"
                            "\n  tavari-dr secrets pull --env prod --out .env.restored "
                            "--from-replica")
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


@aws_command(group, "check", "Every required entry exists, is not a placeholder, and is fresh enough."
                             "\n\n\b\nExamples:"
                             "\n  tavari-dr secrets check --env prod --max-age-days 90")
@click.option("--max-age-days", type=click.IntRange(min=1), help="Fail entries not changed within N days.")
@secret_arn_option
@from_replica_option
@format_option
def check(config, target, max_age_days, secret_arns, from_replica, output_format):
    _, states = _states(config, target, secret_arns, from_replica)
    rows = secrets_lib.check(states, max_age_days=max_age_days)
    failed = [r.name for r in rows if r.failed]

    def table():
        width = max(len(r.name) for r in rows)
        yield f"{'ENTRY':<{width}}  REQUIRED  STATUS            LAST CHANGED"
        for r in rows:
            changed = r.last_changed.strftime("%Y-%m-%d %H:%M UTC") if r.last_changed else "-"
            yield f"{r.name:<{width}}  {'yes' if r.required else 'no':<8}  {r.status:<16}  {changed}"

    answer(output_format, {"entries": [{"name": r.name, "required": r.required, "status": r.status,
                                        "failed": r.failed,
                                        "last_changed": r.last_changed.isoformat() if r.last_changed else None}
                                       for r in rows], "failed": failed}, table,
           failure=f"{len(failed)} entr{'y' if len(failed) == 1 else 'ies'} failed: {', '.join(failed)}"
           if failed else None,
           summary=f"all {len(rows)} entries ok")
