"""Builds every stack of one environment from its validated config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_cdk import Annotations, App, Aws, Duration, Environment, RemovalPolicy, Stack, Tags, Token
from aws_cdk import aws_kms as kms

from backup_constructs.compute import set_architecture
from backup_constructs.keys import alias_arn
from backup_constructs.nag import add_nag_packs
from backup_constructs.replication import REPLICATION_RULE_ID, ReplicaTarget
from backup_constructs.tamper_watch import Protected, TrailSettings
from stacks.data_export import API_TIMEOUT, WORKER_TIMEOUT, DataExportStack
from stacks.database_backups import (
    ChangeCaptureInputs,
    DatabaseBackupsReplicaStack,
    DatabaseBackupsStack,
    DrBackups,
    DrillInputs,
    SupabaseConfigInputs,
    VerificationInputs,
)
from stacks.deploy_roles import DeployRolesStack, DeployTarget
from stacks.invoice_replica import InvoiceReplicaStack, replica_key_alias
from stacks.invoice_storage import InvoiceStorageStack
from stacks.monitoring import MonitoringStack, ReplicationWatch
from stacks.secrets import SecretsReplicaKeyStack, SecretsStack, secrets_replica_key_alias
from stacks.tamper_watch import GLOBAL_STS_REGION, RemoteSite, TamperWatch, build_tamper_watch
from tavari_dr.core import guardrails, metrics, outputs
from tavari_dr.core.config import EnvironmentConfig

# The secret entry of the capture's direct connection (declared with the others in tavari_dr.core.config).
STREAM_DATABASE_URL = "STREAM_DATABASE_URL"


@dataclass
class TavariApp:
    storage: InvoiceStorageStack
    replica: InvoiceReplicaStack | None
    secrets: SecretsStack
    secrets_replica_key: SecretsReplicaKeyStack | None
    monitoring: MonitoringStack
    backups: DatabaseBackupsStack
    backups_replica: DatabaseBackupsReplicaStack | None
    data_export: DataExportStack
    tamper_watch: TamperWatch
    deploy_roles: DeployRolesStack | None = None

    @property
    def stacks(self) -> list[Stack]:
        return [s for s in (self.replica, self.storage, self.secrets_replica_key, self.secrets, self.monitoring,
                            self.backups_replica, self.backups, self.data_export, *self.tamper_watch.stacks,
                            self.deploy_roles)
                if s is not None]


def _dr_drift(config: EnvironmentConfig, backups_replica: DatabaseBackupsReplicaStack | None) -> dict[str, Any]:
    """What the daily drift check reads in the DR region: the backup replica bucket and the DR keys,
    where they share the primary's account (the daily monitor has no role in a backup account)."""
    if backups_replica is None:
        return {}
    if config.cross_account_replication:
        return {"dr_backups_unchecked": guardrails.dr_side_unchecked(config.replica_account)}
    return {"dr_backups": DrBackups(region=config.replication.region or "", bucket=backups_replica.backups.bucket,
                                    key_aliases=outputs.dr_key_aliases(config.name))}


def build_app(app: App, config: EnvironmentConfig) -> TavariApp:
    set_architecture(app, config.compute.architecture)  # before any stack: CDK sets context on an empty node
    removal = RemovalPolicy.RETAIN if config.retain else RemovalPolicy.DESTROY
    common = {"termination_protection": config.termination_protection}
    # Where data is retained, the buckets and keys refuse destruction to all but the deploy and
    # break-glass roles; a destroyable environment keeps only the denies that hold everywhere.
    guard = config.security if config.retain else None
    primary_env = Environment(account=config.account, region=config.region)

    replica_stack = None
    replica_args: dict[str, Any] = {}
    if config.replication.enabled:
        alias = replica_key_alias(config.name)
        dr_region, dr_account = config.replication.region, config.replica_account
        replica_stack = InvoiceReplicaStack(
            app, config.stack_name(outputs.INVOICE_REPLICA),
            description=f"Tavari {config.name}: DR replica of the invoice bucket",
            env=Environment(account=dr_account, region=dr_region),
            settings=config.invoice_bucket, removal_policy=removal, key_alias=alias, guard=guard,
            canary_expires=config.inventory.enabled, **common,
        )
        if not config.cross_account_replication:
            replica_args = {"replica_key_arn": alias_arn(dr_region, dr_account, alias),
                            "replica_key_alias": alias}
        elif config.replication.replica_key_arn:
            replica_args = {"replica_key_arn": config.replication.replica_key_arn,
                            "replica_account": dr_account}
        if replica_args:
            replica_args.update(replica_bucket=replica_stack.replica.bucket,
                                replication_time_control=config.replication.replication_time_control)
        else:
            replica_args = {"no_replication_reason": (
                "Cross-account replication waits for replication.replica_key_arn: deploy the replica "
                "stack first, then set its ReplicaKeyArn output in cdk.json (docs/deploy/index.md, deploy order).")}
    storage = InvoiceStorageStack(
        app, config.stack_name(outputs.INVOICE_STORAGE),
        description=f"Tavari {config.name}: versioned, encrypted invoice bucket",
        env=primary_env, settings=config.invoice_bucket, removal_policy=removal,
        log_retention_days=config.monitoring.log_retention_days, guard=guard, inventory=config.inventory,
        **replica_args, **common,
    )
    if "no_replication_reason" in replica_args:
        Annotations.of(storage).add_warning_v2(
            "tavari:replication-pending",
            f"{storage.stack_name} does not replicate yet: set environments.{config.name}.replication."
            f"replica_key_arn to the ReplicaKeyArn output of {config.stack_name(outputs.INVOICE_REPLICA)}",
        )
    if replica_stack is not None:
        storage.add_stack_dependency(replica_stack, "the replica must exist before replication points at it")
        role = storage.invoices.replication_role
        if config.cross_account_replication and role is not None:
            replica_stack.accept_replication_from(role, config.account or "")

    secrets_replica = None
    if config.replication.enabled:
        # Secrets Manager replicates within one account: the DR key lives in the primary
        # account's DR region even when the invoice replica is in a backup account.
        secrets_replica = SecretsReplicaKeyStack(
            app, config.stack_name(outputs.SECRETS_REPLICA_KEY),
            description=f"Tavari {config.name}: KMS key for secret replicas in the DR region",
            env=Environment(account=config.account, region=config.replication.region),
            alias=secrets_replica_key_alias(config.name), removal_policy=removal, guard=guard, **common,
        )
    secrets = SecretsStack(
        app, config.stack_name(outputs.SECRETS),
        description=f"Tavari {config.name}: configuration backups in Secrets Manager",
        env=primary_env, entries=config.secrets.all_entries, removal_policy=RemovalPolicy.RETAIN,
        replica_region=config.replication.region if secrets_replica else None,
        replica_key_alias=secrets_replica_key_alias(config.name) if secrets_replica else None,
        guard=guard, **common,
    )
    if secrets_replica is not None:
        secrets.add_stack_dependency(secrets_replica, "secret replicas need their DR key")

    replication_watch = None
    if storage.invoices.replica is not None:
        replication_watch = ReplicationWatch(
            source_bucket=storage.invoices.bucket.bucket_name,
            destination_bucket=storage.invoices.replica.bucket.bucket_name,
            rule_id=REPLICATION_RULE_ID,
        )
    config_secrets = secrets.config_secrets.secrets
    monitoring = MonitoringStack(
        app, config.stack_name(outputs.MONITORING),
        description=f"Tavari {config.name}: alert topic, alert router, backup alarms, dashboard",
        env=primary_env, environment=config.name, settings=config.monitoring, alert_emails=config.alert_emails,
        invoice_bucket=storage.invoices.bucket, webhook_secret=config_secrets["ALERT_WEBHOOK_URL"],
        sentry_secret=config_secrets.get("SENTRY_DSN"), pagerduty_secret=config_secrets.get("PAGERDUTY_ROUTING_KEY"),
        secrets_key=secrets.config_secrets.key, replication=replication_watch, removal_policy=removal,
        escalation=config.escalation, **common,
    )

    backups_replica = None
    backup_replica_target = None
    backups_pending = None
    if config.replication.enabled:
        alias = outputs.replica_key_alias(config.name, "backups")
        dr_region, dr_account = config.replication.region, config.replica_account
        backups_replica = DatabaseBackupsReplicaStack(
            app, config.stack_name(outputs.DATABASE_BACKUPS + "Replica"),
            description=f"Tavari {config.name}: DR copy of the database backups (Object Lock)",
            env=Environment(account=dr_account, region=dr_region),
            settings=config.database_backups, key_alias=alias, removal_policy=removal, guard=guard,
            changes_retention_days=config.changes.retention_days, **common)
        cross = config.cross_account_replication
        key_ref = config.replication.backup_replica_key_arn if cross else alias_arn(dr_region, dr_account or "", alias)
        if key_ref:
            backup_replica_target = ReplicaTarget(
                bucket=backups_replica.backups.bucket, key=kms.Key.from_key_arn(backups_replica, "KeyRef", key_ref),
                key_alias=None if cross else alias, replication_time_control=False,
                destination_account=dr_account if cross else None)
        else:
            backups_pending = ("Cross-account replication waits for replication.backup_replica_key_arn: deploy the "
                               "backups replica stack first, then set its BackupKeyArn output in cdk.json.")
    backups = DatabaseBackupsStack(
        app, config.stack_name(outputs.DATABASE_BACKUPS),
        description=f"Tavari {config.name}: off-site database backups (Object Lock bucket, Fargate jobs)",
        env=primary_env, environment=config.name, settings=config.database_backups,
        database_url_secret=config_secrets["BACKUP_DATABASE_URL"], secrets_key=secrets.config_secrets.key,
        log_retention_days=config.monitoring.log_retention_days, removal_policy=removal,
        replica=backup_replica_target, **({"no_replication_reason": backups_pending} if backups_pending else {}),
        verification=VerificationInputs(
            settings=config.verification, rpo_hours=config.monitoring.rpo_hours,
            invoice_bucket=storage.invoices.bucket, invoice_key=storage.invoices.key,
            invoice_access=storage.verifier_access,
            archive_after_days=config.invoice_bucket.archive_after_days,
            archive_storage_class=config.invoice_bucket.archive_storage_class,
            supabase_url_secret=config_secrets["SUPABASE_URL"],
            supabase_token_secret=config_secrets["SUPABASE_ACCESS_TOKEN"],
            heartbeat_secret=config_secrets.get("HEARTBEAT_URL"),
            secrets_key=secrets.config_secrets.key,
            replica_bucket_name=replica_stack.replica.bucket.bucket_name if replica_stack else None,
            dr_region=config.replication.region,
            invoice_access_log_bucket_name=storage.invoices.access_logs.bucket.bucket_name,
            **_dr_drift(config, backups_replica)),
        report_retention_days=config.verification.report_retention_days,
        supabase_config=SupabaseConfigInputs(url_secret=config_secrets["SUPABASE_URL"],
                                             token_secret=config_secrets["SUPABASE_ACCESS_TOKEN"]),
        app_principal_arn=config.invoice_bucket.app_principal_arn,
        changes=ChangeCaptureInputs(settings=config.changes,
                                    database_url_secret=config_secrets.get(STREAM_DATABASE_URL)),
        drill=DrillInputs(settings=config.drill, secrets_key=secrets.config_secrets.key, secrets={
            entry.name: (config_secrets[entry.name], entry) for entry in config.secrets.all_entries}),
        guard=guard, **common)
    if config.retain and backups_replica is not None and not config.cross_account_replication:
        Annotations.of(backups).add_warning_v2(
            "tavari:backup-replica-same-account",
            f"{backups.stack_name} keeps its backup replica in the same account ({config.account}) as the "
            "primary: whoever controls that account (its root, or anyone who can deploy) can remove the deny "
            f"statements and destroy both copies. Set environments.{config.name}.replication.account to a "
            "dedicated backup account (docs/security/index.md).")
    if backups_pending:
        Annotations.of(backups).add_warning_v2("tavari:backup-replication-pending", backups_pending)
    if config.changes.enabled and backups.capture is None:
        Annotations.of(backups).add_info(
            f"environments.{config.name}.changes.enabled is true but the secrets have no {STREAM_DATABASE_URL} "
            "entry: the continuous capture is not deployed (docs/architecture/database-backups.md).")
    if backups_replica is not None:
        backups.add_stack_dependency(backups_replica, "the replica must exist before replication points at it")
        role = backups.backups.replication_role
        if config.cross_account_replication and role is not None:
            backups_replica.accept_replication_from(role, config.account or "")
    grace = Duration.hours(3)
    verification = backups.verification
    for job in verification.jobs if verification else ():
        monitoring.monitoring.watch_scheduled_job(job.construct_id, verification.functions[job.name].function,
                                                  job=job.name, every=job.every, grace=grace, timeout=job.timeout)
    for task in backups.task_jobs:
        monitoring.monitoring.watch_task_job("".join(p.capitalize() for p in task.name.split("_")), job=task.name,
                                             every=task.every, grace=grace)

    if backups.drill is not None:
        monitoring.watch_drill(backups.drill.state_machine)
    if storage.inventory is not None:
        monitoring.watch_inventory(storage.inventory.feed_watch, config.inventory)
    if backups.capture is not None:
        monitoring.watch_changes(config.changes, backups.capture)
    data_export = DataExportStack(
        app, config.stack_name(outputs.DATA_EXPORT),
        description=f"Tavari {config.name}: GDPR/CCPA account export API (GET /api/account/export)",
        env=primary_env, settings=config.data_export,
        supabase_url_secret_arn=config_secrets["SUPABASE_URL"].secret_arn,
        jwt_secret_arn=config_secrets["SUPABASE_JWT_SECRET"].secret_arn if "SUPABASE_JWT_SECRET" in config_secrets
        else None,
        database_url_secret_arn=config_secrets["BACKUP_DATABASE_URL"].secret_arn,
        secrets_key=secrets.config_secrets.key, invoice_bucket=storage.invoices.bucket,
        invoice_access=storage.export_access, log_retention_days=config.monitoring.log_retention_days,
        removal_policy=removal, **common)
    monitoring.watch_exports(authorizer=data_export.authorizer_function.function,
                             api=data_export.api_function.function, api_timeout=API_TIMEOUT,
                             worker=data_export.worker.function, worker_timeout=WORKER_TIMEOUT,
                             worker_dead_letters=data_export.worker.dead_letter_queue)

    tamper_watch = _tamper_watch(app, config, storage=storage, replica=replica_stack, secrets=secrets,
                                 secrets_replica=secrets_replica, monitoring=monitoring, backups=backups,
                                 backups_replica=backups_replica, removal=removal, common=common)

    built = TavariApp(storage=storage, replica=replica_stack, secrets=secrets, secrets_replica_key=secrets_replica,
                      monitoring=monitoring, backups=backups, backups_replica=backups_replica,
                      data_export=data_export, tamper_watch=tamper_watch)
    if config.pipeline.enabled:
        built.deploy_roles = _deploy_roles(app, config, built.stacks, removal=removal, common=common)
    for stack in built.stacks:
        Tags.of(stack).add("tavari:environment", config.name)
        Tags.of(stack).add("tavari:component", "backup-recovery")
    add_nag_packs(app)
    return built


def _deploy_roles(app: App, config: EnvironmentConfig, stacks: list[Stack], *, removal: RemovalPolicy,
                  common: dict[str, Any]) -> DeployRolesStack:
    """The GitHub Actions roles, allowed into the bootstrap roles of every account and region a stack of
    this environment deploys to (an environment-agnostic stack's account is the deploying one)."""
    targets = [DeployTarget(account=None if Token.is_unresolved(s.account) else s.account, region=s.region)
               for s in stacks]
    return DeployRolesStack(
        app, config.stack_name(outputs.DEPLOY_ROLES),
        description=f"Tavari {config.name}: GitHub Actions OIDC roles that may only assume the CDK bootstrap roles",
        env=Environment(account=config.account, region=config.region), environment=config.name,
        settings=config.pipeline, security=config.security, targets=targets, removal_policy=removal, **common)


def _tamper_watch(app: App, config: EnvironmentConfig, *, storage: InvoiceStorageStack,
                  replica: InvoiceReplicaStack | None, secrets: SecretsStack,
                  secrets_replica: SecretsReplicaKeyStack | None, monitoring: MonitoringStack,
                  backups: DatabaseBackupsStack, backups_replica: DatabaseBackupsReplicaStack | None,
                  removal: RemovalPolicy, common: dict[str, Any]) -> TamperWatch:
    """The tamper watch of every account and region that holds protected resources, plus us-east-1
    (STS calls to the global endpoint from outside AWS are recorded there), and the daily monitor's
    drift check of the part in the primary account."""
    prefix = outputs.tamper_rule_prefix(config.name)

    def break_glass(account: str | None) -> str:
        return f"arn:{Aws.PARTITION}:iam::{account or Aws.ACCOUNT_ID}:role/{config.security.break_glass_role_name}"

    primary = Protected(
        rule_prefix=prefix, break_glass_role_arn=break_glass(config.account),
        keys=(storage.invoices.key.key_arn, secrets.config_secrets.key.key_arn, backups.backups.key.key_arn,
              backups.signing_key.key_arn, backups.reports.key.key_arn,
              *((backups.change_signing_key.key_arn,) if backups.change_signing_key else ())),
        buckets=(storage.invoices.bucket.bucket_name, backups.backups.bucket.bucket_name,
                 backups.reports.bucket.bucket_name),
        backup_buckets=(backups.backups.bucket.bucket_name,),
        secrets=tuple(secret.secret_arn for secret in secrets.config_secrets.secrets.values()),
        alarm_prefix=config.stack_name(""))  # (every alarm is declared in the primary region's stacks)
    sites: list[RemoteSite] = []
    data_event_buckets = [backups.backups.bucket.bucket_name]
    labels = [f"the {outputs.BACKUP_BUCKET_NAME} output of {backups.stack_name}"]
    replica_label = f"the {outputs.BACKUP_BUCKET_NAME} output of " + (
        backups_replica.stack_name if backups_replica is not None else "")
    dr_region = config.replication.region if config.replication.enabled else None
    if dr_region is not None and replica is not None and secrets_replica is not None and backups_replica is not None:
        replica_keys = (replica.replica.key.key_arn, backups_replica.backups.key.key_arn)
        replica_buckets = (replica.replica.bucket.bucket_name, backups_replica.backups.bucket.bucket_name)
        backup_replica = (backups_replica.backups.bucket.bucket_name,)
        if config.cross_account_replication:
            # Secret replicas stay in the primary account; the bucket replicas live in the backup account,
            # whose events only a trail there (or an organization trail) records.
            sites.append(RemoteSite("Dr", dr_region, config.account, Protected(
                rule_prefix=prefix, break_glass_role_arn=break_glass(config.account),
                keys=(secrets_replica.key.key_arn,))))
            backup_account = config.replica_account
            trail = None if config.security.trail_arn else TrailSettings(
                name=outputs.tamper_trail_name(config.name), data_event_buckets=backup_replica,
                retention=Duration.days(config.monitoring.log_retention_days), removal_policy=removal)
            sites.append(RemoteSite("BackupDr", dr_region, backup_account, Protected(
                rule_prefix=prefix, break_glass_role_arn=break_glass(backup_account), keys=replica_keys,
                buckets=replica_buckets, backup_buckets=backup_replica), trail=trail, checked=False))
            if dr_region != GLOBAL_STS_REGION:
                sites.append(RemoteSite("BackupGlobal", GLOBAL_STS_REGION, backup_account, Protected(
                    rule_prefix=prefix, break_glass_role_arn=break_glass(backup_account)), checked=False))
        else:
            sites.append(RemoteSite("Dr", dr_region, config.account, Protected(
                rule_prefix=prefix, break_glass_role_arn=break_glass(config.account),
                keys=(*replica_keys, secrets_replica.key.key_arn), buckets=replica_buckets,
                backup_buckets=backup_replica)))
            data_event_buckets += backup_replica
            labels.append(replica_label)
    if GLOBAL_STS_REGION not in (config.region, dr_region):
        sites.append(RemoteSite("Global", GLOBAL_STS_REGION, config.account, Protected(
            rule_prefix=prefix, break_glass_role_arn=break_glass(config.account))))
    if config.security.trail_arn and backups_replica is not None and config.cross_account_replication:
        data_event_buckets.append(backups_replica.backups.bucket.bucket_name)  # the named trail must log it too
        labels.append(replica_label)
    watch = build_tamper_watch(app, config, protected_primary=primary, remote_sites=sites,
                               topic=monitoring.monitoring.topic, data_event_bucket_names=data_event_buckets,
                               data_event_bucket_labels=labels,
                               removal_policy=removal, common=common)
    verification = backups.verification
    if verification is not None:
        daily = verification.functions[metrics.DAILY_MONITOR]
        watch.wire_drift_check(daily.function, daily.role)
    return watch
