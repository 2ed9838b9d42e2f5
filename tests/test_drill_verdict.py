"""A drill scenario that failed is never "met": the verdict (tavari_dr.drill.judge), the report's JSON and
markdown (tavari_dr.drill.report) and `tavari-dr drill`'s exit code agree, for every fault the drill can
inject. The steps are the ones the drill records under each fault (no emulator, no PostgreSQL: the real
drill with --inject-fault is the lead's end-to-end run)."""

from __future__ import annotations

import json

import jsonschema
import pytest
from click.testing import CliRunner

from tavari_dr.cli import main
from tavari_dr.core import evidence
from tavari_dr.core.config import load_environment
from tavari_dr.core.costmodel import Counts
from tavari_dr.drill import runner
from tavari_dr.drill.context import CRITICAL, FAULTS, Step
from tests.conftest import ROOT, cdk_context

S1 = "1 database corruption"


def _corrupt_backup() -> tuple[list[Step], str]:
    """--inject-fault corrupt-backup, as the drill records it: scenario 1 finds the damage and its backup,
    then the restore refuses the tampered artifact and the drill stops there."""
    refused = ("DrillFailed: `tavari-dr db restore --env prod ...` exited 1: backup 2027-03-01T00-30-00Z: "
               "data/toc.dat: sha256 differs from the signed manifest (tampered)")
    return [
        Step(S1, "identify the corruption (content hashes against the last verified state)", seconds=0.2,
             detail="damaged tables: public.invoices, public.messages"),
        Step(S1, "identify the last good backup", seconds=1.1, recovery=CRITICAL, kind="cli",
             counts=Counts(requests={"list": 1, "get": 2}, processes=1), detail="newest complete backup: x"),
        Step(S1, "restore the database from the off-site backup", seconds=2.0, ok=False, recovery=CRITICAL,
             kind="db_restore", counts=Counts(requests={"list": 1, "get": 3}, processes=1), detail=refused),
    ], f"{S1}: restore the database from the off-site backup: {refused}"


# Every fault `--inject-fault` offers, with the steps the drill records under it.
RECORDED = {"corrupt-backup": _corrupt_backup}


def test_every_fault_has_a_recording():
    assert set(RECORDED) == set(FAULTS)


@pytest.mark.parametrize("fault", FAULTS)
def test_a_scenario_that_failed_is_not_met_in_the_table_the_json_or_the_exit_code(fault, tmp_path, monkeypatch):
    steps, error = RECORDED[fault]()
    failed = next(s for s in steps if not s.ok)
    # The data-loss window the scenario measured before it failed: within the objective, still not met.
    facts = {"rpo": {S1: {"incident": "2027-03-01T00:40:00+00:00", "restore_point": "2027-03-01T00:39:59+00:00",
                          "data_loss_window_seconds": 1.0}}}

    def recorded_run(self):  # what LocalDrill.run ends with, after the drill recorded these steps
        self.steps, self.facts = steps, facts
        return self._report(error)

    monkeypatch.setattr(runner.LocalDrill, "run", recorded_run)
    cdk_out = tmp_path / "cdk.out"
    cdk_out.mkdir()
    (cdk_out / "manifest.json").write_text("{}")
    report_dir = tmp_path / "report"
    result = CliRunner().invoke(main, ["drill", "--local", "--env", "prod", "--cdk-json", str(ROOT / "cdk.json"),
                                       "--cdk-out", str(cdk_out), "--report-dir", str(report_dir),
                                       "--inject-fault", fault])
    assert result.exit_code == 1, result.output
    assert "drill FAILED" in result.output and "Traceback" not in result.output
    assert f"{S1}: RTO not met (failed at step: {failed.name})" in result.output

    document = json.loads((report_dir / "drill-report.json").read_text())
    assert document["passed"] is False
    scenario = document["scenarios"][S1]
    # (a failed drill's whole report lacks the scenarios it never played: its scenario is checked alone)
    schema = evidence.report_schema()
    scenario_schema = {"$defs": schema["$defs"], **schema["properties"]["scenarios"]["additionalProperties"]}
    jsonschema.validate(scenario, scenario_schema)
    for kind in ("rto_critical", "rto_non-critical"):
        assert scenario[kind]["met"] is False and scenario[kind]["failed_at"] == failed.name
    assert scenario["rpo"]["met"] is False and scenario["rpo"]["failed_at"] == failed.name
    # The schema refuses a failed scenario reported as met.
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**scenario, "rto_critical": {**scenario["rto_critical"], "met": True}}, scenario_schema)

    table = (report_dir / "drill-report.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith(f"| {S1} |"))
    assert f"not met (failed at step: {failed.name})" in row and row.endswith("| FAILED |")
    assert " met |" not in row
    for name in ("2 complete system failure", "3 data breach", "4 region outage"):
        assert f"| {name} | not played (the drill stopped) |" in table


def test_a_scenario_that_ran_every_step_is_judged_by_its_projection(tmp_path):
    """The counterpart: the same scenario without the failure is met (the judge did not just say no)."""
    steps, _ = _corrupt_backup()
    steps[-1].ok = True
    drill = runner.LocalDrill(load_environment(cdk_context(), "prod"), tmp_path, tmp_path / "report",
                              progress=lambda _: None, cdk_json=ROOT / "cdk.json")
    drill.steps = steps
    document = drill._report(None)
    scenario = document["scenarios"][S1]
    assert scenario["rto_critical"]["met"] is True and "failed_at" not in scenario["rto_critical"]
