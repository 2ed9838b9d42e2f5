"""`tavari-dr`: the operator CLI. Exit codes: 0 ok, 1 a check or operation failed, 2 usage error.

One module per command group (secrets, bucket, db, erasure, supabase, verify, status, export, drill, failover,
breach); what they share is in tavari_dr.cli.common. Every command that talks to AWS takes --env
(config from cdk.json through tavari_dr.core.config, the loader app.py uses), --cdk-json, --region,
--dr-region and --endpoint-url (an emulator such as moto server, or real AWS), and finds deployed resources
through the stacks' CloudFormation outputs; each resource can also be named explicitly.
Commands that report take --format json (one JSON document on stdout) beside the human text.
"""

from __future__ import annotations

import click

from tavari_dr.cli import breach, bucket, db, drill, erasure, export, failover, secrets, status, supabase, verify
from tavari_dr.core import observability
from tavari_dr.core.aws import count_requests_of_this_process


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              envvar="TAVARI_DR_LOG_FORMAT",
              help="Logs on stderr: text (warnings and errors), or json (one structured line per event, with "
                   "the job and backup or restore ID as keys, as the Lambdas write; the scheduled tasks use it).")
def main(log_format: str) -> None:
    """Tavari backup and disaster-recovery operator tool."""
    observability.cli_logging(log_format)


for _command in (secrets.group, bucket.group, db.group, erasure.group, supabase.group, verify.command, status.command,
                 export.group, drill.command, failover.group, breach.group):
    main.add_command(_command)


def run() -> None:
    count_requests_of_this_process()
    main(prog_name="tavari-dr")


if __name__ == "__main__":
    run()
