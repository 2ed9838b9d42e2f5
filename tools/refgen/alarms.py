"""docs/reference/alarms.md from the synthesized templates: every CloudWatch alarm of every environment, its
metric, its condition and the runbook section its description links (backup_constructs/monitoring.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from tools.refgen.markdown import code, document, table, text
from tools.refgen.templates import Templates, purpose, readable, short_id

SOURCE = "the synthesized templates (stacks/, backup_constructs/monitoring.py)"
RUNBOOK = "../runbooks/alarms.md"
# Monitoring.alarm's description: "[<env>] <what> Do: <action> Runbook: <url>#<section>"
_DESCRIPTION_RE = re.compile(
    r"^\[(?P<env>[^\]]+)\] (?P<what>.*?) Do: (?P<action>.*) Runbook: (?P<url>\S+)#(?P<section>\S+)$", re.S)
_COMPARISON = {"GreaterThanThreshold": ">", "GreaterThanOrEqualToThreshold": "≥", "LessThanThreshold": "<",
               "LessThanOrEqualToThreshold": "≤"}


def _period(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def _metric(namespace: str, name: str, dimensions: list[dict[str, Any]], template: dict[str, Any]) -> str:
    dims = ", ".join(f"{d['Name']}={readable(d['Value'], template)}" for d in dimensions or [])
    return f"{namespace} {name}" + (f" ({dims})" if dims else "")


def metric(props: dict[str, Any], template: dict[str, Any]) -> str:
    """The metric (or the metric math and the metrics it reads), with statistic and period."""
    if "Metrics" in props:
        parts = []
        for m in props["Metrics"]:
            if "Expression" in m:
                parts.append(f"{m['Id']} = {m['Expression']}")
            else:
                stat = m["MetricStat"]
                inner = stat["Metric"]
                read = _metric(inner["Namespace"], inner["MetricName"], inner.get("Dimensions"), template)
                parts.append(f"{m['Id']}: {read}, {stat['Stat']} per {_period(stat['Period'])}")
        return "; ".join(parts)
    statistic = props.get("Statistic") or props.get("ExtendedStatistic")
    return (_metric(props["Namespace"], props["MetricName"], props.get("Dimensions"), template)
            + f", {statistic} per {_period(props['Period'])}")


def condition(props: dict[str, Any]) -> str:
    threshold = props["Threshold"]
    shown = int(threshold) if float(threshold).is_integer() else threshold
    periods = props["EvaluationPeriods"]
    return (f"{_COMPARISON.get(props['ComparisonOperator'], props['ComparisonOperator'])} {shown}"
            + (f" for {periods} periods" if periods != 1 else "") + f"; missing data: {props['TreatMissingData']}")


def alarms(env: str, templates: Templates) -> Iterator[dict[str, str]]:
    """Every alarm of one environment, in stack then logical-ID order."""
    for stack in sorted(templates):
        template = templates[stack]
        for logical_id, resource in sorted(template.get("Resources", {}).items()):
            if resource["Type"] != "AWS::CloudWatch::Alarm":
                continue
            props = resource["Properties"]
            described = _DESCRIPTION_RE.match(props.get("AlarmDescription", ""))
            if described is None:
                raise ValueError(f"{stack} {logical_id}: its description does not say what, what to do and the runbook "
                                 "section (every alarm is made through backup_constructs.monitoring.Monitoring.alarm)")
            yield {"stack": purpose(stack, env), "alarm": short_id(logical_id), "what": described["what"],
                   "action": described["action"], "section": described["section"], "metric": metric(props, template),
                   "condition": condition(props)}


def render(by_env: dict[str, Templates]) -> str:
    blocks = [text("Every CloudWatch alarm, per environment, as synthesized: its metric, the condition that fires "
                   "it, what it means, what to do and its runbook section. Every alarm notifies the environment's "
                   "alert topic (Tavari-<Env>-Monitoring). Tamper alerts are EventBridge rules, not alarms: see "
                   f"[the runbook's Tampering section]({RUNBOOK}#tampering).")]
    counts = {env: list(alarms(env, templates)) for env, templates in by_env.items()}
    blocks.append(table(["environment", "alarms"], [[code(env), str(len(rows))] for env, rows in counts.items()]))
    for env, rows in counts.items():
        blocks += [f"## {env}", table(
            ["stack", "alarm", "metric", "condition", "what it means", "do", "runbook"],
            [[code(r["stack"]), code(r["alarm"]), text(r["metric"]), text(r["condition"]), text(r["what"]),
              text(r["action"]), f"[{r['section']}]({RUNBOOK}#{r['section']})"] for r in rows])]
    return document("Alarm reference", SOURCE, blocks)
