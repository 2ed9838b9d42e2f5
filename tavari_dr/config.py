"""The one configuration loader: cdk.json context -> frozen, validated config.

Used by app.py (CDK) and by the tavari-dr CLI alike, so it must stay plain Python
(no CDK imports). Every error names the key path, the offending value and what is
allowed, e.g. ``environments.prod.replication.region: "eu-west-1" is the primary
region; choose another``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tavari_dr.export import DEFAULT_DATASETS, Dataset
from tavari_dr.schedule import ScheduleError, dst_conflict, max_interval_seconds

DEFAULT_ENV = "dev"
ENV_CONTEXT_KEY = "env"
ENVIRONMENTS_CONTEXT_KEY = "environments"

ARCHIVE_STORAGE_CLASSES = ("GLACIER_IR", "GLACIER", "DEEP_ARCHIVE")
# Only these classes accept objects under 128 KB when the bucket's
# TransitionDefaultMinimumObjectSize is VARIES_BY_STORAGE_CLASS.
SMALL_OBJECT_CLASSES = ("GLACIER", "DEEP_ARCHIVE")
SMALL_OBJECT_POLICIES = ("stay-standard", "archive")
# S3's own default boundary below which lifecycle never transitions an object.
SMALL_OBJECT_BYTES = 128 * 1024
REMOVAL_POLICIES = ("retain", "destroy")

_REGION_RE = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
_ACCOUNT_RE = re.compile(r"^\d{12}$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
_VAULT_ARN_RE = re.compile(r"^arn:aws[a-z-]*:backup:[a-z0-9-]+:\d{12}:backup-vault:[A-Za-z0-9_.-]{2,50}$")
_ROLE_ARN_RE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
_BUCKET_RE = re.compile(r"^(?!xn--)(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_ENV_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,15}$")
ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ConfigError(ValueError):
    """A configuration value is missing, malformed or not allowed."""


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class InvoiceBucketConfig:
    """The invoice bucket (primary region).

    existing_bucket_name: adopt this bucket with ``cdk import`` (default None: CDK names it).
    archive_after_days: days before a noncurrent version moves to the archive class (90).
    archive_storage_class: GLACIER_IR (default), GLACIER or DEEP_ARCHIVE.
    small_objects: "stay-standard" (default; objects < 128 KB are never transitioned)
        or "archive" (transition them too; GLACIER/DEEP_ARCHIVE only).
    noncurrent_expiration_days: delete noncurrent versions after N days (default None: never).
    abort_incomplete_multipart_days: clean up abandoned uploads after N days (7).
    access_log_retention_days: days server access logs are kept (365).
    app_principal_arn: IAM role of the Tavari application, granted upload/read (None).
    aws_backup_enabled: also protect the bucket with AWS Backup continuous backups (default False).
    aws_backup_retention_days: 1-35; point-in-time window of those backups and vault-lock minimum (35).
    aws_backup_copy_vault_arn: copy recovery points to this vault, e.g. in the backup account (None).
    """

    existing_bucket_name: str | None = None
    archive_after_days: int = 90
    archive_storage_class: str = "GLACIER_IR"
    small_objects: str = "stay-standard"
    noncurrent_expiration_days: int | None = None
    abort_incomplete_multipart_days: int = 7
    access_log_retention_days: int = 365
    app_principal_arn: str | None = None
    aws_backup_enabled: bool = False
    aws_backup_retention_days: int = 35
    aws_backup_copy_vault_arn: str | None = None


@dataclass(frozen=True)
class ReplicationConfig:
    """Cross-region (optionally cross-account) replication of the invoice bucket.

    enabled: replicate at all (default False).
    region: the DR region; must differ from the primary region.
    account: destination account (default None: the primary account). Another
        account makes it a dedicated backup account (owner override, bucket policy).
    replication_time_control: RTC (15-minute SLA) and replication metrics (default True).
    replica_key_arn: cross-account only: the replica stack's ReplicaKeyArn output, set after
        deploying that stack (default None: replication waits for it). S3 would resolve an
        alias in the source account, so another account's key must be named by its ARN.
    backup_replica_key_arn: the same for the database backups' replica (its stack's BackupKeyArn).
    """

    enabled: bool = False
    region: str | None = None
    account: str | None = None
    replication_time_control: bool = True
    replica_key_arn: str | None = None
    backup_replica_key_arn: str | None = None


@dataclass(frozen=True)
class SecretEntry:
    """One configuration value kept in Secrets Manager; ``name`` is its env-file key."""

    name: str
    description: str
    required: bool = True


# What a rebuilt Tavari needs to run and to be backed up (README, "Configuration backups").
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
)


@dataclass(frozen=True)
class SecretsConfig:
    """Secrets Manager entries of one environment.

    entries: the core entries (default DEFAULT_SECRET_ENTRIES).
    third_party_keys: the application's third-party keys, each a required entry (default none).
    """

    entries: tuple[SecretEntry, ...] = DEFAULT_SECRET_ENTRIES
    third_party_keys: tuple[str, ...] = ()

    @property
    def all_entries(self) -> tuple[SecretEntry, ...]:
        return self.entries + tuple(
            SecretEntry(key, f"Third-party key {key}") for key in self.third_party_keys)


LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192,
                      2557, 2922, 3288, 3653)
_URL_RE = re.compile(r"^https://[^\s/]+(/\S*)?$")
# A Management API stand-in on this machine (the local drill) may speak plain http.
_API_URL_RE = re.compile(r"^(https://[^\s/]+|http://(127\.0\.0\.1|localhost)(:\d+)?)(/\S*)?$")


@dataclass(frozen=True)
class MonitoringConfig:
    """Alarm thresholds and where their runbooks live.

    rpo_hours: backup age alarm threshold (default 24, the plan's RPO).
    backup_size_floor_bytes: a backup smaller than this alarms (default 1 MiB).
    backup_size_drop_percent: a backup this much smaller than the previous one alarms (default 50).
    storage_growth_percent: invoice bucket size or object count growing this much in a day alarms (25).
    replication_latency_seconds: replication slower than this alarms (default 900, the RTC threshold).
    log_retention_days: retention of every function's logs (default 365; a CloudWatch Logs value).
    runbook_url: base URL of docs/runbooks/alarms.md; alarm descriptions link its sections.
    """

    rpo_hours: int = 24
    backup_size_floor_bytes: int = 1024 * 1024
    backup_size_drop_percent: int = 50
    storage_growth_percent: int = 25
    replication_latency_seconds: int = 900
    log_retention_days: int = 365
    runbook_url: str = "https://github.com/tavari/backup-recovery/blob/main/docs/runbooks/alarms.md"


@dataclass(frozen=True)
class DatabaseBackupsConfig:
    """Off-site pg_dump backups of the Supabase database.

    schedule: EventBridge Scheduler expression of the off-site dump (default cron(0 2,14 * * ? *): twice a
        day, since one dump a day cannot meet a 24-hour RPO once the dump's own duration is added).
    weekly_verify_schedule / monthly_verify_schedule: the quick and the full restore test.
    timezone: IANA zone the schedules run in (default UTC), and the calendar the tiers follow: a
        backup at 00:30 local time on the 1st is that month's monthly backup. Every schedule time must
        exist exactly once on every day there (02:00 is skipped in Europe/Warsaw one night a year).
    daily_retention_days / weekly_retention_days / monthly_retention_days: Object Lock retention
        and expiry of each grandfather-father-son tier (35 / 91 / 396; the plan's minimum is 7).
    lock_mode: GOVERNANCE (default) or COMPLIANCE (refused where removal_policy is destroy).
    pg_major: PostgreSQL client major version in the job image (default 17; dumps 15 too).
    scratch_image: image of the monthly test's scratch database (the supabase/postgres of the
        project's major version, which has Supabase's roles, auth schema and extensions).
    """

    schedule: str = "cron(0 2,14 * * ? *)"
    weekly_verify_schedule: str = "cron(0 4 ? * SUN *)"
    monthly_verify_schedule: str = "cron(0 5 1 * ? *)"
    timezone: str = "UTC"
    daily_retention_days: int = 35
    weekly_retention_days: int = 91
    monthly_retention_days: int = 396
    lock_mode: str = "GOVERNANCE"
    pg_major: int = 17
    scratch_image: str = "supabase/postgres:15.8.1.085"


@dataclass(frozen=True)
class VerificationConfig:
    """Scheduled verification (daily monitor, weekly integrity, monthly S3 restore test).

    daily_schedule / weekly_schedule / monthly_schedule: EventBridge Scheduler expressions.
    timezone: IANA zone of the schedules (default UTC).
    expect_pitr: whether the Supabase project should have PITR on (default False).
    integrity_sample_size / replication_sample_size / restore_test_sample_size: versions per run.
    max_list_pages: listing pages (1,000 versions each) a Lambda may read (default 50).
    size_shrink_percent: a bucket shrinking more than this since the last run fails (default 10).
    rto_minutes: the restore test fails when slower than this (default 60, the plan's RTO).
    supabase_api_url: the Management API (default https://api.supabase.com).
    report_retention_days: how long verification reports are kept (default 400).
    """

    daily_schedule: str = "cron(0 6 * * ? *)"
    weekly_schedule: str = "cron(0 7 ? * MON *)"
    monthly_schedule: str = "cron(0 8 2 * ? *)"
    timezone: str = "UTC"
    expect_pitr: bool = False
    integrity_sample_size: int = 50
    replication_sample_size: int = 20
    restore_test_sample_size: int = 10
    max_list_pages: int = 50
    size_shrink_percent: int = 10
    rto_minutes: int = 60
    supabase_api_url: str = "https://api.supabase.com"
    report_retention_days: int = 400


@dataclass(frozen=True)
class DataExportConfig:
    """The GDPR/CCPA account export API (GET /api/account/export).

    exports_per_day: exports one user may start per UTC day (default 3); one at a time always.
    sync_row_limit: exports of at most this many rows answer at once (200); larger ones run in
        the background (202 + status URL), so nothing hits API Gateway's 30 s limit (default 20000).
    url_expiry_seconds: lifetime of the presigned download URL (default 900; 60 to 3600).
    retention_days: exports are deleted from the exports bucket after this many days (default 7).
    include_pdfs: put the invoice PDFs into the ZIP (default true; otherwise referenced by key).
    datasets: which tables are exported and which column ties a row to the user
        (default tavari_dr.export.DEFAULT_DATASETS).
    allowed_origins: https origins of the front end that may call the API from a browser (CORS;
        default none: no CORS headers, server-to-server only).
    """

    exports_per_day: int = 3
    sync_row_limit: int = 20000
    url_expiry_seconds: int = 900
    retention_days: int = 7
    include_pdfs: bool = True
    datasets: tuple[Dataset, ...] = DEFAULT_DATASETS
    allowed_origins: tuple[str, ...] = ()


@dataclass(frozen=True)
class DrillConfig:
    """Disaster-recovery drills: the local one (`tavari-dr drill --local`) and the quarterly one in AWS.

    rto_critical_minutes / rto_non_critical_minutes: the plan's objectives (60 / 240). Critical:
        the database and configuration; non-critical: the invoice files.
    database_gb / invoice_count / invoice_gb: production sizes (database_gb: the custom-format dump);
        the drill's cost model (tavari_dr.costmodel) prices each step's counted requests and bytes at
        these sizes and judges that projected RTO, never the emulator's wall time.
    breach_changed_percent: share of the invoice keys a breach overwrites, deletes or plants (default
        10); an in-place bucket restore costs one request per changed key.
    health_endpoints: URLs that must answer 200 after a recovery ("verify all services").
    quarterly_schedule / timezone: when the Step Functions drill runs in AWS.
    """

    rto_critical_minutes: int = 60
    rto_non_critical_minutes: int = 240
    database_gb: float = 1.0
    invoice_count: int = 10000
    invoice_gb: float = 2.0
    breach_changed_percent: float = 10.0
    health_endpoints: tuple[str, ...] = ()
    quarterly_schedule: str = "cron(0 9 ? 1,4,7,10 MON#1 *)"
    timezone: str = "UTC"


@dataclass(frozen=True)
class EnvironmentConfig:
    """One deployment environment (one entry of cdk.json ``environments``)."""

    name: str
    region: str
    account: str | None = None
    removal_policy: str = "retain"
    termination_protection: bool = True
    invoice_bucket: InvoiceBucketConfig = field(default_factory=InvoiceBucketConfig)
    replication: ReplicationConfig = field(default_factory=ReplicationConfig)
    alert_emails: tuple[str, ...] = ()
    secrets: SecretsConfig = field(default_factory=SecretsConfig)
    monitoring: MonitoringConfig = field(default_factory=MonitoringConfig)
    database_backups: DatabaseBackupsConfig = field(default_factory=DatabaseBackupsConfig)
    verification: VerificationConfig = field(default_factory=VerificationConfig)
    data_export: DataExportConfig = field(default_factory=DataExportConfig)
    drill: DrillConfig = field(default_factory=DrillConfig)

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


def stack_name(env_name: str, purpose: str) -> str:
    """The one stack-name pattern: ``Tavari-<Env>-<Purpose>``."""
    return f"Tavari-{env_name.capitalize()}-{purpose}"


# --------------------------------------------------------------------------- parsing


class _Section:
    """A mapping being read, which remembers its key path and refuses unknown keys."""

    def __init__(self, path: str, raw: Any, allowed: tuple[str, ...]) -> None:
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{path}: {_show(raw)} is not an object; expected keys {', '.join(allowed)}")
        unknown = sorted(set(raw) - set(allowed))
        if unknown:
            raise ConfigError(
                f"{path}.{unknown[0]}: unknown key; allowed keys are {', '.join(allowed)}"
            )
        self.path = path
        self.raw = raw

    def key(self, name: str) -> str:
        return f"{self.path}.{name}"

    def get(self, name: str, default: Any) -> Any:
        return self.raw.get(name, default)

    def boolean(self, name: str, default: bool) -> bool:
        value = self.get(name, default)
        if not isinstance(value, bool):
            raise ConfigError(f"{self.key(name)}: {_show(value)} is not allowed; use true or false")
        return value

    def integer(self, name: str, default: int | None, *, minimum: int, optional: bool = False) -> int | None:
        value = self.get(name, default)
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            allowed = f"a whole number >= {minimum}" + (" or null" if optional else "")
            raise ConfigError(f"{self.key(name)}: {_show(value)} is not allowed; use {allowed}")
        return value

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.get(name, default)
        if value not in choices:
            raise ConfigError(f"{self.key(name)}: {_show(value)} is not allowed; choose one of {', '.join(choices)}")
        return value

    def strings(self, name: str, regex: re.Pattern[str], *, plural: str, what: str) -> tuple[str, ...]:
        """A list (default empty) whose every item matches ``regex``; errors name the item's index."""
        value = self.get(name, [])
        if not isinstance(value, list):
            raise ConfigError(f"{self.key(name)}: {_show(value)} is not allowed; use a list of {plural}")
        for i, item in enumerate(value):
            if not isinstance(item, str) or not regex.match(item):
                raise ConfigError(f"{self.key(name)}[{i}]: {_show(item)} is not allowed; use {what}")
        return tuple(value)

    def schedule(self, name: str, default: str, timezone: str, example: str) -> str:
        """An EventBridge Scheduler expression whose every time exists exactly once a day in ``timezone``."""
        value = self.pattern(name, default, _SCHEDULE_RE, f"an EventBridge Scheduler expression such as {example}",
                             optional=False)
        try:
            conflict = dst_conflict(value, timezone)
        except ScheduleError as err:
            raise ConfigError(f"{self.key(name)}: {_show(value)} is not allowed; {err} (e.g. {example})") from None
        if conflict:
            raise ConfigError(f"{self.key(name)}: {_show(value)} is not allowed in {timezone}: {conflict}")
        return value

    def pattern(self, name: str, default: str | None, regex: re.Pattern[str], what: str,
                *, optional: bool = True) -> str | None:
        value = self.get(name, default)
        if value is None and optional:
            return None
        if not isinstance(value, str) or not regex.match(value):
            raise ConfigError(f"{self.key(name)}: {_show(value)} is not allowed; use {what}")
        return value


def _show(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else f'"{value}"'


def _fields(cls: type) -> tuple[str, ...]:
    return tuple(cls.__dataclass_fields__)


def _parse_invoice_bucket(path: str, raw: Any) -> InvoiceBucketConfig:
    s = _Section(path, raw if raw is not None else {}, _fields(InvoiceBucketConfig))
    d = InvoiceBucketConfig()
    storage_class = s.choice("archive_storage_class", d.archive_storage_class, ARCHIVE_STORAGE_CLASSES)
    small_objects = s.choice("small_objects", d.small_objects, SMALL_OBJECT_POLICIES)
    if small_objects == "archive" and storage_class not in SMALL_OBJECT_CLASSES:
        raise ConfigError(
            f'{s.key("small_objects")}: "archive" is not allowed with archive_storage_class '
            f'"{storage_class}"; S3 transitions objects under 128 KB only to {", ".join(SMALL_OBJECT_CLASSES)} '
            f'(use "stay-standard" or change the class)'
        )
    archive_after = s.integer("archive_after_days", d.archive_after_days, minimum=1)
    expiration = s.integer("noncurrent_expiration_days", None, minimum=1, optional=True)
    if expiration is not None and expiration <= archive_after:
        raise ConfigError(
            f"{s.key('noncurrent_expiration_days')}: {expiration} is not allowed; it must be greater "
            f"than archive_after_days ({archive_after}) or null (never expire)"
        )
    return InvoiceBucketConfig(
        existing_bucket_name=s.pattern("existing_bucket_name", None, _BUCKET_RE, "a valid S3 bucket name or null"),
        archive_after_days=archive_after,
        archive_storage_class=storage_class,
        small_objects=small_objects,
        noncurrent_expiration_days=expiration,
        abort_incomplete_multipart_days=s.integer(
            "abort_incomplete_multipart_days", d.abort_incomplete_multipart_days, minimum=1),
        access_log_retention_days=s.integer("access_log_retention_days", d.access_log_retention_days, minimum=1),
        app_principal_arn=s.pattern("app_principal_arn", None, _ROLE_ARN_RE,
                                    "an IAM role ARN (arn:aws:iam::<12 digits>:role/<name>) or null"),
        aws_backup_enabled=s.boolean("aws_backup_enabled", False),
        aws_backup_retention_days=_at_most(s, "aws_backup_retention_days", 35, 35),
        aws_backup_copy_vault_arn=s.pattern("aws_backup_copy_vault_arn", None, _VAULT_ARN_RE,
                                            "a backup vault ARN (arn:aws:backup:<region>:<account>:backup-vault:<name>)"
                                            " or null"),
    )


def _at_most(s: _Section, name: str, default: int, maximum: int) -> int:
    value = s.integer(name, default, minimum=1)
    assert value is not None
    if value > maximum:
        raise ConfigError(f"{s.key(name)}: {value} is not allowed; use 1 to {maximum} "
                          "(AWS Backup keeps continuous backups at most 35 days)")
    return value


def _parse_replication(path: str, raw: Any, primary_region: str, primary_account: str | None) -> ReplicationConfig:
    s = _Section(path, raw if raw is not None else {}, _fields(ReplicationConfig))
    enabled = s.boolean("enabled", False)
    region = s.pattern("region", None, _REGION_RE, "an AWS region such as eu-central-1", optional=not enabled)
    if region is not None and region == primary_region:
        raise ConfigError(f'{s.key("region")}: "{region}" is the primary region; choose another')
    account = s.pattern("account", None, _ACCOUNT_RE, "a 12-digit AWS account ID or null")
    if enabled and primary_account is None:
        raise ConfigError(
            f'{s.key("enabled")}: true needs {path.rsplit(".", 1)[0]}.account; a stack pair across '
            f"regions must name its account so synth works offline (set the 12-digit account ID)"
        )
    return ReplicationConfig(
        enabled=enabled,
        region=region,
        account=account,
        replication_time_control=s.boolean("replication_time_control", True),
        replica_key_arn=_cross_account_key(s, "replica_key_arn", region, account, primary_account),
        backup_replica_key_arn=_cross_account_key(s, "backup_replica_key_arn", region, account, primary_account),
    )


def _cross_account_key(s: _Section, name: str, region: str | None, account: str | None,
                       primary_account: str | None) -> str | None:
    key_arn = s.get(name, None)
    if key_arn is None:
        return None
    expected = f"arn:aws:kms:{region}:{account}:key/"
    if account is None or account == primary_account or not isinstance(key_arn, str) \
            or not key_arn.startswith(expected) or len(key_arn) == len(expected):
        raise ConfigError(
            f"{s.key(name)}: {_show(key_arn)} is not allowed; it is only for cross-account "
            f"replication and must be a key ARN in the DR region and account ({expected}<key-id>)"
        )
    return key_arn


def _parse_emails(path: str, raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError(f"{path}: {_show(raw)} is not allowed; use a list of email addresses")
    for i, email in enumerate(raw):
        if not isinstance(email, str) or not _EMAIL_RE.match(email):
            raise ConfigError(f"{path}[{i}]: {_show(email)} is not a valid email address; use name@example.com")
    return tuple(raw)


def _parse_secrets(path: str, raw: Any) -> SecretsConfig:
    s = _Section(path, raw if raw is not None else {}, _fields(SecretsConfig))
    entries = list(DEFAULT_SECRET_ENTRIES)
    if "entries" in s.raw:
        if not isinstance(s.raw["entries"], list) or not s.raw["entries"]:
            raise ConfigError(f"{s.key('entries')}: {_show(s.raw['entries'])} is not allowed; "
                              "use a non-empty list of {name, description, required}")
        entries = []
        for i, item in enumerate(s.raw["entries"]):
            e = _Section(f"{s.key('entries')}[{i}]", item, _fields(SecretEntry))
            entries.append(SecretEntry(
                name=e.pattern("name", None, ENV_KEY_RE, "an env-file key such as SUPABASE_URL", optional=False),
                description=e.get("description", ""),
                required=e.boolean("required", True),
            ))
    keys = s.strings("third_party_keys", ENV_KEY_RE, plural="env-file keys",
                     what="an env-file key such as STRIPE_SECRET_KEY")
    seen: set[str] = set()
    for name in [e.name for e in entries] + list(keys):
        if name in seen:
            raise ConfigError(f'{path}: "{name}" is declared twice; each entry needs its own name')
        seen.add(name)
    return SecretsConfig(entries=tuple(entries), third_party_keys=keys)


def _parse_monitoring(path: str, raw: Any) -> MonitoringConfig:
    s = _Section(path, raw if raw is not None else {}, _fields(MonitoringConfig))
    d = MonitoringConfig()
    drop = s.integer("backup_size_drop_percent", d.backup_size_drop_percent, minimum=1)
    if drop is not None and drop > 100:
        raise ConfigError(f"{s.key('backup_size_drop_percent')}: {drop} is not allowed; use 1 to 100")
    retention = s.get("log_retention_days", d.log_retention_days)
    if retention not in LOG_RETENTION_DAYS or isinstance(retention, bool):
        raise ConfigError(f"{s.key('log_retention_days')}: {_show(retention)} is not allowed; CloudWatch Logs "
                          f"accepts {', '.join(map(str, LOG_RETENTION_DAYS))}")
    return MonitoringConfig(
        rpo_hours=s.integer("rpo_hours", d.rpo_hours, minimum=1),
        backup_size_floor_bytes=s.integer("backup_size_floor_bytes", d.backup_size_floor_bytes, minimum=0),
        backup_size_drop_percent=drop,
        storage_growth_percent=s.integer("storage_growth_percent", d.storage_growth_percent, minimum=1),
        replication_latency_seconds=s.integer("replication_latency_seconds", d.replication_latency_seconds,
                                              minimum=60),
        log_retention_days=retention,
        runbook_url=s.pattern("runbook_url", d.runbook_url, _URL_RE, "an https:// URL", optional=False),
    )


_SCHEDULE_RE = re.compile(r"^(cron|rate)\(.+\)$")  # fields are read by tavari_dr.schedule
_IMAGE_RE = re.compile(r"^[a-z0-9./_-]+(:[A-Za-z0-9._-]+)?$")


def _timezone(s: _Section, default: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    timezone = s.get("timezone", default)
    try:
        ZoneInfo(str(timezone))
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{s.key('timezone')}: {_show(timezone)} is not allowed; use an IANA zone such as "
                          "Europe/Warsaw or UTC") from None
    return str(timezone)


def _parse_database_backups(path: str, raw: Any, removal_policy: str) -> DatabaseBackupsConfig:
    s = _Section(path, raw if raw is not None else {}, _fields(DatabaseBackupsConfig))
    d = DatabaseBackupsConfig()
    timezone = _timezone(s, d.timezone)
    schedules = {name: s.schedule(name, getattr(d, name), timezone, "cron(0 1,13 * * ? *)")
                 for name in ("schedule", "weekly_verify_schedule", "monthly_verify_schedule")}
    try:  # the drill judges the worst-case RPO by the longest gap between two dumps: it must be computable
        max_interval_seconds(schedules["schedule"], timezone, year=datetime.now(UTC).year)
    except ScheduleError as err:
        raise ConfigError(f"{s.key('schedule')}: {_show(schedules['schedule'])} is not allowed; {err}") from None
    days = {name: s.integer(name, getattr(d, name), minimum=7)
            for name in ("daily_retention_days", "weekly_retention_days", "monthly_retention_days")}
    lock_mode = s.choice("lock_mode", d.lock_mode, ("GOVERNANCE", "COMPLIANCE"))
    if lock_mode == "COMPLIANCE" and removal_policy == "destroy":
        raise ConfigError(f'{s.key("lock_mode")}: "COMPLIANCE" is not allowed where removal_policy is "destroy": '
                          "nobody, not even the account root, could empty that bucket before the lock expires")
    pg_major = s.integer("pg_major", d.pg_major, minimum=15)
    if pg_major is not None and pg_major > 18:
        raise ConfigError(f"{s.key('pg_major')}: {pg_major} is not allowed; use 15 to 18")
    return DatabaseBackupsConfig(
        **schedules, timezone=timezone, **days, lock_mode=lock_mode, pg_major=pg_major,
        scratch_image=s.pattern("scratch_image", d.scratch_image, _IMAGE_RE, "a container image reference",
                                optional=False),
    )


def _parse_verification(path: str, raw: Any) -> VerificationConfig:
    s = _Section(path, raw if raw is not None else {}, _fields(VerificationConfig))
    d = VerificationConfig()
    timezone = _timezone(s, d.timezone)
    return VerificationConfig(
        **{name: s.schedule(name, getattr(d, name), timezone, "cron(0 6 * * ? *)")
           for name in ("daily_schedule", "weekly_schedule", "monthly_schedule")},
        timezone=timezone,
        expect_pitr=s.boolean("expect_pitr", d.expect_pitr),
        **{name: s.integer(name, getattr(d, name), minimum=1)
           for name in ("integrity_sample_size", "replication_sample_size", "restore_test_sample_size",
                        "max_list_pages", "size_shrink_percent", "rto_minutes", "report_retention_days")},
        supabase_api_url=s.pattern("supabase_api_url", d.supabase_api_url, _API_URL_RE,
                                   "an https:// URL (or http://127.0.0.1:<port> for a local stand-in)",
                                   optional=False),
    )


_IDENT_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_TABLE_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}\.[a-z_][a-z0-9_]{0,62}$")


def _parse_data_export(path: str, raw: Any) -> DataExportConfig:
    s = _Section(path, raw if raw is not None else {}, _fields(DataExportConfig))
    d = DataExportConfig()
    expiry = s.integer("url_expiry_seconds", d.url_expiry_seconds, minimum=60)
    if expiry > 3600:
        raise ConfigError(f"{s.key('url_expiry_seconds')}: {expiry} is not allowed; use 60 to 3600 (a URL signed "
                          "with a Lambda role's session stops working when the session does)")
    raw_datasets = s.get("datasets", None)
    datasets = d.datasets
    if raw_datasets is not None:
        if not isinstance(raw_datasets, list) or not raw_datasets:
            raise ConfigError(f"{s.key('datasets')}: {_show(raw_datasets)} is not allowed; use a non-empty list of "
                              "{name, table, owner, column}")
        parsed = []
        for i, item in enumerate(raw_datasets):
            ds = _Section(f"{s.key('datasets')}[{i}]", item, _fields(Dataset))
            parsed.append(Dataset(
                name=ds.pattern("name", None, _IDENT_RE, "a lower-case file name such as messages", optional=False),
                table=ds.pattern("table", None, _TABLE_RE, "a schema-qualified table such as public.messages",
                                 optional=False),
                owner=ds.choice("owner", None, ("user", "business")),
                column=ds.pattern("column", None, _IDENT_RE, "a column name such as business_id", optional=False)))
        names = [x.name for x in parsed]
        if len(set(names)) != len(names):
            raise ConfigError(f"{s.key('datasets')}: names {names} are not allowed; each name must be unique")
        datasets = tuple(parsed)
    return DataExportConfig(
        exports_per_day=s.integer("exports_per_day", d.exports_per_day, minimum=1),
        sync_row_limit=s.integer("sync_row_limit", d.sync_row_limit, minimum=0),
        url_expiry_seconds=expiry,
        retention_days=s.integer("retention_days", d.retention_days, minimum=1),
        include_pdfs=s.boolean("include_pdfs", d.include_pdfs),
        datasets=datasets,
        allowed_origins=s.strings("allowed_origins", _ORIGIN_RE, plural="origins",
                                  what="an https origin without a path, such as https://app.tavari.example "
                                       "(never *)"),
    )


_ORIGIN_RE = re.compile(r"^https://[a-z0-9.-]+(:\d+)?$")


def _positive_number(s: _Section, name: str, default: float) -> float:
    value = s.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"{s.key(name)}: {_show(value)} is not allowed; use a number > 0")
    return float(value)


def _percent(s: _Section, name: str, default: float) -> float:
    value = _positive_number(s, name, default)
    if value > 100:
        raise ConfigError(f"{s.key(name)}: {_show(s.get(name, default))} is not allowed; use a number > 0 and <= 100")
    return value


def _parse_drill(path: str, raw: Any) -> DrillConfig:
    s = _Section(path, raw if raw is not None else {}, _fields(DrillConfig))
    d = DrillConfig()
    endpoints = s.strings("health_endpoints", _URL_RE, plural="https URLs", what="an https:// URL")
    critical = s.integer("rto_critical_minutes", d.rto_critical_minutes, minimum=1)
    non_critical = s.integer("rto_non_critical_minutes", d.rto_non_critical_minutes, minimum=1)
    timezone = _timezone(s, d.timezone)
    if non_critical < critical:
        raise ConfigError(f"{s.key('rto_non_critical_minutes')}: {non_critical} is not allowed; it must be at least "
                          f"rto_critical_minutes ({critical})")
    return DrillConfig(
        rto_critical_minutes=critical, rto_non_critical_minutes=non_critical,
        database_gb=_positive_number(s, "database_gb", d.database_gb),
        invoice_count=s.integer("invoice_count", d.invoice_count, minimum=1),
        invoice_gb=_positive_number(s, "invoice_gb", d.invoice_gb),
        breach_changed_percent=_percent(s, "breach_changed_percent", d.breach_changed_percent),
        health_endpoints=endpoints,
        quarterly_schedule=s.schedule("quarterly_schedule", d.quarterly_schedule, timezone,
                                      "cron(0 9 ? 1,4,7,10 MON#1 *)"),
        timezone=timezone,
    )


def parse_environment(name: str, raw: Any) -> EnvironmentConfig:
    path = f"{ENVIRONMENTS_CONTEXT_KEY}.{name}"
    if not _ENV_NAME_RE.match(name):
        raise ConfigError(f"{path}: {_show(name)} is not a valid environment name; use lower-case letters and digits")
    allowed = _fields(EnvironmentConfig)[1:]
    s = _Section(path, raw, allowed)
    region = s.pattern("region", None, _REGION_RE, "an AWS region such as eu-west-1", optional=False)
    account = s.pattern("account", None, _ACCOUNT_RE, "a 12-digit AWS account ID or null")
    return EnvironmentConfig(
        name=name,
        region=region,
        account=account,
        removal_policy=s.choice("removal_policy", "retain", REMOVAL_POLICIES),
        termination_protection=s.boolean("termination_protection", True),
        invoice_bucket=_parse_invoice_bucket(s.key("invoice_bucket"), s.get("invoice_bucket", None)),
        replication=_parse_replication(s.key("replication"), s.get("replication", None), region, account),
        alert_emails=_parse_emails(s.key("alert_emails"), s.get("alert_emails", None)),
        secrets=_parse_secrets(s.key("secrets"), s.get("secrets", None)),
        monitoring=_parse_monitoring(s.key("monitoring"), s.get("monitoring", None)),
        verification=_parse_verification(s.key("verification"), s.get("verification", None)),
        data_export=_parse_data_export(s.key("data_export"), s.get("data_export", None)),
        drill=_parse_drill(s.key("drill"), s.get("drill", None)),
        database_backups=_parse_database_backups(
            s.key("database_backups"), s.get("database_backups", None), s.raw.get("removal_policy", "retain")),
    )


def _environments(context: Mapping[str, Any]) -> Mapping[str, Any]:
    environments = context.get(ENVIRONMENTS_CONTEXT_KEY)
    if not isinstance(environments, Mapping) or not environments:
        raise ConfigError(f"{ENVIRONMENTS_CONTEXT_KEY}: {_show(environments)} is not allowed; cdk.json must map "
                          "environment names to settings (a non-empty object)")
    return environments


def load_environment(context: Mapping[str, Any], env_name: str | None = None) -> EnvironmentConfig:
    """Pick one environment out of the CDK context and validate it.

    env_name: the environment to load (default: context ``env``, else ``dev``).
    """
    environments = _environments(context)
    name = env_name or context.get(ENV_CONTEXT_KEY) or DEFAULT_ENV
    if name not in environments:
        raise ConfigError(
            f'{ENV_CONTEXT_KEY}: "{name}" is not a configured environment; '
            f'choose one of {", ".join(sorted(environments))}'
        )
    return parse_environment(name, environments[name])


def load_all(context: Mapping[str, Any]) -> dict[str, EnvironmentConfig]:
    """Validate every environment (so a typo in prod fails a dev synth in CI too)."""
    return {name: parse_environment(name, raw) for name, raw in _environments(context).items()}


def read_cdk_context(cdk_json: str | Path = "cdk.json") -> dict[str, Any]:
    """The ``context`` object of cdk.json, as ``cdk synth`` sees it."""
    path = Path(cdk_json)
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found; run from the project root or pass --cdk-json") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: not valid JSON ({err})") from None
    return document.get("context", {})


def load_from_file(env_name: str | None, cdk_json: str | Path = "cdk.json") -> EnvironmentConfig:
    return load_environment(read_cdk_context(cdk_json), env_name)
