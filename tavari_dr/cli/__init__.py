"""`tavari-dr`: the operator CLI. Exit codes: 0 ok, 1 a check or operation failed, 2 usage error.

One module per command group (secrets, bucket, db, erasure, supabase, verify, status, export, drill, failover,
breach); what they share is in tavari_dr.cli.common. Every command that talks to AWS takes --env
(config from cdk.json through tavari_dr.core.config, the loader app.py uses), --cdk-json, --region,
--dr-region and --endpoint-url (an emulator such as moto server, or real AWS), and finds deployed resources
through the stacks' CloudFormation outputs; each resource can also be named explicitly.
Every command takes --format json: one JSON document on stdout, the same envelope for all of them, on
success and on failure (tavari_dr.cli.common, docs/decisions/0034).
"""

from __future__ import annotations

import importlib

import click

# name -> "module:attribute". A command's module is imported when that command is run or listed, not before
# (click's documented LazyGroup pattern): `tavari-dr db restore --help` loads tavari_dr.cli.db alone. Each
# module imports no AWS SDK, tracer or database driver at its top (docs/decisions/0034;
# tests/test_cli_contract.py holds every one of them to it).
COMMANDS = {
    "secrets": "tavari_dr.cli.secrets:group", "bucket": "tavari_dr.cli.bucket:group", "db": "tavari_dr.cli.db:group",
    "erasure": "tavari_dr.cli.erasure:group", "supabase": "tavari_dr.cli.supabase:group",
    "verify": "tavari_dr.cli.verify:command", "status": "tavari_dr.cli.status:command",
    "export": "tavari_dr.cli.export:group", "drill": "tavari_dr.cli.drill:command",
    "failover": "tavari_dr.cli.failover:group", "breach": "tavari_dr.cli.breach:group",
    "config": "tavari_dr.cli.config:group",
}


class LazyGroup(click.Group):
    """A group whose commands are imported on first use, from ``lazy`` (name -> "module:attribute")."""

    def __init__(self, *args: object, lazy: dict[str, str], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            module, _, attribute = self.lazy[cmd_name].partition(":")
            command = getattr(importlib.import_module(module), attribute)
            if not isinstance(command, click.Command):
                raise TypeError(f"{self.lazy[cmd_name]} is not a click command")
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              envvar="TAVARI_DR_LOG_FORMAT",
              help="Logs on stderr: text (warnings and errors), or json (one structured line per event, with "
                   "the job and backup or restore ID as keys, as the Lambdas write; the scheduled tasks use it).")
@click.pass_context
def main(ctx: click.Context, log_format: str) -> None:
    """Tavari backup and disaster-recovery operator tool."""
    from tavari_dr.core import observability

    observability.cli_logging(log_format)
    # One trace per command where a collector listens (the scheduled tasks' sidecar), ended with the command.
    ctx.with_resource(observability.command_span(f"tavari-dr {ctx.invoked_subcommand}"))


def run() -> None:
    from tavari_dr.core.aws import count_requests_of_this_process

    count_requests_of_this_process()
    main(prog_name="tavari-dr")


if __name__ == "__main__":
    run()
