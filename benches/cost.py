"""What each environment costs a month, at the sizes in cdk.json, from a dated price table.

    .venv/bin/python benches/cost.py                # print the table of docs/reference/costs.md
    .venv/bin/python benches/cost.py --update-docs  # rewrite it there (between the cost markers)
    .venv/bin/python benches/cost.py --json         # every line with its quantities, unit price and formula

The quantities come from two places only: cdk.json (drill.database_gb / invoice_count / invoice_gb,
the backup schedule and retention tiers, the verification sample sizes) and the synthesized
templates: every resource of every stack is walked, and each resource type has a rule in RULES
(priced, per use, or free with its reason); a type without one is refused (tests/test_cost.py).
Prices come from benches/prices-<date>.json, each with its page and whether it was read back there
(`seen`) or not (`unverified`). Where cdk.json says nothing a cost needs, an ASSUMPTION below says
what is taken instead; usage-driven costs (the export API, alerts, new invoices) are given per unit.
Year 1 is an average month of the first year; steady state is year 3 on (key rotations, logs kept).
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
DOC = ROOT / "docs" / "reference" / "costs.md"
BEGIN, END = "<!-- cost:begin (benches/cost.py --update-docs) -->", "<!-- cost:end -->"
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
    steady: float | None = None  # the quantity from year 3 on, where it differs from year 1's

    @property
    def monthly(self) -> float:
        """An average month of the first year."""
        return self.quantity * self.price

    @property
    def steady_monthly(self) -> float:
        """A month from year 3 on."""
        return (self.quantity if self.steady is None else self.steady) * self.price


@dataclass
class Estimate:
    environment: str
    region: str
    dr_region: str | None
    sizes: dict[str, Any]
    lines: list[Line] = field(default_factory=list)
    aws_backup: list[Line] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unpriced: list[str] = field(default_factory=list)  # template resources no rule covers
    architecture: str = "x86_64"
    arm64: Estimate | None = None  # the same templates on Graviton (compute.architecture = arm64)

    @property
    def total(self) -> float:
        return sum(line.monthly for line in self.lines)

    @property
    def steady_total(self) -> float:
        return sum(line.steady_monthly for line in self.lines)

    def group_total(self, group: str) -> float:
        return sum(line.monthly for line in self.lines if line.group == group)

    def group_steady(self, group: str) -> float:
        return sum(line.steady_monthly for line in self.lines if line.group == group)

    @property
    def invoice_replica(self) -> float:
        return sum(line.monthly for line in self.lines if line.item.startswith("invoice replica"))

    @property
    def aws_backup_total(self) -> float:
        return sum(line.monthly for line in self.aws_backup)

    @property
    def aws_backup_steady(self) -> float:
        return sum(line.steady_monthly for line in self.aws_backup)


class Prices:
    def __init__(self, path: Path = PRICES) -> None:
        self.document = json.loads(path.read_text())
        self.as_of = self.document["as_of"]
        self.used: set[str] = set()

    def __call__(self, name: str, region: str) -> float:
        entry = self.document["prices"][name]
        self.used.add(name)
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


def rotations_billed(period_days: int, month: int) -> int:
    """Rotations of one key by the end of a month after its creation that KMS bills (the first two)."""
    return min(2, int(month * DAYS_PER_MONTH // period_days))



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
    if isinstance(arn, dict) and "Ref" in arn:  # a state machine's Ref is its ARN
        return arn["Ref"]
    return None


# --------------------------------------------------------------------------- the estimate


def _fargate_architecture(task: dict, override: str | None) -> str:
    declared = task.get("RuntimePlatform", {}).get("CpuArchitecture", "X86_64")
    return override or ("arm64" if declared == "ARM64" else "x86_64")


def _fargate_rate(task: dict, region: str, prices: Prices, override: str | None) -> tuple[float, str]:
    """A task's price per hour at its declared processor (or the override's), and its description."""
    arch = _fargate_architecture(task, override)
    suffix = "_arm64" if arch == "arm64" else ""
    vcpu, memory_gb = int(task["Cpu"]) / 1024, int(task["Memory"]) / 1024
    rate = vcpu * prices(f"fargate_vcpu_hour{suffix}", region) + memory_gb * prices(f"fargate_gb_hour{suffix}", region)
    return rate, f"{vcpu:g} vCPU, {memory_gb:g} GB, {arch}"


def _lambda_architecture(props: dict, override: str | None) -> str:
    return override or props.get("Architectures", ["x86_64"])[0]


def estimate(config: EnvironmentConfig, templates: dict[str, dict], prices: Prices,
             regions: dict[str, str] | None = None, architecture: str | None = None) -> Estimate:
    """One environment's month. regions: stack name -> its region (default: the environment's);
    architecture: price every function and task as if it declared this processor (None: as declared)."""
    region, dr = config.region, (config.replication.region if config.replication.enabled else None)
    drill = config.drill
    dump_bytes = drill.database_gb * GB * DUMP_TO_DATABASE
    dump_gb = dump_bytes / GB
    held = retained_backups(config)
    backup_runs = runs_per_month(config.database_backups.schedule)
    est = Estimate(config.name, region, dr, architecture=architecture or config.compute.architecture, sizes={
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
    scheduled_task_hours = 0.0
    for _stack, logical, props in _resources(templates, "AWS::ECS::TaskDefinition"):
        job = next((name for name in work if logical.startswith(name)), None)
        if job is None or logical not in schedules:
            continue
        what, seconds = work[job]
        seconds = max(FARGATE_MINIMUM_SECONDS, TASK_START_SECONDS + calibration.cli_start_seconds + seconds)
        runs = runs_per_month(schedules[logical])
        hours = runs * seconds / 3600
        price, size = _fargate_rate(props, region, prices, architecture)
        add(Line("Fargate", f"{what}: {size}", hours, "task-hour", price, f"{runs:.1f} runs x {seconds:.0f} s"))
        scheduled_task_hours += hours
    add(Line("Fargate", "the scheduled tasks' public IPv4 addresses while they run", scheduled_task_hours,
             "address-hour", prices("vpc_public_ipv4_hour", region), "one address per task (no NAT gateway)"))

    # Lambda: the scheduled verification functions, at their timeout (the upper bound).
    functions = {logical: props for _, logical, props in _resources(templates, "AWS::Lambda::Function")}
    gb_seconds: dict[str, float] = {}
    invocations = 0.0
    for target, expression in schedules.items():
        if target in functions:
            runs = runs_per_month(expression)
            props = functions[target]
            arch = _lambda_architecture(props, architecture)
            gb_seconds[arch] = gb_seconds.get(arch, 0.0) + runs * props.get("Timeout", 3) * props.get(
                "MemorySize", 128) / 1024
            invocations += runs
    for arch, amount in sorted(gb_seconds.items()):
        add(Line("Lambda", f"scheduled functions: verification jobs, inventory canary (at their timeouts), {arch}",
                 amount, "GB-second", prices("lambda_gb_second" + ("_arm64" if arch == "arm64" else ""), region),
                 f"{invocations:.0f} runs a month x memory x timeout"))
    add(Line("Lambda", "their invocations", invocations / 1e6, "1M requests",
             prices("lambda_per_million_requests", region), "as above"))

    # KMS: every key the templates create (each region's stacks), and the signing key's requests.
    keys = _resources(templates, "AWS::KMS::Key")
    add(Line("KMS", f"customer managed keys ({len(keys)})", len(keys), "key-month",
             prices("kms_key_month", region), "AWS::KMS::Key in the synthesized templates"))
    # KMS bills each automatic rotation's new key material as a key-month, for the first two
    # rotations only: +$1 from year 2, +$2 from year 3 on, per rotating key. Asymmetric keys
    # (the ECC signing keys) cannot rotate.
    periods = [p.get("RotationPeriodInDays", 365) for _, _, p in keys if p.get("EnableKeyRotation")]
    first_year = sum(rotations_billed(period, month) for period in periods for month in range(1, 13)) / 12
    add(Line("KMS", f"key rotations kept ({len(periods)} keys rotate; +1 key-month a rotation, at most 2)",
             first_year, "key-month", prices("kms_key_month", region),
             "rotations by each month's end (RotationPeriodInDays, default 365), at most 2 per key",
             steady=2.0 * len(periods)))
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

    rtc = config.replication.replication_time_control
    new_invoices = f"new invoices: ${prices('s3_standard_gb_month', region):g}/GB-month stored"
    if dr:
        per_gb = prices("s3_inter_region_transfer_gb", region) + (
            prices("s3_replication_time_control_gb", region) if rtc else 0.0)
        new_invoices += (f", ${per_gb:g}/GB replicated (transfer{' + RTC' if rtc else ''}) and "
                         f"${prices('s3_standard_gb_month', dr):g}/GB-month in the replica")
    est.notes = [new_invoices, "noncurrent invoice versions past archive_after_days: "
                               f"${prices('s3_glacier_ir_gb_month', region):g}/GB-month"]
    _aws_backup(est, config, prices)
    if config.inventory.enabled:
        _planning(est, config, prices)
    _continuous_capture(est, config, templates, prices, architecture)
    _walk(est, config, templates, prices, regions or {}, schedules)
    return est


def _aws_backup(est: Estimate, config: EnvironmentConfig, prices: Prices) -> None:
    """What AWS Backup would charge to protect the invoices the same way: a backup in the region and a copy
    in the DR region, instead of versioning's noncurrent history plus the replica. Continuous backups of S3
    are kept at most 35 days, and a copy to another region is always a snapshot: to keep invoices as long
    as versioning does (without end in prod), a plan needs continuous backups (35 days, for point in time)
    and a monthly snapshot kept for the retention, copied to the DR vault."""
    region, dr, drill = config.region, est.dr_region, config.drill
    expiration = config.invoice_bucket.noncurrent_expiration_days
    kept = "without end" if expiration is None else f"{expiration} days"
    backup = est.aws_backup.append
    # ASSUMPTION: the snapshots are incremental and invoices are written once, so the continuous backup and
    # the snapshots share one full copy's storage in the vault, and the DR copy holds one more.
    backup(Line("AWS Backup", "S3 backups of the invoices (warm storage: continuous 35 days + monthly snapshots)",
                drill.invoice_gb, "GB-month", prices("backup_s3_warm_gb_month", region),
                "drill.invoice_gb, one full copy (incremental after it; objects under 128 KB billed as 128 KB)"))
    vaults = 2 if dr else 1
    backup(Line("AWS Backup", f"vault KMS keys ({vaults}: {'the vault and its DR copy vault' if dr else 'the vault'})",
                vaults * (1 + 1 / 12), "key-month", prices("kms_key_month", region),
                "a customer managed key per vault, rotated yearly as every other key here (+1, then +2 from year 3)",
                steady=vaults * 3.0))
    list_pages = math.ceil(drill.invoice_count / 1000)
    requests = drill.invoice_count / 12 + list_pages  # ASSUMPTION: the first full read spread over year 1
    backup(Line("AWS Backup", "its S3 requests (GET of each object, LIST of the bucket each snapshot)",
                requests / 1000, "1,000 GET", prices("s3_get_per_1000", region),
                f"{drill.invoice_count:,} GETs once (a twelfth a month in year 1) + {list_pages} LIST pages a month",
                steady=list_pages / 1000))
    sample_gb = config.verification.restore_test_sample_size * drill.invoice_gb / max(drill.invoice_count, 1)
    backup(Line("AWS Backup", "restores: the monthly restore test's sample", sample_gb, "GB restored",
                prices("backup_s3_restore_gb", region),
                f"{config.verification.restore_test_sample_size} invoices a month, as the restore test here"))
    if dr:
        backup(Line("AWS Backup", f"copy in {dr} (warm storage)", drill.invoice_gb, "GB-month",
                    prices("backup_s3_warm_gb_month", dr), "drill.invoice_gb"))
        backup(Line("AWS Backup", f"the copies' transfer to {dr}", drill.invoice_gb / 12, "GB",
                    prices("backup_cross_region_transfer_gb", region),
                    "the first full copy spread over year 1, then only new invoices (per GB, in the notes)",
                    steady=0.0))
    est.notes.append(
        "AWS Backup for the invoices: continuous backups are kept at most 35 days (here invoice versions are kept "
        f"{kept}"
        f", the replica as long): anything older than 35 days is restorable only to a monthly snapshot's "
        f"instant, not to the second; a full restore is ${prices('backup_s3_restore_gb', region):g}/GB")


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


def _continuous_capture(est: Estimate, config: EnvironmentConfig, templates: dict[str, dict], prices: Prices,
                        architecture: str | None = None) -> None:
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
        price, size = _fargate_rate(task, region, prices, architecture)
        hours = props.get("DesiredCount", 1) * HOURS_PER_MONTH
        add(Line(group, f"db stream (Fargate, always on): {size}", hours, "task-hour",
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
    # Its metrics and alarms are in the CloudWatch rows, with every other alarm and metric of the templates.
    est.notes.append(
        f"change segments: each GB of changes a month is kept {config.changes.retention_days} days, "
        f"${prices('s3_standard_gb_month', region) * config.changes.retention_days / DAYS_PER_MONTH:.4f} per GB of "
        "monthly change volume (the replication stream into AWS is inbound transfer, not charged)")


# --------------------------------------------------------------------------- the templates' resources, one rule a type

# Every resource type the templates declare, with how it is priced: "priced" (a row below counts it),
# "per use" (no fixed monthly cost; what a use costs is in the notes or the line named) or "free" (with
# why). tests/test_cost.py fails on a type that is not here.
RULES: dict[str, tuple[str, str]] = {
    "AWS::ApiGatewayV2::Api": ("per use", "HTTP API: per request (export API, in the notes), no monthly fee"),
    "AWS::ApiGatewayV2::Authorizer": ("free", "part of the HTTP API; its Lambda is billed per use"),
    "AWS::ApiGatewayV2::Integration": ("free", "configuration of the HTTP API"),
    "AWS::ApiGatewayV2::Route": ("free", "configuration of the HTTP API"),
    "AWS::ApiGatewayV2::Stage": ("free", "configuration of the HTTP API; its access log group is priced"),
    "AWS::Athena::WorkGroup": ("free", "queries are billed per TB scanned (Athena (planning) row)"),
    "AWS::CloudTrail::Trail": ("priced", "data events (CloudTrail row); management events' first copy is free"),
    "AWS::CloudWatch::Alarm": ("priced", "each metric an alarm evaluates (CloudWatch row)"),
    "AWS::CloudWatch::Dashboard": ("priced", "per dashboard a month, and the custom metrics it shows"),
    "AWS::DynamoDB::Table": ("per use", "on-demand requests and storage of a few KB (the export limits)"),
    "AWS::EC2::FlowLog": ("priced", "vended log ingestion into its log group (CloudWatch Logs row)"),
    "AWS::EC2::InternetGateway": ("free", "no charge for the gateway; transfer out is per use"),
    "AWS::EC2::Route": ("free", "routing configuration"),
    "AWS::EC2::RouteTable": ("free", "routing configuration"),
    "AWS::EC2::SecurityGroup": ("free", "firewall configuration"),
    "AWS::EC2::Subnet": ("free", "network configuration"),
    "AWS::EC2::SubnetRouteTableAssociation": ("free", "routing configuration"),
    "AWS::EC2::VPC": ("free", "no charge for the VPC; public IPv4 addresses are priced with the tasks"),
    "AWS::EC2::VPCCidrBlock": ("free", "Amazon-provided IPv6 block: no charge"),
    "AWS::EC2::VPCGatewayAttachment": ("free", "network configuration"),
    "AWS::ECS::Cluster": ("priced", "free itself; Container Insights' metrics where its setting is on"),
    "AWS::ECS::Service": ("priced", "its always-on Fargate task (Continuous capture row)"),
    "AWS::ECS::TaskDefinition": ("priced", "per run at its size and processor (Fargate rows)"),
    "AWS::Events::Rule": ("free", "AWS service events on the default bus are free; cross-region forwards per use"),
    "AWS::Glue::Database": ("free", "Data Catalog: the first million objects stored are free (not a trial)"),
    "AWS::Glue::Table": ("free", "Data Catalog: the first million objects stored are free (not a trial)"),
    "AWS::IAM::ManagedPolicy": ("free", "IAM has no charge"),
    "AWS::IAM::OIDCProvider": ("free", "IAM has no charge"),
    "AWS::IAM::Policy": ("free", "IAM has no charge"),
    "AWS::IAM::Role": ("free", "IAM has no charge"),
    "AWS::KMS::Alias": ("free", "aliases have no charge"),
    "AWS::KMS::Key": ("priced", "per key a month and its first two rotations (KMS row)"),
    "AWS::Backup::BackupVault": ("per use", "AWS Backup's storage per GB-month of what the vault holds, and its "
                                 "restores (priced in the AWS Backup comparison row; the vault itself is free)"),
    "AWS::Backup::BackupPlan": ("free", "a backup schedule carries no charge; the backups it makes are the vault's"),
    "AWS::Backup::BackupSelection": ("free", "the resources a plan protects: no charge of its own"),
    "AWS::Events::EventBusPolicy": ("free", "a resource policy on an event bus: no charge"),
    "AWS::KinesisFirehose::DeliveryStream": ("priced", "per GB ingested (Firehose (feed) row)"),
    "AWS::Lambda::EventInvokeConfig": ("free", "configuration of a function"),
    "AWS::Lambda::Function": ("priced", "scheduled ones at their timeouts (Lambda row); the others per use"),
    "AWS::Lambda::Permission": ("free", "configuration of a function"),
    "AWS::Logs::LogGroup": ("priced", "ingestion per job and storage at its retention (CloudWatch Logs row)"),
    "AWS::Logs::LogStream": ("free", "a stream in a priced group"),
    "AWS::S3::Bucket": ("priced", "storage and requests (S3 rows), replication metrics (CloudWatch row)"),
    "AWS::S3::BucketPolicy": ("free", "configuration of a bucket"),
    "AWS::SNS::Subscription": ("per use", "per notification delivered (email, Lambda)"),
    "AWS::SNS::Topic": ("per use", "per publish: $0.50 per million"),
    "AWS::SNS::TopicPolicy": ("free", "configuration of a topic"),
    "AWS::SQS::Queue": ("per use", "dead-letter queues, empty unless something fails; per request"),
    "AWS::SQS::QueuePolicy": ("free", "configuration of a queue"),
    "AWS::Scheduler::Schedule": ("priced", "per invocation (EventBridge Scheduler row)"),
    "AWS::SecretsManager::ResourcePolicy": ("free", "configuration of a secret"),
    "AWS::SecretsManager::Secret": ("priced", "per secret and replica a month (Secrets Manager row)"),
    "AWS::StepFunctions::StateMachine": ("priced", "per state transition (Step Functions row)"),
}

# ASSUMPTION (the log volume each job writes; nothing measures it yet): JSON lines of ~300 bytes.
LOG_BYTES_PER_FARGATE_RUN = 60 * 300  # a scheduled job: start, each step, the outcome
LOG_BYTES_PER_SIDECAR_RUN = 500 * 150  # the restore test's scratch PostgreSQL: its start-up and restore log
LOG_BYTES_PER_LAMBDA_RUN = 2_000 + 20 * 300  # START/END/REPORT lines + ~20 structured lines
LOG_BYTES_PER_SEGMENT = 2 * 400  # the capture: a line per segment written and its metrics line
LOG_BYTES_PER_STATE_MACHINE_RUN = 100 * 1_000  # the quarterly drill: ~100 execution events (level ALL)
# ASSUMPTION: VPC flow logs, default format (~130 bytes a record in CloudWatch Logs), one record per flow per
# 10-minute aggregation interval; the capture keeps ~10 flows open (S3, KMS, CloudWatch, Logs, Supabase), a
# scheduled task ~10 flows for its run.
FLOW_RECORD_BYTES, FLOWS_PER_TASK, FLOW_INTERVAL_SECONDS = 130, 10, 600
# ASSUMPTION: CloudWatch Logs stores logs compressed, about 15% of what was ingested.
LOG_STORAGE_RATIO = 0.15
# Log groups written only on use (the export API, alerts, bucket restores) or on failure (Firehose's errors).
PER_USE_LOGS = ("Authorizer", "Worker", "Api", "Access", "AlertRouter", "RestoreOpsDeleteMarker", "InventoryFeed")
# The drill's step function runs inside the quarterly drill's execution.
LOGS_RUN_BY = {"DrillSteps": "QuarterlyDrill"}
# ASSUMPTION (Container Insights on ECS Fargate, from its metrics reference, not read back): ~12 metrics per
# cluster, ~14 per service, ~10 per task definition family; a family's are billed only the hours it runs.
INSIGHTS_CLUSTER_METRICS, INSIGHTS_SERVICE_METRICS, INSIGHTS_FAMILY_METRICS = 12, 14, 10
INSIGHTS_LOG_BYTES_PER_TASK_MINUTE = 2_000  # its performance log events: a task and a container event a minute
# S3 Replication metrics, billed as custom metrics, per rule with metrics on: ReplicationLatency,
# BytesPendingReplication, OperationsPendingReplication, OperationsFailedReplication.
REPLICATION_METRICS_PER_RULE = 4
STATE_TRANSITIONS_PER_DRILL = 50  # ASSUMPTION: the quarterly drill's states, retries included


def _token(value: Any) -> str:
    """A template value as text: a literal as is, an intrinsic function as a stable placeholder."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _body_text(body: Any) -> str:
    """A dashboard body (a string or an Fn::Join of strings and references) as JSON text."""
    if isinstance(body, dict) and "Fn::Join" in body:
        separator, parts = body["Fn::Join"]
        return separator.join(p if isinstance(p, str) else "TOKEN" for p in parts)
    return _token(body)


def custom_metrics(templates: dict[str, dict]) -> set[tuple[str, str, tuple[tuple[str, str], ...]]]:
    """Every metric outside the AWS/ namespaces an alarm or a dashboard reads: (namespace, name, dimensions).
    Each distinct one is a custom metric on the bill (metrics published but never read are not counted)."""
    found = set()

    def add(namespace: Any, name: Any, dimensions: list[tuple[str, str]]) -> None:
        if isinstance(namespace, str) and not namespace.startswith("AWS/"):
            found.add((namespace, _token(name), tuple(sorted(dimensions))))

    for _, _, props in _resources(templates, "AWS::CloudWatch::Alarm"):
        if "MetricName" in props:
            add(props.get("Namespace"), props["MetricName"],
                [(d["Name"], _token(d["Value"])) for d in props.get("Dimensions", [])])
        for query in props.get("Metrics", []):
            metric = query.get("MetricStat", {}).get("Metric")
            if metric:
                add(metric.get("Namespace"), metric["MetricName"],
                    [(d["Name"], _token(d["Value"])) for d in metric.get("Dimensions", [])])
    for _, _, props in _resources(templates, "AWS::CloudWatch::Dashboard"):
        body = json.loads(_body_text(props["DashboardBody"]))
        for widget in body.get("widgets", []):
            previous: list[Any] = []
            for row in widget.get("properties", {}).get("metrics", []):
                fields = [f for f in row if not isinstance(f, dict)]
                # "." repeats the row above's field (CloudWatch's shorthand).
                fields = [previous[i] if f == "." and i < len(previous) else f for i, f in enumerate(fields)]
                previous = fields
                if len(fields) >= 2:
                    add(fields[0], fields[1], list(zip(fields[2::2], fields[3::2], strict=False)))
    return found


def alarm_metrics(props: dict) -> tuple[int, bool]:
    """How many metrics an alarm evaluates (each billed) and whether at high resolution (< 60 s)."""
    if "Metrics" in props:
        stats = [q["MetricStat"] for q in props["Metrics"] if "MetricStat" in q]
        return len(stats), any(int(s.get("Period", 60)) < 60 for s in stats)
    return 1, int(props.get("Period", 60)) < 60


def log_months_held(retention_days: int | None, months: range) -> float:
    """Average months of ingestion a group holds over the given months of its life."""
    limit = (retention_days or 10 ** 6) / DAYS_PER_MONTH
    return sum(min(m, limit) for m in months) / len(months)


def _walk(est: Estimate, config: EnvironmentConfig, templates: dict[str, dict], prices: Prices,
          regions: dict[str, str], schedules: dict[str | None, str]) -> None:
    """What the other rows do not count, resource by resource: every alarm, custom metric and dashboard,
    Container Insights, replication metrics, log groups at their retention, flow logs, schedules and
    state machines. A type without a rule lands in est.unpriced."""
    region, add = est.region, est.lines.append
    for stack, logical, resource in ((s, lg, r) for s, t in templates.items() for lg, r in t["Resources"].items()):
        if resource["Type"] not in RULES:
            est.unpriced.append(f"{stack}/{logical} ({resource['Type']})")

    # CloudWatch: alarms, metrics, dashboards, Container Insights, S3 replication metrics.
    alarms = _resources(templates, "AWS::CloudWatch::Alarm")
    standard = high = 0
    for _, _, props in alarms:
        count, fast = alarm_metrics(props)
        high, standard = (high + count, standard) if fast else (high, standard + count)
    add(Line("CloudWatch", f"alarms ({len(alarms)}): their metrics at standard resolution", standard,
             "alarm metric-month",
             prices("cloudwatch_alarm_month", region), "AWS::CloudWatch::Alarm, each metric a metric-math alarm reads"))
    if high:
        add(Line("CloudWatch", "alarm metrics at high resolution", high, "alarm metric-month",
                 prices("cloudwatch_alarm_high_resolution_month", region), "alarms with a period under 60 s"))
    metrics = custom_metrics(templates)
    add(Line("CloudWatch", f"custom metrics the alarms and dashboards read ({len(metrics)})", len(metrics),
             "metric-month", prices("cloudwatch_metric_month", region),
             "upper bound: a metric is billed by the hour it receives data, so a job's metrics sent once a day "
             "cost far less"))
    dashboards = _resources(templates, "AWS::CloudWatch::Dashboard")
    add(Line("CloudWatch", f"dashboards ({len(dashboards)})", len(dashboards), "dashboard-month",
             prices("cloudwatch_dashboard_month", region), "AWS::CloudWatch::Dashboard"))
    replication_rules = sum(
        1 for _, _, p in _resources(templates, "AWS::S3::Bucket")
        for rule in p.get("ReplicationConfiguration", {}).get("Rules", [])
        if rule.get("Destination", {}).get("Metrics", {}).get("Status") == "Enabled")
    if replication_rules:
        add(Line("CloudWatch", f"S3 replication metrics ({replication_rules} rule with RTC/metrics)",
                 replication_rules * REPLICATION_METRICS_PER_RULE, "metric-month",
                 prices("cloudwatch_metric_month", region),
                 f"{REPLICATION_METRICS_PER_RULE} metrics a rule, billed as custom metrics"))
    insights = [p for _, _, p in _resources(templates, "AWS::ECS::Cluster")
                if {"Name": "containerInsights", "Value": "enabled"} in p.get("ClusterSettings", [])]
    if insights:
        services = _resources(templates, "AWS::ECS::Service")
        task_hours = sum(line.quantity for line in est.lines if line.unit == "task-hour")
        metric_months = (len(insights) * INSIGHTS_CLUSTER_METRICS + len(services) * INSIGHTS_SERVICE_METRICS
                         + INSIGHTS_FAMILY_METRICS * task_hours / HOURS_PER_MONTH)
        add(Line("CloudWatch", "Container Insights metrics (ECS cluster, service, task families)", metric_months,
                 "metric-month", prices("cloudwatch_metric_month", region),
                 f"{INSIGHTS_CLUSTER_METRICS} a cluster + {INSIGHTS_SERVICE_METRICS} a service + "
                 f"{INSIGHTS_FAMILY_METRICS} a family for the {task_hours:,.0f} task-hours it runs"))
        add(Line("CloudWatch", "Container Insights performance log events", task_hours * 60
                 * INSIGHTS_LOG_BYTES_PER_TASK_MINUTE / GB, "GB ingested", prices("cloudwatch_logs_ingest_gb", region),
                 f"{INSIGHTS_LOG_BYTES_PER_TASK_MINUTE:,} bytes a task-minute"))

    # CloudWatch Logs: each group's ingestion (by the job that writes it) and storage at its retention.
    task_families = {lg.split("Task")[0] for _, lg, _ in _resources(templates, "AWS::ECS::TaskDefinition")}
    flow_groups = {p["LogGroupName"]["Ref"] for _, _, p in _resources(templates, "AWS::EC2::FlowLog")
                   if p.get("LogDestinationType") == "cloud-watch-logs" and isinstance(p.get("LogGroupName"), dict)}
    segments = DAYS_PER_MONTH * 86400 / config.changes.segment_seconds
    ingest: dict[tuple[str, bool], list[float]] = {}  # (region, vended) -> [GB a month, GB held y1, GB held y3]
    scheduled_task_hours = sum(line.quantity for line in est.lines
                               if line.group == "Fargate" and line.unit == "task-hour")
    capture_on = bool(_resources(templates, "AWS::ECS::Service"))
    per_group: list[str] = []
    for stack, logical, props in _resources(templates, "AWS::Logs::LogGroup"):
        name = logical.split("Logs")[0]
        vended = logical in flow_groups
        if vended:
            flows = FLOWS_PER_TASK * (scheduled_task_hours + (HOURS_PER_MONTH if capture_on else 0.0))
            monthly = flows * 3600 / FLOW_INTERVAL_SECONDS * FLOW_RECORD_BYTES
            why = f"flow logs: {FLOWS_PER_TASK} flows a task-hour, a record each {FLOW_INTERVAL_SECONDS // 60} min"
        elif name.startswith(PER_USE_LOGS):
            monthly, why = 0.0, "per use"
        elif name == "ChangeCapture":
            monthly, why = segments * LOG_BYTES_PER_SEGMENT, f"{LOG_BYTES_PER_SEGMENT} bytes a segment"
        else:
            runner = LOGS_RUN_BY.get(name, name)
            runs = sum(runs_per_month(e) for target, e in schedules.items() if target and target.startswith(runner))
            if runs == 0 and not any(t and t.startswith(runner) for t in schedules):
                est.unpriced.append(f"{stack}/{logical} (AWS::Logs::LogGroup: no ingestion rule for {name})")
                continue
            if name in task_families:
                per_run = LOG_BYTES_PER_FARGATE_RUN + (LOG_BYTES_PER_SIDECAR_RUN if "RestoreTest" in name else 0)
            elif runner != name or any(lg.startswith(name) for _, lg, _ in
                                       _resources(templates, "AWS::StepFunctions::StateMachine")):
                per_run = LOG_BYTES_PER_STATE_MACHINE_RUN if runner == name else LOG_BYTES_PER_LAMBDA_RUN * 10
            else:
                per_run = LOG_BYTES_PER_LAMBDA_RUN
            monthly, why = runs * per_run, f"{runs:.1f} runs x {per_run:,} bytes"
        retention = props.get("RetentionInDays")
        gb = monthly / GB
        key = (regions.get(stack, region), vended)
        totals = ingest.setdefault(key, [0.0, 0.0, 0.0])
        totals[0] += gb
        totals[1] += gb * log_months_held(retention, range(1, 13))
        totals[2] += gb * log_months_held(retention, range(25, 37))
        per_group.append(f"{name} {monthly / 1e6:,.2f} MB ({why}, kept {retention or 'for ever'} days)")
    for (where, vended), (gb, held_first, held_steady) in sorted(ingest.items()):
        kind = "vended (VPC flow logs)" if vended else "standard"
        add(Line("CloudWatch Logs", f"ingestion, {kind}, {where}", gb, "GB",
                 prices("cloudwatch_logs_vended_gb" if vended else "cloudwatch_logs_ingest_gb", where),
                 "per job, ASSUMPTION in benches/cost.py"))
        add(Line("CloudWatch Logs", f"storage, {kind}, {where}", held_first * LOG_STORAGE_RATIO, "GB-month",
                 prices("cloudwatch_logs_storage_gb_month", where),
                 f"months held at each group's retention, compressed to {LOG_STORAGE_RATIO:.0%}",
                 steady=held_steady * LOG_STORAGE_RATIO))
    est.notes.append("log ingestion a month per group: " + "; ".join(sorted(per_group)))

    # EventBridge Scheduler and Step Functions: per invocation and per state transition.
    invocations = sum(runs_per_month(e) for e in schedules.values())
    add(Line("Schedules", f"EventBridge Scheduler invocations ({len(schedules)} schedules)", invocations / 1e6,
             "1M invocations", prices("scheduler_per_million", region), f"{invocations:,.0f} a month"))
    machines = {lg for _, lg, _ in _resources(templates, "AWS::StepFunctions::StateMachine")}
    drills = sum(runs_per_month(e) for target, e in schedules.items() if target in machines)
    if machines:
        add(Line("Schedules", "Step Functions state transitions (the quarterly drill)",
                 drills * STATE_TRANSITIONS_PER_DRILL / 1000, "1,000 transitions",
                 prices("stepfunctions_per_1000_transitions", region),
                 f"{drills:.2f} runs a month x {STATE_TRANSITIONS_PER_DRILL} transitions (ASSUMPTION)"))
    if _resources(templates, "AWS::ApiGatewayV2::Api"):
        est.notes.append(f"each export API request: ${prices('apigw_http_per_million', region):g} per million "
                         "(HTTP API) plus its Lambda's GB-seconds")


# --------------------------------------------------------------------------- rendering


def stack_regions(outdir: str | Path) -> dict[str, str]:
    """Each stack's region, from the cloud assembly's manifest (a template does not say where it deploys)."""
    manifest = json.loads((Path(outdir) / "manifest.json").read_text())
    return {artifact.get("properties", {}).get("stackName", name): artifact["environment"].rsplit("/", 1)[1]
            for name, artifact in manifest["artifacts"].items() if artifact["type"] == "aws:cloudformation:stack"}


def synthesize(env_name: str, context: dict[str, Any]) -> tuple[dict[str, dict], dict[str, str]]:
    from aws_cdk import App

    from stacks.app import build_app

    outdir = tempfile.mkdtemp(prefix=f"cost-{env_name}-")
    app = App(context={**context, "env": env_name}, outdir=outdir)
    build_app(app, load_environment(context, env_name))
    templates = {s.stack_name: s.template for s in app.synth().stacks}
    return templates, stack_regions(outdir)


def estimates(templates_of: dict[str, dict[str, dict]] | None = None, prices: Prices | None = None,
              regions_of: dict[str, dict[str, str]] | None = None) -> list[Estimate]:
    """One estimate per environment of cdk.json (templates_of: env -> stack -> template, regions_of: env ->
    stack -> region; default: synthesize), each with its price on the other processor (arm64 where the
    templates are x86_64, and back): the architecture changes nothing else in the templates
    (tests/test_compute_architecture.py)."""
    context = read_cdk_context(ROOT / "cdk.json")
    prices = prices or Prices()
    out = []
    for name in context["environments"]:
        if templates_of and name in templates_of:
            templates, regions = templates_of[name], (regions_of or {}).get(name, {})
        else:
            templates, regions = synthesize(name, context)
        config = load_environment(context, name)
        found = estimate(config, templates, prices, regions)
        found.arm64 = estimate(config, templates, prices, regions, architecture="arm64")
        out.append(found)
    return out


def money(value: float) -> str:
    return f"${value:,.2f}"


def _both(first: float, steady: float) -> str:
    return money(first) if round(first, 2) == round(steady, 2) else f"{money(first)} / {money(steady)}"


def markdown(all_estimates: list[Estimate], prices: Prices) -> str:
    groups = list(dict.fromkeys(line.group for e in all_estimates for line in e.lines))
    names = [e.environment for e in all_estimates]
    rows = [f"| per month (year 1 / year 3 on) | {' | '.join(f'`{n}`' for n in names)} |",
            "|---|" + "---:|" * len(names)]
    rows.append("| sizes (cdk.json `drill`) | " + " | ".join(
        f"{e.sizes['database_gb']:g} GB database, {e.sizes['invoice_count']:,} invoices / {e.sizes['invoice_gb']:g} GB"
        for e in all_estimates) + " |")
    rows.append("| backups a month / held | " + " | ".join(
        f"{e.sizes['backups_per_month']:g} / {e.sizes['backups_held']:g}" for e in all_estimates) + " |")
    for group in groups:
        rows.append(f"| {group} | " + " | ".join(_both(e.group_total(group), e.group_steady(group))
                                                 for e in all_estimates) + " |")
    rows.append("| **total, year 1** | " + " | ".join(f"**{money(e.total)}**" for e in all_estimates) + " |")
    rows.append("| **total, year 3 on** | " + " | ".join(f"**{money(e.steady_total)}**" for e in all_estimates) + " |")
    rows.append("| total on Graviton (`compute.architecture: arm64`), year 1 / year 3 on | " + " | ".join(
        _both(e.arm64.total, e.arm64.steady_total) if e.arm64 else "" for e in all_estimates) + " |")
    rows.append("| the continuous capture's task, x86_64 / arm64 | " + " | ".join(
        f"{money(_capture_task(e))} / {money(_capture_task(e.arm64))}" if e.arm64 else ""
        for e in all_estimates) + " |")
    rows.append("| the invoices' protection here: their DR replica's storage | "
                + " | ".join(money(e.invoice_replica) for e in all_estimates) + " |")
    rows.append("| beside it, AWS Backup for the invoices: storage, vault keys, requests, restore tests (a DR copy "
                "where replication is on) | " + " | ".join(_both(e.aws_backup_total, e.aws_backup_steady)
                                                            for e in all_estimates) + " |")
    lines = []
    for e in all_estimates:
        lines.append(f"- `{e.environment}` lines: " + "; ".join(
            f"{line.item} {_both(line.monthly, line.steady_monthly)}" for line in e.lines
            if max(line.monthly, line.steady_monthly) >= 0.005))
    backup_lines = [f"- `{e.environment}` AWS Backup: " + "; ".join(
        f"{line.item} {_both(line.monthly, line.steady_monthly)}" for line in e.aws_backup) for e in all_estimates]
    notes = [f"- `{e.environment}` per unit of use and assumptions: " + "; ".join(e.notes) for e in all_estimates]
    return "\n".join([f"List prices as of {prices.as_of} (USD, on-demand, `benches/{PRICES.name}`, each with "
                      "its AWS pricing page and whether it was read back there):", "", *rows, "", *lines,
                      *backup_lines, *notes])


def _capture_task(est: Estimate) -> float:
    return sum(line.monthly for line in est.lines if line.group == "Continuous capture" and line.unit == "task-hour")


def update_docs(table: str) -> None:
    text = DOC.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{DOC.relative_to(ROOT)} has no {BEGIN} … {END} block")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    DOC.write_text(f"{head}{BEGIN}\n{table}\n{END}{tail}")


def docs_table() -> str:
    text = DOC.read_text()
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update-docs", action="store_true", help=f"rewrite the table in {DOC.relative_to(ROOT)}")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    prices = Prices()
    found = estimates(prices=prices)
    unpriced = [item for e in found for item in e.unpriced]
    if unpriced:
        sys.exit(f"no cost rule for {unpriced[0]} (and {len(unpriced) - 1} more): add one to RULES in benches/cost.py")
    if args.json:
        print(json.dumps([{**asdict(e), "total": e.total, "steady_total": e.steady_total,
                           "aws_backup_total": e.aws_backup_total} for e in found], indent=1))
        return
    table = markdown(found, prices)
    if args.update_docs:
        update_docs(table)
    print(table)


if __name__ == "__main__":
    main()
