"""The one configuration loader: cdk.json context -> frozen, validated config.

Used by app.py (CDK) and by the tavari-dr CLI alike, so it must stay plain Python
(no CDK imports). Every error names the key path, the offending value and what is
allowed, e.g. ``environments.prod.replication.region: "eu-west-1" is the primary
region; choose another``.

Each field carries its rule (``rule(...)``: a _Section method and its options, beside its
default); a rule that relates two fields is the section's ``_across``, right below its fields.
One module over 400 lines because it is one vocabulary: the model, the rules next to each
field, and the shared rules (_Section) that make every error read the same way.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import re
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from datetime import UTC, date, datetime
from pathlib import Path
from types import FunctionType
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast, overload

from tavari_dr.core import schedule as schedules
from tavari_dr.core.schedule import DstConflict, ScheduleError, ScheduleRefused

DEFAULT_ENV = "dev"
ENV_CONTEXT_KEY = "env"
ENVIRONMENTS_CONTEXT_KEY = "environments"
# -c tavari:deploy=true: this synth is for a deploy or a diff against the environment's real account.
DEPLOY_CONTEXT_KEY = "tavari:deploy"

ARCHIVE_STORAGE_CLASSES = ("GLACIER_IR", "GLACIER", "DEEP_ARCHIVE")
# Only these classes accept objects under 128 KB when the bucket's
# TransitionDefaultMinimumObjectSize is VARIES_BY_STORAGE_CLASS.
SMALL_OBJECT_CLASSES = ("GLACIER", "DEEP_ARCHIVE")
SMALL_OBJECT_POLICIES = ("stay-standard", "archive")
# S3's own default boundary below which lifecycle never transitions an object.
SMALL_OBJECT_BYTES = 128 * 1024
REMOVAL_POLICIES = ("retain", "destroy")
# The processor the Lambdas and Fargate tasks run on: Graviton (arm64) is billed about 20% less.
ARCHITECTURES = ("x86_64", "arm64")
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192,
                      2557, 2922, 3288, 3653)

_ARN_PARTITION_RE = re.compile(r"^arn:(?P<partition>[a-z-]+):[a-z0-9-]+:(?P<region>[a-z0-9-]*):")
_ACCOUNT_RE = re.compile(r"^\d{12}$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
_VAULT_ARN_RE = re.compile(r"^arn:aws[a-z-]*:backup:[a-z0-9-]+:\d{12}:backup-vault:[A-Za-z0-9_.-]{2,50}$")
_ROLE_ARN_RE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
_BUCKET_RE = re.compile(r"^(?!xn--)(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_ENV_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,15}$")
ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_URL_RE = re.compile(r"^https://[^\s/]+(/\S*)?$")
# A Management API stand-in on this machine (the local drill) may speak plain http.
_API_URL_RE = re.compile(r"^(https://[^\s/]+|http://(127\.0\.0\.1|localhost)(:\d+)?)(/\S*)?$")
_SCHEDULE_RE = re.compile(r"^(cron|rate)\(.+\)$")  # fields are read by tavari_dr.core.schedule
_IMAGE_RE = re.compile(r"^[a-z0-9./_-]+(:[A-Za-z0-9._-]+)?$")
_IDENT_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_TABLE_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}\.[a-z_][a-z0-9_]{0,62}$")
# One placeholder, whole path segments, a trailing "/": invoices/{business_id}/ is never the start of
# another business's keys (a bare "{business_id}" prefix could be, were IDs ever of unequal length).
DEFAULT_INVOICE_KEY_PREFIX = "invoices/{business_id}/"  # the application's layout: invoices/<business>/<n>.pdf
_INVOICE_PREFIX_RE = re.compile(r"^(?:[A-Za-z0-9!_.*'()-]+/)*\{(?:business_id|user_id)\}/(?:[A-Za-z0-9!_.*'()-]+/)*$")
_ORIGIN_RE = re.compile(r"^https://[a-z0-9.-]+(:\d+)?$")
_ROLE_NAME_RE = re.compile(r"^[\w+=,.@-]{1,64}$")
_QUALIFIER_RE = re.compile(r"^[a-z0-9]{1,10}$")
_TRAIL_ARN_RE = re.compile(r"^arn:aws[a-z-]*:cloudtrail:[a-z0-9-]+:\d{12}:trail/[A-Za-z0-9._-]{3,128}$")


class ConfigError(ValueError):
    """A configuration value is missing, malformed or not allowed."""


@functools.cache
def region_partitions() -> dict[str, str]:
    """Every region botocore knows -> its partition (aws, aws-cn, aws-us-gov, ...), read offline from the
    endpoints.json botocore ships, through its own loader: each partition's ``regions`` map is the list of
    regions itself. Not session.get_available_regions: that lists the regions of one service's endpoints
    (a region a service has not reached yet would be missing, and it needs a service name); not
    partitions.json: it adds pseudo-regions (aws-global) no stack deploys to; not a partition's
    regionRegex: it accepts eu-wst-1. A region newer than the installed botocore is refused until
    botocore (pinned by boto3 in requirements.txt) is upgraded: the region list follows the SDK."""
    from botocore.loaders import create_loader

    endpoints = create_loader().load_data("endpoints")
    return {region: p["partition"] for p in endpoints["partitions"] for region in p["regions"]}


def partition_of(region: str) -> str:
    """The partition of a region the loader accepted (ARNs there start arn:<partition>:)."""
    return region_partitions()[region]


def _unknown_region(value: Any) -> str:
    """What to use instead of ``value``, no region botocore knows (the nearest it does, for a typo)."""
    import botocore

    near = difflib.get_close_matches(value, region_partitions(), n=1) if isinstance(value, str) else []
    return (f"an AWS region botocore {botocore.__version__} knows"
            + (f" (did you mean {near[0]}?)" if near else ", such as eu-west-1"))


@dataclass(frozen=True)
class Cadence:
    """How long a schedule may leave between two runs (seconds) for its purpose, said as its refusal."""

    longest: float
    purpose: str  # "{limit}" is the bound, e.g. "a daily check allows at most {limit}"
    strictly: bool = False  # the gap must stay below the bound, not reach it


# One hour over the nominal period: the night the clocks fall back makes a daily run's gap 25 hours.
_AUTUMN_HOUR = 3600
DAILY = Cadence(86400 + _AUTUMN_HOUR, "a daily check allows at most {limit}")
WEEKLY = Cadence(7 * 86400 + _AUTUMN_HOUR, "a weekly check allows at most {limit}")
# 35 days: from the first Monday of one month to the next month's (MON#1), the longest a monthly form gives.
MONTHLY = Cadence(35 * 86400 + _AUTUMN_HOUR, "a monthly check allows at most {limit}")
# 98 days: from the first Monday of one quarter to the next's (the default MON#1 of January, April, ...).
QUARTERLY = Cadence(98 * 86400 + _AUTUMN_HOUR, "a quarterly drill allows at most {limit}")


def _rpo_cadence(v: dict[str, Any]) -> Cadence:
    """The dump's bound: the backup age alarm's threshold. A gap that reaches it leaves no time for the dump
    itself, so the age alarm fires before every next dump lands and the RPO is never met (the drill's
    worst case adds the dump's duration to this gap)."""
    return Cadence(v["rpo_hours"] * 3600, f"it must be shorter than monitoring.rpo_hours ({v['rpo_hours']}), or "
                                          "the dump itself never fits within the RPO", strictly=True)


def rule(check: str, default: Any = MISSING, *, doc: str, **options: Any) -> Any:
    """A field's rule: the _Section method ``check`` reads it with, and its options, beside its default.
    An option given as a callable is resolved first from the section's other values (and what the
    enclosing section passes down), so such fields are read after the others. ``doc``: what the key
    means, one or two sentences; docs/reference/configuration.md is generated from it (``make refs``),
    so a key cannot be declared without saying what it is for."""
    return field(default=default, metadata={"rule": (check, options), "doc": doc})


def section(cls: type, **context: Any) -> Any:
    """A field that is a whole section (its own dataclass, read by its own rules; the first paragraph
    of its docstring is its description in the reference)."""
    return field(default_factory=cls, metadata={"rule": ("section", {"cls": cls, **context})})


if TYPE_CHECKING:
    from _typeshed import DataclassInstance

_Read = TypeVar("_Read", bound="DataclassInstance")


def _fields(cls: type[DataclassInstance]) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class InvoiceBucketConfig:
    """The invoice bucket (primary region): versioned, noncurrent versions archived, access logged."""

    existing_bucket_name: str | None = rule(
        "pattern", None, regex=_BUCKET_RE, what="a valid S3 bucket name or null",
        doc="Adopt this existing bucket with `cdk import`; null: CDK creates and names the bucket.")
    archive_after_days: int = rule("integer", 90, minimum=1,
                                   doc="Days before a noncurrent version moves to the archive storage class.")
    archive_storage_class: str = rule("choice", "GLACIER_IR", choices=ARCHIVE_STORAGE_CLASSES,
                                      doc="The storage class noncurrent versions are archived to.")
    small_objects: str = rule(
        "choice", "stay-standard", choices=SMALL_OBJECT_POLICIES,
        doc='Objects under 128 KB: "stay-standard" never transitions them; "archive" transitions them too '
            "(only with archive_storage_class GLACIER or DEEP_ARCHIVE).")
    noncurrent_expiration_days: int | None = rule(
        "integer", None, minimum=1, optional=True,
        doc="Delete noncurrent versions after this many days (greater than archive_after_days); null: never.")
    abort_incomplete_multipart_days: int = rule("integer", 7, minimum=1,
                                                doc="Abandoned multipart uploads are cleaned up after this many days.")
    access_log_retention_days: int = rule("integer", 365, minimum=1,
                                          doc="Days the bucket's server access logs are kept.")
    app_principal_arn: str | None = rule("pattern", None, regex=_ROLE_ARN_RE,
                                         what="an IAM role ARN (arn:aws:iam::<12 digits>:role/<name>) or null",
                                         doc="IAM role of the Tavari application, granted upload and read; "
                                             "null: no grant.")
    aws_backup_enabled: bool = rule("boolean", False,
                                    doc="Also protect the bucket with AWS Backup continuous backups.")
    aws_backup_retention_days: int = rule("integer", 35, minimum=1, maximum=35,
                                          why="AWS Backup keeps continuous backups at most 35 days",
                                          doc="Point-in-time window of the AWS Backup continuous backups, and the "
                                              "vault lock's minimum retention.")
    aws_backup_copy_vault_arn: str | None = rule(
        "pattern", None, regex=_VAULT_ARN_RE,
        what="a backup vault ARN (arn:aws:backup:<region>:<account>:backup-vault:<name>) or null",
        doc="Copy the AWS Backup recovery points to this vault (e.g. in the backup account); null: no copy.")

    @staticmethod
    def _across(s: _Section, v: dict[str, Any]) -> None:
        if v["small_objects"] == "archive" and v["archive_storage_class"] not in SMALL_OBJECT_CLASSES:
            raise ConfigError(
                f'{s.key("small_objects")}: "archive" is not allowed with archive_storage_class '
                f'"{v["archive_storage_class"]}"; S3 transitions objects under 128 KB only to '
                f'{", ".join(SMALL_OBJECT_CLASSES)} (use "stay-standard" or change the class)'
            )
        expiration, archive_after = v["noncurrent_expiration_days"], v["archive_after_days"]
        if expiration is not None and expiration <= archive_after:
            raise ConfigError(
                f"{s.key('noncurrent_expiration_days')}: {expiration} is not allowed; it must be greater "
                f"than archive_after_days ({archive_after}) or null (never expire)"
            )


@dataclass(frozen=True)
class ReplicationConfig:
    """Cross-region (optionally cross-account) replication of the invoice bucket and the backups."""

    enabled: bool = rule("boolean", False, doc="Replicate to a DR region at all.")
    region: str | None = rule("region", None, optional=lambda v: not v["enabled"],
                              doc="The DR region (required when enabled): not the primary region, and in the "
                                  "primary region's partition (S3 replicates only within one).")
    account: str | None = rule("pattern", None, regex=_ACCOUNT_RE, what="a 12-digit AWS account ID or null",
                               doc="Destination account; another account than the primary makes it a dedicated "
                                   "backup account (owner override, bucket policy). Null: the primary account.")
    replication_time_control: bool = rule("boolean", True,
                                          doc="S3 Replication Time Control (15-minute SLA) and replication metrics.")
    replica_key_arn: str | None = rule(
        "cross_account_key", None, region=lambda v: v["region"], account=lambda v: v["account"],
        primary_account=lambda v: v["primary_account"],
        doc="Cross-account only: the replica stack's ReplicaKeyArn output, set after deploying that stack (null: "
            "replication waits for it). S3 would resolve an alias in the source account, so another account's "
            "key is named by its ARN.")
    backup_replica_key_arn: str | None = rule(
        "cross_account_key", None, region=lambda v: v["region"], account=lambda v: v["account"],
        primary_account=lambda v: v["primary_account"],
        doc="Cross-account only: the database backups' replica stack's BackupKeyArn output (as replica_key_arn).")

    @staticmethod
    def _across(s: _Section, v: dict[str, Any]) -> None:
        if v["region"] is not None and v["region"] == v["primary_region"]:
            raise ConfigError(f'{s.key("region")}: "{v["region"]}" is the primary region; choose another')
        if v["region"] is not None and partition_of(v["region"]) != partition_of(v["primary_region"]):
            raise ConfigError(f'{s.key("region")}: "{v["region"]}" is not allowed; it is in partition '
                              f'{partition_of(v["region"])}, the primary region {v["primary_region"]} in '
                              f'{partition_of(v["primary_region"])}, and S3 replicates only within a partition')
        if v["enabled"] and v["primary_account"] is None:
            raise ConfigError(
                f'{s.key("enabled")}: true needs {s.path.rsplit(".", 1)[0]}.account; a stack pair across '
                f"regions must name its account so synth works offline (set the 12-digit account ID)"
            )


@dataclass(frozen=True)
class SecretEntry:
    """One configuration value kept in Secrets Manager."""

    name: str = rule("pattern", regex=ENV_KEY_RE, what="an env-file key such as SUPABASE_URL", optional=False,
                     doc="Its env-file key.")
    description: str = rule("text", "", doc="What the value is; the secret's description.")
    required: bool = rule("boolean", True, doc="`secrets check` fails when a required entry is missing or a "
                                               "placeholder.")


# What a rebuilt Tavari needs to run and to be backed up (docs/operate/secrets.md).
DEFAULT_SECRET_ENTRIES: tuple[SecretEntry, ...] = (
    SecretEntry("SUPABASE_URL", "Supabase project URL (https://<ref>.supabase.co)"),
    SecretEntry("SUPABASE_ANON_KEY", "Supabase anon (public) API key"),
    SecretEntry("SUPABASE_SERVICE_ROLE_KEY", "Supabase service-role API key"),
    SecretEntry("SUPABASE_ACCESS_TOKEN", "Supabase Management API token (backup monitoring)"),
    SecretEntry("BACKUP_DATABASE_URL",
                "PostgreSQL URL for backups: the Supabase session pooler, port 5432 (never 6543)"),
    SecretEntry("ALERT_WEBHOOK_URL", "Slack-compatible webhook for backup alerts"),
    SecretEntry("SENTRY_DSN", "Sentry DSN; alerts are also reported to Sentry when set", required=False),
    SecretEntry("SUPABASE_JWT_SECRET", "Supabase legacy JWT secret; only where the project still signs "
                                       "access tokens with HS256 (the export API verifies them)", required=False),
    SecretEntry("PAGERDUTY_ROUTING_KEY", "PagerDuty Events API v2 routing (integration) key; alarms also page "
                                         "PagerDuty when set", required=False),
    # A secret, not a cdk.json field: the ping URL carries the check's token, and whoever holds it can report
    # "all good" and silence the dead man's switch (ADR 0025).
    SecretEntry("HEARTBEAT_URL", "Dead man's switch outside AWS (healthchecks-style ping URL): the daily monitor "
                                 "pings it only when every check passed", required=False),
    SecretEntry("STREAM_DATABASE_URL", "PostgreSQL URL of the continuous capture (`db stream`, ADR 0020): the "
                                       "DIRECT connection (db.<ref>.supabase.co:5432), which speaks the "
                                       "replication protocol the poolers do not", required=False),
)


@dataclass(frozen=True)
class SecretsConfig:
    """Secrets Manager entries of one environment: what a rebuilt Tavari needs to run and to be backed up."""

    entries: tuple[SecretEntry, ...] = rule("secret_entries", DEFAULT_SECRET_ENTRIES,
                                            doc="The core entries, a list of objects (default: the core set, "
                                                "DEFAULT_SECRET_ENTRIES).")
    third_party_keys: tuple[str, ...] = rule("strings", (), regex=ENV_KEY_RE, plural="env-file keys",
                                             what="an env-file key such as STRIPE_SECRET_KEY",
                                             doc="The application's third-party keys, each a required entry.")

    @property
    def all_entries(self) -> tuple[SecretEntry, ...]:
        return self.entries + tuple(
            SecretEntry(key, f"Third-party key {key}") for key in self.third_party_keys)

    @staticmethod
    def _across(s: _Section, v: dict[str, Any]) -> None:
        seen: set[str] = set()
        for name in [e.name for e in v["entries"]] + list(v["third_party_keys"]):
            if name in seen:
                raise ConfigError(f'{s.path}: "{name}" is declared twice; each entry needs its own name')
            seen.add(name)


@dataclass(frozen=True)
class Dataset:
    """One table of an account export, and how its rows belong to the user."""

    name: str = rule("pattern", regex=_IDENT_RE, what="a lower-case file name such as messages", optional=False,
                     doc="File name of the dataset in the export ZIP (unique).")
    table: str = rule("pattern", regex=_TABLE_RE, what="a schema-qualified table such as public.messages",
                      optional=False, doc="The schema-qualified table.")
    owner: str = rule("choice", choices=("user", "business"),
                      doc='How a row belongs to the user: "user" (column holds the user ID) or "business" '
                          "(column holds one of the user's business IDs).")
    column: str = rule("pattern", regex=_IDENT_RE, what="a column name such as business_id", optional=False,
                       doc="The column that ties a row to the user or business.")


DEFAULT_DATASETS = (
    Dataset("business", "public.businesses", "user", "owner_id"),
    Dataset("call_history", "public.call_sessions", "business", "business_id"),
    Dataset("messages", "public.messages", "business", "business_id"),
    Dataset("usage", "public.usage", "business", "business_id"),
    Dataset("invoices", "public.invoices", "business", "business_id"),
    Dataset("support_tickets", "public.support_tickets", "business", "business_id"),
)


@dataclass(frozen=True)
class MonitoringConfig:
    """Alarm thresholds and where their runbooks live."""

    rpo_hours: int = rule("integer", 24, minimum=1,
                          doc="Backup age alarm threshold in hours (the plan's RPO); the dump schedule's longest "
                              "gap must be shorter.")
    backup_size_floor_bytes: int = rule("integer", 1024 * 1024, minimum=0,
                                        doc="An off-site backup smaller than this alarms.")
    backup_size_drop_percent: int = rule("integer", 50, minimum=1, maximum=100,
                                         doc="A backup this much smaller than the previous one alarms.")
    storage_growth_percent: int = rule("integer", 25, minimum=1,
                                       doc="The invoice bucket's size or object count growing this much in a day "
                                           "alarms.")
    replication_latency_seconds: int = rule("integer", 900, minimum=60,
                                            doc="Replication slower than this alarms (900: the RTC threshold).")
    log_retention_days: int = rule("accepted", 365, values=LOG_RETENTION_DAYS, by="CloudWatch Logs",
                                   doc="Retention of every function's and task's logs.")
    runbook_url: str = rule("pattern", "https://tavari.github.io/backup-recovery/runbooks/alarms/",
                            regex=_URL_RE, what="an https:// URL", optional=False,
                            doc="The published page of docs/runbooks/alarms.md (the docs site on GitHub Pages, "
                                ".github/workflows/docs.yml); every alarm description links its section (#<id>).")


@dataclass(frozen=True)
class ComputeConfig:
    """What the functions and tasks run on.

    architecture: "x86_64" (default) or "arm64" (Graviton: every Lambda's architecture and every Fargate
        task's runtimePlatform; its Lambda bundles come from build/lambda-deps-arm64, the job image is built
        for linux/arm64 at deploy; benches/cost.py prices both).
    """

    architecture: str = rule("choice", "x86_64", choices=ARCHITECTURES,
                             doc="x86_64, or arm64 (Graviton) for every Lambda and Fargate task; benches/cost.py "
                                 "prices both.")


@dataclass(frozen=True)
class Tier:
    """One grandfather-father-son tier of the database backups: dumps/<name>/ is locked this long."""

    name: str
    retention_days: int


_DUMP_EXAMPLE = "cron(0 1,13 * * ? *)"
# The longest a COMPLIANCE lock may hold a backup: about 13 months, the window within which an erased
# user's data may remain in backups (ADR 0011); the monthly tier's 396 days fits.
COMPLIANCE_MAX_RETENTION_DAYS = 400


@dataclass(frozen=True)
class DatabaseBackupsConfig:
    """Off-site pg_dump backups of the Supabase database, kept in grandfather-father-son tiers."""

    schedule: str = rule("schedule", "cron(0 2,14 * * ? *)", timezone=lambda v: v["timezone"],
                         example=_DUMP_EXAMPLE, cadence=_rpo_cadence,
                         doc="EventBridge Scheduler expression of the off-site dump; its longest gap between "
                             "runs must be shorter than monitoring.rpo_hours (twice a day by default: one dump a "
                             "day cannot meet a 24-hour RPO once the dump's own duration is added).")
    weekly_verify_schedule: str = rule("schedule", "cron(0 4 ? * SUN *)", timezone=lambda v: v["timezone"],
                                       example=_DUMP_EXAMPLE, cadence=WEEKLY,
                                       doc="When the weekly quick check (sha256 and table of contents) runs.")
    monthly_verify_schedule: str = rule("schedule", "cron(0 5 1 * ? *)", timezone=lambda v: v["timezone"],
                                        example=_DUMP_EXAMPLE, cadence=MONTHLY,
                                        doc="When the monthly full restore test runs.")
    timezone: str = rule("timezone", "UTC",
                         doc="IANA zone the three schedules run in, and the calendar the tiers follow (a dump at "
                             "00:30 local time on the 1st is that month's monthly backup). Every schedule time "
                             "must exist exactly once on every day there.")
    daily_retention_days: int = rule("integer", 35, minimum=7,
                                     doc="Object Lock retention and expiry of the daily tier.")
    weekly_retention_days: int = rule("integer", 91, minimum=7,
                                      doc="Object Lock retention and expiry of the weekly (Sunday) tier; at least "
                                          "daily_retention_days.")
    monthly_retention_days: int = rule("integer", 396, minimum=7,
                                       doc="Object Lock retention and expiry of the monthly (1st) tier; at least "
                                           "weekly_retention_days.")
    lock_mode: str = rule("choice", "GOVERNANCE", choices=("GOVERNANCE", "COMPLIANCE"),
                          doc="Object Lock mode of the dumps and the bucket's default retention (ADR 0011). "
                              "COMPLIANCE is refused where removal_policy is destroy, and with a tier longer "
                              "than 400 days.")
    pg_major: int = rule("integer", 17, minimum=15, maximum=18,
                         doc="PostgreSQL client major version in the job image (17 dumps 15 too).")
    scratch_image: str = rule("pattern", "supabase/postgres:15.8.1.085", regex=_IMAGE_RE,
                              what="a container image reference", optional=False,
                              doc="Image of the monthly test's scratch database: the supabase/postgres of the "
                                  "project's major version (Supabase's roles, auth schema and extensions).")

    @property
    def tiers(self) -> tuple[Tier, ...]:
        """The retention days as tiers: what the backup job locks each dump for and the bucket expires."""
        return (Tier("daily", self.daily_retention_days), Tier("weekly", self.weekly_retention_days),
                Tier("monthly", self.monthly_retention_days))

    @property
    def default_retention_days(self) -> int:
        """The bucket's default lock: the shortest tier's, so nothing written there is ever unlocked."""
        return min(tier.retention_days for tier in self.tiers)

    @staticmethod
    def _across(s: _Section, v: dict[str, Any]) -> None:
        # A Sunday's dump is only in the weekly tier and a 1st's only in the monthly one (tier_for): a tier shorter
        # than the one below it would leave holes in the shorter tier's window as those dumps expire first.
        for shorter, longer in (("daily", "weekly"), ("weekly", "monthly")):
            if v[f"{longer}_retention_days"] < v[f"{shorter}_retention_days"]:
                raise ConfigError(
                    f"{s.key(f'{longer}_retention_days')}: {v[f'{longer}_retention_days']} is not allowed; it must "
                    f"be at least {shorter}_retention_days ({v[f'{shorter}_retention_days']}), or the {longer} "
                    f"dumps expire first and leave days missing from the {shorter} tier's window")
        if v["lock_mode"] == "COMPLIANCE" and v["removal_policy"] == "destroy":
            raise ConfigError(f'{s.key("lock_mode")}: "COMPLIANCE" is not allowed where removal_policy is '
                              '"destroy": nobody, not even the account root, could empty that bucket before the '
                              "lock expires")
        if v["lock_mode"] == "COMPLIANCE":
            for name in ("daily_retention_days", "weekly_retention_days", "monthly_retention_days"):
                if v[name] > COMPLIANCE_MAX_RETENTION_DAYS:
                    raise ConfigError(
                        f"{s.key(name)}: {v[name]} is not allowed with lock_mode \"COMPLIANCE\"; at most "
                        f"{COMPLIANCE_MAX_RETENTION_DAYS} days, the erasure window the privacy notice states (a "
                        "compliance lock cannot be shortened, and an erased user's data stays in backups until it "
                        "ends; ADR 0011)")


@dataclass(frozen=True)
class ChangesConfig:
    """Continuous capture of every committed change off-site (`tavari-dr db stream`, ADR 0020): a logical
    replication slot read by an always-on task and written as immutable, signed segments beside the dumps."""

    enabled: bool = rule("boolean", True, doc="Run the capture service and alarm on it.")
    publication: str = rule("pattern", "tavari_backup", regex=_IDENT_RE, optional=False,
                            what="a lower-case PostgreSQL identifier such as tavari_backup",
                            doc="The publication `db stream --setup` creates on the source.")
    slot: str = rule("pattern", "tavari_backup", regex=_IDENT_RE, optional=False,
                     what="a lower-case PostgreSQL identifier such as tavari_backup",
                     doc="The logical replication slot `db stream --setup` creates on the source.")
    segment_seconds: int = rule("integer", 60, minimum=5, maximum=3600,
                                doc="A segment is closed this often: the RPO the capture gives.")
    segment_max_bytes: int = rule("integer", 64 * 1024 * 1024, minimum=1024 * 1024,
                                  doc="A segment is also closed when it reaches this size.")
    max_lag_seconds: int = rule("integer", 180, minimum=10,
                                doc="Capture lag past this alarms; at least segment_seconds + 60.")
    retained_wal_alarm_bytes: int = rule("integer", 1024 ** 3, minimum=16 * 1024 * 1024,
                                         doc="WAL the slot holds on the source past this alarms.")
    retained_wal_limit_bytes: int = rule("integer", 4 * 1024 ** 3, minimum=16 * 1024 * 1024,
                                         doc="Past this the slot is dropped, a fresh dump taken and an alert sent, "
                                             "so the source's disk never fills because of the capture; above "
                                             "retained_wal_alarm_bytes.")
    retention_days: int = rule("integer", 35, minimum=1,
                               doc="Segments are kept this long; at least database_backups.daily_retention_days.")
    cpu: int = rule("choice", 256, choices=(256, 512, 1024, 2048, 4096),
                    doc="The capture's Fargate task CPU units.")
    memory_mib: int = rule("integer", 512, minimum=512, maximum=30720,
                           doc="The capture's Fargate task memory (MiB).")

    @staticmethod
    def _across(s: _Section, v: dict[str, Any]) -> None:
        # A healthy capture's lag reaches a segment's length plus its write: a bound below that alarms always.
        if v["max_lag_seconds"] < v["segment_seconds"] + 60:
            raise ConfigError(f"{s.key('max_lag_seconds')}: {v['max_lag_seconds']} is not allowed; it must be at "
                              f"least segment_seconds + 60 ({v['segment_seconds'] + 60}), or a healthy capture alarms "
                              "on every segment")
        if v["retained_wal_limit_bytes"] <= v["retained_wal_alarm_bytes"]:
            raise ConfigError(f"{s.key('retained_wal_limit_bytes')}: {v['retained_wal_limit_bytes']} is not allowed; "
                              f"it must exceed retained_wal_alarm_bytes ({v['retained_wal_alarm_bytes']})")


@dataclass(frozen=True)
class InventoryConfig:
    """Planning bucket restores without listing (`bucket restore --from-inventory`, ADR 0022): a daily S3
    Inventory of every version and an ordered change feed of every write and delete, both delivered to
    the restore-ops bucket."""

    enabled: bool = rule("boolean", True, doc="Declare the inventory, the change feed, the Athena workgroup and "
                                              "the canary.")
    retention_days: int = rule("integer", 14, minimum=2, doc="Inventory reports are kept this long (days).")
    feed_retention_days: int = rule("integer", 400, minimum=2, doc="Change-feed records are kept this long (days).")
    late_after_hours: int = rule("integer", 36, minimum=25,
                                 doc="No new inventory report for this long alarms (S3 delivers daily).")
    canary_minutes: int = rule("integer", 60, minimum=5, maximum=1440,
                               doc="A canary object is written under _canary/ this often, so a quiet bucket "
                                   "still feeds.")
    feed_silence_minutes: int = rule("integer", 180, minimum=10, maximum=1440,
                                     doc="No feed record for this long alarms; above canary_minutes.")
    athena_scan_limit_gb: int = rule("integer", 10, minimum=1, maximum=100_000,
                                     doc="The inventory workgroup cancels a query that scans more than this (GB).")

    @staticmethod
    def _across(s: _Section, v: dict[str, Any]) -> None:
        if v["feed_silence_minutes"] <= v["canary_minutes"]:
            raise ConfigError(f"{s.key('feed_silence_minutes')}: {v['feed_silence_minutes']} is not allowed; it "
                              f"must exceed canary_minutes ({v['canary_minutes']}), or a quiet bucket alarms")


_CHECK_EXAMPLE = "cron(0 6 * * ? *)"


@dataclass(frozen=True)
class VerificationConfig:
    """Scheduled verification (daily monitor, weekly integrity, monthly S3 restore test)."""

    daily_schedule: str = rule("schedule", "cron(0 6 * * ? *)", timezone=lambda v: v["timezone"],
                               example=_CHECK_EXAMPLE, cadence=DAILY,
                               doc="EventBridge Scheduler expression of the daily monitor.")
    weekly_schedule: str = rule("schedule", "cron(0 7 ? * MON *)", timezone=lambda v: v["timezone"],
                                example=_CHECK_EXAMPLE, cadence=WEEKLY,
                                doc="EventBridge Scheduler expression of the weekly integrity check.")
    monthly_schedule: str = rule("schedule", "cron(0 8 2 * ? *)", timezone=lambda v: v["timezone"],
                                 example=_CHECK_EXAMPLE, cadence=MONTHLY,
                                 doc="EventBridge Scheduler expression of the monthly S3 restore test.")
    timezone: str = rule("timezone", "UTC", doc="IANA zone of the three verification schedules.")
    expect_pitr: bool = rule("boolean", False, doc="Whether the Supabase project should have PITR on (checked "
                                                   "daily).")
    integrity_sample_size: int = rule("integer", 50, minimum=1,
                                      doc="Object versions the weekly integrity check reads per run.")
    replication_sample_size: int = rule("integer", 20, minimum=1,
                                        doc="Object versions compared with the replica per run.")
    restore_test_sample_size: int = rule("integer", 10, minimum=1,
                                         doc="Object versions the monthly restore test restores per run.")
    max_list_pages: int = rule("integer", 50, minimum=1,
                               doc="Listing pages (1,000 versions each) a verification Lambda may read.")
    size_shrink_percent: int = rule("integer", 10, minimum=1,
                                    doc="A bucket shrinking more than this since the last run fails the sizes "
                                        "check.")
    rto_minutes: int = rule("integer", 60, minimum=1,
                            doc="The restore test fails when slower than this (the plan's RTO).")
    supabase_api_url: str = rule("pattern", "https://api.supabase.com", regex=_API_URL_RE, optional=False,
                                 what="an https:// URL (or http://127.0.0.1:<port> for a local stand-in)",
                                 doc="The Supabase Management API.")
    report_retention_days: int = rule("integer", 400, minimum=1,
                                      doc="How long verification reports are kept: longer than the longest gap "
                                          "between two runs of every job that writes one.")


@dataclass(frozen=True)
class DataExportConfig:
    """The GDPR/CCPA account export API (GET /api/account/export)."""

    exports_per_day: int = rule("integer", 3, minimum=1,
                                doc="Exports one user may start per UTC day (one at a time always).")
    sync_row_limit: int = rule("integer", 20000, minimum=0,
                               doc="Exports of at most this many rows answer at once (200); larger ones run in the "
                                   "background (202 and a status URL), so none hits API Gateway's 30 s limit.")
    url_expiry_seconds: int = rule("integer", 900, minimum=60, maximum=3600,
                                   why="a URL signed with a Lambda role's session stops working when the session does",
                                   doc="Lifetime of the presigned download URL (seconds).")
    retention_days: int = rule("integer", 7, minimum=1,
                               doc="Exports are deleted from the exports bucket after this many days.")
    include_pdfs: bool = rule("boolean", True,
                              doc="Put the invoice PDFs into the ZIP; false: they are referenced by key.")
    datasets: tuple[Dataset, ...] = rule("datasets", DEFAULT_DATASETS,
                                         doc="Which tables are exported and which column ties a row to the user, "
                                             "a list of objects (default: the six Tavari datasets, "
                                             "DEFAULT_DATASETS).")
    allowed_origins: tuple[str, ...] = rule("strings", (), regex=_ORIGIN_RE, plural="origins",
                                            what="an https origin without a path, such as https://app.tavari.example "
                                                 "(never *)",
                                            doc="https origins of the front end that may call the API from a browser "
                                                "(CORS); none: no CORS headers, server-to-server only.")
    invoice_key_prefix: str = rule("pattern", DEFAULT_INVOICE_KEY_PREFIX, regex=_INVOICE_PREFIX_RE, optional=False,
                                   what='a key prefix naming {business_id} or {user_id} once and ending in "/", '
                                        'such as invoices/{business_id}/',
                                   doc="Where one account's invoice PDFs sit in the invoice bucket (the account "
                                       "map's object side), ending in / so that no account's prefix is the start of "
                                       "another's keys; a bucket restore leaves out every erased account's keys "
                                       "under it.")


@dataclass(frozen=True)
class DrillConfig:
    """Disaster-recovery drills: the local one (`tavari-dr drill --local`) and the quarterly one in AWS. The
    drill's cost model (tavari_dr.core.costmodel) prices each step's counted requests and bytes at the
    production sizes below and judges that projected RTO, never the emulator's wall time."""

    rto_critical_minutes: int = rule("integer", 60, minimum=1,
                                     doc="The plan's RTO for the critical services: the database and the "
                                         "configuration.")
    rto_non_critical_minutes: int = rule("integer", 240, minimum=1,
                                         doc="The plan's RTO for the invoice files; at least rto_critical_minutes.")
    database_gb: float = rule("number", 1.0, doc="Production size of the database's custom-format dump (GB).")
    invoice_count: int = rule("integer", 10000, minimum=1, doc="Production count of invoice objects.")
    invoice_gb: float = rule("number", 2.0, doc="Production size of the invoice bucket (GB).")
    breach_changed_percent: float = rule("number", 10.0, maximum=100,
                                         doc="Share of the invoice keys a breach overwrites, deletes or plants; an "
                                             "in-place bucket restore costs one request per changed key.")
    health_endpoints: tuple[str, ...] = rule("strings", (), regex=_URL_RE, plural="https URLs", what="an https:// URL",
                                             doc="URLs that must answer 200 after a recovery (verify all services).")
    quarterly_schedule: str = rule("schedule", "cron(0 9 ? 1,4,7,10 MON#1 *)", timezone=lambda v: v["timezone"],
                                   example="cron(0 9 ? 1,4,7,10 MON#1 *)", cadence=QUARTERLY,
                                   doc="When the Step Functions drill runs in AWS.")
    timezone: str = rule("timezone", "UTC", doc="IANA zone of quarterly_schedule.")
    changes_per_day: int = rule("integer", 200_000, minimum=0,
                                doc="Rows Tavari's database changes a day; a point-in-time restore replays at most a "
                                    "day of them after the newest dump (the cost model's replay step, ADR 0020).")

    @staticmethod
    def _across(s: _Section, v: dict[str, Any]) -> None:
        if v["rto_non_critical_minutes"] < v["rto_critical_minutes"]:
            raise ConfigError(f"{s.key('rto_non_critical_minutes')}: {v['rto_non_critical_minutes']} is not allowed; "
                              f"it must be at least rto_critical_minutes ({v['rto_critical_minutes']})")


@dataclass(frozen=True)
class SecurityConfig:
    """Who may still change or destroy what protects the backups, and where the tamper alarms look."""

    break_glass_role_name: str = rule("pattern", "tavari-break-glass", regex=_ROLE_NAME_RE, optional=False,
                                      what="an IAM role name (letters, digits and +=,.@_-, at most 64)",
                                      doc="The IAM role (same name in every account holding protected resources) "
                                          "exempted from the deny statements on the backup buckets and protected "
                                          "keys where removal_policy is retain; every assumption of it alarms.")
    cdk_bootstrap_qualifier: str = rule("pattern", "hnb659fds", regex=_QUALIFIER_RE, optional=False,
                                        what="a CDK bootstrap qualifier (1 to 10 lower-case letters or digits)",
                                        doc="The CDK bootstrap qualifier whose CloudFormation execution role "
                                            "(cdk-<qualifier>-cfn-exec-role-<account>-<region>) deploys the stacks "
                                            "and so keeps what it needs (hnb659fds: the CDK default).")
    trail_arn: str | None = rule("pattern", None, regex=_TRAIL_ARN_RE,
                                 what="a CloudTrail trail ARN (arn:aws:cloudtrail:<region>:<account>:trail/<name>) "
                                      "or null",
                                 doc="An existing organization or account trail that logs management events and the "
                                     "backup buckets' write data events; null: one is created per environment.")

    def deploy_role_name(self, account: str, region: str) -> str:
        """The CloudFormation execution role of ``cdk bootstrap`` in that account and region."""
        return self.bootstrap_role_name("cfn-exec", account, region)

    def bootstrap_role_name(self, kind: str, account: str, region: str) -> str:
        """A role of ``cdk bootstrap`` (kind: deploy, file-publishing, image-publishing, lookup, cfn-exec)."""
        return f"cdk-{self.cdk_bootstrap_qualifier}-{kind}-role-{account}-{region}"

    def bootstrap_role_arn(self, kind: str, account: str, region: str) -> str:
        return f"arn:aws:iam::{account}:role/{self.bootstrap_role_name(kind, account, region)}"


# What a contact's unknown fields say until someone sets them: rendered as is in the escalation page and the alerts,
# and refused by a deploy of an environment that retains its data (refuse_placeholders).
UNSET_CONTACT = "UNSET"
_CONTACT_REACH_RE = re.compile(r"^(UNSET|\+[0-9][0-9 ]{6,19}|https://[^\s/]+(/\S*)?|[^@\s]+@[^@\s]+\.[A-Za-z]{2,})$")
_TEXT_RE = re.compile(r"^\S.{0,79}$")


@dataclass(frozen=True)
class Contact:
    """One person (or rota) of the escalation chain, in the order they are called.

    name: who (a person or a rota); role: what they decide (e.g. Technical lead); channel: where to reach them
    first (e.g. PagerDuty, #incidents on Slack); reach: a phone number (+44 20 ...), an https:// URL or an email.
    """

    name: str = rule("pattern", regex=_TEXT_RE, what="a name of 1 to 80 characters", optional=False,
                     doc="Who is called: a person or a rota (UNSET until someone is named).")
    role: str = rule("pattern", regex=_TEXT_RE, what="a role of 1 to 80 characters", optional=False,
                     doc="What they decide, e.g. Technical lead.")
    channel: str = rule("pattern", regex=_TEXT_RE, what="a channel of 1 to 80 characters", optional=False,
                        doc="Where to reach them first, e.g. PagerDuty or #incidents on Slack.")
    reach: str = rule("pattern", regex=_CONTACT_REACH_RE,
                      what="a phone number (+ then digits), an https:// URL, an email address or UNSET",
                      optional=False, doc="A phone number (+44 20 ...), an https:// URL or an email address.")

    @property
    def placeholder(self) -> bool:
        return UNSET_CONTACT in (self.name, self.reach)


DEFAULT_CONTACTS = (
    Contact(UNSET_CONTACT, "On-call engineer", "PagerDuty", UNSET_CONTACT),
    Contact(UNSET_CONTACT, "Technical lead", "Phone", UNSET_CONTACT),
    Contact(UNSET_CONTACT, "Management", "Phone", UNSET_CONTACT),
)


@dataclass(frozen=True)
class EscalationConfig:
    """Who is called when backups or a recovery go wrong (the plan's "Contact & Escalation"), rendered into
    docs/runbooks/escalation.md (python -m tavari_dr.alerts.escalation --write) and into every alert.

    contacts: the chain, first called first (default: on-call engineer, technical lead, management, each UNSET;
        a deploy of an environment whose removal_policy is retain refuses UNSET).
    supabase_support_url / aws_support_url: where a support case is opened.
    """

    contacts: tuple[Contact, ...] = rule("contacts", DEFAULT_CONTACTS,
                                         doc="The escalation chain, first called first; a deploy of an environment "
                                             "whose removal_policy is retain refuses UNSET contacts.")
    supabase_support_url: str = rule("pattern", "https://supabase.com/dashboard/support/new", regex=_URL_RE,
                                     what="an https:// URL", optional=False,
                                     doc="Where a Supabase support case is opened.")
    aws_support_url: str = rule("pattern", "https://console.aws.amazon.com/support/home#/case/create",
                                regex=_URL_RE, what="an https:// URL", optional=False,
                                doc="Where an AWS support case is opened.")

    def to_json(self) -> str:
        """The section as cdk.json would hold it (the alert router reads it back with parse_escalation)."""
        return json.dumps({"contacts": [dataclasses.asdict(c) for c in self.contacts],
                           "supabase_support_url": self.supabase_support_url, "aws_support_url": self.aws_support_url},
                          separators=(",", ":"))

    def placeholders(self) -> tuple[int, ...]:
        """The indexes of the contacts still UNSET."""
        return tuple(i for i, c in enumerate(self.contacts) if c.placeholder)


# The example account of AWS's documentation, and of this repository's cdk.json until someone sets theirs.
PLACEHOLDER_ACCOUNT = "123456789012"
_GITHUB_REPOSITORY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}$")
_GITHUB_ENVIRONMENT_RE = re.compile(r"^[A-Za-z0-9._-]{1,255}$")
_GITHUB_OIDC_ARN_RE = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):oidc-provider/token\.actions\.githubusercontent\.com$")


@dataclass(frozen=True)
class PipelineConfig:
    """GitHub Actions deploys this environment (.github/workflows/deploy.yml) through OIDC roles of the
    Tavari-<Env>-DeployRoles stack, which may only assume the CDK bootstrap roles."""

    github_repository: str | None = rule("pattern", None, regex=_GITHUB_REPOSITORY_RE,
                                         what="a GitHub repository OWNER/REPO such as tavari/backup-recovery, "
                                              "or null",
                                         doc="OWNER/REPO whose workflows the roles trust; null: no DeployRoles stack.")
    github_environment: str = rule("github_environment", None, env_name=lambda v: v["env_name"],
                                   doc="The GitHub environment the deploy job runs in; the deploy role trusts the "
                                       "subject repo:OWNER/REPO:environment:<this> only (null: the environment's "
                                       "name).")
    oidc_provider_arn: str | None = rule(
        "pattern", None, regex=_GITHUB_OIDC_ARN_RE,
        what="the ARN of a GitHub OIDC provider (arn:aws:iam::<12 digits>:oidc-provider/"
             "token.actions.githubusercontent.com) or null",
        doc="The account's existing GitHub OIDC provider (an account holds one per URL); null: the stack "
            "creates it.")
    pull_request_diff: bool = rule("boolean", True,
                                   doc="A read-only role (the bootstrap lookup role only) for `cdk diff` on pull "
                                       "requests, subject repo:OWNER/REPO:pull_request.")

    @property
    def enabled(self) -> bool:
        return self.github_repository is not None

    def subject(self, claim: str) -> str:
        """The OIDC ``sub`` a role trusts: ``environment:<name>`` or ``pull_request``."""
        return f"repo:{self.github_repository}:{claim}"

    @staticmethod
    def _across(s: _Section, v: dict[str, Any]) -> None:
        arn, account = v["oidc_provider_arn"], v["account"]
        if arn is not None:
            match = _GITHUB_OIDC_ARN_RE.match(arn)
            if match and account is not None and match.group(1) != account:
                raise ConfigError(f'{s.key("oidc_provider_arn")}: "{arn}" is not allowed; the provider must be '
                                  f"in the environment's account ({account})")
            if v["github_repository"] is None:
                raise ConfigError(f'{s.key("oidc_provider_arn")}: "{arn}" is not allowed without '
                                  "github_repository (no role would use it)")


def refuse_placeholder_accounts(config: EnvironmentConfig) -> None:
    """Before a deploy (or a diff against AWS): no account may still be the documentation's example."""
    for key, value in (("account", config.account), ("replication.account", config.replication.account)):
        if value == PLACEHOLDER_ACCOUNT:
            raise ConfigError(
                f'{ENVIRONMENTS_CONTEXT_KEY}.{config.name}.{key}: "{value}" is the documentation\'s example '
                f"account, not yours; set your 12-digit AWS account ID there in cdk.json before deploying")


def refuse_placeholder_contacts(config: EnvironmentConfig) -> None:
    """Before a deploy of an environment that retains its data (removal_policy retain: the one someone is paged
    for): its escalation chain may not still be UNSET. Not at synth: `make run` synthesizes prod offline."""
    if not config.retain:
        return
    for i in config.escalation.placeholders():
        contact = config.escalation.contacts[i]
        raise ConfigError(
            f"{ENVIRONMENTS_CONTEXT_KEY}.{config.name}.escalation.contacts[{i}]: the {contact.role} is still "
            f'"{UNSET_CONTACT}"; set their name and reach (phone, URL or email) in cdk.json before deploying '
            f"(removal_policy retain: an incident here pages someone)")


@dataclass(frozen=True)
class EnvironmentConfig:
    """One deployment environment (one entry of cdk.json ``environments``)."""

    name: str
    region: str = rule("region", optional=False,
                       doc="The primary region: one botocore's own region list (its endpoints.json) knows.")
    account: str | None = rule("pattern", None, regex=_ACCOUNT_RE, what="a 12-digit AWS account ID or null",
                               doc="The environment's AWS account; required when replication is enabled (a stack "
                                   "pair across regions must name its account). Null: the deploying credentials' "
                                   "account.")
    removal_policy: str = rule("choice", "retain", choices=REMOVAL_POLICIES,
                               doc="What a stack deletion does to buckets and keys: retain them, or destroy them "
                                   "(dev).")
    termination_protection: bool = rule("boolean", True, doc="CloudFormation termination protection of every stack.")
    invoice_bucket: InvoiceBucketConfig = section(InvoiceBucketConfig)
    replication: ReplicationConfig = section(ReplicationConfig, primary_region=lambda v: v["region"],
                                             primary_account=lambda v: v["account"])
    alert_emails: tuple[str, ...] = rule("strings", (), regex=_EMAIL_RE, plural="email addresses",
                                         what="name@example.com", refusal="is not a valid email address",
                                         nullable=True, doc="Email subscriptions of the alert topic.")
    secrets: SecretsConfig = section(SecretsConfig)
    monitoring: MonitoringConfig = section(MonitoringConfig)
    database_backups: DatabaseBackupsConfig = section(DatabaseBackupsConfig,
                                                      removal_policy=lambda v: v["removal_policy"],
                                                      rpo_hours=lambda v: v["monitoring"].rpo_hours)
    verification: VerificationConfig = section(VerificationConfig)
    data_export: DataExportConfig = section(DataExportConfig)
    drill: DrillConfig = section(DrillConfig)
    security: SecurityConfig = section(SecurityConfig)
    pipeline: PipelineConfig = section(PipelineConfig, env_name=lambda v: v["name"], account=lambda v: v["account"])
    changes: ChangesConfig = section(ChangesConfig)
    inventory: InventoryConfig = section(InventoryConfig)
    compute: ComputeConfig = section(ComputeConfig)
    escalation: EscalationConfig = section(EscalationConfig)

    @staticmethod
    def _across(s: _Section, v: dict[str, Any]) -> None:
        _check_retentions_together(s, v)
        _check_arns_in_partition(s, v)

    @property
    def retain(self) -> bool:
        return self.removal_policy == "retain"

    @property
    def replica_account(self) -> str | None:
        return self.replication.account or self.account

    @property
    def cross_account_replication(self) -> bool:
        return (
            self.replication.enabled
            and self.replication.account is not None
            and self.replication.account != self.account
        )

    def stack_name(self, purpose: str) -> str:
        return stack_name(self.name, purpose)


def _check_retentions_together(s: _Section, v: dict[str, Any]) -> None:
    """The retentions of different sections that only work together."""
    db, changes, verification = v["database_backups"], v["changes"], v["verification"]
    # A point-in-time restore replays segments from a dump up to T: while any daily dump is kept, the
    # segments after it must be too, or a restore to a time the window promises finds its changes gone.
    if changes.retention_days < db.daily_retention_days:
        raise ConfigError(f"{s.key('changes')}.retention_days: {changes.retention_days} is not allowed; it must be "
                          f"at least database_backups.daily_retention_days ({db.daily_retention_days}): a segment "
                          "must outlive the oldest daily dump it extends")
    # Every verification job (and the quarterly drill) writes its evidence to the reports bucket, and status
    # reads each job's newest report: it must still be there when the job next runs.
    jobs = tuple((f"verification.{n}", getattr(verification, n), verification.timezone)
                 for n in ("daily_schedule", "weekly_schedule", "monthly_schedule"))
    jobs = (*jobs, ("database_backups.weekly_verify_schedule", db.weekly_verify_schedule, db.timezone),
            ("database_backups.monthly_verify_schedule", db.monthly_verify_schedule, db.timezone),
            ("drill.quarterly_schedule", v["drill"].quarterly_schedule, v["drill"].timezone))
    for key, expression, zone in jobs:
        gap = schedules.max_interval_seconds(expression, zone, year=s.today.year)
        if verification.report_retention_days * 86400 <= gap:
            raise ConfigError(
                f"{s.key('verification')}.report_retention_days: {verification.report_retention_days} is not "
                f"allowed; it must be longer than the longest gap between two runs of {key} "
                f"({gap / 86400:g} days), or that job's newest report expires before the next one")


def _check_arns_in_partition(s: _Section, v: dict[str, Any]) -> None:
    """An ARN names its partition (and often its region): both must agree with the environment's region, as
    an IAM principal or a backup vault of another partition cannot be granted or copied to from this one."""
    partition = partition_of(v["region"])
    arns = (("invoice_bucket", "app_principal_arn"), ("invoice_bucket", "aws_backup_copy_vault_arn"),
            ("security", "trail_arn"), ("pipeline", "oidc_provider_arn"))
    for section_name, name in arns:
        arn = getattr(v[section_name], name)
        match = _ARN_PARTITION_RE.match(arn) if arn is not None else None
        if match is None:
            continue
        key = f"{s.key(section_name)}.{name}"
        if match["region"] and match["region"] not in region_partitions():
            raise ConfigError(f'{key}: "{arn}" is not allowed; its region "{match["region"]}" must be '
                              f'{_unknown_region(match["region"])}')
        if match["region"] and partition_of(match["region"]) != match["partition"]:
            raise ConfigError(f'{key}: "{arn}" is not allowed; region {match["region"]} is in partition '
                              f'{partition_of(match["region"])}, not {match["partition"]}')
        if match["partition"] != partition:
            raise ConfigError(f'{key}: "{arn}" is not allowed; it is in partition {match["partition"]}, the '
                              f'environment\'s region {v["region"]} in {partition}')


def stack_name(env_name: str, purpose: str) -> str:
    """The one stack-name pattern: ``Tavari-<Env>-<Purpose>``."""
    return f"Tavari-{env_name.capitalize()}-{purpose}"


# --------------------------------------------------------------------------- the shared rules


class _Section:
    """A mapping being read, which remembers its key path and refuses unknown keys; its methods are
    the rules fields name."""

    def __init__(self, path: str, raw: Any, allowed: tuple[str, ...], *, today: date) -> None:
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{path}: {_show(raw)} is not an object; expected keys {', '.join(allowed)}")
        unknown = sorted(set(raw) - set(allowed))
        if unknown:
            raise ConfigError(
                f"{path}.{unknown[0]}: unknown key; allowed keys are {', '.join(allowed)}"
            )
        self.path = path
        self.raw = raw
        # The date the checks are made on, passed in (never read here): schedules judge "a year entirely in
        # the past" and the DST rules and gaps of the years around it by it.
        self.today = today

    def key(self, name: str) -> str:
        return f"{self.path}.{name}"

    def get(self, name: str, default: Any) -> Any:
        return self.raw.get(name, default)

    def read(self, cls: type[_Read], **context: Any) -> _Read:
        """``cls`` from this section: every field by its rule (those whose options depend on other values
        after the rest), then the section's rules across fields."""
        values: dict[str, Any] = {}
        rules = [f for f in fields(cls) if "rule" in f.metadata]
        for dependent in (False, True):
            for f in rules:
                check, options = f.metadata["rule"]
                if any(isinstance(o, FunctionType) for o in options.values()) != dependent:
                    continue
                known = {**context, **values}
                resolved = {k: o(known) if isinstance(o, FunctionType) else o for k, o in options.items()}
                values[f.name] = getattr(self, check)(f.name, None if f.default is MISSING else f.default,
                                                      **resolved)
        across = getattr(cls, "_across", None)
        if across is not None:
            across(self, {**context, **values})
        given = {k: v for k, v in context.items() if k in _fields(cls)}  # e.g. the environment's name
        return cls(**given, **values)

    def section(self, name: str, _default: Any, *, cls: type, **context: Any) -> Any:
        """A whole section: left out, its defaults; given, an object (null is refused: it reads as "none of
        this", e.g. no monitoring, and must not silently mean every default)."""
        raw = self.get(name, {})
        if raw is None:
            raise ConfigError(f"{self.key(name)}: null is not allowed; give an object with keys "
                              f"{', '.join(_fields(cls))}, or leave the key out for the defaults")
        return _Section(self.key(name), raw, _fields(cls), today=self.today).read(cls, **context)

    def boolean(self, name: str, default: bool) -> bool:
        value = self.get(name, default)
        if not isinstance(value, bool):
            raise ConfigError(f"{self.key(name)}: {_show(value)} is not allowed; use true or false")
        return value

    def integer(self, name: str, default: int | None, *, minimum: int, maximum: int | None = None,
                why: str | None = None, optional: bool = False) -> int | None:
        value = self.get(name, default)
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            allowed = f"a whole number >= {minimum}" + (" or null" if optional else "")
            raise ConfigError(f"{self.key(name)}: {_show(value)} is not allowed; use {allowed}")
        if maximum is not None and value > maximum:
            raise ConfigError(f"{self.key(name)}: {value} is not allowed; use {minimum} to {maximum}"
                              + (f" ({why})" if why else ""))
        return value

    def number(self, name: str, default: float, *, maximum: float | None = None) -> float:
        """A number > 0 (and <= maximum), as a float."""
        value = self.get(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ConfigError(f"{self.key(name)}: {_show(value)} is not allowed; use a number > 0")
        if maximum is not None and value > maximum:
            raise ConfigError(f"{self.key(name)}: {_show(value)} is not allowed; use a number > 0 and <= "
                              f"{maximum}")
        return float(value)

    def choice(self, name: str, default: str, *, choices: tuple[str, ...]) -> str:
        value = self.get(name, default)
        if value not in choices:
            raise ConfigError(f"{self.key(name)}: {_show(value)} is not allowed; choose one of {', '.join(choices)}")
        return cast(str, value)  # one of choices

    def accepted(self, name: str, default: int, *, values: tuple[int, ...], by: str) -> int:
        """One of the values a service accepts (``by`` names it)."""
        value = self.get(name, default)
        if value not in values or isinstance(value, bool):
            raise ConfigError(f"{self.key(name)}: {_show(value)} is not allowed; {by} accepts "
                              f"{', '.join(map(str, values))}")
        return cast(int, value)  # one of values

    def strings(self, name: str, default: tuple[str, ...], *, regex: re.Pattern[str], plural: str, what: str,
                refusal: str = "is not allowed", nullable: bool = False) -> tuple[str, ...]:
        """A list (default empty; with ``nullable`` null too) whose every item matches ``regex``; errors
        name the item's index (``refusal``: what an item that does not match is told)."""
        value = self.get(name, list(default))
        if value is None and nullable:
            return ()
        if not isinstance(value, list):
            raise ConfigError(f"{self.key(name)}: {_show(value)} is not allowed; use a list of {plural}")
        for i, item in enumerate(value):
            if not isinstance(item, str) or not regex.match(item):
                raise ConfigError(f"{self.key(name)}[{i}]: {_show(item)} {refusal}; use {what}")
        return tuple(value)

    def text(self, name: str, default: str) -> str:
        """Free text (a description)."""
        value = self.get(name, default)
        if not isinstance(value, str):
            raise ConfigError(f"{self.key(name)}: {_show(value)} is not allowed; use a string")
        return value

    def timezone(self, name: str, default: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        value = self.get(name, default)
        try:
            ZoneInfo(str(value))
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"{self.key(name)}: {_show(value)} is not allowed; use an IANA zone such as "
                              "Europe/Warsaw or UTC") from None
        return str(value)

    def schedule(self, name: str, default: str, *, timezone: str, example: str, cadence: Cadence | FunctionType
                 ) -> str:
        """An EventBridge Scheduler expression that fires, keeps firing, whose every time exists exactly once a
        day in ``timezone``, and whose longest gap between runs is within ``cadence`` (its purpose's bound):
        every schedule of the configuration passes through this one rule (tavari_dr.core.schedule.check)."""
        value = self.pattern(name, default, regex=_SCHEDULE_RE,
                             what=f"an EventBridge Scheduler expression such as {example}", optional=False)
        assert isinstance(cadence, Cadence)  # a callable option is resolved before the rule runs
        try:
            schedules.check(value, timezone, today=self.today, longest=cadence.longest, strictly=cadence.strictly,
                            purpose=cadence.purpose)
        except DstConflict as conflict:
            raise ConfigError(f"{self.key(name)}: {_show(value)} is not allowed in {timezone}: {conflict}") from None
        except ScheduleRefused as why:
            raise ConfigError(f"{self.key(name)}: {_show(value)} is not allowed; {why}") from None
        except ScheduleError as err:  # unreadable: an example of the form helps
            raise ConfigError(f"{self.key(name)}: {_show(value)} is not allowed; {err} (e.g. {example})") from None
        return value

    def region(self, name: str, default: str | None, *, optional: bool) -> str | None:
        """A region botocore knows (region_partitions)."""
        value = self.get(name, default)
        if value is None and optional:
            return None
        if not isinstance(value, str) or value not in region_partitions():
            raise ConfigError(f"{self.key(name)}: {_show(value)} is not allowed; use {_unknown_region(value)}")
        return value

    @overload
    def pattern(self, name: str, default: str | None, *, regex: re.Pattern[str], what: str,
                optional: Literal[False]) -> str: ...

    @overload
    def pattern(self, name: str, default: str | None, *, regex: re.Pattern[str], what: str,
                optional: bool = True) -> str | None: ...

    def pattern(self, name: str, default: str | None, *, regex: re.Pattern[str], what: str,
                optional: bool = True) -> str | None:
        value = self.get(name, default)
        if value is None and optional:
            return None
        if not isinstance(value, str) or not regex.match(value):
            raise ConfigError(f"{self.key(name)}: {_show(value)} is not allowed; use {what}")
        return value

    def github_environment(self, name: str, default: str | None, *, env_name: str) -> str:
        value = self.get(name, default)
        if value is None:
            return env_name
        if not isinstance(value, str) or not _GITHUB_ENVIRONMENT_RE.match(value):
            raise ConfigError(f"{self.key(name)}: {_show(value)} is not allowed; use a GitHub environment name "
                              "(letters, digits, '.', '_', '-'; default: the environment's own name)")
        return value

    def cross_account_key(self, name: str, default: str | None, *, region: str | None, account: str | None,
                          primary_account: str | None) -> str | None:
        key_arn = self.get(name, default)
        if key_arn is None:
            return None
        # The DR region's own partition (arn:aws-cn:kms:... in China); ReplicationConfig reads the region first.
        expected = f"arn:{partition_of(region) if region in region_partitions() else 'aws'}:kms:{region}:{account}:key/"
        if account is None or account == primary_account or not isinstance(key_arn, str) \
                or not key_arn.startswith(expected) or len(key_arn) == len(expected):
            raise ConfigError(
                f"{self.key(name)}: {_show(key_arn)} is not allowed; it is only for cross-account "
                f"replication and must be a key ARN in the DR region and account ({expected}<key-id>)"
            )
        return key_arn

    def _items(self, name: str, cls: type, example: str) -> list[_Section]:
        """A non-empty list of objects, each read as a section of ``cls``."""
        value = self.raw[name]
        if not isinstance(value, list) or not value:
            raise ConfigError(f"{self.key(name)}: {_show(value)} is not allowed; use a non-empty list of {example}")
        return [_Section(f"{self.key(name)}[{i}]", item, _fields(cls), today=self.today)
                for i, item in enumerate(value)]

    def secret_entries(self, name: str, default: tuple[SecretEntry, ...]) -> tuple[SecretEntry, ...]:
        if name not in self.raw:
            return default
        return tuple(e.read(SecretEntry) for e in self._items(name, SecretEntry, "{name, description, required}"))

    def contacts(self, name: str, default: tuple[Contact, ...]) -> tuple[Contact, ...]:
        if name not in self.raw:
            return default
        return tuple(e.read(Contact) for e in self._items(name, Contact, "{name, role, channel, reach}"))

    def datasets(self, name: str, default: tuple[Dataset, ...]) -> tuple[Dataset, ...]:
        if self.get(name, None) is None:
            return default
        parsed = [e.read(Dataset) for e in self._items(name, Dataset, "{name, table, owner, column}")]
        names = [x.name for x in parsed]
        if len(set(names)) != len(names):
            raise ConfigError(f"{self.key(name)}: names {names} are not allowed; each name must be unique")
        return tuple(parsed)


def _show(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else f'"{value}"'


def _today(today: date | None) -> date:
    """The date the checks are made on: the one passed in (tests pass a fixed one), else today in UTC."""
    return today if today is not None else datetime.now(UTC).date()


def parse_environment(name: str, raw: Any, *, today: date | None = None) -> EnvironmentConfig:
    path = f"{ENVIRONMENTS_CONTEXT_KEY}.{name}"
    if not _ENV_NAME_RE.match(name):
        raise ConfigError(f"{path}: {_show(name)} is not a valid environment name; use lower-case letters and digits")
    return _Section(path, raw, _fields(EnvironmentConfig)[1:], today=_today(today)).read(EnvironmentConfig, name=name)


def parse_escalation(text: str) -> EscalationConfig:
    """An escalation section from its JSON (EscalationConfig.to_json), by the same rules as cdk.json's."""
    try:
        raw = json.loads(text)
    except ValueError as err:
        raise ConfigError(f"ESCALATION: not valid JSON ({err})") from None
    return _Section("ESCALATION", raw, _fields(EscalationConfig), today=_today(None)).read(EscalationConfig)


def _environments(context: Mapping[str, Any]) -> Mapping[str, Any]:
    environments = context.get(ENVIRONMENTS_CONTEXT_KEY)
    if not isinstance(environments, Mapping) or not environments:
        raise ConfigError(f"{ENVIRONMENTS_CONTEXT_KEY}: {_show(environments)} is not allowed; cdk.json must map "
                          "environment names to settings (a non-empty object)")
    return environments


def load_environment(context: Mapping[str, Any], env_name: str | None = None, *,
                     today: date | None = None) -> EnvironmentConfig:
    """Pick one environment out of the CDK context and validate it.

    env_name: the environment to load (default: context ``env``, else ``dev``).
    today: the date the schedules are judged on (default: today in UTC).
    """
    environments = _environments(context)
    name = env_name or context.get(ENV_CONTEXT_KEY) or DEFAULT_ENV
    if name not in environments:
        raise ConfigError(
            f'{ENV_CONTEXT_KEY}: "{name}" is not a configured environment; '
            f'choose one of {", ".join(sorted(environments))}'
        )
    return parse_environment(name, environments[name], today=today)


def load_all(context: Mapping[str, Any], *, today: date | None = None) -> dict[str, EnvironmentConfig]:
    """Validate every environment (so a typo in prod fails a dev synth in CI too)."""
    return {name: parse_environment(name, raw, today=today) for name, raw in _environments(context).items()}


def read_cdk_context(cdk_json: str | Path = "cdk.json") -> dict[str, Any]:
    """The ``context`` object of cdk.json, as ``cdk synth`` sees it."""
    path = Path(cdk_json)
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found; run from the project root or pass --cdk-json") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: not valid JSON ({err})") from None
    context: dict[str, Any] = document.get("context", {})
    return context


def load_from_file(env_name: str | None, cdk_json: str | Path = "cdk.json") -> EnvironmentConfig:
    return load_environment(read_cdk_context(cdk_json), env_name)
