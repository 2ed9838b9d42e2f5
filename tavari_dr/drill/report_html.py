"""The drill's report as one HTML page: per scenario a short summary, a timeline of its recovery steps against
the RTO objectives and the data it lost against the RPO objective, then every step in full.

Rendered offline: one file, inline CSS and SVG, no script, no web font, nothing fetched (an auditor opens it
from the sealed folder, perhaps on a machine without a network). The geometry is computed here; the
template (templates/drill-report.html.j2, Jinja2 with autoescaping) only places it. Like the markdown, it
reads the report's JSON document and nothing else: it judges nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import jinja2

from tavari_dr.drill.context import CRITICAL, NON_CRITICAL
from tavari_dr.drill.judge import SCENARIOS

LABEL_WIDTH = 320  # the step names' column, left of the plot
PLOT_WIDTH = 600
RIGHT_MARGIN = 90  # room for the value written after the longest bar
ROW = 22
BAR = 14
TOP = 34  # room for the objectives' labels above the plot
MIN_BAR = 2.0  # a step of 0.4 s against an objective of hours is still drawn, and its <title> gives the figure
LABEL_CHARS = 48
# Axis ticks: the first step giving at most 8 ticks over the span.
TICK_STEPS_SECONDS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 14400, 21600, 43200,
                      86400, 172800)

_ENVIRONMENT = jinja2.Environment(loader=jinja2.PackageLoader("tavari_dr.drill", "templates"),
                                  autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                                  lstrip_blocks=True)


def duration(seconds: float | None) -> str:
    """A duration as a person reads it: 0.4 s, 7.5 min, 2 h 34 min."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h" + (f" {minutes:02d} min" if minutes else "")


def _short(text: str, limit: int = LABEL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


@dataclass
class Bar:
    label: str  # shown (shortened)
    title: str  # the full name and figures, as a tooltip
    x: float
    width: float
    y: float
    css: str  # critical / non-critical / failed / lane / rpo...
    value: str
    value_x: float
    value_inside: bool


@dataclass
class Marker:
    x: float
    label: str
    css: str


@dataclass
class Chart:
    width: float
    height: float
    plot_top: float
    plot_bottom: float
    bars: list[Bar] = field(default_factory=list)
    notes: list[tuple[float, str, str]] = field(default_factory=list)  # (y, label, note) for rows without a bar
    markers: list[Marker] = field(default_factory=list)
    ticks: list[tuple[float, str]] = field(default_factory=list)


def _ticks(span: float, scale: float) -> list[tuple[float, str]]:
    step = next((s for s in TICK_STEPS_SECONDS if span / s <= 8), TICK_STEPS_SECONDS[-1])
    return [(LABEL_WIDTH + t * scale, "0" if t == 0 else duration(t)) for t in range(0, int(span) + 1, step)]


def _bar(label: str, title: str, start: float, seconds: float, y: float, css: str, scale: float) -> Bar:
    x = LABEL_WIDTH + start * scale
    width = max(seconds * scale, MIN_BAR)
    value = duration(seconds)
    inside = x + width + 8 * len(value) > LABEL_WIDTH + PLOT_WIDTH + RIGHT_MARGIN
    return Bar(_short(label), title, round(x, 2), round(width, 2), y, css, value,
               round(x + width - 4 if inside else x + width + 4, 2), inside)


def timeline(data: dict[str, Any]) -> Chart:
    """A scenario's recovery: the two RTO lanes as the judge adds them up (the critical steps alone; every
    recovery step), then one row per step in the order played, coloured by the services it brings back."""
    critical, everything = data["rto_critical"], data["rto_non-critical"]
    steps = data["steps"]
    span = max(critical["objective_seconds"], everything["objective_seconds"], critical["projected_seconds"],
               everything["projected_seconds"]) * 1.04
    scale = PLOT_WIDTH / span
    rows = 2 + len(steps)
    chart = Chart(width=LABEL_WIDTH + PLOT_WIDTH + RIGHT_MARGIN, height=TOP + (rows + 0.6) * ROW + 26,
                  plot_top=TOP - 6, plot_bottom=TOP + (rows + 0.6) * ROW)
    failed = critical.get("failed_at")
    for i, (name, judged, css) in enumerate((("critical services back", critical, "lane critical"),
                                             ("all services back", everything, "lane non-critical"))):
        verdict = (f"not met: failed at {failed}" if failed else
                   f"{'met' if judged['met'] else 'MISSED'}: {duration(judged['projected_seconds'])} projected, "
                   f"objective {duration(judged['objective_seconds'])}")
        lane = _bar(name, f"{name}: {verdict}", 0, judged["projected_seconds"], TOP + i * ROW,
                    css + (" failed" if failed or not judged["met"] else ""), scale)
        if failed:  # what ran before the failure recovered nothing: its time is no RTO
            lane.value, lane.value_inside, lane.value_x = "not met: failed", False, lane.x + lane.width + 4
        chart.bars.append(lane)
    # The judge counts the critical steps alone for the critical RTO: they are drawn first (each where the one
    # before it ends), then the rest, so that each lane ends where its last step does.
    starts, clock = {}, 0.0
    for rank in (CRITICAL, NON_CRITICAL):
        for i, step in enumerate(steps):
            if step["recovery"] == rank:
                starts[i] = clock
                clock += step["projected_seconds"] or 0.0
    for i, step in enumerate(steps):
        y = TOP + (2.6 + i) * ROW
        if i not in starts:  # the incident and its forensics: before the recovery, not in the RTO
            chart.notes.append((y, _short(step["name"]), f"not in the RTO ({step['seconds']:.1f} s here)"))
            continue
        seconds = step["projected_seconds"] or 0.0
        css = "failed" if not step["ok"] else step["recovery"]
        title = (f"{step['name']}: {duration(seconds)} projected at production size ({step['recovery']}"
                 f"{'; FAILED' if not step['ok'] else ''}); {step['seconds']:.1f} s wall time here")
        chart.bars.append(_bar(step["name"], title, starts[i], seconds, y, f"step-bar {css}", scale))
    for seconds, label, css in ((critical["objective_seconds"], "RTO critical", "objective critical"),
                                (everything["objective_seconds"], "RTO all services", "objective non-critical")):
        chart.markers.append(Marker(round(LABEL_WIDTH + seconds * scale, 2), f"{label} {duration(seconds)}", css))
    chart.ticks = _ticks(span, scale)
    return chart


def rpo_chart(rpo: dict[str, Any], worst: dict[str, Any]) -> Chart:
    """The data a scenario lost against the RPO objective, beside what the configuration allows at worst."""
    rows = [("lost in this drill", rpo["data_loss_window_seconds"], "rpo-bar measured")]
    if "capture_max_lag_seconds" in worst:
        rows += [("worst case, capture running", worst["worst_case_seconds"], "rpo-bar worst"),
                 ("worst case, capture dead (dumps only)", worst["dumps_only_seconds"], "rpo-bar dumps")]
    else:
        rows.append(("worst case the schedule allows", worst["worst_case_seconds"], "rpo-bar worst"))
    objective = rpo["objective_seconds"]
    span = max(objective, *(s for _, s, _ in rows)) * 1.04
    scale = PLOT_WIDTH / span
    chart = Chart(width=LABEL_WIDTH + PLOT_WIDTH + RIGHT_MARGIN, height=TOP + (len(rows) + 0.3) * ROW + 26,
                  plot_top=TOP - 6, plot_bottom=TOP + (len(rows) + 0.3) * ROW)
    failed = rpo.get("failed_at")
    for i, (label, seconds, css) in enumerate(rows):
        chart.bars.append(_bar(label, f"{label}: {duration(seconds)} (objective {duration(objective)})", 0, seconds,
                               TOP + i * ROW, css + (" failed" if failed and i == 0 else ""), scale))
    chart.markers.append(Marker(round(LABEL_WIDTH + objective * scale, 2), f"RPO {duration(objective)}",
                                "objective rpo"))
    chart.ticks = _ticks(span, scale)
    return chart


def scenario_verdict(data: dict[str, Any]) -> str:
    """FAILED (a step failed), met, or MISSED: the markdown table's word."""
    judged = [data[k] for k in ("rto_critical", "rto_non-critical", "rpo") if data.get(k)]
    if data["rto_critical"].get("failed_at"):
        return "FAILED"
    return "met" if all(j["met"] for j in judged) else "MISSED"


def summary(data: dict[str, Any]) -> list[str]:
    """A scenario in three sentences: how long until its services are back against the objectives, where the time
    goes, and the data it lost."""
    critical, everything, rpo = data["rto_critical"], data["rto_non-critical"], data.get("rpo")
    if critical.get("failed_at"):
        return [f"Failed at the step “{critical['failed_at']}”: the scenario recovered nothing, so it has no RTO, "
                "and what it restored (if anything) was never verified, so its RPO is not met either."]

    def share(judged: dict[str, Any]) -> str:
        percent = 100 * judged["projected_seconds"] / judged["objective_seconds"]
        return (f"{duration(judged['projected_seconds'])} of the {duration(judged['objective_seconds'])} allowed "
                f"({percent:.0f} %{'' if judged['met'] else ', MISSED'})")

    said = [f"Critical services are back in {share(critical)}; all services in {share(everything)} "
            "(projected at production size)."]
    counted = [s for s in data["steps"] if s["recovery"] and s["projected_seconds"]]
    if counted and everything["projected_seconds"]:
        longest = max(counted, key=lambda s: s["projected_seconds"])
        said.append(f"Most of the time goes to “{longest['name']}”: {duration(longest['projected_seconds'])}, "
                    f"{100 * longest['projected_seconds'] / everything['projected_seconds']:.0f} % of the total.")
    if rpo:
        lost = rpo.get("lost")
        probes = (f" ({lost['transactions']} of the {lost['of']} probe transactions written across the failure)"
                  if lost else "")
        said.append(f"Data lost: the last {duration(rpo['data_loss_window_seconds'])} of writes{probes}, against an "
                    f"RPO of {duration(rpo['objective_seconds'])}; the configuration allows "
                    f"{duration(rpo['worst_case_seconds'])} at worst"
                    f"{'' if rpo['met'] else ' (MISSED)'}.")
    return said


def render(report: dict[str, Any], *, sealed_with: tuple[str, ...]) -> str:
    """The page, from the report's JSON document; ``sealed_with``: the files SHA256SUMS covers beside it."""
    scenarios = []
    for name, data in report["scenarios"].items():
        scenarios.append({"name": name, "anchor": f"scenario-{name.split()[0]}", "verdict": scenario_verdict(data),
                          "summary": summary(data), "timeline": timeline(data),
                          "rpo": rpo_chart(data["rpo"], report["rpo_worst_case"]) if data.get("rpo") else None,
                          "data": data})
    not_played = [n for n in SCENARIOS if n not in report["scenarios"]] if report["failures"] else []
    groups: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for number, step in enumerate(report["steps"], 1):
        groups.setdefault(step["scenario"], []).append((number, step))
    return _ENVIRONMENT.get_template("drill-report.html.j2").render(
        report=report, scenarios=scenarios, not_played=not_played, groups=groups, duration=duration,
        sealed_with=sealed_with, row=ROW, bar=BAR, label_width=LABEL_WIDTH)
