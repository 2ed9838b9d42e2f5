"""What a passing drill says about itself is true of what it ran: the capture checks run when the drill runs the
capture (it always does: setup starts it), and its status step does not warn of the report the drill writes
after it. The jobs and the status step are called on a drill context whose commands and Lambda handler are
recorded (no emulator: the drill end to end is tests/test_drill.py)."""

from __future__ import annotations

import contextlib
import json
from types import SimpleNamespace

import pytest

from tavari_dr.core import outputs
from tavari_dr.core.config import load_environment
from tavari_dr.drill import jobs, runner
from tavari_dr.drill.context import Drill, Sizes, Step
from tavari_dr.status import sources
from tavari_dr.verification import jobs as verification
from tests.conftest import ROOT, cdk_context

UNREACHABLE = "http://127.0.0.1:9"  # nothing is asked of it: the handler and the commands are recorded


def drill(tmp_path, *, capture: bool) -> Drill:
    config = load_environment(cdk_context(), "prod")
    backups = SimpleNamespace(
        outputs={outputs.CHANGE_CAPTURE_SERVICE_NAME: "tavari-prod-change-capture"},
        functions={f"Tavari verification: {job}": {"TAVARI_VERIFICATION": json.dumps({}),
                                                   "TAVARI_TARGETS": json.dumps({"changes_enabled": True})}
                   for job in verification.JOBS})
    d = Drill(config=config, sizes=Sizes(), cdk_json=ROOT / "cdk.json", report_dir=tmp_path / "report",
              work=tmp_path, say=lambda _: None, steps=[], facts={}, moto=SimpleNamespace(url=UNREACHABLE),
              primary=None, deployer=None, env={}, versions={}, services=contextlib.ExitStack(),
              deployment=SimpleNamespace(stacks={config.stack_name(outputs.DATABASE_BACKUPS): backups}),
              standin=SimpleNamespace(url=UNREACHABLE))
    if capture:
        d.capture_source = "5f1c0a9e"  # what capture.start records, in setup's last step, before the jobs
    return d


@pytest.mark.parametrize("capture", [True, False], ids=["capture running", "no capture"])
def test_the_job_steps_say_truthfully_why_they_leave_the_capture_freshness_out(tmp_path, monkeypatch, capture):
    d = drill(tmp_path, capture=capture)
    told: list[bool] = []

    def handle(job, environment):  # the scheduled Lambdas' handler, given their deployed environment
        told.append(json.loads(environment["TAVARI_TARGETS"])["changes_enabled"])
        return {"results": {f"{job} checks": "PASS"}}

    monkeypatch.setattr(verification, "handle", handle)
    commands: list[tuple[str, ...]] = []

    def cli_json(step, *args):
        commands.append(args)
        return {"checks": [a for a in args if a in verification.CHECKS] or list(verification.CHECKS)}

    monkeypatch.setattr(d, "cli_json", cli_json)
    scheduled, by_hand = Step("jobs", "checks"), Step("jobs", "verify")
    jobs._verify(d, scheduled)
    jobs._verify_cli(d, by_hand)

    # Whether or not the capture ran, the job steps leave its freshness out and say why, truthfully (it was:
    # "not exercised: the drill ran no continuous capture", the capture running).
    assert told and not any(told)
    assert scheduled.detail.endswith(f"(change_freshness {jobs.UNEXERCISED})")
    assert "ran no continuous capture" not in scheduled.detail + by_hand.detail
    asked = [commands[0][i + 1] for i, a in enumerate(commands[0]) if a == "--check"]
    assert asked == [c for c in verification.CHECKS if c != jobs.CHANGE_CHECK]
    assert by_hand.detail.endswith(f"(change_freshness {jobs.UNEXERCISED})")


def test_the_status_step_leaves_the_drill_s_own_report_to_the_drill(tmp_path):
    """The drill runs `tavari-dr status` before it writes its report: the board is told so, and says the local drill
    is not judged there (never "WARN no local drill report" in a passing drill)."""
    d = drill(tmp_path, capture=True)
    commands: list[tuple[str, ...]] = []
    d.cli = lambda step, *args: commands.append(args) or "all green (23 ok, 0 warn, 0 red, 0 unreadable)"
    local = runner.LocalDrill(d.config, tmp_path, d.report_dir, progress=lambda _: None, cdk_json=d.cdk_json)
    step = Step("status", "tavari-dr status")
    local._status(d, step)
    assert commands == [("status", "--env", "prod", "--no-drill-report")]
    (row,) = sources.local_drill(SimpleNamespace(drill_report=None))
    assert row.level == sources.OK and row.summary.startswith("not judged here")
