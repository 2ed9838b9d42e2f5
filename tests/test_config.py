"""The loader: every bad value fails naming the key path, the value and what is allowed."""

from __future__ import annotations

import copy
import json
from datetime import date

import pytest

from tavari_dr.core.config import ConfigError, EnvironmentConfig, load_all, load_environment, load_from_file, stack_name
from tests.conftest import ROOT, cdk_context


def with_prod(mutate) -> dict:
    context = copy.deepcopy(cdk_context())
    mutate(context["environments"]["prod"])
    return context


def test_every_cdk_json_environment_loads():
    configs = load_all(cdk_context())
    assert {"dev", "prod"} <= set(configs)
    assert all(isinstance(c, EnvironmentConfig) for c in configs.values())


def test_dev_and_prod_defaults_are_what_the_plan_asks():
    dev = load_environment(cdk_context(), "dev")
    prod = load_environment(cdk_context(), "prod")
    assert not dev.replication.enabled and not dev.retain and not dev.termination_protection
    assert prod.replication.enabled and prod.replication.replication_time_control
    assert prod.retain and prod.termination_protection
    assert prod.replication.region != prod.region
    assert prod.invoice_bucket.archive_after_days == 90
    assert prod.invoice_bucket.archive_storage_class == "GLACIER_IR"
    assert prod.invoice_bucket.noncurrent_expiration_days is None  # never delete old backups early


def test_default_environment_is_dev_and_context_env_selects():
    context = cdk_context()
    context.pop("env", None)
    assert load_environment(context).name == "dev"
    assert load_environment({**context, "env": "prod"}).name == "prod"


def test_config_is_frozen():
    config = load_environment(cdk_context(), "prod")
    with pytest.raises(AttributeError):
        config.region = "us-east-1"  # type: ignore[misc]


def test_cli_reads_the_same_file_the_same_way():
    assert load_from_file("prod", ROOT / "cdk.json") == load_environment(cdk_context(), "prod")


def test_stack_names_follow_one_pattern():
    assert stack_name("prod", "InvoiceStorage") == "Tavari-Prod-InvoiceStorage"
    assert load_environment(cdk_context(), "dev").stack_name("InvoiceReplica") == "Tavari-Dev-InvoiceReplica"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda p: p["replication"].update(region="eu-west-1"),
         'environments.prod.replication.region: "eu-west-1" is the primary region; choose another'),
        (lambda p: p["invoice_bucket"].update(archive_after_days=0),
         "environments.prod.invoice_bucket.archive_after_days: 0 is not allowed; use a whole number >= 1"),
        (lambda p: p["invoice_bucket"].update(archive_after_days="90"),
         'environments.prod.invoice_bucket.archive_after_days: "90" is not allowed'),
        (lambda p: p["invoice_bucket"].update(archive_storage_class="STANDARD_IA"),
         'environments.prod.invoice_bucket.archive_storage_class: "STANDARD_IA" is not allowed; '
         "choose one of GLACIER_IR, GLACIER, DEEP_ARCHIVE"),
        (lambda p: p.update(alert_emails=["oncall@tavari.example", "not-an-email"]),
         'environments.prod.alert_emails[1]: "not-an-email" is not a valid email address'),
        (lambda p: p.update(retention=7),
         "environments.prod.retention: unknown key; allowed keys are"),
        (lambda p: p["invoice_bucket"].update(archive_days=90),
         "environments.prod.invoice_bucket.archive_days: unknown key"),
        (lambda p: p["replication"].update(rtc=True),
         "environments.prod.replication.rtc: unknown key"),
        (lambda p: p["invoice_bucket"].update(small_objects="archive"),
         'environments.prod.invoice_bucket.small_objects: "archive" is not allowed with archive_storage_class '
         '"GLACIER_IR"'),
        (lambda p: p["invoice_bucket"].update(small_objects="sometimes"),
         'environments.prod.invoice_bucket.small_objects: "sometimes" is not allowed'),
        (lambda p: p["invoice_bucket"].update(noncurrent_expiration_days=30),
         "environments.prod.invoice_bucket.noncurrent_expiration_days: 30 is not allowed; it must be greater "
         "than archive_after_days (90)"),
        (lambda p: p.update(region="mars-1"),
         'environments.prod.region: "mars-1" is not allowed; use an AWS region'),
        (lambda p: p.update(account="12345"),
         'environments.prod.account: "12345" is not allowed; use a 12-digit AWS account ID'),
        (lambda p: p.update(account=None),
         "environments.prod.replication.enabled: true needs environments.prod.account"),
        (lambda p: p["replication"].update(region=None),
         "environments.prod.replication.region: null is not allowed"),
        (lambda p: p.update(removal_policy="snapshot"),
         'environments.prod.removal_policy: "snapshot" is not allowed; choose one of retain, destroy'),
        (lambda p: p.update(compute={"architecture": "aarch64"}),
         'environments.prod.compute.architecture: "aarch64" is not allowed; choose one of x86_64, arm64'),
        (lambda p: p.update(termination_protection="yes"),
         'environments.prod.termination_protection: "yes" is not allowed; use true or false'),
        (lambda p: p["invoice_bucket"].update(app_principal_arn="arn:aws:iam::123:user/x"),
         "environments.prod.invoice_bucket.app_principal_arn:"),
        (lambda p: p["replication"].update(replica_key_arn="arn:aws:kms:eu-central-1:123456789012:key/abc"),
         "environments.prod.replication.replica_key_arn: \"arn:aws:kms:eu-central-1:123456789012:key/abc\" is "
         "not allowed; it is only for cross-account replication"),
        (lambda p: p.update(invoice_bucket=[]),
         "environments.prod.invoice_bucket: [] is not an object"),
        (lambda p: p["invoice_bucket"].update(aws_backup_retention_days=36),
         "environments.prod.invoice_bucket.aws_backup_retention_days: 36 is not allowed; use 1 to 35"),
        (lambda p: p["invoice_bucket"].update(aws_backup_copy_vault_arn="vault-in-backup-account"),
         "environments.prod.invoice_bucket.aws_backup_copy_vault_arn: \"vault-in-backup-account\" is not allowed"),
        (lambda p: p["monitoring"].update(log_retention_days=42),
         "environments.prod.monitoring.log_retention_days: 42 is not allowed; CloudWatch Logs accepts 1, 3"),
        (lambda p: p["monitoring"].update(backup_size_drop_percent=120),
         "environments.prod.monitoring.backup_size_drop_percent: 120 is not allowed; use 1 to 100"),
        (lambda p: p["monitoring"].update(runbook_url="http://insecure"),
         'environments.prod.monitoring.runbook_url: "http://insecure" is not allowed; use an https:// URL'),
        (lambda p: p["database_backups"].update(timezone="Mars/Olympus"),
         'environments.prod.database_backups.timezone: "Mars/Olympus" is not allowed; use an IANA zone'),
        (lambda p: p["database_backups"].update(daily_retention_days=3),
         "environments.prod.database_backups.daily_retention_days: 3 is not allowed; use a whole number >= 7"),
        (lambda p: p["database_backups"].update(schedule="every night"),
         'environments.prod.database_backups.schedule: "every night" is not allowed; use an EventBridge Scheduler'),
        (lambda p: p["database_backups"].update(lock_mode="LEGAL_HOLD"),
         'environments.prod.database_backups.lock_mode: "LEGAL_HOLD" is not allowed; choose one of GOVERNANCE, '
         "COMPLIANCE"),
        (lambda p: p.update(removal_policy="destroy") or p["database_backups"].update(lock_mode="COMPLIANCE"),
         'environments.prod.database_backups.lock_mode: "COMPLIANCE" is not allowed where removal_policy is '
         '"destroy"'),
        (lambda p: p["database_backups"].update(lock_mode="COMPLIANCE", monthly_retention_days=3960),
         'environments.prod.database_backups.monthly_retention_days: 3960 is not allowed with lock_mode '
         '"COMPLIANCE"; at most 400 days'),
        (lambda p: p["secrets"].update(third_party_keys=["stripe-key"]),
         'environments.prod.secrets.third_party_keys[0]: "stripe-key" is not allowed; use an env-file key'),
        (lambda p: p["secrets"].update(third_party_keys=["SUPABASE_URL"]),
         'environments.prod.secrets: "SUPABASE_URL" is declared twice'),
        (lambda p: p["secrets"].update(entries=[{"name": "X", "descr": "typo"}]),
         "environments.prod.secrets.entries[0].descr: unknown key"),
        (lambda p: p["secrets"].update(entries=[]),
         "environments.prod.secrets.entries: [] is not allowed"),
    ],
)
def test_bad_values_fail_with_key_value_and_allowed(mutate, expected):
    with pytest.raises(ConfigError) as err:
        load_environment(with_prod(mutate), "prod")
    assert expected in str(err.value)


def test_unknown_environment_names_the_choices():
    with pytest.raises(ConfigError, match=r'env: "staging" is not a configured environment; choose one of dev, prod'):
        load_environment(cdk_context(), "staging")


@pytest.mark.parametrize("value", [None, {}, "a JSON string from -c", ["dev"]])
def test_missing_or_malformed_environments_block(value):
    for load in (lambda c: load_environment(c, "dev"), load_all):
        with pytest.raises(ConfigError, match="environments: .* is not allowed; cdk.json must map"):
            load({"environments": value})


def test_load_all_catches_a_typo_in_another_environment():
    context = with_prod(lambda p: p.update(regoin="eu-west-1"))
    load_environment(context, "dev")  # dev alone is fine ...
    with pytest.raises(ConfigError, match="environments.prod.regoin: unknown key"):
        load_all(context)  # ... but app.py validates every environment


def test_unreadable_cdk_json(tmp_path):
    (tmp_path / "cdk.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_from_file("dev", tmp_path / "cdk.json")
    with pytest.raises(ConfigError, match="file not found"):
        load_from_file("dev", tmp_path / "missing.json")


def test_secret_entries_default_to_the_core_set_plus_third_party_keys():
    prod = load_environment(cdk_context(), "prod")
    names = [e.name for e in prod.secrets.all_entries]
    assert names[:11] == ["SUPABASE_URL", "SUPABASE_ANON_KEY", "SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_ACCESS_TOKEN",
                          "BACKUP_DATABASE_URL", "ALERT_WEBHOOK_URL", "SENTRY_DSN", "SUPABASE_JWT_SECRET",
                          "PAGERDUTY_ROUTING_KEY", "HEARTBEAT_URL", "STREAM_DATABASE_URL"]
    assert "OPENAI_API_KEY" in names
    assert [e.name for e in prod.secrets.all_entries if not e.required] == [
        "SENTRY_DSN", "SUPABASE_JWT_SECRET", "PAGERDUTY_ROUTING_KEY", "HEARTBEAT_URL", "STREAM_DATABASE_URL"]
    custom = with_prod(lambda p: p["secrets"].update(
        entries=[{"name": "ONLY_ONE", "description": "d", "required": False}], third_party_keys=[]))
    (entry,) = load_environment(custom, "prod").secrets.all_entries
    assert entry.name == "ONLY_ONE" and not entry.required


def test_small_objects_archive_allowed_with_glacier():
    context = with_prod(lambda p: p["invoice_bucket"].update(small_objects="archive", archive_storage_class="GLACIER"))
    assert load_environment(context, "prod").invoice_bucket.small_objects == "archive"


def test_cross_account_key_arn_must_be_in_dr_region_and_account():
    def mutate(p):
        p["replication"].update(account="210987654321",
                                replica_key_arn="arn:aws:kms:us-east-1:210987654321:key/abc")
    with pytest.raises(ConfigError, match=r"arn:aws:kms:eu-central-1:210987654321:key/<key-id>"):
        load_environment(with_prod(mutate), "prod")


def test_app_py_reports_config_errors_without_a_traceback(tmp_path):
    import subprocess
    import sys

    context = with_prod(lambda p: p["replication"].update(region="eu-west-1"))
    env = {"CDK_CONTEXT_JSON": json.dumps({**context, "env": "prod"}), "CDK_OUTDIR": str(tmp_path),
           "PATH": "/usr/bin:/bin", "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    result = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1
    assert 'configuration error: environments.prod.replication.region: "eu-west-1" is the primary region' \
        in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("data_export", "message"), [
    ({"exports_per_day": 0}, r"environments.prod.data_export.exports_per_day: 0 is not allowed; use a whole number"),
    ({"url_expiry_seconds": 7200}, r"data_export.url_expiry_seconds: 7200 is not allowed; use 60 to 3600"),
    ({"include_pdfs": "yes"}, r'data_export.include_pdfs: "yes" is not allowed; use true or false'),
    ({"datasets": []}, r"data_export.datasets: \[\] is not allowed; use a non-empty list"),
    ({"datasets": [{"name": "m", "table": "messages", "owner": "business", "column": "business_id"}]},
     r'data_export.datasets\[0\].table: "messages" is not allowed; use a schema-qualified table'),
    ({"datasets": [{"name": "m", "table": "public.m", "owner": "tenant", "column": "business_id"}]},
     r'data_export.datasets\[0\].owner: "tenant" is not allowed; choose one of user, business'),
    ({"datasets": [{"name": "m", "table": "public.m", "owner": "user", "column": "x; DROP"}]},
     r'data_export.datasets\[0\].column: "x; DROP" is not allowed'),
    ({"datasets": [{"name": "m", "table": "public.m", "owner": "user", "column": "c"}] * 2},
     r"each name must be unique"),
    ({"datasets": [{"name": "m", "table": "public.m", "owner": "user", "column": "c", "extra": 1}]},
     r"data_export.datasets\[0\].extra: unknown key"),
    ({"allowed_origins": ["*"]}, r'data_export.allowed_origins\[0\]: "\*" is not allowed; use an https origin'),
    ({"invoice_key_prefix": "invoices/"},
     r'data_export.invoice_key_prefix: "invoices/" is not allowed; use a key prefix naming \{business_id\}'),
    ({"invoice_key_prefix": "invoices/{business_id}"}, r'invoice_key_prefix: .* ending in "/"'),
    ({"invoice_key_prefix": "invoices/{tenant}/"}, r"data_export.invoice_key_prefix: .* is not allowed"),
    ({"allowed_origins": ["https://app.tavari.example/path"]}, r"allowed_origins\[0\].*without a path"),
    ({"allowed_origins": "https://app.tavari.example"}, r"allowed_origins: .* use a list of origins"),
])
def test_data_export_settings_are_validated(data_export, message):
    with pytest.raises(ConfigError, match=message):
        load_environment(with_prod(lambda p: p.update(data_export=data_export)), "prod")


def test_data_export_datasets_are_configuration():
    from tavari_dr.core.config import DEFAULT_DATASETS, Dataset

    assert load_environment(cdk_context(), "prod").data_export.datasets == DEFAULT_DATASETS
    custom = load_environment(with_prod(lambda p: p.update(data_export={"datasets": [
        {"name": "notes", "table": "public.notes", "owner": "user", "column": "author_id"}]})), "prod")
    assert custom.data_export.datasets == (Dataset("notes", "public.notes", "user", "author_id"),)


@pytest.mark.parametrize(("drill", "message"), [
    ({"database_gb": 0}, r"environments.prod.drill.database_gb: 0 is not allowed; use a number > 0"),
    ({"rto_critical_minutes": 90, "rto_non_critical_minutes": 60},
     r"drill.rto_non_critical_minutes: 60 is not allowed; it must be at least rto_critical_minutes \(90\)"),
    ({"health_endpoints": ["http://app.example/health"]}, r"drill.health_endpoints\[0\]: .* use an https:// URL"),
    ({"quarterly_schedule": "every quarter"}, r"drill.quarterly_schedule: .* EventBridge Scheduler expression"),
    ({"timezone": "Mars/Olympus"}, r"drill.timezone"),
])
def test_drill_settings_are_validated(drill, message):
    with pytest.raises(ConfigError, match=message):
        load_environment(with_prod(lambda p: p.update(drill=drill)), "prod")


@pytest.mark.parametrize(("security", "message"), [
    ({"break_glass_role_name": "role/with/slash"}, r"security.break_glass_role_name: \"role/with/slash\" is not "
                                                   r"allowed; use an IAM role name"),
    ({"cdk_bootstrap_qualifier": "Has-Dash"}, r"security.cdk_bootstrap_qualifier: .* CDK bootstrap qualifier"),
    ({"trail_arn": "arn:aws:s3:::bucket"}, r"security.trail_arn: .* CloudTrail trail ARN"),
    ({"unknown": 1}, r"security.unknown: unknown key"),
])
def test_security_settings_are_validated(security, message):
    with pytest.raises(ConfigError, match=message):
        load_environment(with_prod(lambda p: p.update(security=security)), "prod")


def test_security_defaults_name_the_cdk_bootstrap_roles():
    settings = load_environment(cdk_context(), "prod").security
    assert settings.break_glass_role_name == "tavari-break-glass" and settings.trail_arn is None
    assert settings.deploy_role_name("123456789012", "eu-central-1") == \
        "cdk-hnb659fds-cfn-exec-role-123456789012-eu-central-1"


def test_supabase_api_url_may_be_a_local_stand_in_but_never_plain_http_elsewhere():
    ok = load_environment(with_prod(lambda p: p.update(verification={"supabase_api_url": "http://127.0.0.1:8080"})),
                          "prod")
    assert ok.verification.supabase_api_url == "http://127.0.0.1:8080"
    with pytest.raises(ConfigError, match="verification.supabase_api_url"):
        load_environment(with_prod(lambda p: p.update(verification={"supabase_api_url": "http://api.example"})),
                         "prod")


def test_every_configurable_field_carries_its_rule():
    """Each rule sits next to its field (tavari_dr.core.config.rule/section): a field added without one
    would be read by nothing and silently keep its default."""
    import dataclasses

    from tavari_dr.core import config

    sections = [config.EnvironmentConfig, config.InvoiceBucketConfig, config.ReplicationConfig, config.SecretsConfig,
                config.MonitoringConfig, config.DatabaseBackupsConfig, config.VerificationConfig,
                config.DataExportConfig, config.DrillConfig, config.SecurityConfig, config.Dataset]
    bare = [f"{cls.__name__}.{f.name}" for cls in sections for f in dataclasses.fields(cls) if "rule" not in f.metadata]
    assert bare == ["EnvironmentConfig.name"]  # the environment's key in cdk.json, not a value in it
    for cls in sections:
        for f in dataclasses.fields(cls):
            if "rule" in f.metadata:
                assert hasattr(config._Section, f.metadata["rule"][0]), (cls.__name__, f.name)


@pytest.mark.parametrize(("changes", "message"), [
    ({"segment_seconds": 300, "max_lag_seconds": 180},
     "environments.prod.changes.max_lag_seconds: 180 is not allowed; it must be at least segment_seconds + 60 (360)"),
    ({"retained_wal_alarm_bytes": 2 ** 30, "retained_wal_limit_bytes": 2 ** 30},
     "environments.prod.changes.retained_wal_limit_bytes: 1073741824 is not allowed; it must exceed"),
])
def test_the_capture_s_bounds_must_leave_a_healthy_capture_quiet(changes, message):
    with pytest.raises(ConfigError) as err:
        load_environment(with_prod(lambda p: p.update(changes=changes)), "prod")
    assert str(err.value).startswith(message), err.value


# --------------------------------------------------------------------------- issue 28: values that used to pass

VAULT = "arn:aws:backup:{region}:123456789012:backup-vault:dr"
SCHEDULES = [("database_backups", "schedule"), ("database_backups", "weekly_verify_schedule"),
             ("database_backups", "monthly_verify_schedule"), ("verification", "daily_schedule"),
             ("verification", "weekly_schedule"), ("verification", "monthly_schedule"), ("drill", "quarterly_schedule")]
# Each fires never (30 February; only in 2000) or names a sixth Monday no month has.
NEVER_FIRES = ["cron(0 6 30 2 ? *)", "cron(0 6 * * ? 2000)", "cron(0 6 ? * MON#6 *)"]
TODAY = date(2027, 3, 1)  # the suite's faketime date, passed in: no check reads the clock here


def _refused(mutate, key: str, value, today: date = TODAY) -> str:
    """The loader refuses ``value`` at ``key`` with a ConfigError (not a traceback) naming both."""
    with pytest.raises(ConfigError) as err:
        load_environment(with_prod(mutate), "prod", today=today)
    message = str(err.value)
    shown = value if isinstance(value, str) else json.dumps(value)
    assert message.startswith(f"environments.prod.{key}: "), message
    assert shown in message, message
    assert "\n" not in message
    return message


@pytest.mark.parametrize(("mutate", "key", "value", "why"), [
    (lambda p: p.update(region="eu-wst-1"), "region", "eu-wst-1", "(did you mean eu-west-1?)"),
    (lambda p: p.update(region="us-gov-west-9"), "region", "us-gov-west-9",
     "is not allowed; use an AWS region botocore"),
    (lambda p: p["replication"].update(region="eu-wst-1"), "replication.region", "eu-wst-1", "did you mean"),
    (lambda p: p["replication"].update(region="cn-north-1"), "replication.region", "cn-north-1",
     "is in partition aws-cn, the primary region eu-west-1 in aws"),
    (lambda p: p.update(region="us-gov-west-1"), "replication.region", "eu-central-1",
     "is in partition aws, the primary region us-gov-west-1 in aws-us-gov"),
    (lambda p: p["invoice_bucket"].update(aws_backup_copy_vault_arn=VAULT.format(region="eu-wst-1")),
     "invoice_bucket.aws_backup_copy_vault_arn", VAULT.format(region="eu-wst-1"), "eu-wst-1"),
    (lambda p: p["invoice_bucket"].update(aws_backup_copy_vault_arn="arn:aws-cn:backup:cn-north-1:123456789012:"
                                                                    "backup-vault:dr"),
     "invoice_bucket.aws_backup_copy_vault_arn", "arn:aws-cn:backup:cn-north-1:", "partition aws-cn"),
    (lambda p: p["invoice_bucket"].update(app_principal_arn="arn:aws-us-gov:iam::123456789012:role/app"),
     "invoice_bucket.app_principal_arn", "arn:aws-us-gov:iam::123456789012:role/app", "partition aws-us-gov"),
    (lambda p: p.update(security={"trail_arn": "arn:aws:cloudtrail:mars-east-1:123456789012:trail/org-trail"}),
     "security.trail_arn", "arn:aws:cloudtrail:mars-east-1:123456789012:trail/org-trail", "mars-east-1"),
], ids=["typo", "unknown-govcloud", "replica-typo", "replica-other-partition", "primary-other-partition",
        "vault-region", "vault-partition", "role-partition", "trail-region"])
def test_regions_are_ones_botocore_knows_in_one_partition(mutate, key, value, why):
    assert why in _refused(mutate, key, value)


def test_a_govcloud_environment_in_one_partition_loads():
    def govcloud(p):
        p.update(region="us-gov-west-1")
        p["replication"].update(region="us-gov-east-1", account="210987654321",
                                replica_key_arn="arn:aws-us-gov:kms:us-gov-east-1:210987654321:key/abc")
    config = load_environment(with_prod(govcloud), "prod", today=TODAY)
    assert config.replication.replica_key_arn.startswith("arn:aws-us-gov:kms:us-gov-east-1:")


@pytest.mark.parametrize(("section", "key"), SCHEDULES)
@pytest.mark.parametrize("value", NEVER_FIRES)
def test_every_schedule_refuses_one_that_never_fires(section, key, value):
    message = _refused(lambda p: p.setdefault(section, {}).update({key: value}), f"{section}.{key}", value)
    assert "never" in message or "at most 5" in message, message


@pytest.mark.parametrize(("section", "key", "value", "why"), [
    ("database_backups", "schedule", "cron(0 1 * * ? *)",  # 25 h across the autumn night in Warsaw
     "its longest gap between runs is 25 h"),
    ("database_backups", "weekly_verify_schedule", "cron(0 4 1 * ? *)", "a weekly check allows at most 7 d 1 h"),
    ("database_backups", "monthly_verify_schedule", "cron(0 5 1 1,7 ? *)", "a monthly check allows at most"),
    ("verification", "daily_schedule", "cron(0 6 ? * MON-FRI *)", "a daily check allows at most 25 h"),
    ("verification", "weekly_schedule", "cron(0 7 ? * MON#1 *)", "a weekly check"),
    ("verification", "monthly_schedule", "cron(0 8 2 1 ? *)", "a monthly check"),
    ("drill", "quarterly_schedule", "cron(0 9 ? 1 MON#1 *)", "a quarterly drill allows at most 98 d 1 h"),
    ("verification", "daily_schedule", "cron(0 6 * * ? 2027-2030)", "it stops firing after 2030"),
])
def test_a_schedule_rarer_than_its_purpose_is_refused(section, key, value, why):
    message = _refused(lambda p: p.setdefault(section, {}).update({key: value}), f"{section}.{key}", value)
    assert why in message, message


def test_the_dump_schedule_must_leave_room_for_the_dump_within_the_rpo():
    # Exactly 24 h in UTC: the age alarm at 24 h would fire before every next dump finished.
    message = _refused(lambda p: p["database_backups"].update(schedule="cron(0 1 * * ? *)", timezone="UTC"),
                       "database_backups.schedule", "cron(0 1 * * ? *)")
    assert "monitoring.rpo_hours (24)" in message
    prod = load_environment(with_prod(lambda p: p["monitoring"].update(rpo_hours=26) or p["database_backups"].update(
        schedule="cron(0 1 * * ? *)")), "prod", today=TODAY)
    assert prod.database_backups.schedule == "cron(0 1 * * ? *)"


def test_a_year_entirely_past_is_judged_by_the_date_passed_in():
    set_2026 = lambda p: p["verification"].update(daily_schedule="cron(0 6 * * ? 2026)")  # noqa: E731
    past = _refused(lambda p: p.update(verification={}) or set_2026(p), "verification.daily_schedule",
                    "cron(0 6 * * ? 2026)", today=date(2027, 3, 1))
    assert "never fires again: every year it names is before 2027" in past
    ending = _refused(lambda p: p.update(verification={}) or set_2026(p), "verification.daily_schedule",
                      "cron(0 6 * * ? 2026)", today=date(2026, 6, 1))
    assert "it stops firing after 2026" in ending


@pytest.mark.parametrize(("mutate", "key", "value", "why"), [
    (lambda p: p.update(changes={"retention_days": 7}), "changes.retention_days", 7,
     "at least database_backups.daily_retention_days (35)"),
    (lambda p: p["database_backups"].update(weekly_retention_days=30), "database_backups.weekly_retention_days", 30,
     "at least daily_retention_days (35)"),
    (lambda p: p["database_backups"].update(monthly_retention_days=90), "database_backups.monthly_retention_days",
     90, "at least weekly_retention_days (91)"),
    (lambda p: p.update(verification={"report_retention_days": 30}), "verification.report_retention_days", 30,
     "longer than the longest gap"),
])
def test_retentions_that_must_hold_together_are_cross_checked(mutate, key, value, why):
    assert why in _refused(mutate, key, value)


@pytest.mark.parametrize("section", ["monitoring", "replication", "database_backups", "changes", "verification"])
@pytest.mark.parametrize("value", [None, "off", 3])
def test_a_section_given_as_null_or_not_an_object_is_refused(section, value):
    with pytest.raises(ConfigError) as err:
        load_environment(with_prod(lambda p: p.update({section: value})), "prod", today=TODAY)
    assert str(err.value).startswith(f"environments.prod.{section}: {json.dumps(value)} is not "), err.value
