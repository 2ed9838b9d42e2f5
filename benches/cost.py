"""What each environment costs a month, at the sizes in cdk.json, from a dated price table.

    .venv/bin/python benches/cost.py                  # print the cost page's table
    .venv/bin/python benches/cost.py --update-readme  # rewrite it in docs/deploy/costs.md (between the cost markers)
    .venv/bin/python benches/cost.py --json           # every line with its quantity, unit price and formula

The quantities come from two places only: cdk.json (drill.database_gb / invoice_count / invoice_gb,
the backup schedule and retention tiers, the verification sample sizes) and the synthesized
templates (task sizes, Lambda memory and timeouts, KMS keys, secrets and their replicas, schedules).
Prices come from benches/prices-<date>.json, each with its page. Where cdk.json says nothing a cost
needs, an ASSUMPTION below says what is taken instead; usage-driven costs (the export API, alerts,
new invoices) are given per unit, not guessed.
"""

from __future__ import annotations

import argparse
import calendar
import json
import math
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tavari_dr.core.config import EnvironmentConfig, load_environment, read_cdk_context  # noqa: E402
from tavari_dr.core.costmodel import S3_CONNECTION_BYTES_PER_SECOND, load_calibration  # noqa: E402
from tavari_dr.core.s3sink import PART_SIZE  # noqa: E402
from tavari_dr.core.schedule import runs_in_year  # noqa: E402
from tavari_dr.database.backup import tier_for  # noqa: E402
from tavari_dr.database.manifest import ARTIFACTS  # noqa: E402

PRICES = ROOT / "benches" / "prices-2026-12.json"
README = ROOT / "docs" / "deploy" / "costs.md"  # the cost page of the docs site (was README.md)
BEGIN, END = "<!-- cost:begin (benches/cost.py --update-readme) -->", "<!-- cost:end -->"
GB = 1024 ** 3
DAYS_PER_MONTH = 365 / 12
# A fixed, ordinary year for counting schedule runs and backup tiers: no answer depends on today.
YEAR = 2027

# ASSUMPTION: a custom-format dump is as large as the database. pg_dump compresses, so this is the
# upper end; cdk.json gives the database's size, not its dump's.
DUMP_TO_DATABASE = 1.0
# ASSUMPTION: a Fargate task is billed from its image pull; pulling the job image and starting
# takes about a minute (the restore test's supabase/postgres sidecar two).
TASK_START_SECONDS = 60
SIDECAR_START_SECONDS = 120
# Fargate bills at least a minute per task.
FARGATE_MINIMUM_SECONDS = 60
# ASSUMPTION: invoices are written once (cdk.json gives no rate of change), so no noncurrent
# versions reach the archive class; their price per GB is in the notes.
NONCURRENT_INVOICE_GB = 0.0
# ASSUMPTION: the continuous capture writes two objects per closed segment (the segment and what signs
# it; "other keys under changes/" are rarer) and one PutMetricData call carrying all its metrics.
CAPTURE_PUTS_PER_SEGMENT = 2
# The capture's metrics (Source=changes, and JobFailed{Job=db_stream}) and its alarms (stacks/monitoring.py).
CAPTURE_METRICS = 6
HOURS_PER_MONTH = DAYS_PER_MONTH * 24
# The daily drift checks' own S3 configuration reads (GetBucket*, ~10 a bucket) and the offsite
# freshness check's listing; ASSUMPTION: 30 requests a day.
DAILY_CHECK_REQUESTS = 30
# Planning without listing (ADR 0022). Each canary object makes four feed events: its put, the delete
# marker its expiry adds, the expiry of the then noncurrent version, and the removal of the marker.
CANARY_EVENTS_PER_OBJECT = 4
# Firehose bills each record rounded up to 5 KB (its pricing page); a feed line is far smaller.
FIREHOSE_RECORD_BYTES = 5 * 1024
# ASSUMPTION: a feed line is about 300 bytes of JSON (a 60-character key), a tenth of that gzipped; an
# inventory row about 100 bytes of Parquet.
FEED_LINE_BYTES, FEED_GZIP_RATIO, INVENTORY_ROW_BYTES = 300, 0.1, 100
# ASSUMPTION: one restore is planned from the inventory a month (the monthly restore test's size), each a
# query of one report and of the feed since it.
PLANS_PER_MONTH = 1
FEED_BUFFER_SECONDS = 300  # backup_constructs.inventory.FEED_BUFFER
# EventBridge charges nothing for AWS service events on the default bus, S3's notifications among them
# (https://aws.amazon.com/eventbridge/pricing/); the price table holds only what is charged.
EVENTBRIDGE_AWS_SERVICE_EVENTS = 0.0
ATHENA_MINIMUM_BYTES = 10 * 1024 ** 2


@dataclass
class Line:
    group: str
    item: str
    quantity: float
    unit: str
    price: float
    formula: str

    @property
    def monthly(self) -> float:
        return self.quantity * self.price


@dataclass
class Estimate:
    environment: str
    region: str
    dr_region: str | None
    sizes: dict[str, Any]
    lines: list[Line] = field(default_factory=list)
    aws_backup: list[Line] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> float:
        return sum(line.monthly for line in self.lines)

    def group_total(self, group: str) -> float:
        return sum(line.monthly for line in self.lines if line.group == group)

    @property
    def invoice_replica(self) -> float:
        return sum(line.monthly for line in self.lines if line.item.startswith("invoice replica"))

    @property
    def aws_backup_total(self) -> float:
        return sum(line.monthly for line in self.aws_backup)


class Prices:
    def __init__(self, path: Path = PRICES) -> None:
        self.document = json.loads(path.read_text())
        self.as_of = self.document["as_of"]

    def __call__(self, name: str, region: str) -> float:
        entry = self.document["prices"][name]
        if region not in entry["by_region"]:
            raise SystemExit(f"{name}: no price for {region} in {PRICES.name}; add it from {entry['source']}")
        return float(entry["by_region"][region])


# --------------------------------------------------------------------------- schedules


def runs_per_month(expression: str) -> float:
    """How often an EventBridge Scheduler expression fires in an average month of YEAR, read by the parser
    that validates the configuration (tavari_dr.core.schedule): one grammar for both."""
    return runs_in_year(expression, YEAR) / 12


def retained_backups(config: EnvironmentConfig) -> float:
    """Backups held at steady state: each day's runs, kept for their tier's retention (and the day
    lifecycle takes to expire them), averaged over the days of YEAR by the tier each day falls in."""
    settings = config.database_backups
    per_day = runs_per_month(settings.schedule) / DAYS_PER_MONTH
    days_in_year = 366 if calendar.isleap(YEAR) else 365
    held = 0.0
    for n in range(days_in_year):
        noon = datetime(YEAR, 1, 1, 12, tzinfo=UTC) + timedelta(days=n)
        held += (tier_for(noon, settings.tiers, "UTC").retention_days + 1) / days_in_year
    return per_day * held


# --------------------------------------------------------------------------- templates


def _resources(templates: dict[str, dict], kind: str) -> list[tuple[str, str, dict]]:
    return [(stack, logical, r.get("Properties", {})) for stack, t in templates.items()
            for logical, r in t.get("Resources", {}).items() if r["Type"] == kind]


def _schedule_target(props: dict) -> str | None:
    """The logical ID a schedule runs: its ECS task definition or its Lambda function."""
    target = props.get("Target", {})
    task = target.get("EcsParameters", {}).get("TaskDefinitionArn")
    if isinstance(task, dict) and "Ref" in task:
        return task["Ref"]
    arn = target.get("Arn")
    if isinstance(arn, dict) and "Fn::GetAtt" in arn:
        return arn["Fn::GetAtt"][0]
    return None


# --------------------------------------------------------------------------- the estimate


def estimate(config: EnvironmentConfig, templates: dict[str, dict], prices: Prices) -> Estimate:
    region, dr = config.region, (config.replication.region if config.replication.enabled else None)
    drill = config.drill
    dump_bytes = drill.database_gb * GB * DUMP_TO_DATABASE
    dump_gb = dump_bytes / GB
    held = retained_backups(config)
    backup_runs = runs_per_month(config.database_backups.schedule)
    est = Estimate(config.name, region, dr, sizes={
        "database_gb": drill.database_gb, "invoice_count": drill.invoice_count, "invoice_gb": drill.invoice_gb,
        "backups_per_month": round(backup_runs, 1), "backups_held": round(held, 1)})
    add = est.lines.append

    # Storage, per class and region.
    add(Line("S3 storage", "invoices, current versions (Standard)", drill.invoice_gb, "GB-month",
             prices("s3_standard_gb_month", region), "drill.invoice_gb"))
    add(Line("S3 storage", "invoices, noncurrent versions (Glacier IR)", NONCURRENT_INVOICE_GB, "GB-month",
             prices("s3_glacier_ir_gb_month", region), "none assumed: invoices are written once"))
    add(Line("S3 storage", "database backups (Standard, Object Lock)", held * dump_gb, "GB-month",
             prices("s3_standard_gb_month", region),
             f"{held:.1f} backups held (schedule x tier retention) x {dump_gb:g} GB dump"))
    if dr:
        add(Line("S3 storage", f"invoice replica ({dr}, Standard)", drill.invoice_gb, "GB-month",
                 prices("s3_standard_gb_month", dr), "drill.invoice_gb"))
        add(Line("S3 storage", f"backup replica ({dr}, Standard, Object Lock)", held * dump_gb, "GB-month",
                 prices("s3_standard_gb_month", dr), "as the primary's backups"))

    # Requests: what the jobs themselves do (the application's uploads and reads are its own).
    parts = math.ceil(dump_bytes / PART_SIZE)
    writes_per_backup = parts + 2 + (len(ARTIFACTS) - 1) + 1  # multipart create/complete, small artifacts, manifest
    verification = config.verification
    list_pages = math.ceil(drill.invoice_count / 1000)
    weekly = runs_per_month(verification.weekly_schedule)
    add(Line("S3 requests", "backup writes (multipart parts, artifacts, manifest)", backup_runs * writes_per_backup
             / 1000, "1,000 PUT", prices("s3_put_per_1000", region),
             f"{backup_runs:.1f} backups x ({parts} parts of 16 MiB + {writes_per_backup - parts} requests)"))
    reads = (DAYS_PER_MONTH * DAILY_CHECK_REQUESTS + weekly * (verification.integrity_sample_size + list_pages + 1)
             + verification.restore_test_sample_size + len(ARTIFACTS) + 1)
    add(Line("S3 requests", "verification reads (drift, integrity sample, restore tests)", reads / 1000, "1,000 GET",
             prices("s3_get_per_1000", region),
             f"{DAILY_CHECK_REQUESTS}/day + weekly {verification.integrity_sample_size} samples and {list_pages} "
             "listing pages + monthly restore tests"))
    lists = weekly * list_pages + verification.restore_test_sample_size
    add(Line("S3 requests", "verification listings and restore-test copies", lists / 1000, "1,000 LIST/PUT",
             prices("s3_put_per_1000", region), f"weekly {list_pages} pages of 1,000 versions + monthly copies"))

    # Replication of the backups (the invoices' replication follows their writes: per GB in the notes).
    if dr:
        add(Line("Replication", f"backups to {dr}: transfer", backup_runs * dump_gb, "GB",
                 prices("s3_inter_region_transfer_gb", region), f"{backup_runs:.1f} backups x {dump_gb:g} GB"))
        add(Line("Replication", f"backups to {dr}: replica writes", backup_runs * (len(ARTIFACTS) + 1) / 1000,
                 "1,000 PUT", prices("s3_put_per_1000", dr), "one PUT per replicated object"))

    # Fargate: the scheduled jobs, each from its task definition's size and what it moves.
    calibration = load_calibration()
    download = dump_bytes / S3_CONNECTION_BYTES_PER_SECOND
    work = {  # seconds of each job beyond the start, from the calibration of dump, restore and scan
        "NightlyBackup": ("db backup (pg_dump, upload)", calibration.dump(dump_bytes) + download),
        "WeeklyVerify": ("db verify --quick (sha256, table of contents)",
                         download + calibration.scan(dump_bytes)),
        "MonthlyRestoreTest": ("db verify (full restore into the sidecar)", download + SIDECAR_START_SECONDS
                               + calibration.restore(dump_bytes)),
    }
    schedules = {_schedule_target(p): p["ScheduleExpression"] for _, _, p in _resources(templates,
                                                                                          "AWS::Scheduler::Schedule")}
    for _stack, logical, props in _resources(templates, "AWS::ECS::TaskDefinition"):
        job = next((name for name in work if logical.startswith(name)), None)
        if job is None or logical not in schedules:
            continue
        what, seconds = work[job]
        seconds = max(FARGATE_MINIMUM_SECONDS, TASK_START_SECONDS + calibration.cli_start_seconds + seconds)
        runs = runs_per_month(schedules[logical])
        hours = runs * seconds / 3600
        vcpu, memory_gb = int(props["Cpu"]) / 1024, int(props["Memory"]) / 1024
        price = vcpu * prices("fargate_vcpu_hour", region) + memory_gb * prices("fargate_gb_hour", region)
        add(Line("Fargate", f"{what}: {vcpu:g} vCPU, {memory_gb:g} GB", hours, "task-hour", price,
                 f"{runs:.1f} runs x {seconds:.0f} s"))

    # Lambda: the scheduled verification functions, at their timeout (the upper bound).
    functions = {logical: props for _, logical, props in _resources(templates, "AWS::Lambda::Function")}
    gb_seconds = invocations = 0.0
    for target, expression in schedules.items():
        if target in functions:
            runs = runs_per_month(expression)
            props = functions[target]
            gb_seconds += runs * props.get("Timeout", 3) * props.get("MemorySize", 128) / 1024
            invocations += runs
    add(Line("Lambda", "scheduled functions: verification jobs, inventory canary (at their timeouts)", gb_seconds,
             "GB-second",
             prices("lambda_gb_second", region), f"{invocations:.0f} runs a month x memory x timeout"))
    add(Line("Lambda", "their invocations", invocations / 1e6, "1M requests",
             prices("lambda_per_million_requests", region), "as above"))

    # KMS: every key the templates create (each region's stacks), and the signing key's requests.
    keys = _resources(templates, "AWS::KMS::Key")
    add(Line("KMS", f"customer managed keys ({len(keys)})", len(keys), "key-month",
             prices("kms_key_month", region), "AWS::KMS::Key in the synthesized templates"))
    signatures = backup_runs + DAYS_PER_MONTH + weekly * 2 + 2  # sign each; verify daily, weekly, monthly
    add(Line("KMS", "manifest signing and verification (ECC)", signatures / 10000, "10,000 requests",
             prices("kms_asymmetric_per_10000", region), "one Sign per backup, one Verify per check that opens one"))
    data_keys = backup_runs * (len(ARTIFACTS) + 1) + reads  # S3 Bucket Keys make this an upper bound
    add(Line("KMS", "data keys for the jobs' S3 objects", data_keys / 10000, "10,000 requests",
             prices("kms_symmetric_per_10000", region), "one per object written or read (upper bound)"))

    # CloudTrail: the tamper trail's data events (writes to the backup buckets); management events
    # are free as the account's first copy.
    if config.security.trail_arn is None:
        events = backup_runs * writes_per_backup * (2 if dr and not config.cross_account_replication else 1)
        add(Line("CloudTrail", "data events (writes to the backup buckets)", events / 100000, "100,000 events",
                 prices("cloudtrail_data_events_per_100000", region), "every backup write, replica writes too"))

    # Secrets Manager: each secret, each replica billed as one.
    secrets = _resources(templates, "AWS::SecretsManager::Secret")
    billed = sum(1 + len(p.get("ReplicaRegions", [])) for _, _, p in secrets)
    add(Line("Secrets Manager", f"secrets ({len(secrets)}, {billed} with replicas)", billed, "secret-month",
             prices("secretsmanager_secret_month", region), "AWS::SecretsManager::Secret and ReplicaRegions"))

    # What AWS Backup would charge to protect the invoices the same way (a backup in the region and a
    # copy in the DR region, instead of versioning's noncurrent history plus the replica).
    backup = est.aws_backup.append
    backup(Line("AWS Backup", "S3 backup of the invoices (warm storage)", drill.invoice_gb, "GB-month",
                prices("backup_s3_warm_gb_month", region), "drill.invoice_gb"))
    if dr:
        backup(Line("AWS Backup", f"copy in {dr} (warm storage)", drill.invoice_gb, "GB-month",
                    prices("backup_s3_warm_gb_month", dr), "drill.invoice_gb"))
    rtc = config.replication.replication_time_control
    new_invoices = f"new invoices: ${prices('s3_standard_gb_month', region):g}/GB-month stored"
    if dr:
        per_gb = prices("s3_inter_region_transfer_gb", region) + (
            prices("s3_replication_time_control_gb", region) if rtc else 0.0)
        new_invoices += (f", ${per_gb:g}/GB replicated (transfer{' + RTC' if rtc else ''}) and "
                         f"${prices('s3_standard_gb_month', dr):g}/GB-month in the replica")
    est.notes = [new_invoices, "noncurrent invoice versions past archive_after_days: "
                               f"${prices('s3_glacier_ir_gb_month', region):g}/GB-month"]
    if config.inventory.enabled:
        _planning(est, config, prices)
    _continuous_capture(est, config, templates, prices)
    return est


def _planning(est: Estimate, config: EnvironmentConfig, prices: Prices) -> None:
    """S3 Inventory, the change feed (EventBridge, Firehose, its objects) and Athena at cdk.json's sizes: the
    feed's own traffic is the canary's (invoices are written once, as above; per invoice in the notes)."""
    region, settings, add = est.region, config.inventory, est.lines.append
    canary_objects = runs_per_month(f"rate({settings.canary_minutes} minutes)")
    # The canary's versions a report lists: a day of objects, each with its delete marker.
    versions = config.drill.invoice_count + 2 * canary_objects / DAYS_PER_MONTH
    add(Line("S3 Inventory", "every version, daily", versions * DAYS_PER_MONTH / 1e6, "1M objects listed",
             prices("s3_inventory_per_million_objects", region),
             f"{versions:,.0f} versions (drill.invoice_count + the canary's day) x {DAYS_PER_MONTH:.1f} reports"))
    events = canary_objects * CANARY_EVENTS_PER_OBJECT
    add(Line("EventBridge (feed)", "S3 events to the feed rules", events / 1e6, "1M events",
             EVENTBRIDGE_AWS_SERVICE_EVENTS,
             f"{canary_objects:.0f} canary objects x {CANARY_EVENTS_PER_OBJECT} events"))
    add(Line("Firehose (feed)", "feed lines ingested (5 KB each, billed)", events * FIREHOSE_RECORD_BYTES / GB, "GB",
             prices("firehose_direct_put_gb", region), f"{events:.0f} lines x 5 KB"))
    buffers = DAYS_PER_MONTH * 86400 / FEED_BUFFER_SECONDS
    add(Line("Firehose (feed)", "feed objects and inventory reports written", (min(events, buffers)
             + DAYS_PER_MONTH * 3) / 1000, "1,000 PUT", prices("s3_put_per_1000", region),
             "a feed object per 5-minute buffer that holds a line + a report's manifest, checksum and data"))
    held_gb = (events * FEED_LINE_BYTES * FEED_GZIP_RATIO * settings.feed_retention_days / DAYS_PER_MONTH
               + versions * INVENTORY_ROW_BYTES * settings.retention_days) / GB
    add(Line("S3 storage", "change feed and inventory reports (Standard)", held_gb, "GB-month",
             prices("s3_standard_gb_month", region),
             f"feed kept {settings.feed_retention_days} days, reports {settings.retention_days}"))
    scanned = max(ATHENA_MINIMUM_BYTES, versions * INVENTORY_ROW_BYTES) + max(
        ATHENA_MINIMUM_BYTES, events * FEED_LINE_BYTES * FEED_GZIP_RATIO)
    add(Line("Athena (planning)", "queries of the inventory and the feed", PLANS_PER_MONTH * scanned / 1024 ** 4,
             "TB", prices("athena_tb_scanned", region),
             f"{PLANS_PER_MONTH} plan a month: one query of each table, at least 10 MB each"))
    per_million_lines = FIREHOSE_RECORD_BYTES * 1e6 / GB * prices("firehose_direct_put_gb", region)
    per_million_versions = prices("s3_inventory_per_million_objects", region) * DAYS_PER_MONTH
    est.notes.append(f"each invoice written or deleted: one feed line, ${per_million_lines:.2f} per million "
                     f"(Firehose at 5 KB a line; feed objects stay at most one per 5-minute buffer, "
                     f"{buffers:,.0f} a month); each version kept: ${per_million_versions:.3f} per million a month "
                     "in the daily inventory; each planning query: $5 per TB scanned")


def _continuous_capture(est: Estimate, config: EnvironmentConfig, templates: dict[str, dict], prices: Prices) -> None:
    """The always-on `db stream` service, where the templates deploy it: its task from the task
    definition's size, its public IPv4 address (instead of a NAT gateway), and what each segment costs
    (PUTs, a signature, data keys, a metrics call); its custom metrics and alarms."""
    services = _resources(templates, "AWS::ECS::Service")
    if not services:
        return
    region, add = config.region, est.lines.append
    tasks = {logical: props for _, logical, props in _resources(templates, "AWS::ECS::TaskDefinition")}
    group = "Continuous capture"
    for _stack, _logical, props in services:
        task = tasks[props["TaskDefinition"]["Ref"]]
        vcpu, memory_gb = int(task["Cpu"]) / 1024, int(task["Memory"]) / 1024
        price = vcpu * prices("fargate_vcpu_hour", region) + memory_gb * prices("fargate_gb_hour", region)
        hours = props.get("DesiredCount", 1) * HOURS_PER_MONTH
        add(Line(group, f"db stream (Fargate, always on): {vcpu:g} vCPU, {memory_gb:g} GB", hours, "task-hour",
                 price, f"{props.get('DesiredCount', 1)} task x {HOURS_PER_MONTH:.0f} h"))
        if props["NetworkConfiguration"]["AwsvpcConfiguration"].get("AssignPublicIp") == "ENABLED":
            add(Line(group, "its public IPv4 address (AWS APIs without a NAT gateway; Supabase over IPv6)", hours,
                     "address-hour", prices("vpc_public_ipv4_hour", region),
                     f"one per task; a NAT gateway would be ${prices('nat_gateway_hour', region) * HOURS_PER_MONTH:.2f}"
                     "/month per AZ plus its per-GB charge"))
    segments = DAYS_PER_MONTH * 86400 / config.changes.segment_seconds
    puts = segments * CAPTURE_PUTS_PER_SEGMENT
    add(Line(group, "segment writes (S3 PUT)", puts / 1000, "1,000 PUT", prices("s3_put_per_1000", region),
             f"{segments:,.0f} segments (one per changes.segment_seconds={config.changes.segment_seconds}) x "
             f"{CAPTURE_PUTS_PER_SEGMENT} objects"))
    add(Line(group, "segment signatures (KMS Sign, ECC)", segments / 10000, "10,000 requests",
             prices("kms_asymmetric_per_10000", region), "one Sign per segment"))
    add(Line(group, "data keys for the segments (upper bound)", puts / 10000, "10,000 requests",
             prices("kms_symmetric_per_10000", region), "one per object written"))
    add(Line(group, "metrics: PutMetricData", segments / 1000, "1,000 requests",
             prices("cloudwatch_put_metric_per_1000", region), "one call per segment"))
    add(Line(group, f"metrics: {CAPTURE_METRICS} custom metrics", CAPTURE_METRICS, "metric-month",
             prices("cloudwatch_metric_month", region), "Source=changes (5) and JobFailed{Job=db_stream}"))
    add(Line(group, f"alarms ({CAPTURE_METRICS})", CAPTURE_METRICS, "alarm-month",
             prices("cloudwatch_alarm_month", region), "lag, retained WAL, stalled, base reset, failed, not running"))
    est.notes.append(
        f"change segments: each GB of changes a month is kept {config.changes.retention_days} days, "
        f"${prices('s3_standard_gb_month', region) * config.changes.retention_days / DAYS_PER_MONTH:.4f} per GB of "
        "monthly change volume (the replication stream into AWS is inbound transfer, not charged)")


# --------------------------------------------------------------------------- rendering


def synthesize(env_name: str, context: dict[str, Any]) -> dict[str, dict]:
    from aws_cdk import App

    from stacks.app import build_app

    app = App(context={**context, "env": env_name}, outdir=tempfile.mkdtemp(prefix=f"cost-{env_name}-"))
    build_app(app, load_environment(context, env_name))
    return {s.stack_name: s.template for s in app.synth().stacks}


def estimates(templates_of: dict[str, dict[str, dict]] | None = None, prices: Prices | None = None) -> list[Estimate]:
    """One estimate per environment of cdk.json (templates_of: env -> stack -> template; default: synthesize)."""
    context = read_cdk_context(ROOT / "cdk.json")
    prices = prices or Prices()
    out = []
    for name in context["environments"]:
        templates = (templates_of or {}).get(name) or synthesize(name, context)
        out.append(estimate(load_environment(context, name), templates, prices))
    return out


def money(value: float) -> str:
    return f"${value:,.2f}"


def markdown(all_estimates: list[Estimate], prices: Prices) -> str:
    groups = list(dict.fromkeys(line.group for e in all_estimates for line in e.lines))
    names = [e.environment for e in all_estimates]
    rows = [f"| per month | {' | '.join(f'`{n}`' for n in names)} |", "|---|" + "---:|" * len(names)]
    rows.append("| sizes (cdk.json `drill`) | " + " | ".join(
        f"{e.sizes['database_gb']:g} GB database, {e.sizes['invoice_count']:,} invoices / {e.sizes['invoice_gb']:g} GB"
        for e in all_estimates) + " |")
    rows.append("| backups a month / held | " + " | ".join(
        f"{e.sizes['backups_per_month']:g} / {e.sizes['backups_held']:g}" for e in all_estimates) + " |")
    for group in groups:
        rows.append(f"| {group} | " + " | ".join(money(e.group_total(group)) for e in all_estimates) + " |")
    rows.append("| **total** | " + " | ".join(f"**{money(e.total)}**" for e in all_estimates) + " |")
    rows.append("| the invoices' protection here: their DR replica's storage | "
                + " | ".join(money(e.invoice_replica) for e in all_estimates) + " |")
    rows.append("| beside it, AWS Backup for the invoices: S3 backup, warm storage (a DR copy where replication "
                "is on) | " + " | ".join(money(e.aws_backup_total) for e in all_estimates) + " |")
    storage_lines = [f"- `{e.environment}` storage per class: " + "; ".join(
        f"{line.item} {line.quantity:,.1f} GB-month = {money(line.monthly)}" for line in e.lines
        if line.group == "S3 storage") for e in all_estimates]
    notes = [f"- `{e.environment}` per unit of use: " + "; ".join(e.notes) for e in all_estimates]
    return "\n".join([f"List prices as of {prices.as_of} (USD, on-demand, `benches/{PRICES.name}`, each with "
                      "its AWS pricing page):", "", *rows, "", *storage_lines, *notes])


def update_readme(table: str) -> None:
    text = README.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{README.relative_to(ROOT)} has no {BEGIN} … {END} block")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{BEGIN}\n{table}\n{END}{tail}")


def readme_table() -> str:
    text = README.read_text()
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update-readme", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    prices = Prices()
    found = estimates(prices=prices)
    if args.json:
        print(json.dumps([{**asdict(e), "total": e.total, "aws_backup_total": e.aws_backup_total}
                          for e in found], indent=1))
        return
    table = markdown(found, prices)
    if args.update_readme:
        update_readme(table)
    print(table)


if __name__ == "__main__":
    main()
