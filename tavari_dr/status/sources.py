"""Where `tavari-dr status` reads its evidence, one function per source, each a bounded number of calls.

Every function takes the ``Evidence`` (clients made without retries, the config, ``now``) and returns
rows; an AWS or I/O error escapes to ``collect``, which turns it into one "could not read" line.
Bounds (docs/decisions/0025): CloudFormation one DescribeStacks per region and one ListStackResources
per stack (a page per 100 resources); alarms one DescribeAlarms per 100 alarms; backups one
ListObjectVersions per tier over a window (not the bucket's history); each check's report one
ListObjectsV2 from a start key and one GetObject; metrics one GetMetricData (the replication metrics'
dimensions are those its declared alarm watches); Batch Operations one ListJobs page per 1,000 jobs;
secrets two calls per entry; restores one ListObjectsV2 per restore action under audit/ and one
GetObject per restore shown.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tavari_dr.bucket.jobs import active_jobs
from tavari_dr.configbackup import secrets as secrets_lib
from tavari_dr.core import metrics, outputs
from tavari_dr.core.audit import PREFIX as AUDIT_PREFIX
from tavari_dr.core.aws import RequestCounter
from tavari_dr.core.config import EnvironmentConfig
from tavari_dr.core.schedule import max_interval_seconds
from tavari_dr.database.manifest import BackupEntry, BackupError, BackupTampered, id_time, list_backups, open_backup
from tavari_dr.database.signing import KmsVerifier
from tavari_dr.status.board import OK, RED, WARN, Board, Row, Unreadable
from tavari_dr.verification import jobs as verification

ALARM_TYPES = ("AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm")
METRIC_WINDOW = timedelta(minutes=15)
# Backups are listed over a window per tier, longer than the longest gap the calendar allows there:
# a Sunday's dumps are weekly and a 1st's monthly, so the daily tier can skip two days and the weekly
# one two weeks (a Sunday that is a 1st).
BACKUP_WINDOWS = {"daily": timedelta(days=7), "weekly": timedelta(days=35), "monthly": timedelta(days=100)}
TIER_CADENCE = {"daily": timedelta(days=3), "weekly": timedelta(days=15), "monthly": timedelta(days=32)}
QUARTER = timedelta(days=92)
# A report is overdue once its job's longest gap between runs, plus this for the run itself, has passed.
REPORT_GRACE = timedelta(hours=2)
RESTORES_SHOWN = 3
# Evidence dated later than now by more than this is red and never "the newest": clocks disagree by
# seconds, a forger's 2099 by decades, and a future date would otherwise hide every late run behind it.
CLOCK_SKEW = timedelta(minutes=5)


@dataclass
class Stack:
    name: str
    region: str
    created: datetime
    outputs: dict[str, str]
    stack_id: str = ""


@dataclass
class Evidence:
    """What the sources read with: ``client(service, region)`` (no retries), the config and ``now``."""

    config: EnvironmentConfig
    now: datetime
    client: Callable[[str, str | None], Any]
    drill_report: Path | None  # None: judged by the caller (the drill that runs status)
    emulator: bool = False
    stacks: dict[str, Stack] = field(default_factory=dict)
    alarms: list[dict[str, Any]] = field(default_factory=list)  # DescribeAlarms' answers (metric and composite)

    def output(self, purpose: str, key: str) -> str:
        stack = self.stacks.get(self.config.stack_name(purpose))
        if stack is None:
            raise LookupError(f"stack {self.config.stack_name(purpose)} is not deployed")
        if key not in stack.outputs:
            raise LookupError(f"{stack.name} has no output {key}; deploy the current app")
        return stack.outputs[key]

    @property
    def deployed_at(self) -> datetime:
        """When the environment's oldest stack was created: what evidence it can have yet."""
        return min((s.created for s in self.stacks.values()), default=self.now)

    def young(self, cadence: timedelta) -> bool:
        return self.now - self.deployed_at < cadence


def regions(config: EnvironmentConfig) -> list[str]:
    """Where the environment's stacks live: its region, the DR region, and us-east-1 (global services)."""
    found = [config.region]
    if config.replication.enabled and config.replication.region:
        found.append(config.replication.region)
    return list(dict.fromkeys([*found, "us-east-1"]))


def stacks(ev: Evidence) -> list[Row]:
    prefix = ev.config.stack_name("")
    for region in regions(ev.config):
        for page in ev.client("cloudformation", region).get_paginator("describe_stacks").paginate():
            for s in page.get("Stacks", []):
                if s["StackName"].startswith(prefix) and not s.get("StackStatus", "").startswith("DELETE"):
                    ev.stacks[s["StackName"]] = Stack(s["StackName"], region, s["CreationTime"], {
                        o["OutputKey"]: o["OutputValue"] for o in s.get("Outputs", [])}, s.get("StackId", ""))
    if ev.config.stack_name(outputs.DATABASE_BACKUPS) not in ev.stacks:
        raise LookupError(f"no {prefix}* stacks in {', '.join(regions(ev.config))} (not deployed, or another "
                          "--region/--endpoint-url)")
    return []


# --------------------------------------------------------------------------- alarms


@dataclass
class Declared:
    stack: str
    logical: str
    name: str


def declared_alarms(ev: Evidence) -> tuple[list[Declared], dict[str, dict[str, str]]]:
    """Every alarm the deployed stacks declare, as CloudFormation lists them (a deleted alarm is still
    listed there, under the name it had), and each stack's resources (logical ID -> physical ID)."""
    found: list[Declared] = []
    physical: dict[str, dict[str, str]] = {}
    for stack in ev.stacks.values():
        paginator = ev.client("cloudformation", stack.region).get_paginator("list_stack_resources")
        for page in paginator.paginate(StackName=stack.name):
            for r in page.get("StackResourceSummaries", []):
                physical.setdefault(stack.name, {})[r["LogicalResourceId"]] = r.get("PhysicalResourceId", "")
                if r["ResourceType"] in ALARM_TYPES and r.get("PhysicalResourceId"):
                    found.append(Declared(stack.name, r["LogicalResourceId"], r["PhysicalResourceId"]))
    return found, physical


# What an alarm must still be, as declared: whatever fires it (metric, threshold, periods, operator) and
# whom it tells (actions, enabled). Absent from the declaration: not compared (AWS's default applies),
# except ActionsEnabled, whose default is true.
COMPARED_NUMBERS = {"Threshold": float, "Period": int, "EvaluationPeriods": int, "DatapointsToAlarm": int}
COMPARED_TEXT = ("ComparisonOperator", "TreatMissingData", "MetricName", "Namespace", "Statistic",
                 "ExtendedStatistic", "Unit", "ThresholdMetricId", "EvaluateLowSampleCountPercentile", "AlarmRule")
COMPARED_ACTIONS = ("AlarmActions", "OKActions", "InsufficientDataActions")


class Unresolvable(LookupError):
    """A declared value this reading of the template cannot work out (an intrinsic it does not know)."""


def _resolve(value: Any, stack: Stack, ev: Evidence, physical: dict[str, str]) -> Any:
    """A template value as CloudFormation resolved it, from what status read already: the stack's resources
    (Ref), the stacks' outputs (Fn::GetStackOutput, Fn::ImportValue) and its own ARN (pseudo parameters)."""
    if isinstance(value, list):
        return [_resolve(v, stack, ev, physical) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        (fn, arg), = value.items()
        arn = stack.stack_id.split(":")
        pseudo = {"AWS::Region": stack.region, "AWS::StackName": stack.name, "AWS::URLSuffix": "amazonaws.com",
                  "AWS::Partition": arn[1] if len(arn) > 4 else "aws", "AWS::AccountId": arn[4] if len(arn) > 4 else ""}
        if fn == "Ref":
            if arg in pseudo and pseudo[arg]:
                return pseudo[arg]
            if physical.get(arg):
                return physical[arg]
            raise Unresolvable(f"Ref {arg}")
        if fn == "Fn::GetAtt":
            logical, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
            if attribute == "QueueName" and physical.get(logical):  # an SQS queue's physical ID is its URL
                return physical[logical].rsplit("/", 1)[-1]
            raise Unresolvable(f"Fn::GetAtt {logical}.{attribute}")
        if fn == "Fn::GetStackOutput":
            other = ev.stacks.get(str(_resolve(arg.get("StackName"), stack, ev, physical)))
            if other is None or arg.get("OutputName") not in other.outputs:
                raise Unresolvable(f"Fn::GetStackOutput {arg}")
            return other.outputs[arg["OutputName"]]
        if fn == "Fn::Join":
            separator, parts = arg
            return separator.join(str(p) for p in _resolve(parts, stack, ev, physical))
        if fn.startswith("Fn::"):
            raise Unresolvable(fn)
    return {k: _resolve(v, stack, ev, physical) for k, v in value.items()}


def _metrics_key(items: Any) -> Any:
    """A metric-math alarm's Metrics, compared by what each query reads (not how the API orders keys)."""
    def dims(metric: dict[str, Any]) -> list[tuple[str, str]]:
        return sorted((str(d["Name"]), str(d["Value"])) for d in metric.get("Dimensions", []))

    return sorted((str(m.get("Id")), str(m.get("Expression", "")), int(m.get("Period") or 0),
                   str(m.get("MetricStat", {}).get("Stat", "")), int(m.get("MetricStat", {}).get("Period") or 0),
                   str(m.get("MetricStat", {}).get("Metric", {}).get("Namespace", "")),
                   str(m.get("MetricStat", {}).get("Metric", {}).get("MetricName", "")),
                   tuple(dims(m.get("MetricStat", {}).get("Metric", {})))) for m in items or [])


def differences(declared: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """How an alarm in the account differs from its resolved declaration, one "field: actual (declared)" each."""
    found = []
    enabled = declared.get("ActionsEnabled", True)
    if str(actual.get("ActionsEnabled", True)).lower() != str(enabled).lower():
        found.append(f"ActionsEnabled {actual.get('ActionsEnabled')} (declared {enabled})")
    for name in COMPARED_ACTIONS:
        want, have = sorted(map(str, declared.get(name) or [])), sorted(map(str, actual.get(name) or []))
        if want != have:
            found.append(f"{name} {have or 'none'} (declared {want or 'none'})")
    for name, kind in COMPARED_NUMBERS.items():
        if name in declared and (name not in actual or kind(actual[name]) != kind(declared[name])):
            found.append(f"{name} {actual.get(name, 'none')} (declared {declared[name]})")
    for name in COMPARED_TEXT:
        if name in declared and str(actual.get(name)) != str(declared[name]):
            found.append(f"{name} {actual.get(name, 'none')} (declared {declared[name]})")
    if "Dimensions" in declared and sorted((str(d["Name"]), str(d["Value"])) for d in declared["Dimensions"]) != \
            sorted((str(d["Name"]), str(d["Value"])) for d in actual.get("Dimensions", [])):
        found.append(f"Dimensions {actual.get('Dimensions', [])} (declared {declared['Dimensions']})")
    if "Metrics" in declared and _metrics_key(declared["Metrics"]) != _metrics_key(actual.get("Metrics")):
        found.append("Metrics (the metric-math queries) differ from the declared ones")
    return found


def _templates(ev: Evidence, declared: list[Declared]) -> dict[str, dict[str, Any]]:
    """The original template of each stack that declares an alarm: one GetTemplate each."""
    found = {}
    for name in dict.fromkeys(d.stack for d in declared):
        body = ev.client("cloudformation", ev.stacks[name].region).get_template(StackName=name)["TemplateBody"]
        found[name] = json.loads(body) if isinstance(body, str) else dict(body)
    return found


def alarms(ev: Evidence) -> list[Row]:
    declared, physical = declared_alarms(ev)
    if not declared:
        return [Row("alarms", "declared", RED, "the deployed stacks declare no alarm: nothing would page anyone")]
    by_region: dict[str, list[Declared]] = {}
    for item in declared:
        by_region.setdefault(ev.stacks[item.stack].region, []).append(item)
    states: dict[str, dict[str, Any]] = {}
    for region, items in by_region.items():
        cloudwatch = ev.client("cloudwatch", region)
        names = [d.name for d in items]
        for start in range(0, len(names), 100):
            answer = cloudwatch.describe_alarms(AlarmNames=names[start:start + 100],
                                                AlarmTypes=["MetricAlarm", "CompositeAlarm"], MaxRecords=100)
            for alarm in [*answer.get("MetricAlarms", []), *answer.get("CompositeAlarms", [])]:
                states[alarm["AlarmName"]] = alarm
    ev.alarms.extend(states.values())  # (shared with the later sources: the change stream's row reads them)
    templates = _templates(ev, declared)
    rows = []
    counts: dict[str, int] = {}
    for d in declared:
        alarm = states.get(d.name)
        state = alarm["StateValue"] if alarm else "MISSING"
        counts[state] = counts.get(state, 0) + 1
        if alarm is None:
            rows.append(Row("alarms", d.logical, RED, f"missing from the account (deleted?): declared by {d.stack} as "
                                                      f"{d.name}; redeploy the stack", data={"name": d.name}))
            continue
        try:
            properties = templates[d.stack].get("Resources", {}).get(d.logical, {}).get("Properties", {})
            changed = differences(_resolve(properties, ev.stacks[d.stack], ev, physical.get(d.stack, {})), alarm)
        except Unresolvable as err:
            rows.append(Row("alarms", d.logical, WARN, f"{d.name}: its declaration uses {err}, which status cannot "
                                                       "resolve: not compared", data={"name": d.name}))
            changed = []
        if changed:
            rows.append(Row("alarms", d.logical, RED, f"{d.name} differs from its declaration in {d.stack}: "
                                                      + "; ".join(changed) + " — redeploy the stack",
                            data={"name": d.name, "differences": changed}))
        if state == "ALARM":
            since = alarm.get("StateUpdatedTimestamp")
            rows.append(Row("alarms", d.logical, RED, f"ALARM: {alarm.get('StateReason', '')}",
                            (ev.now - since).total_seconds() if since else None,
                            {"name": d.name, "runbook": _runbook(alarm.get("AlarmDescription"))}))
    waiting = [d.logical for d in declared if states.get(d.name, {}).get("StateValue") == "INSUFFICIENT_DATA"]
    changed_count = sum(1 for r in rows if r.data.get("differences"))
    summary = f"{len(declared)} declared: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + (
        f"; {changed_count} not as declared" if changed_count else "")
    # (the red ones are their own rows: the summary is yellow at most, so each red is counted once)
    rows.insert(0, Row("alarms", "declared", WARN if waiting else OK,
                       summary + (f" (no data yet: {', '.join(waiting[:4])}{' …' if len(waiting) > 4 else ''})"
                                  if waiting else ""), data={"counts": counts}))
    return rows


def _runbook(description: str | None) -> str | None:
    for word in (description or "").split():
        if word.startswith("https://"):
            return word.rstrip(").,")
    return None


# --------------------------------------------------------------------------- backups


def backups(ev: Evidence) -> list[Row]:
    """Each tier's newest backup from its listing, then that backup opened as `db verify --quick` opens it
    (manifest_lib.open_backup: the manifest's signature, every key's versions against the recorded ones),
    without reading any artifact. A backup dated in the future is red and not counted."""
    bucket = ev.output(outputs.DATABASE_BACKUPS, outputs.BACKUP_BUCKET_NAME)
    tiers = ev.config.database_backups.tiers
    s3 = ev.client("s3", None)
    entries = list_backups(s3, bucket, tiers, newer_than={t.name: ev.now - BACKUP_WINDOWS[t.name] for t in tiers})
    rows = [Row("backups", f"future {e.tier}", RED,
                f"{e.prefix} is dated {taken:%Y-%m-%d %H:%M} UTC, after now (+{_minutes(CLOCK_SKEW)} of clock skew): "
                "not counted as a backup — no job writes it; find who did", data={"backup_id": e.backup_id})
            for e in entries if (taken := id_time(e.backup_id)) and _future(ev, taken)]
    complete = [e for e in entries if e.complete and not e.pre_restore and (taken := id_time(e.backup_id))
                and not _future(ev, taken)]
    newest_of = {tier.name: max((e for e in complete if e.tier == tier.name), key=lambda e: e.backup_id,
                                default=None) for tier in tiers}
    verifier = None
    refused: dict[str, str] = {}  # backup ID -> why it cannot be trusted
    for entry in (e for e in newest_of.values() if e is not None):
        if verifier is None:
            verifier = KmsVerifier(ev.client("kms", None), ev.output(outputs.DATABASE_BACKUPS,
                                                                     outputs.MANIFEST_SIGNING_KEY_ARN))
        problem = _refused(s3, bucket, entry, verifier)
        if problem:
            refused[entry.backup_id] = problem
    rpo = timedelta(hours=ev.config.monitoring.rpo_hours)
    newest = max((e for e in newest_of.values() if e is not None), key=lambda e: e.backup_id, default=None)
    if newest is None:
        rows.append(Row("backups", "newest", WARN if ev.young(rpo) else RED,
                        f"no complete backup in the last {BACKUP_WINDOWS['daily'].days} days (RPO {rpo_text(rpo)})"))
    elif newest.backup_id in refused:  # the newest is *the* latest a restore would take: never skipped
        rows.append(Row("backups", "newest", RED, f"{newest.tier}/{newest.backup_id} was tampered with: "
                                                  f"{refused[newest.backup_id]}", _age(ev, newest),
                        {"backup_id": newest.backup_id, "tier": newest.tier, "tampered": True}))
    else:
        late = _age(ev, newest) > rpo.total_seconds()
        rows.append(Row("backups", "newest", RED if late else OK,
                        f"{newest.tier}/{newest.backup_id}, {'older than' if late else 'within'} the RPO of "
                        f"{rpo_text(rpo)}", _age(ev, newest), {"backup_id": newest.backup_id, "tier": newest.tier}))
    for tier in tiers:
        found = newest_of[tier.name]
        cadence = TIER_CADENCE[tier.name]
        if found is None:
            rows.append(Row("backups", tier.name, WARN if ev.young(cadence) else RED,
                            f"none in the last {BACKUP_WINDOWS[tier.name].days} days"
                            + (" (the environment is younger than the tier's cadence)" if ev.young(cadence) else "")))
            continue
        if found.backup_id in refused:
            rows.append(Row("backups", tier.name, RED,
                            f"{found.backup_id} was tampered with: {refused[found.backup_id]}", _age(ev, found),
                            {"backup_id": found.backup_id, "tampered": True}))
            continue
        late = _age(ev, found) > cadence.total_seconds()
        rows.append(Row("backups", tier.name, RED if late else OK,
                        f"{found.backup_id}, {found.bytes / 1024 / 1024:.1f} MiB, signed"
                        + (f"; older than the tier's {cadence.days}-day cadence" if late else ""),
                        _age(ev, found), {"backup_id": found.backup_id}))
    return rows


def _refused(s3: Any, bucket: str, entry: BackupEntry, verifier: KmsVerifier) -> str | None:
    """Why `db verify --quick` would refuse this backup (its opening: one GetObject of the manifest, one
    kms:Verify), or None. Nothing else is read: status judges the evidence, not the data."""
    try:
        open_backup(s3, bucket, entry, verifier=verifier)
    except BackupTampered as err:
        return "; ".join(err.findings)[:300]
    except BackupError as err:
        return str(err)[:300]
    return None


def _future(ev: Evidence, when: datetime) -> bool:
    return when > ev.now + CLOCK_SKEW


def _age(ev: Evidence, entry: BackupEntry) -> float:
    taken = id_time(entry.backup_id)
    assert taken is not None  # (only entries with a backup ID's time are judged)
    return (ev.now - taken).total_seconds()


def _minutes(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 60:g} min"


def rpo_text(rpo: timedelta) -> str:
    return f"{rpo.total_seconds() / 3600:g} h"


# --------------------------------------------------------------------------- reports


def _report_cadences(config: EnvironmentConfig, year: int) -> dict[str, timedelta]:
    """Check -> the longest its job leaves between two runs (the schedules' calendar)."""
    v, db = config.verification, config.database_backups
    by_job = {metrics.DAILY_MONITOR: v.daily_schedule, metrics.WEEKLY_INTEGRITY: v.weekly_schedule,
              metrics.MONTHLY_RESTORE_TEST: v.monthly_schedule}
    cadences = {check: timedelta(seconds=max_interval_seconds(by_job[job], v.timezone, year=year))
                for job, names in verification.JOBS.items() for check in names}
    cadences[metrics.DB_VERIFY_QUICK] = timedelta(seconds=max_interval_seconds(db.weekly_verify_schedule,
                                                                               db.timezone, year=year))
    cadences[metrics.DB_RESTORE_TEST] = timedelta(seconds=max_interval_seconds(db.monthly_verify_schedule,
                                                                               db.timezone, year=year))
    return cadences


@dataclass
class Found:
    """The newest report not dated in the future (None: none), and the keys that are (each red)."""

    key: str | None = None
    document: dict[str, Any] = field(default_factory=dict)
    future: list[str] = field(default_factory=list)


def _newest_report(ev: Evidence, s3: Any, bucket: str, name: str, since: datetime) -> Found:
    """The newest reports/<name>/<date>.json from ``since`` on, a date in the future aside: one listing from
    that date's key, one read."""
    prefix = f"reports/{name}/"
    answer = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, StartAfter=f"{prefix}{since:%Y-%m-%d}")
    keys = [o["Key"] for o in answer.get("Contents", []) if o["Key"].endswith(".json")]
    if answer.get("IsTruncated"):  # more than 1,000 reports of one check in the window: read the last page
        raise ValueError(f"{prefix}: more than 1,000 reports since {since:%Y-%m-%d}")
    future = [k for k in keys if (day := _key_day(k)) and _future(ev, day)]
    keys = [k for k in keys if k not in future]
    if not keys:
        return Found(future=future)
    key = max(keys)
    return Found(key, json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read()), future)


def _key_day(key: str) -> datetime | None:
    """The start (UTC) of the day a report's key names: a report written that day is not later than it."""
    try:
        return datetime.strptime(key.rsplit("/", 1)[-1][:10], "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None


def _future_text(keys: list[str]) -> str:
    return (f"{', '.join(keys[:3])}{' …' if len(keys) > 3 else ''} dated after now (+{_minutes(CLOCK_SKEW)} of "
            "clock skew): not counted; no job writes it")


def _when(document: dict[str, Any], key: str) -> datetime | None:
    for name in ("at", "finished", "started"):
        value = document.get(name)
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                continue
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    try:
        return datetime.strptime(key.rsplit("/", 1)[-1][:10], "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None


def check_reports(ev: Evidence, names: Iterable[str] | None = None) -> list[Row]:
    bucket = ev.output(outputs.DATABASE_BACKUPS, outputs.REPORTS_BUCKET_NAME)
    s3 = ev.client("s3", None)
    cadences = _report_cadences(ev.config, ev.now.year)
    rows = []
    for name in names or cadences:
        overdue = cadences[name] + REPORT_GRACE
        found = _newest_report(ev, s3, bucket, name, ev.now - overdue - timedelta(days=1))
        future = f"; {_future_text(found.future)}" if found.future else ""
        if found.key is None:
            young = ev.young(overdue) and not found.future
            rows.append(Row("checks", name, WARN if young else RED,
                            "no report yet" + (" (deployed since less than one run's interval)" if young else
                                               f" within {age_days(overdue)}: its job has not run or not written")
                            + future, data={"future": found.future}))
            continue
        key, document = found.key, found.document
        when = _when(document, key)
        status = str(document.get("status", "?"))
        if when and _future(ev, when):  # a date inside the document later than now: not a run's
            future = f"; {key} says it was written at {when:%Y-%m-%d %H:%M} UTC, after now{future}"
            status = "future-dated"
        seconds = (ev.now - when).total_seconds() if when else None
        stale = seconds is None or seconds > overdue.total_seconds()
        detail = "; ".join(document.get("details") or [])[:160]
        rows.append(Row("checks", name, RED if status != "PASS" or stale or future else OK,
                        f"{status}" + (f", overdue (expected every {age_days(cadences[name])})" if stale else "")
                        + (f": {detail}" if detail and status != "PASS" else "") + future, seconds,
                        {"status": status, "report": f"s3://{bucket}/{key}", "run": document.get("run"),
                         "future": found.future}))
    return rows


def age_days(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 86400:.1f} days"


# --------------------------------------------------------------------------- drills


def _drill_row(item: str, document: dict[str, Any], when: datetime | None, where: str, ev: Evidence) -> Row:
    passed = bool(document.get("passed"))
    seconds = (ev.now - when).total_seconds() if when else None
    if "rto_critical" in document:  # the quarterly drill in AWS: achieved seconds
        c, n = document["rto_critical"], document["rto_non_critical"]
        rto = (f"RTO critical {c['achieved_seconds'] / 60:.1f}/{c['objective_seconds'] / 60:.0f} min, all "
               f"{n['achieved_seconds'] / 60:.1f}/{n['objective_seconds'] / 60:.0f} min")
    else:  # the local drill: projected seconds per scenario (the worst), and the worst-case RPO
        scenarios = document.get("scenarios", {}).values()
        worst_c = max((s["rto_critical"]["projected_seconds"] for s in scenarios if s.get("rto_critical")),
                      default=None)
        objectives = document.get("objectives", {})
        rpo = document.get("rpo_worst_case") or {}
        rto = (f"RTO critical {worst_c / 60:.1f}/{objectives.get('rto_critical_seconds', 0) / 60:.0f} min (projected)"
               if worst_c is not None else "no scenario judged")
        if rpo:
            rto += f", RPO worst case {rpo['worst_case_seconds'] / 3600:.1f}/{rpo['objective_seconds'] / 3600:.0f} h"
    stale = seconds is not None and seconds > QUARTER.total_seconds()
    if when is not None and _future(ev, when):  # never a drill that ran: red, whatever it says
        return Row("drills", item, RED, f"dated {when:%Y-%m-%d %H:%M} UTC, after now (+{_minutes(CLOCK_SKEW)} of "
                                        f"clock skew): not counted ({where})", seconds,
                   {"passed": passed, "report": where, "future": True})
    level = RED if not passed else (WARN if stale else OK)
    return Row("drills", item, level, f"{'PASSED' if passed else 'FAILED'}: {rto}"
               + ("; older than a quarter" if stale and passed else ""), seconds,
               {"passed": passed, "report": where, "failures": document.get("failures")})


def quarterly_drill(ev: Evidence) -> list[Row]:
    bucket = ev.output(outputs.DATABASE_BACKUPS, outputs.REPORTS_BUCKET_NAME)
    found = _newest_report(ev, ev.client("s3", None), bucket, metrics.QUARTERLY_DRILL,
                           ev.now - QUARTER - timedelta(days=7))
    future = f"; {_future_text(found.future)}" if found.future else ""
    if found.key is None:
        young = ev.young(QUARTER) and not found.future
        return [Row("drills", "quarterly (AWS)", WARN if young else RED,
                    ("none yet (the environment is younger than a quarter)" if young else
                     "no quarterly drill report within a quarter: run the DrDrill state machine") + future,
                    data={"future": found.future})]
    key, document = found.key, found.document
    when = _when(document, key)
    row = _drill_row("quarterly (AWS)", document, when, f"s3://{bucket}/{key}", ev)
    if (when and ev.now - when > QUARTER) or future:
        row = Row(row.section, row.item, RED, row.summary + future, row.age_seconds, row.data)
    return [row]


def local_drill(ev: Evidence) -> list[Row]:
    path = ev.drill_report
    if path is None:
        return [Row("drills", "local", OK, "not judged here (--no-drill-report: the drill running this writes its "
                                           "report after it)")]
    if not path.is_file():
        return [Row("drills", "local", WARN, f"no local drill report at {path} (tavari-dr drill --local writes it)")]
    document = json.loads(path.read_text())
    if document.get("environment") != ev.config.name:
        return [Row("drills", "local", WARN, f"{path} is a drill of {document.get('environment')!r}, not "
                                             f"{ev.config.name!r}")]
    return [_drill_row("local", document, _when(document, ""), str(path), ev)]


# --------------------------------------------------------------------------- metrics


def _declares(ev: Evidence, metric: str) -> bool:
    return any(a.get("MetricName") == metric and a.get("Namespace") == metrics.NAMESPACE for a in ev.alarms) or any(
        m.get("MetricStat", {}).get("Metric", {}).get("MetricName") == metric
        for a in ev.alarms for m in a.get("Metrics", []))


def metric_rows(ev: Evidence) -> list[Row]:
    """The change stream's lag and newest segment (when changes.enabled) and the invoice bucket's
    replication (where it is on): one GetMetricData over the last 15 minutes."""
    queries: list[dict[str, Any]] = []
    capture = ev.config.changes.enabled
    capture_declared = capture and (_declares(ev, metrics.REPLICATION_LAG_SECONDS)
                                    or _declares(ev, metrics.CHANGE_SEGMENT_AGE_SECONDS))
    if capture_declared:
        for qid, name in (("lag", metrics.REPLICATION_LAG_SECONDS), ("segment", metrics.CHANGE_SEGMENT_AGE_SECONDS)):
            queries.append(_query(qid, metrics.NAMESPACE, name, {"Source": "changes"}))
    replication = _replication_rule(ev) if ev.config.replication.enabled else None
    if ev.config.replication.enabled and replication is None:
        rows_before = [Row("replication", "invoice bucket", WARN, "replication is on, but no deployed alarm watches "
                                                                 "its ReplicationLatency (deploy the current app)")]
    else:
        rows_before = []
    if replication:
        for qid, name in (("latency", "ReplicationLatency"), ("pending", "BytesPendingReplication")):
            queries.append(_query(qid, "AWS/S3", name, replication))
    values: dict[str, tuple[datetime, float]] = {}
    if queries:
        answer = ev.client("cloudwatch", None).get_metric_data(
            MetricDataQueries=queries, StartTime=ev.now - METRIC_WINDOW, EndTime=ev.now, ScanBy="TimestampDescending")
        for result in answer.get("MetricDataResults", []):
            if result.get("Timestamps"):
                values[result["Id"]] = (result["Timestamps"][0], float(result["Values"][0]))
    rows = rows_before
    if not capture:
        rows.append(Row("changes", "capture", OK, "changes.enabled is false: dumps only (RPO from the schedule)"))
    elif not capture_declared:
        rows.append(Row("changes", "capture", WARN, "changes.enabled, but no deployed alarm watches "
                                                   f"{metrics.REPLICATION_LAG_SECONDS}: capture not deployed yet"))
    else:
        limits = {"lag": (metrics.REPLICATION_LAG_SECONDS, ev.config.changes.max_lag_seconds),
                  "segment": (metrics.CHANGE_SEGMENT_AGE_SECONDS, ev.config.monitoring.rpo_hours * 3600)}
        for qid, (name, limit) in limits.items():
            if qid not in values:
                rows.append(Row("changes", name, RED, f"no data in the last {METRIC_WINDOW.seconds // 60} min: the "
                                                      "capture is not publishing"))
                continue
            at, value = values[qid]
            rows.append(Row("changes", name, RED if value > limit else OK, f"{value:.0f} s (limit {limit} s)",
                            (ev.now - at).total_seconds(), {"value": value}))
    if replication:
        latency, pending = values.get("latency"), values.get("pending")
        limit = ev.config.monitoring.replication_latency_seconds
        if latency is None and pending is None:
            rows.append(Row("replication", "invoice bucket", WARN,
                            f"no replication metrics in the last {METRIC_WINDOW.seconds // 60} min (no writes to "
                            "replicate, or RTC metrics off)", data=replication))
        else:
            late = latency is not None and latency[1] > limit
            text = (f"latency {latency[1]:.0f} s (limit {limit} s)" if latency else "latency: no data") + \
                   (f", {pending[1] / 1024 / 1024:.1f} MiB pending" if pending else "")
            newest = max(v[0] for v in (latency, pending) if v)
            rows.append(Row("replication", "invoice bucket", RED if late else OK, text,
                            (ev.now - newest).total_seconds(), replication))
    return rows


def _query(qid: str, namespace: str, name: str, dimensions: dict[str, str]) -> dict[str, Any]:
    return {"Id": qid, "ReturnData": True, "MetricStat": {
        "Metric": {"Namespace": namespace, "MetricName": name,
                   "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()]},
        "Period": 60, "Stat": "Maximum"}}


def _replication_rule(ev: Evidence) -> dict[str, str] | None:
    """The dimensions of the invoice bucket's replication metrics (SourceBucket, DestinationBucket, RuleId):
    those the declared ReplicationLatency alarm watches (the stacks declare it where replication is on)."""
    for alarm in ev.alarms:
        if alarm.get("Namespace") == "AWS/S3" and alarm.get("MetricName") == "ReplicationLatency":
            return {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])}
    return None


# --------------------------------------------------------------------------- batch jobs, secrets, restores


def batch_jobs(ev: Evidence) -> list[Row]:
    if ev.emulator:
        # S3 Control addresses <account>.s3-control.<region>: no such host on a loopback emulator, and moto
        # models no jobs.
        return [Row("batch jobs", "in flight", WARN, "not readable against the emulator (S3 Control's "
                                                    "account host names; moto models no jobs)")]
    account = ev.config.account or ev.client("sts", None).get_caller_identity()["Account"]
    found = active_jobs(ev.client("s3control", None), account)
    if not found:
        return [Row("batch jobs", "in flight", OK, "none")]
    rows = []
    for job in found:
        created = datetime.fromisoformat(job["created"]) if job["created"] else None
        # Suspended: awaiting the operator's `bucket jobs confirm`; Failing: tasks are failing now.
        failed = job["status"] in ("Failing", "Suspended")
        rows.append(Row("batch jobs", job["job_id"][:28], RED if failed else WARN,
                        f"{job['status']}: {job['description']} ({job['succeeded']}/{job['total']} tasks, "
                        f"{job['failed']} failed)", (ev.now - created).total_seconds() if created else None))
    return rows


def secret_rows(ev: Evidence) -> list[Row]:
    stack = ev.stacks.get(ev.config.stack_name(outputs.SECRETS))
    if stack is None:
        raise LookupError(f"stack {ev.config.stack_name(outputs.SECRETS)} is not deployed")
    entries = ev.config.secrets.all_entries
    arns = {}
    for entry in entries:
        key = outputs.secret_output_key(entry.name)
        if key not in stack.outputs:
            raise LookupError(f"{stack.name} has no output {key}; deploy the current app")
        arns[entry.name] = stack.outputs[key]
    checked = secrets_lib.check(secrets_lib.read_states(ev.client("secretsmanager", None), entries, arns), now=ev.now)
    failed = [r for r in checked if r.failed]
    unset = [r.name for r in checked if r.status == "unset (optional)"]
    summary = f"{len(checked) - len(failed) - len(unset)} set"
    if failed:
        summary += (f"; {len(failed)} not: " + ", ".join(f"{r.name} ({r.status})" for r in failed)
                    + f" — tavari-dr secrets push --env {ev.config.name} --apply")
    if unset:
        summary += f"; optional, unset: {', '.join(unset)}"
    return [Row("secrets", "entries", RED if failed else OK, summary,
                data={"failed": {r.name: r.status for r in failed}, "unset": unset})]


# The audit records of real restores (audit/ also holds erasure and clean-up records, not shown here).
RESTORE_ACTIONS = ("db_restore", "bucket_restore", "bucket_batch_restore", "supabase_restore_config")


def restores(ev: Evidence) -> list[Row]:
    bucket = ev.output(outputs.DATABASE_BACKUPS, outputs.REPORTS_BUCKET_NAME)
    s3 = ev.client("s3", None)
    keys = [o["Key"] for action in RESTORE_ACTIONS
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{AUDIT_PREFIX}{action}/")
            for o in page.get("Contents", []) if o["Key"].endswith(".json")]
    if not keys:
        return [Row("restores", "last", OK, "no real restore recorded")]
    # audit/<action>/<Y/m/d>/<YYYYmmddTHHMMSSZ>-<id>.json: the file name sorts by start time.
    newest = sorted(keys, key=lambda k: k.rsplit("/", 1)[-1], reverse=True)[:RESTORES_SHOWN]
    rows = [Row("restores", "recorded", OK, f"{len(keys)} real restore(s) in the audit records; the newest:")]
    for key in newest:
        record = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        outcome = str(record.get("outcome", "?"))
        finished = _when({"at": record.get("finished_at")}, key)
        source = record.get("source") or {}
        what = source.get("backup") or source.get("to") or ""
        caller = str(record.get("caller", "?")).rsplit("/", 1)[-1]
        # A failed or refused restore is history to know about, not a state to act on now.
        rows.append(Row("restores", str(record.get("action", "?")),
                        WARN if outcome.startswith(("failed", "refused")) else OK,
                        f"{outcome[:70]}; from {what} by {caller}",
                        (ev.now - finished).total_seconds() if finished else None, {"record": f"s3://{bucket}/{key}"}))
    return rows


# --------------------------------------------------------------------------- all of them


# The sources after the stacks and the alarms (the change stream's row needs to know which alarms exist),
# read in parallel: one screen in the time of the slowest, not of the sum.
PARALLEL: tuple[tuple[str, Callable[[Evidence], list[Row]]], ...] = (
    ("backups", backups), ("verification reports", check_reports), ("quarterly drill report", quarterly_drill),
    ("local drill report", local_drill), ("metrics", metric_rows), ("batch jobs", batch_jobs),
    ("secrets", secret_rows), ("audit records", restores))


def describe_error(err: BaseException) -> str:
    from botocore.exceptions import BotoCoreError, ClientError  # here: `status --help` loads no AWS SDK

    if isinstance(err, ClientError):
        error = err.response.get("Error", {})
        return f"{err.operation_name}: {error.get('Code')}: {error.get('Message') or 'no message'}"
    if isinstance(err, json.JSONDecodeError):
        return f"not JSON: {err}"
    if isinstance(err, OSError) and err.filename:
        return f"{err.filename}: {err.strerror or err}"
    if isinstance(err, (LookupError, BotoCoreError)):  # their messages say what and where already
        return str(err).strip("'\"")
    return f"{type(err).__name__}: {err}"


def unreadable() -> tuple[type[BaseException], ...]:
    """What a source that could not be read raises (a "could not read" line, never a traceback)."""
    from botocore.exceptions import BotoCoreError, ClientError

    return ClientError, BotoCoreError, LookupError, ValueError, OSError, TypeError


def collect(ev: Evidence, make_client: Callable[[str, str | None], Any], board: Board) -> Board:
    """Read every source into ``board``; each one's calls are counted on its own (``board.requests``)."""
    lock = threading.Lock()

    def run(name: str, source: Callable[[Evidence], list[Row]]) -> list[Row]:
        counter = RequestCounter()
        made: dict[tuple[str, str | None], Any] = {}

        def client(service: str, region: str | None) -> Any:
            if (service, region) not in made:
                with lock:  # boto3's default session is not safe to make clients from in parallel
                    made[service, region] = counter.attach(make_client(service, region))
            return made[service, region]

        try:
            return source(replace(ev, client=client))
        except unreadable() as err:
            with lock:
                board.unreadable.append(Unreadable(name, describe_error(err)))
            return []
        finally:
            with lock:
                board.requests[name] = sum(counter.counts.requests.values())

    run("stacks", stacks)
    if board.unreadable:  # nothing else can be found without the stacks' outputs
        return board
    rows = run("alarms", alarms)
    with ThreadPoolExecutor(max_workers=len(PARALLEL)) as pool:
        answers = list(pool.map(lambda item: run(*item), PARALLEL))
    board.rows = rows + [row for answer in answers for row in answer]
    board.unreadable.sort(key=lambda u: u.source)
    return board
