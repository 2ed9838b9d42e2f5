"""`tavari-dr drill --local`: the plan's disaster scenarios on this machine (tavari_dr.drill)."""

from __future__ import annotations

from pathlib import Path

import click
from click.core import ParameterSource

from tavari_dr.cli.common import Failed, TavariCommand, reports_errors, shared_options, with_options
from tavari_dr.core.config import load_from_file
from tavari_dr.drill.context import FAULTS

# The local drill starts its own emulator in the environment's regions: these shared options have
# nothing to point it at, and saying so beats ignoring them.
NOT_FOR_THE_LOCAL_DRILL = ("region", "dr_region", "endpoint_url")


def _drill(local, env_name, cdk_json, region, dr_region, endpoint_url, cdk_out, report_dir, businesses, messages,
           inject_fault, operator):
    from tavari_dr.drill.context import Sizes
    from tavari_dr.drill.report import rto_text
    from tavari_dr.drill.runner import LocalDrill

    if not local:
        raise click.UsageError("only --local runs here; in AWS the quarterly drill is the DrDrill state machine "
                               "(see docs/runbooks/quarterly-drill.md)")
    context = click.get_current_context()
    given = [f"--{name.replace('_', '-')}" for name in NOT_FOR_THE_LOCAL_DRILL
             if context.get_parameter_source(name) is ParameterSource.COMMANDLINE]
    if given:
        raise click.UsageError(f"{', '.join(given)}: the local drill starts its own emulator in the environment's "
                               "regions; drop the option")
    config = load_from_file(env_name, cdk_json)
    cdk_out = cdk_out or Path("cdk.out") / env_name
    if not (cdk_out / "manifest.json").is_file():
        raise click.UsageError(f"{cdk_out}/manifest.json not found: synthesize first (make synth)")
    report = LocalDrill(config, cdk_out, report_dir, sizes=Sizes(businesses=businesses, messages=messages),
                        fault=inject_fault, progress=click.echo, cdk_json=cdk_json, operator=operator).run()
    click.echo("")
    for name, data in report["scenarios"].items():
        c, n = data["rto_critical"], data["rto_non-critical"]
        if c.get("failed_at"):
            click.echo(f"{name}: RTO {rto_text(c)}")
            continue
        click.echo(f"{name}: projected RTO critical {c['projected_seconds'] / 60:.1f} min (objective "
                   f"{c['objective_seconds'] / 60:.0f} min), all services {n['projected_seconds'] / 60:.1f} min "
                   f"(objective {n['objective_seconds'] / 60:.0f} min); {n['measured_seconds']:.1f} s wall time here")
    worst = report["rpo_worst_case"]
    click.echo(f"RPO worst case the configuration allows: {worst['worst_case_seconds'] / 3600:.1f} h (objective "
               f"{worst['objective_seconds'] / 3600:.0f} h)")
    click.echo(f"report (emulated): {report_dir / 'drill-report.html'} (timelines), {report_dir / 'drill-report.md'} "
               f"and {report_dir / 'drill-report.json'}, sealed by {report_dir / 'SHA256SUMS'}")
    if not report["passed"]:
        raise Failed("drill FAILED: " + "; ".join(report["failures"] or ["an objective was missed"]))
    click.echo("drill passed")


command = click.command(
    "drill", cls=TavariCommand,
    help="Disaster-recovery drill: --local plays the plan's three scenarios on this machine (emulated AWS, "
                  "throwaway PostgreSQL) and writes a report; exit 1 on any missed objective or failed verification."
                  "\n\n\b\nExamples:"
                  "\n  tavari-dr drill --local --env prod --report-dir drill-report"
)(with_options([
    click.option("--local", is_flag=True,
                 help="Run locally (the quarterly drill in AWS is the DrDrill state machine)."),
    *shared_options(env_required=False, env_default="prod"),
    click.option("--cdk-out", type=click.Path(file_okay=False, path_type=Path),
                 help="Synthesized app (default: cdk.out/<env>, as `make synth` writes it)."),
    click.option("--report-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("drill-report"),
                 show_default=True),
    click.option("--businesses", type=click.IntRange(1), default=12, show_default=True,
                 help="Toy data: businesses."),
    click.option("--messages", type=click.IntRange(1), default=4000, show_default=True,
                 help="Messages per business."),
    click.option("--inject-fault", type=click.Choice(FAULTS),
                 help="Break something on purpose; the drill must then fail at the right step."),
    click.option("--operator", help="Who ran the drill, for the report (default: the OS user)."),
], reports_errors(_drill)))
