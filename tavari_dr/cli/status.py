"""`tavari-dr status`: the operator's one screen, from stored evidence (tavari_dr.status; ADR 0025)."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from tavari_dr.cli.common import aws_command, echo_json, error, format_option
from tavari_dr.core import aws
from tavari_dr.status import board as board_lib
from tavari_dr.status import sources


def no_retries():
    """One attempt per call and short timeouts: status reports what is stored, it does not wait for a
    service to come back (a source that does not answer is a "could not read" line, exit 2)."""
    from botocore.config import Config  # here, not at import: `status --help` loads no AWS SDK

    return Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=2, read_timeout=5)


def colour_wanted() -> bool:
    """Colours on a terminal, never when NO_COLOR is set (https://no-color.org) or output is piped."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def _given_report_exists(ctx: click.Context, param: click.Parameter, value: Path) -> Path:
    """A --drill-report named on the command line must be there (the default may not be: the board says so)."""
    from click.core import ParameterSource

    if ctx.get_parameter_source(param.name or "") is ParameterSource.COMMANDLINE and not value.is_file():
        raise click.BadParameter(f"{value}: no such file")
    return value


@aws_command(None, "status", "The environment's state from stored evidence (backups, reports, drills, alarms, "
                             "metrics, jobs, secrets, restores); exit 0 all green, 1 anything red, 2 a source "
                             "could not be read."
                             "\n\n\b\nExamples:"
                             "\n  tavari-dr status --env prod")
@click.option("--drill-report", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("drill-report/drill-report.json"), show_default=True, callback=_given_report_exists,
              help="The local drill's report (tavari-dr drill --local writes it).")
@click.option("--no-drill-report", is_flag=True,
              help="Judge no local drill report (the drill runs status before it writes its own).")
@format_option
def command(config, target, drill_report, no_drill_report, output_format):
    now = datetime.now(UTC)
    if no_drill_report:
        drill_report = None

    config_without_retries = no_retries()

    def make_client(service: str, region: str | None):
        return aws.client(service, region=region or target.region, endpoint_url=target.endpoint_url,
                          config=config_without_retries)

    evidence = sources.Evidence(config=config, now=now, client=make_client, drill_report=drill_report,
                                emulator=target.endpoint_url is not None)
    board = sources.collect(evidence, make_client,
                            board_lib.Board(config.name, now.isoformat(timespec="seconds")))
    if output_format == "json":
        echo_json(board.to_json())
    else:
        colour = colour_wanted()
        for line in board_lib.lines(board, style=click.style if colour else None):
            click.echo(line, color=colour)
        click.echo(board_lib.verdict(board))
    for item in board.unreadable:  # one line per source, never a traceback
        click.echo(f"could not read {item.source}: {item.reason}", err=True)
        error("unreadable", f"could not read {item.source}: {item.reason}")
    if board.exit_code == 1:
        error("red", board_lib.verdict(board))
    sys.exit(board.exit_code)
