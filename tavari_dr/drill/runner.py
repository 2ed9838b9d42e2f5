"""`tavari-dr drill --local`: the plan's disaster scenarios, played end to end on this machine.

A moto server stands in for AWS, a throwaway PostgreSQL cluster for Supabase's database, and a
small HTTP server for the Supabase Management API and the application's health endpoints. The
app's synthesized templates are deployed into the emulator (tavari_dr.drill.local_deploy), data is
seeded, the real jobs run, and then the three scenarios are played with the same `tavari-dr`
commands the runbooks give (run as separate processes, exactly as an operator types them).

Every step records what it did — requests by kind, bytes, rows, commands started — and the cost
model (tavari_dr.core.costmodel) prices those counts at the production sizes in cdk.json (``drill``):
that projected RTO is what is judged, so the verdict is the same on an idle and on a loaded
machine. Wall time is still measured and shown, for information only. The report is an evidence
pack: commit, versions, host, operator, every command exactly as run, the per-key restore reports,
and a SHA256SUMS over its files; it validates against tavari_dr/core/data/drill-report.schema.json.

The pieces: setup builds the context once (tavari_dr.drill.context; the services it starts are
held by one ExitStack), tavari_dr.drill.jobs runs the jobs, tavari_dr.drill.scenarios plays one
function per scenario, tavari_dr.drill.judge prices and judges, tavari_dr.drill.report writes.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tavari_dr.core import evidence
from tavari_dr.core.config import EnvironmentConfig
from tavari_dr.drill import jobs, report, scenarios, setup
from tavari_dr.drill.context import Drill, DrillFailed, Sizes, Step
from tavari_dr.drill.judge import judge


class LocalDrill:
    """One run of the drill: what it was asked, what it recorded (steps, facts), and its report."""

    def __init__(self, config: EnvironmentConfig, cdk_out: Path, report_dir: Path, *, sizes: Sizes | None = None,
                 fault: str | None = None, progress: Callable[[str], None] = print,
                 cdk_json: Path = Path("cdk.json"), operator: str | None = None) -> None:
        self.config, self.cdk_out, self.report_dir = config, cdk_out, report_dir
        self.sizes, self.fault, self.say = sizes or Sizes(), fault, progress
        # Every command the drill starts reads this file, never whatever cdk.json lies in its directory.
        self.cdk_json = Path(cdk_json).resolve()
        self.operator = operator or evidence.os_user()
        self.steps: list[Step] = []
        self.facts: dict[str, Any] = {}
        self.started = datetime.now(UTC)
        self.work = Path(tempfile.mkdtemp(prefix="tavari-drill-"))

    def run(self) -> dict[str, Any]:
        self.started = datetime.now(UTC)
        self._clear_previous_report()
        error, context = None, None
        self.say(f"drill of {self.config.name}: emulator, PostgreSQL and Supabase stand-ins starting")
        try:
            with contextlib.ExitStack() as services:
                context = setup.start(config=self.config, sizes=self.sizes, cdk_json=self.cdk_json,
                                      report_dir=self.report_dir, work=self.work, say=self.say, steps=self.steps,
                                      facts=self.facts, services=services)
                self._play(context)
        except DrillFailed as failed:
            error = str(failed)
        except Exception as crashed:  # a failure outside a step (setup, the incident itself): still a report
            error = f"{type(crashed).__name__}: {crashed}"
            self.say(f"drill stopped: {error}")
        written = self._report(error, context)
        if written["passed"]:
            shutil.rmtree(self.work, ignore_errors=True)
        else:
            self.say(f"work files kept for the investigation: {self.work} (emulator log, env files, restore state)")
        return written

    def _play(self, context: Drill) -> None:
        setup.prepare(context, self.cdk_out)
        jobs.run(context)
        if self.fault == "corrupt-backup":
            jobs.corrupt_newest_backup(context)
        for scenario in scenarios.PLAYED:
            scenario(context)
        context.step("status", "tavari-dr status (the operator's one screen, from stored evidence)",
                     lambda step: self._status(context, step))

    def _status(self, context: Drill, step: Step) -> None:
        """What an operator sees after the incidents: it must be all green (exit 0), or the drill fails."""
        # This run's report is written after this step (it holds the step): judged by the drill itself.
        output = context.cli(step, "status", "--env", self.config.name, "--no-drill-report")
        for line in output.splitlines():
            self.say(f"  {line}")
        step.detail = output.splitlines()[-1] if output else ""

    def _clear_previous_report(self) -> None:
        """A new run replaces the drill's own files in the report folder (a stale restore journal would
        make this run skip work and count less); anything else there is left alone."""
        if not self.report_dir.is_dir():
            return
        for name in report.FILES:
            (self.report_dir / name).unlink(missing_ok=True)
        for state_dir in self.report_dir.glob("bucket-restore-scenario-*"):
            shutil.rmtree(state_dir)

    def _report(self, error: str | None, context: Drill | None = None) -> dict[str, Any]:
        """Judge what was recorded, then write the report (``context``: what setup built, if it got that far)."""
        verdict = judge(config=self.config, sizes=self.sizes, steps=self.steps, facts=self.facts,
                        started=self.started, error=error)
        document = report.document(verdict, config=self.config, sizes=self.sizes, steps=self.steps,
                                   facts=self.facts, started=self.started, operator=self.operator, error=error,
                                   context=context)
        report.write(document, self.report_dir)
        return document
