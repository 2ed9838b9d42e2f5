"""The quarterly disaster-recovery drill in AWS (a Step Functions state machine, see
backup_constructs/quarterly_drill.py): the steps that need code, run by the ``dr_drill`` Lambda.

The state machine runs three branches in parallel — the full database restore test (the monthly
Fargate task), the S3 restore test (the monthly verification Lambda) and a secrets check — and
each branch records when it started and finished (``$$.State.EnteredTime``). ``report`` turns
that into the drill report: each step's duration is the RTO achieved for that part on real data
and real AWS; critical steps (database, configuration) are summed against the critical RTO and
all steps against the non-critical RTO (summing is conservative: an operator may not run them
in parallel). The report goes to ``reports/quarterly_drill/<date>.json`` (and ``.md``) in the
reports bucket, metrics go out as EMF, and a missed objective fails the execution.

The report follows the same schema as the local drill's (tavari_dr/core/data/drill-report.schema.json):
where a branch reports what it did (``counts``: requests by kind, bytes), the cost model's
estimate stands beside the real duration with its error (measured / predicted - 1), which is how
the model's S3 constants get corrected from real runs.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tavari_dr.configbackup.secrets import check, read_states
from tavari_dr.core import costmodel, evidence, metrics
from tavari_dr.core.aws import RequestCounter
from tavari_dr.core.config import SecretEntry
from tavari_dr.core.costmodel import Counts

JOB = metrics.QUARTERLY_DRILL
log = logging.getLogger("tavari.verification")


@dataclass(frozen=True)
class Objectives:
    rto_critical_seconds: int
    rto_non_critical_seconds: int


def secrets_step(secretsmanager: Any, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """`tavari-dr secrets check`, as a drill step: every required entry exists and is set."""
    counter = RequestCounter()
    counter.attach(secretsmanager)
    declared = tuple(SecretEntry(e["name"], e.get("description", ""), e.get("required", True)) for e in entries)
    states = read_states(secretsmanager, declared, {e["name"]: e["arn"] for e in entries})
    rows = check(states)
    failed = [f"{row.name}: {row.status}" for row in rows if row.failed]
    return {"results": {"secrets_check": "FAIL" if failed else "PASS"}, "details": failed,
            "counts": counter.counts.to_json()}


def _modelled(branch: dict[str, Any]) -> tuple[Counts, dict[str, Any] | None]:
    """The cost model's estimate for a branch that reported its counts (None for one that did not,
    such as the Fargate restore test, which returns only its exit code)."""
    reported = (branch.get("result") or {}).get("counts")
    if reported is None:
        return Counts(), None
    counts = Counts.from_json(reported)
    return counts, costmodel.requests_as_counted(counts).to_json()


def _seconds(branch: dict[str, Any]) -> float:
    started = datetime.fromisoformat(branch["started"].replace("Z", "+00:00"))
    finished = datetime.fromisoformat(branch["finished"].replace("Z", "+00:00"))
    return round((finished - started).total_seconds(), 1)


def _branch_ok(branch: dict[str, Any]) -> bool:
    if not branch.get("ok"):
        return False
    results = (branch.get("result") or {}).get("results")
    return results is None or all(status == "PASS" for status in results.values())


def report(event: dict[str, Any], *, objectives: Objectives, environment: str, now: datetime | None = None
           ) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    steps = []
    for branch in event["branches"]:
        seconds = _seconds(branch)
        counts, model = _modelled(branch)
        steps.append({"step": branch["step"], "name": branch["step"], "scenario": "quarterly",
                      "critical": bool(branch["critical"]), "ok": _branch_ok(branch), "seconds": seconds,
                      "started": branch["started"], "finished": branch["finished"],
                      "error": branch.get("error"), "result": branch.get("result"),
                      "recovery": "critical" if branch["critical"] else "non-critical", "kind": branch["step"],
                      "counts": counts.to_json(), "commands": [], "model": model,
                      "projected_seconds": model["seconds"] if model else None,
                      "model_error": costmodel.model_error(seconds, model["seconds"]) if model else None})
    critical = round(sum(s["seconds"] for s in steps if s["critical"]), 1)
    everything = round(sum(s["seconds"] for s in steps), 1)
    verdicts = {
        "steps_ok": all(s["ok"] for s in steps),
        "rto_critical_met": critical <= objectives.rto_critical_seconds,
        "rto_non_critical_met": everything <= objectives.rto_non_critical_seconds,
    }
    passed = all(verdicts.values())
    finished = now.astimezone(UTC).isoformat(timespec="seconds")
    rto = {kind: {"measured_seconds": achieved, "projected_seconds": achieved, "objective_seconds": objective,
                  "met": achieved <= objective}
           for kind, achieved, objective in (("rto_critical", critical, objectives.rto_critical_seconds),
                                             ("rto_non-critical", everything, objectives.rto_non_critical_seconds))}
    failures = [f"{s['step']}: {s['error'] or 'failed'}" for s in steps if not s["ok"]] + [
        f"RTO ({kind[4:]}) {v['measured_seconds']} s is over the objective of {v['objective_seconds']} s"
        for kind, v in rto.items() if not v["met"]]
    return {"schema_version": 1, "kind": "aws", "emulated": False,
            "title": f"Quarterly disaster-recovery drill in AWS — {environment}: {'PASSED' if passed else 'FAILED'}",
            "environment": environment, "execution": event.get("execution"),
            "started": event.get("started") or finished, "finished": finished, "steps": steps, "failures": failures,
            # In AWS the code is identified by the deployed function, not a work tree.
            "evidence": {"commit": None, "dirty": None, "note": "the deployed Lambda, not a git work tree",
                         "versions": evidence.versions(), "host": {"name": _function_name()},
                         "operator": event.get("operator") or "EventBridge Scheduler (quarterly schedule)",
                         "commands": []},
            "objectives": {"rto_critical_seconds": objectives.rto_critical_seconds,
                           "rto_non_critical_seconds": objectives.rto_non_critical_seconds},
            "scenarios": {"quarterly": {"steps": steps, **rto}},
            "rto_critical": {"achieved_seconds": critical, "objective_seconds": objectives.rto_critical_seconds},
            "rto_non_critical": {"achieved_seconds": everything,
                                 "objective_seconds": objectives.rto_non_critical_seconds},
            **verdicts, "passed": passed}


def _function_name() -> str:
    import os

    return os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "local")


def markdown(result: dict[str, Any]) -> str:
    lines = [f"# Quarterly disaster-recovery drill — {result['environment']}: "
             f"{'PASSED' if result['passed'] else 'FAILED'}", "",
             f"Execution {result['execution']}, {result['started']} → {result['finished']}, by tavari-dr "
             f"{result['evidence']['versions']['tavari-dr']} ({result['evidence']['host']['name']}).", "",
             f"- RTO critical: {result['rto_critical']['achieved_seconds']} s achieved, objective "
             f"{result['rto_critical']['objective_seconds']} s",
             f"- RTO all services: {result['rto_non_critical']['achieved_seconds']} s achieved, objective "
             f"{result['rto_non_critical']['objective_seconds']} s", "",
             "| step | critical | ok | seconds | error |", "|---|---|---|---|---|"]
    for s in result["steps"]:
        lines.append(f"| {s['step']} | {'yes' if s['critical'] else 'no'} | {'yes' if s['ok'] else 'NO'} | "
                     f"{s['seconds']} | {(s['error'] or '').replace('|', '/')[:200]} |")
    return "\n".join(lines) + "\n"


def record(result: dict[str, Any], *, s3: Any, reports_bucket: str, now: datetime) -> str:
    """Evidence in the reports bucket, and the metrics the alarms watch."""
    key = f"reports/{JOB}/{now.astimezone(UTC):%Y-%m-%d}"  # the UTC day, as every report key
    s3.put_object(Bucket=reports_bucket, Key=f"{key}.json", Body=json.dumps(result, indent=1).encode(),
                  ContentType="application/json")
    s3.put_object(Bucket=reports_bucket, Key=f"{key}.md", Body=markdown(result).encode(), ContentType="text/markdown")
    metrics.publish_outcome(JOB, measurements=[
        *(({metrics.DRILL_STEP_SECONDS: step["seconds"]}, {"Step": step["step"]}) for step in result["steps"]),
        ({metrics.DRILL_OBJECTIVE_MISSED: 0 if result["passed"] else 1}, None)],
        succeeded=True if result["passed"] else None)  # a missed objective is DrillObjectiveMissed's to say
    return f"s3://{reports_bucket}/{key}.json"


def handle(event: dict[str, Any], environ: Any = None) -> dict[str, Any]:
    """The Lambda entry: ``{"step": "secrets"}`` or ``{"step": "report", "branches": [...], ...}``."""
    import os

    from tavari_dr.core import aws

    environ = environ if environ is not None else os.environ
    if event.get("step") == "secrets":
        answer = secrets_step(aws.client("secretsmanager"), json.loads(environ["TAVARI_SECRETS"]))
        # Entry names and states only (details): a secret's value is never read into a result.
        log.info("drill_step", extra={"step": "secrets", "status": answer["results"]["secrets_check"],
                                      "failed": answer["details"]})
        return answer
    if event.get("step") == "report":
        now = datetime.now(UTC)
        objectives = Objectives(**json.loads(environ["TAVARI_OBJECTIVES"]))
        result = report(event, objectives=objectives, environment=environ["TAVARI_ENV"], now=now)
        result["report"] = record(result, s3=aws.client("s3"), reports_bucket=environ["TAVARI_REPORTS_BUCKET"],
                                  now=now)
        log.info("drill_step", extra={"step": "report", "passed": result["passed"], "report": result["report"]})
        return {"passed": result["passed"], "report": result["report"],
                "rto_critical_seconds": result["rto_critical"]["achieved_seconds"],
                "rto_non_critical_seconds": result["rto_non_critical"]["achieved_seconds"]}
    raise ValueError(f"unknown drill step {event.get('step')!r}; expected secrets or report")
