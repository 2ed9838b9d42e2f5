from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as sm
from constructs import Construct

from backup_constructs.backup_bucket import BackupBucket, RetentionTier
from backup_constructs.change_capture import ChangeCaptureService
from backup_constructs.compute import image_platform
from backup_constructs.guardrails import custodians_of, protect_audit_prefix, protect_key
from backup_constructs.keys import customer_managed_key, log_group_key
from backup_constructs.nag import (
    BUCKET_READ_PUT_ACTIONS,
    acknowledge,
    acknowledge_wildcards,
    grant_policy,
)
from backup_constructs.python_function import PythonFunction, retention
from backup_constructs.quarterly_drill import QuarterlyDrill
from backup_constructs.replication import ReplicaTarget, accept_cross_account_replication
from backup_constructs.scheduled_task import ScheduledFargateJob, Sidecar
from backup_constructs.secure_bucket import SecureBucket
from backup_constructs.verification_jobs import VERIFY_ACTIONS, DrDrift, VerificationJob, VerificationJobs
from tavari_dr.core import guardrails, metrics, outputs
from tavari_dr.core.config import (
    ChangesConfig,
    DatabaseBackupsConfig,
    DrillConfig,
    SecretEntry,
    SecurityConfig,
    VerificationConfig,
)
from tavari_dr.core.guardrails import BACKUP_PREFIX, CHANGES_PREFIX

ROOT = Path(__file__).resolve().parent.parent
# The job image's build context: only what docker/backup/Dockerfile copies (so the asset hash
# changes with those files alone).
IMAGE_EXCLUDES = ["*", "!pyproject.toml", "!cdk.json", "!tavari_dr", "!docker", "**/__pycache__"]


def tiers_of(settings: DatabaseBackupsConfig) -> list[RetentionTier]:
    return [RetentionTier(tier.name, tier.retention_days) for tier in settings.tiers]


class DatabaseBackupsReplicaStack(Stack):
    """The DR copy of the backup bucket: Object Lock too, its own key named by an alias.

    guard: the security settings where removal_policy is retain: the bucket and key refuse destruction
        to all but this account's and region's deploy and break-glass roles (default None).
    """

    def __init__(self, scope: Construct, construct_id: str, *, settings: DatabaseBackupsConfig, key_alias: str,
                 removal_policy: RemovalPolicy, guard: SecurityConfig | None = None,
                 changes_retention_days: int | None = None, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        # changes_retention_days: the replicated change segments expire as the primary's do.
        self.backups = BackupBucket(self, "Backups", tiers=tiers_of(settings), removal_policy=removal_policy,
                                    name_for_other_environments=True, lock_mode=settings.lock_mode,
                                    custodians=custodians_of(self, guard) if guard else None,
                                    changes_retention=Duration.days(changes_retention_days)
                                    if changes_retention_days else None)
        kms.Alias(self, "KeyAlias", alias_name=key_alias, target_key=self.backups.key)
        acknowledge(self.backups.bucket, "This bucket is itself the DR replica of the backup bucket.",
                    "NIST.800.53.R5-S3BucketReplicationEnabled")
        CfnOutput(self, outputs.BACKUP_BUCKET_NAME, value=self.backups.bucket.bucket_name)
        CfnOutput(self, outputs.BACKUP_KEY_ARN, value=self.backups.key.key_arn)

    def accept_replication_from(self, role: iam.IRole, source_account: str) -> None:
        accept_cross_account_replication(self.backups.bucket, self.backups.key, role, source_account)


DAY, WEEK, MONTH = Duration.days(1), Duration.days(7), Duration.days(31)


@dataclass(frozen=True)
class TaskJob:
    """A Fargate job's outcome as the alarms watch it: its Job name and how often it must succeed."""

    name: str
    job: ScheduledFargateJob
    every: Duration


@dataclass(frozen=True)
class ChangeCaptureInputs:
    """The continuous capture's settings and the secret of the direct connection it reads the slot over
    (STREAM_DATABASE_URL: db.<ref>.supabase.co:5432; the pooler cannot carry a replication connection)."""

    settings: ChangesConfig
    database_url_secret: sm.ISecret | None


@dataclass(frozen=True)
class SupabaseConfigInputs:
    """The secrets the nightly job reads the Supabase project's configuration with: the project URL (its
    ref) and the Management API token."""

    url_secret: sm.ISecret
    token_secret: sm.ISecret


class DatabaseBackupsStack(Stack):
    """Off-site database backups: the Object-Lock bucket, and the nightly dump, weekly quick check
    and monthly restore test as Fargate tasks on EventBridge Scheduler schedules.

    guard: the security settings where removal_policy is retain: the backup bucket, its key, the
        manifest signing key, the reports' audit/ versions and the reports key refuse destruction to all
        but the deploy and break-glass roles (default None: only the denies that hold everywhere).
    """

    def __init__(self, scope: Construct, construct_id: str, *, environment: str, settings: DatabaseBackupsConfig,
                 database_url_secret: sm.ISecret, secrets_key: kms.IKey, log_retention_days: int,
                 removal_policy: RemovalPolicy, replica: ReplicaTarget | None = None,
                 no_replication_reason: str = "Replication is off in this environment by configuration.",
                 verification: VerificationInputs | None = None, report_retention_days: int = 400,
                 drill: DrillInputs | None = None, guard: SecurityConfig | None = None,
                 supabase_config: SupabaseConfigInputs | None = None, app_principal_arn: str | None = None,
                 changes: ChangeCaptureInputs | None = None, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.custodians = custodians_of(self, guard) if guard else None
        self._guard = guard
        self._settings = settings
        zones = [f"{self.region}a", f"{self.region}b"]
        # Pinned so synth never looks availability zones up in the account (it must work offline).
        self.node.set_context(f"availability-zones:account={self.account}:region={self.region}", zones)
        # The capture runs where its settings are on and its connection secret exists.
        capture_on = changes is not None and changes.settings.enabled and changes.database_url_secret is not None
        self.backups = BackupBucket(self, "Backups", tiers=tiers_of(settings), removal_policy=removal_policy,
                                    replica=replica, lock_mode=settings.lock_mode, custodians=self.custodians,
                                    changes_retention=Duration.days(changes.settings.retention_days)
                                    if changes is not None else None)
        if replica is None:
            acknowledge(self.backups.bucket, no_replication_reason, "NIST.800.53.R5-S3BucketReplicationEnabled")
        # Signs every backup's manifest (which pins each artifact's version ID, size and sha256): only the
        # nightly job may call kms:Sign, so a writer with nothing but s3:PutObject cannot plant a backup.
        self.signing_key = kms.Key(self, "ManifestSigningKey", description="Signs database backup manifests",
                                   key_spec=kms.KeySpec.ECC_NIST_P256, key_usage=kms.KeyUsage.SIGN_VERIFY,
                                   removal_policy=removal_policy, pending_window=Duration.days(30))
        if self.custodians is not None:
            # Without it no manifest verifies, and a restore refuses every backup.
            protect_key(self.signing_key, self.custodians)
        # The always-on capture's own key (issue 27): it signs change records (segments and base records under
        # changes/) and nothing else; readers trust it for those only and the manifest key for dumps only, so
        # the capture, reachable from the internet around the clock, can never sign a backup.
        self.change_signing_key: kms.Key | None = None
        if capture_on:
            self.change_signing_key = kms.Key(
                self, "ChangeSigningKey", description="Signs the change capture's segments and base records",
                key_spec=kms.KeySpec.ECC_NIST_P256, key_usage=kms.KeyUsage.SIGN_VERIFY,
                removal_policy=removal_policy, pending_window=Duration.days(30))
            if self.custodians is not None:
                # Without it no change record verifies, and no restore reaches past a dump.
                protect_key(self.change_signing_key, self.custodians)

        # Public subnets and a public IP instead of NAT gateways: the jobs only call AWS APIs and the
        # Supabase pooler over TLS, and a NAT gateway costs ~$33/month per AZ for a nightly task.
        # With the continuous capture the VPC is dual-stack: Supabase's direct connection (the only one a
        # replication slot can be read over) resolves to IPv6 alone unless the project buys the IPv4
        # add-on, and a public subnet's IPv6 route is the internet gateway itself (no NAT or egress-only
        # gateway, and no per-GB processing charge).
        self.vpc = ec2.Vpc(self, "Vpc", availability_zones=zones, nat_gateways=0,
                           restrict_default_security_group=False,
                           ip_protocol=ec2.IpProtocol.DUAL_STACK if capture_on else ec2.IpProtocol.IPV4_ONLY,
                           subnet_configuration=[ec2.SubnetConfiguration(name="Public",
                                                                         subnet_type=ec2.SubnetType.PUBLIC)])
        self.log_key = log_group_key(self, "LogsKey", removal_policy=removal_policy)
        self._log_retention, self._removal = retention(log_retention_days), removal_policy
        flow_logs = logs.LogGroup(self, "FlowLogs", retention=retention(log_retention_days),
                                  encryption_key=self.log_key, removal_policy=removal_policy)
        flow_log_role = iam.Role(self, "FlowLogRole", assumed_by=iam.ServicePrincipal("vpc-flow-logs.amazonaws.com"))
        self.vpc.add_flow_log("FlowLog", destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs,
                                                                                               flow_log_role))
        for subnet in self.vpc.public_subnets:
            acknowledge(subnet, "Tasks need a public IP and a route to the internet gateway to reach AWS APIs and "
                                "Supabase without a NAT gateway; their security group allows no inbound traffic.",
                        "NIST.800.53.R5-VPCSubnetAutoAssignPublicIpDisabled",
                        "NIST.800.53.R5-VPCNoUnrestrictedRouteToIGW")
        grant_policy(flow_log_role)
        acknowledge(self.vpc, "The default security group is unused (tasks get their own egress-only group); "
                              "closing it needs a custom-resource Lambda for no gain.",
                    "NIST.800.53.R5-VPCDefaultSecurityGroupClosed")
        self.security_group = ec2.SecurityGroup(self, "JobsSecurityGroup", vpc=self.vpc, allow_all_outbound=True,
                                                allow_all_ipv6_outbound=capture_on,
                                                description="Backup jobs: no inbound, HTTPS/PostgreSQL out")
        self.cluster = ecs.Cluster(self, "Cluster", vpc=self.vpc,
                                   container_insights_v2=ecs.ContainerInsights.ENABLED)
        image = ecs.ContainerImage.from_asset(str(ROOT), file="docker/backup/Dockerfile", exclude=IMAGE_EXCLUDES,
                                              build_args={"PG_MAJOR": str(settings.pg_major)},
                                              platform=image_platform(self))
        common = {"cluster": self.cluster, "security_group": self.security_group, "image": image,
                  "time_zone": settings.timezone, "log_key": self.log_key,
                  "log_retention": retention(log_retention_days), "removal_policy": removal_policy}
        # Evidence of every verification run; the verification jobs of other checks write here too.
        self.reports = SecureBucket(self, "Reports", purpose="Verification reports (evidence)",
                                    expire_after=Duration.days(report_retention_days),
                                    removal_policy=removal_policy, not_replicated_because=(
                                        "Evidence of past checks and restores, kept in this region only: losing "
                                        "the region loses that record (each new run writes a new one), never a "
                                        "backup; the backups themselves replicate."))
        # audit/: the records of every restore, written once and never deleted (tavari_dr.core.guardrails);
        # and its key, without which they could not be read either.
        protect_audit_prefix(self.reports.bucket, retain=self.custodians is not None)
        if self.custodians is not None:
            protect_key(self.reports.key, self.custodians)
        bucket_args = ["--env", environment, "--bucket", self.backups.bucket.bucket_name,
                       "--region", self.region, "--publish-metrics"]
        report_args = ["--report-bucket", self.reports.bucket.bucket_name]
        key_args = ["--signing-key", self.signing_key.key_arn]
        # Imported by ARN: ecs.Secret on the owning stack's secret would write this task's role into
        # the secrets key policy, and the two stacks would depend on each other.
        nightly_secrets = {"TAVARI_DATABASE_URL": ecs.Secret.from_secrets_manager(
            sm.Secret.from_secret_complete_arn(self, "DatabaseUrlSecret", database_url_secret.secret_arn))}
        config_args: list[str] = []
        if supabase_config is not None:
            # The project's configuration (auth, database, network, API, pooler, storage, SSL) is
            # snapshotted beside each nightly dump through the Management API (tavari_dr.configbackup).
            config_args = ["--supabase-config"]
            nightly_secrets.update({
                "TAVARI_SUPABASE_URL": ecs.Secret.from_secrets_manager(sm.Secret.from_secret_complete_arn(
                    self, "SupabaseUrlSecret", supabase_config.url_secret.secret_arn)),
                "TAVARI_SUPABASE_ACCESS_TOKEN": ecs.Secret.from_secrets_manager(sm.Secret.from_secret_complete_arn(
                    self, "SupabaseTokenSecret", supabase_config.token_secret.secret_arn))})
        self.nightly = ScheduledFargateJob(
            self, "NightlyBackup", **common, schedule=settings.schedule,
            description="Off-site pg_dump of the Supabase database (database_backups.schedule)",
            # --cleanup-restored: the expired copies of partial restores go before the dump (not backed up);
            # dropping them is audited, hence the reports bucket.
            command=["db", "backup", "--cleanup-restored", *config_args, *bucket_args, *report_args, *key_args],
            # The reason as a variable (`db backup --reason` reads it): a base reset's run of this very task
            # overrides it, and nothing else (tavari_dr.database.dump_task).
            environment={outputs.BACKUP_REASON_ENV: "nightly"},
            secrets=nightly_secrets)
        acknowledge(self.nightly.task_definition, "The one variable is the dump's reason (\"nightly\"), no secret: "
                                                  "a base reset's run of this task overrides it; the connection "
                                                  "strings are secrets.", "AwsSolutions-ECS2")
        self.weekly = ScheduledFargateJob(
            self, "WeeklyVerify", **common, schedule=settings.weekly_verify_schedule, cpu=512, memory_mib=1024,
            description="Weekly check of the newest dump: sha256 and table of contents",
            command=["db", "verify", "--quick", *bucket_args, *report_args, *key_args])
        scratch_password = sm.Secret(self, "ScratchPassword", description="Password of the monthly scratch database",
                                     encryption_key=customer_managed_key(self, "ScratchKey",
                                                                         description="Scratch database password",
                                                                         removal_policy=RemovalPolicy.DESTROY),
                                     generate_secret_string=sm.SecretStringGenerator(exclude_punctuation=True),
                                     removal_policy=RemovalPolicy.DESTROY)
        acknowledge(scratch_password, "The password of a scratch database that lives only inside the monthly task "
                                      "(its sidecar, on localhost, no inbound rule) and is discarded with it.",
                    "AwsSolutions-SMG4", "NIST.800.53.R5-SecretsManagerRotationEnabled")
        self.monthly = ScheduledFargateJob(
            self, "MonthlyRestoreTest", **common, schedule=settings.monthly_verify_schedule, cpu=2048,
            memory_mib=8192, description="Monthly restore test into a scratch supabase/postgres database",
            # With a capture, the test restores the newest dump PLUS its change log to the newest segment.
            command=["db", "verify", "--scratch-url",
                     "postgresql://postgres@localhost:5432/postgres", *bucket_args, *report_args, *key_args,
                     *(["--change-signing-key", self.change_signing_key.key_arn] if self.change_signing_key else [])],
            secrets={"PGPASSWORD": ecs.Secret.from_secrets_manager(scratch_password)},
            sidecar=Sidecar(name="ScratchDatabase", image=ecs.ContainerImage.from_registry(settings.scratch_image),
                            health_command="pg_isready -U postgres -h localhost", environment={},
                            secrets={"POSTGRES_PASSWORD": ecs.Secret.from_secrets_manager(scratch_password)}))

        for job in (self.nightly, self.weekly, self.monthly):
            role = job.task_definition.task_role
            self.backups.bucket.grant_read(role)
            role.add_to_principal_policy(iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"], resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": metrics.NAMESPACE}}))
        # New dumps only: not changes/ (the capture's, signed with its own key) nor erasure/ (the application's).
        self.backups.bucket.grant_put(self.nightly.task_definition.task_role, objects_key_pattern=f"{BACKUP_PREFIX}*")
        # Only the nightly job signs; the checks verify.
        self.signing_key.grant(self.nightly.task_definition.task_role, "kms:Sign")
        for job in (self.weekly, self.monthly):
            self.signing_key.grant(job.task_definition.task_role, *VERIFY_ACTIONS)
        if self.change_signing_key is not None:  # the monthly test verifies the change log it replays
            self.change_signing_key.grant(self.monthly.task_definition.task_role, *VERIFY_ACTIONS)
        for job in (self.nightly, self.weekly, self.monthly):
            self.reports.bucket.grant_put(job.task_definition.task_role)
        self.nightly.task_definition.task_role.add_to_principal_policy(iam.PolicyStatement(
            actions=["s3:PutObjectRetention"], resources=[self.backups.bucket.arn_for_objects("dumps/*")]))
        secrets_key.grant_decrypt(self.nightly.task_definition.obtain_execution_role())
        _acknowledge_task_role(self.nightly, "The nightly job writes dump objects of the one backup bucket (keys are "
                                             "backup IDs), reads them back and sets their retention, and writes the "
                                             "audit record of a cleanup into the reports bucket (keys are dates and "
                                             "IDs), through their keys.")
        for job in (self.weekly, self.monthly):
            _acknowledge_task_role(job, "The job reads dump objects of the backup bucket (keys are backup IDs) and "
                                        "writes its report into the reports bucket (keys are dates), through their "
                                        "keys.")
        if app_principal_arn:
            # The application records each erasure it makes in the ledger (docs/architecture/database-backups.md).
            self.backups.grant_record_erasure(iam.Role.from_role_arn(self, "AppPrincipal", app_principal_arn))
        self.restore_test = SecureBucket(self, "RestoreTest", purpose="Scratch copies of the monthly S3 restore test",
                                         expire_after=Duration.days(1), removal_policy=RemovalPolicy.DESTROY)
        # What the alarms watch (tavari_dr.core.metrics names the jobs): the Fargate jobs here, the
        # verification Lambdas in self.verification.
        self.task_jobs = (TaskJob(metrics.DB_BACKUP, self.nightly, DAY),
                          TaskJob(metrics.DB_VERIFY_QUICK, self.weekly, WEEK),
                          TaskJob(metrics.DB_RESTORE_TEST, self.monthly, MONTH))
        self.capture = None
        if capture_on and changes is not None:
            self.capture = self._change_capture(changes, image=image, bucket_args=bucket_args,
                                                secrets_key=secrets_key)
        self._changes = changes.settings if changes is not None else None
        self.verification = self._verification_jobs(verification)
        self.drill = self._quarterly_drill(drill, environment, log_retention_days)

        CfnOutput(self, outputs.BACKUP_BUCKET_NAME, value=self.backups.bucket.bucket_name)
        CfnOutput(self, outputs.BACKUP_KEY_ARN, value=self.backups.key.key_arn)
        CfnOutput(self, outputs.MANIFEST_SIGNING_KEY_ARN, value=self.signing_key.key_arn)
        if self.change_signing_key is not None:
            CfnOutput(self, outputs.CHANGE_SIGNING_KEY_ARN, value=self.change_signing_key.key_arn)
        CfnOutput(self, outputs.RESTORE_TEST_BUCKET_NAME, value=self.restore_test.bucket.bucket_name)
        CfnOutput(self, outputs.REPORTS_BUCKET_NAME, value=self.reports.bucket.bucket_name)
        CfnOutput(self, outputs.REPORTS_KEY_ARN, value=self.reports.key.key_arn)
        CfnOutput(self, outputs.BACKUP_CLUSTER_ARN, value=self.cluster.cluster_arn)
        CfnOutput(self, outputs.BACKUP_TASK_DEFINITION_ARN, value=self.nightly.task_definition.task_definition_arn)


    def _change_capture(self, inputs: ChangeCaptureInputs, *, image: ecs.ContainerImage, bucket_args: list[str],
                        secrets_key: kms.IKey) -> ChangeCaptureService:
        """`tavari-dr db stream` as an always-on service (ADR 0021): the nightly job's image and way of
        passing its settings (bucket, region and its own signing key as arguments, the direct connection it
        replicates over as a secret). It holds nothing a dump needs: a base reset's fresh dump is the nightly
        job's task, which it may only ask ECS to run (issue 27)."""
        assert inputs.database_url_secret is not None and self.change_signing_key is not None
        settings = inputs.settings
        args = bucket_args  # --publish-metrics among them: the stalled and lag alarms watch what it publishes
        public = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC)
        nightly = self.nightly.task_definition
        # Where and what ECS runs for a base reset's dump (`db stream --dump-task`, tavari_dr.database.dump_task).
        dump_task = self.to_json_string({
            "cluster": self.cluster.cluster_arn, "task_definition": nightly.task_definition_arn,
            "container": self.nightly.container.container_name, "subnets": self.vpc.select_subnets(
                subnet_type=ec2.SubnetType.PUBLIC).subnet_ids,
            "security_groups": [self.security_group.security_group_id]})
        capture = ChangeCaptureService(
            self, "ChangeCapture", cluster=self.cluster, security_group=self.security_group, image=image,
            command=["db", "stream", *args, "--change-signing-key", self.change_signing_key.key_arn,
                     "--dump-task", dump_task],
            cpu=settings.cpu, memory_mib=settings.memory_mib,
            # The task's public IPv4 reaches the AWS APIs (ECR, S3, KMS, CloudWatch, Secrets Manager, ECS)
            # without a NAT gateway; its IPv6 address reaches Supabase's direct connection.
            subnets=public, assign_public_ip=True,
            # The name `db stream --database-url` reads.
            secrets={"TAVARI_STREAM_DATABASE_URL": ecs.Secret.from_secrets_manager(sm.Secret.from_secret_complete_arn(
                self, "StreamDatabaseUrlSecret", inputs.database_url_secret.secret_arn))},
            log_key=self.log_key, log_retention=self._log_retention, removal_policy=self._removal)
        secrets_key.grant_decrypt(capture.task_definition.obtain_execution_role())  # the URL secret's key
        capture.grant_changes(self.backups.bucket, self.backups.key, CHANGES_PREFIX)
        capture.grant_signing(self.change_signing_key, VERIFY_ACTIONS)
        capture.grant_run_task(nightly, self.cluster)
        capture.grant_metrics()
        capture.acknowledge("The capture writes, reads and lists change segments under changes/ of the one backup "
                            "bucket (keys are LSNs and times), through its key.")
        CfnOutput(self, outputs.CHANGE_CAPTURE_SERVICE_NAME, value=capture.service.service_name)
        return capture

    def _quarterly_drill(self, inputs: DrillInputs | None, environment: str,
                         log_retention_days: int) -> QuarterlyDrill | None:
        """The quarterly drill lives beside what it runs: the restore-test task, the S3 restore-test
        Lambda and the reports bucket."""
        if inputs is None or self.verification is None:
            return None
        settings = inputs.settings
        entries = [{"name": name, "arn": secret.secret_arn, "required": entry.required,
                    "description": entry.description} for name, (secret, entry) in inputs.secrets.items()]
        fn = PythonFunction(
            self, "DrillSteps", name="dr_drill", capabilities=("verification", "configbackup"),
            description="Quarterly DR drill: secrets check and report",
            timeout=Duration.minutes(5), log_retention=retention(log_retention_days), log_key=self.log_key,
            removal_policy=self._removal,
            environment={"TAVARI_ENV": environment, "TAVARI_REPORTS_BUCKET": self.reports.bucket.bucket_name,
                         "TAVARI_SECRETS": self.to_json_string(entries),
                         "TAVARI_OBJECTIVES": json.dumps({
                             "rto_critical_seconds": settings.rto_critical_minutes * 60,
                             "rto_non_critical_seconds": settings.rto_non_critical_minutes * 60})},
            synchronous_reason="Only the drill's state machine invokes it, synchronously; the state machine "
                               "records and alarms on any failure.")
        for name, (secret, _) in inputs.secrets.items():
            sm.Secret.from_secret_complete_arn(self, f"Drill{outputs.entry_id(name)}Secret",
                                               secret.secret_arn).grant_read(fn.role)
        inputs.secrets_key.grant_decrypt(fn.role)
        self.reports.bucket.grant_put(fn.role)
        acknowledge_wildcards(grant_policy(fn.role), "The drill writes its report into the one reports bucket "
                              "(keys are dates) through its key.", actions=BUCKET_READ_PUT_ACTIONS)
        drill = QuarterlyDrill(
            self, "QuarterlyDrill", cluster=self.cluster, restore_task=self.monthly.task_definition,
            container="Job", subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
            security_group=self.security_group,
            bucket_test=self.verification.functions[metrics.MONTHLY_RESTORE_TEST].function,
            drill_function=fn.function, schedule=settings.quarterly_schedule, time_zone=settings.timezone,
            log_key=self.log_key, log_retention=retention(log_retention_days), removal_policy=self._removal,
            dead_letter_queue=self.monthly.dead_letter_queue)
        self.drill_function = fn
        CfnOutput(self, outputs.DRILL_STATE_MACHINE_ARN, value=drill.state_machine.state_machine_arn)
        return drill

    def _dr_backups(self, dr: DrBackups | None) -> dict[str, Any] | None:
        """The DR side of the drift check: its bucket, its keys (by alias ARN) and its custodians."""
        if dr is None:
            return None
        return guardrails.dr_side(region=dr.region, account=self.account, bucket=dr.bucket.bucket_name,
                                  key_aliases=dr.key_aliases, custodians=custodians_of(self, self._guard,
                                                                                       region=dr.region)
                                  if self._guard else None)

    def _verification_jobs(self, inputs: VerificationInputs | None) -> VerificationJobs | None:
        """The scheduled verification Lambdas; they live beside the reports bucket they write."""
        if inputs is None:
            return None
        settings = inputs.settings
        # The keys whose policies the drift check reads back (those in this region and account).
        drift_keys = {"backup": self.backups.key, "manifest signing": self.signing_key, "reports": self.reports.key,
                      "invoice": inputs.invoice_key, "secrets": inputs.secrets_key,
                      **({"change signing": self.change_signing_key} if self.change_signing_key else {})}
        targets = self.to_json_string({
            "invoice_bucket": inputs.invoice_bucket.bucket_name, "invoice_key_arn": inputs.invoice_key.key_arn,
            "archive_after_days": inputs.archive_after_days, "archive_storage_class": inputs.archive_storage_class,
            "backup_bucket": self.backups.bucket.bucket_name, "reports_bucket": self.reports.bucket.bucket_name,
            "signing_key_arn": self.signing_key.key_arn,
            "scratch_bucket": self.restore_test.bucket.bucket_name, "replica_bucket": inputs.replica_bucket_name,
            "supabase_url_secret": inputs.supabase_url_secret.secret_arn,
            "supabase_token_secret": inputs.supabase_token_secret.secret_arn,
            **({"heartbeat_url_secret": inputs.heartbeat_secret.secret_arn} if inputs.heartbeat_secret else {}),
            "invoice_access_log_bucket": inputs.invoice_access_log_bucket_name,
            "backup_lock_mode": self._settings.lock_mode,
            "backup_default_retention_days": self._settings.default_retention_days,
            "protected_keys": {name: key.key_arn for name, key in drift_keys.items()},
            "custodian_arns": list(self.custodians.arns) if self.custodians else [],
            "dr_backups": self._dr_backups(inputs.dr_backups), "dr_backups_unchecked": inputs.dr_backups_unchecked,
            # The daily change_freshness check: the newest segment against the lag bound, where the capture runs.
            "changes_enabled": self.capture is not None,
            "changes_max_lag_seconds": self._changes.max_lag_seconds if self._changes else None,
            "change_signing_key_arn": self.change_signing_key.key_arn if self.change_signing_key else None})
        return VerificationJobs(
            self, "Verify", time_zone=settings.timezone, jobs=[
                VerificationJob(metrics.DAILY_MONITOR, settings.daily_schedule, Duration.minutes(5), DAY),
                VerificationJob(metrics.WEEKLY_INTEGRITY, settings.weekly_schedule, Duration.minutes(15), WEEK),
                VerificationJob(metrics.MONTHLY_RESTORE_TEST, settings.monthly_schedule, Duration.minutes(15),
                                MONTH)],
            environment={"TAVARI_VERIFICATION": json.dumps(asdict(settings)), "TAVARI_TARGETS": targets,
                         "TAVARI_RPO_HOURS": str(inputs.rpo_hours), "TAVARI_DR_REGION": inputs.dr_region or ""},
            reports=self.reports.bucket, backups=self.backups.bucket, signing_key=self.signing_key,
            scratch=self.restore_test.bucket,
            invoice_access=inputs.invoice_access, secrets_key=inputs.secrets_key,
            supabase_secrets={"SupabaseUrl": inputs.supabase_url_secret.secret_arn,
                              "SupabaseToken": inputs.supabase_token_secret.secret_arn,
                              **({"HeartbeatUrl": inputs.heartbeat_secret.secret_arn} if inputs.heartbeat_secret
                                 else {})},
            drift_keys=tuple(drift_keys.values()),
            dr_drift=DrDrift(inputs.dr_backups.region, inputs.dr_backups.bucket.bucket_arn,
                             tuple(inputs.dr_backups.key_aliases.values())) if inputs.dr_backups else None,
            change_signing_key=self.change_signing_key,
            log_key=self.log_key, log_retention=self._log_retention, removal_policy=self._removal)


@dataclass(frozen=True)
class DrillInputs:
    """What the quarterly drill checks: the configuration secrets (name -> secret, entry) and its objectives."""

    settings: DrillConfig
    secrets: dict[str, tuple[sm.ISecret, SecretEntry]]
    secrets_key: kms.IKey


@dataclass(frozen=True)
class VerificationInputs:
    """What the verification Lambdas check and how (see tavari_dr.verification.jobs)."""

    settings: VerificationConfig
    rpo_hours: int
    invoice_bucket: s3.IBucket
    invoice_key: kms.IKey
    invoice_access: iam.IManagedPolicy
    archive_after_days: int
    archive_storage_class: str
    supabase_url_secret: sm.ISecret
    supabase_token_secret: sm.ISecret
    secrets_key: kms.IKey
    replica_bucket_name: str | None
    dr_region: str | None
    invoice_access_log_bucket_name: str | None = None
    dr_backups: DrBackups | None = None  # the DR side of the drift check, where it shares the account
    dr_backups_unchecked: str | None = None  # why there is no DR side to check (said in the check's report)
    heartbeat_secret: sm.ISecret | None = None  # the dead man's switch the daily monitor pings when all is green


@dataclass(frozen=True)
class DrBackups:
    """The backup replica bucket and the DR region's protected keys (name -> alias name)."""

    region: str
    bucket: s3.IBucket
    key_aliases: dict[str, str]


def _acknowledge_task_role(job: ScheduledFargateJob, reason: str) -> None:
    role = job.task_definition.task_role
    if isinstance(role, iam.Role):
        policy = grant_policy(role)
        acknowledge_wildcards(policy, reason, actions=BUCKET_READ_PUT_ACTIONS)
        acknowledge(policy, "PutMetricData has no resource-level form; the namespace condition pins it.",
                    "AwsSolutions-IAM5[Resource::*]")
