"""The drill's report, from its verdict: the JSON document (tavari_dr/core/data/drill-report.schema.json,
shared with the quarterly AWS drill) with its evidence, the markdown an auditor reads, the HTML page with
its timelines (tavari_dr.drill.report_html), and the SHA256SUMS that seals the folder. Nothing here judges;
tavari_dr.drill.judge did."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tavari_dr.core import costmodel, evidence
from tavari_dr.core.config import EnvironmentConfig
from tavari_dr.drill import report_html
from tavari_dr.drill.context import CRITICAL, NON_CRITICAL, Drill, Sizes, Step
from tavari_dr.drill.judge import SCENARIOS, Verdict

SCHEMA_VERSION = 1
REPORTS = ("drill-report.json", "drill-report.md", "drill-report.html")
FILES = (*REPORTS, evidence.SUMS)


def document(verdict: Verdict, *, config: EnvironmentConfig, sizes: Sizes, steps: list[Step], facts: dict[str, Any],
             started: datetime, operator: str, error: str | None, context: Drill | None) -> dict[str, Any]:
    """The report as JSON: the verdict, the evidence (code, versions, host, operator, every command) and
    what ran where; ``context`` is None where the drill stopped before setup built it."""
    ok = verdict.passed
    d = config.drill
    standin = context.standin if context else None
    deployment = context.deployment if context else None
    return {
        "schema_version": SCHEMA_VERSION, "kind": "local", "emulated": True,
        "title": f"Disaster-recovery drill (emulated: moto + local PostgreSQL) — {config.name}: "
                 f"{'PASSED' if ok else 'FAILED'}",
        "environment": config.name, "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"), "passed": ok, "error": error,
        # The code that ran: the checkout tavari_dr was imported from (not the config's folder).
        "evidence": {**evidence.git_state(Path(__file__).resolve().parents[2]),
                     # (no server version where the drill stopped before its cluster started)
                     "versions": (context.versions if context else None) or evidence.versions(local=True),
                     "host": evidence.host(), "operator": operator,
                     "commands": [c for st in steps for c in st.commands]},
        "objectives": {"rto_critical_seconds": verdict.objectives[CRITICAL],
                       "rto_non_critical_seconds": verdict.objectives[NON_CRITICAL],
                       "rpo_seconds": config.monitoring.rpo_hours * 3600},
        "production_sizes": {"database_gb": d.database_gb, "invoice_count": d.invoice_count,
                             "invoice_gb": d.invoice_gb, "breach_changed_percent": d.breach_changed_percent},
        "toy_sizes": asdict(sizes),
        "model": {"module": "tavari_dr.core.costmodel", "calibration": verdict.calibration.source,
                  "constants": costmodel.constants()},
        "rpo_worst_case": verdict.rpo_worst_case,
        "steps": [_step_json(s) for s in steps],
        "scenarios": {n: {k: ([_step_json(s) for s in v] if k == "steps" else v) for k, v in data.items()}
                      for n, data in verdict.scenarios.items()},
        "checks": facts.get("checks", {}),
        "stand_ins": ([{"emulated": True, "url": standin.url, "stands_for": ["Supabase Management API",
                                                                          *config.drill.health_endpoints]}]
                      if standin else []),
        "deployment": deployment.to_json() if deployment else None,
        "failures": verdict.failures,
        "notes": ["Emulated: AWS is a moto server on this machine, Supabase a throwaway PostgreSQL cluster and "
                  "a loopback stand-in; nothing here touched a real account.",
                  "moto never replicates: the drill copied the invoice bucket's versions to the replica "
                  "itself, the way CRR would." if context and context.replica_bucket else
                  "No replica in this environment: a lost invoice bucket cannot be recovered.",
                  "Projected RTO: each recovery step's counted requests, bytes and commands, scaled to the "
                  "production sizes by what drives them and priced by tavari_dr.core.costmodel (S3's documented "
                  "latency, throughput and request limits; PostgreSQL rates from the committed calibration). "
                  "Measured seconds are this machine's wall time and decide nothing.",
                  "RPO: the drill takes its backup minutes before each incident, so its data-loss window "
                  "measures the drill's timing; the worst case the schedule allows is judged too."],
    }


def write(report: dict[str, Any], report_dir: Path) -> None:
    """drill-report.json, .md and .html, and the SHA256SUMS over exactly the files this run wrote
    (never whatever else lies in the folder)."""
    report_dir.mkdir(parents=True, exist_ok=True)
    # The pages are rendered from the JSON as written (what an auditor can check them against).
    text = json.dumps(report, indent=1, default=str)
    stored = json.loads(text)
    json_path, markdown_path, html_path = (report_dir / name for name in REPORTS)
    json_path.write_text(text)
    markdown_path.write_text(markdown(stored))
    html_path.write_text(report_html.render(stored, sealed_with=(json_path.name, markdown_path.name)))
    written = [json_path, markdown_path, html_path,
               *sorted(p for d in report_dir.glob("bucket-restore-scenario-*") for p in d.rglob("*") if p.is_file())]
    evidence.seal(report_dir, written)


def _step_json(step: Step) -> dict[str, Any]:
    return {**asdict(step), "counts": step.counts.to_json()}


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.1f} s"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _inputs(model: dict[str, Any] | None) -> str:
    if not model:
        return ""
    parts = ", ".join(f"{k} {v:.1f} s" for k, v in model["parts"].items())
    return f"{parts} ({model['formula']})".replace("|", "/")


def rto_text(rto: dict[str, Any]) -> str:
    """One RTO as the table and the CLI show it: projected / objective, or the step its scenario failed at
    (the steps that ran before a failure recovered nothing: no time of theirs is an RTO)."""
    if rto.get("failed_at"):
        return f"not met (failed at step: {rto['failed_at']})"
    return f"{_minutes(rto['projected_seconds'])} / {_minutes(rto['objective_seconds'])}"


def markdown(report: dict[str, Any]) -> str:
    ev = report["evidence"]
    lines = [f"# {report['title']}", "",
             f"{report['started']} → {report['finished']} (UTC), operator {ev['operator']}, host "
             f"{ev['host']['name']} ({ev['host']['cpus']} CPUs). Commit {ev.get('commit') or 'unknown'}"
             + (" (work tree dirty)" if ev.get("dirty") else "") + ". Versions: "
             + ", ".join(f"{k} {v}" for k, v in ev["versions"].items() if v) + ".", "",
             f"Objectives: RTO critical {_minutes(report['objectives']['rto_critical_seconds'])}, non-critical "
             f"{_minutes(report['objectives']['rto_non_critical_seconds'])}, RPO "
             f"{_minutes(report['objectives']['rpo_seconds'])}. Judged at production sizes: "
             f"{report['production_sizes']['database_gb']} GB dump, {report['production_sizes']['invoice_count']}"
             f" invoices ({report['production_sizes']['invoice_gb']} GB), a breach changing "
             f"{report['production_sizes']['breach_changed_percent']} % of them.", ""]
    if report["failures"]:
        lines += ["## Failures", "", *[f"- {f}" for f in report["failures"]], ""]
    worst = report["rpo_worst_case"]
    lines += ["## Scenarios", "", "| scenario | RTO critical (projected / objective) | RTO all (projected / objective) "
              "| wall time here (not judged) | RPO in the drill / worst case / objective | verdict |",
              "|---|---|---|---|---|---|"]
    for name, data in report["scenarios"].items():
        c, n, rpo = data.get("rto_critical"), data.get("rto_non-critical"), data.get("rpo")
        verdict = "FAILED" if c.get("failed_at") else "met" if all(x["met"] for x in (c, n, rpo) if x) else "MISSED"
        lines.append(f"| {name} | {rto_text(c).replace('|', '/')} | {rto_text(n).replace('|', '/')} | "
                     f"{_minutes(n['measured_seconds'])} | "
                     + ("not met (failed)" if rpo and rpo.get("failed_at") else
                        f"{_minutes(rpo['data_loss_window_seconds'])} / {_minutes(rpo['worst_case_seconds'])} / "
                        f"{_minutes(rpo['objective_seconds'])}" if rpo else "-")
                     + f" | {verdict} |")
    if report["failures"]:  # the scenarios a failure stopped the drill before: named, never silently absent
        lines += [f"| {name} | not played (the drill stopped) | - | - | - | NOT PLAYED |"
                  for name in SCENARIOS if name not in report["scenarios"]]
    dumps = (f"longest gap between `{worst['schedule']}` runs in {worst['timezone']} "
             f"({_minutes(worst['longest_interval_seconds'])}) + one dump "
             f"({_minutes(worst['backup_duration_seconds'])}) + replication lag objective "
             f"({_minutes(worst['replication_lag_objective_seconds'])})")
    if "capture_max_lag_seconds" in worst:  # the continuous capture bounds it; the dumps, once it is dead
        said = (f"{_minutes(worst['worst_case_seconds'])} while the change capture runs = its lag alarm's bound "
                f"({_minutes(worst['capture_max_lag_seconds'])}) + replication lag objective; a dead capture is "
                f"alarmed within {_minutes(worst['dead_capture_noticed_within_seconds'])}, and until it is back the "
                f"dumps bound it: {_minutes(worst['dumps_only_seconds'])} = {dumps}")
    else:
        said = f"{_minutes(worst['worst_case_seconds'])} = {dumps}"
    lines += ["", f"Worst-case RPO the configuration allows: {said}: {'met' if worst['met'] else 'MISSED'}.", "",
              "An HTML page beside this one, drill-report.html, draws each scenario's steps against its objectives.",
              "", "## Steps", "", "Projected: at production size, what the RTO adds up; wall: this machine's time "
              "(decides nothing). Each step's detail, commands, requests and cost-model inputs are under its number "
              "in Step details below, and in full in drill-report.json."]
    groups: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for number, s in enumerate(report["steps"], 1):
        groups.setdefault(s["scenario"], []).append((number, s))
    for scenario, numbered in groups.items():
        lines += ["", f"### {scenario}", "", "| # | step | ok | RTO | projected | wall |", "|---|---|---|---|---|---|"]
        lines += [f"| {number} | {_cell(s['name'])} | {'yes' if s['ok'] else '**NO**'} | {s['recovery'] or '-'} | "
                  f"{_minutes(s['projected_seconds']) if s['projected_seconds'] is not None else '-'} | "
                  f"{s['seconds']:.1f} s |" for number, s in numbered]
    lines += ["", "## Step details", ""]
    for number, s in enumerate(report["steps"], 1):
        lines.append(f"{number}. **{s['scenario']}: {s['name']}**" + (" — FAILED" if not s["ok"] else ""))
        if s["detail"]:
            lines.append(f"   - {s['detail']}")
        lines += [f"   - `{c}`" for c in s["commands"]]
        if s["counts"]["requests"]:
            lines.append("   - requests: " + ", ".join(f"{k} {v}" for k, v in s["counts"]["requests"].items()))
        if s["model"]:
            lines.append(f"   - model: {_inputs(s['model'])}")
    for standin in report["stand_ins"]:
        lines += ["", f"Stand-in (emulated): {standin['url']} answers for {', '.join(standin['stands_for'])}."]
    deployment = report.get("deployment")
    if deployment:
        lines += ["", "## Deployment into the emulator", "",
                  "moto's CloudFormation would have ignored (asked of moto at run time; applied here by the local "
                  "deployer where the drill needs it):", ""]
        ignored = sorted({i for st in deployment["stacks"].values() for i in st["moto_would_ignore"]})
        lines += [f"- `{i}`" for i in ignored]
        lines += ["", "Not applied (and why):", ""]
        reasons: dict[str, set[str]] = {}
        for st in deployment["stacks"].values():
            for item in st["not_applied"]:
                reasons.setdefault(f"{item['type']} — {item['reason']}", set()).add(item["logical_id"])
        lines += [f"- {k} ({len(v)})" for k, v in sorted(reasons.items())]
    calibration = report["model"]["calibration"]
    lines += ["", "## Cost model", "", f"`{report['model']['module']}`; PostgreSQL rates calibrated by "
              f"`{calibration.get('command')}` on {calibration.get('host', {}).get('name')} at "
              f"{calibration.get('date')}.",
              "", *[f"- {k}: {v}" for k, v in report["model"]["constants"].items()]]
    lines += ["", "## Notes", "", *[f"- {n}" for n in report["notes"]], ""]
    return "\n".join(lines)
