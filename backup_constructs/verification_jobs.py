from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy, Stack, TimeZone
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as targets
from aws_cdk import aws_secretsmanager as sm
from constructs import Construct

from backup_constructs.nag import BUCKET_READ_PUT_ACTIONS, acknowledge, acknowledge_wildcards, grant_policy
from backup_constructs.python_function import PythonFunction
from backup_constructs.scheduled_task import acknowledge_schedule_role, schedule_role
from tavari_dr.core import metrics


@dataclass(frozen=True)
class VerificationJob:
    """One scheduled verification job: its name (the Job dimension and lambdas/<name>), when it runs,
    how long it may take, and how often it must succeed (the period of its missing-run alarm)."""

    name: str
    schedule: str
    timeout: Duration
    every: Duration

    @property
    def construct_id(self) -> str:
        """daily_monitor -> VerifyDailyMonitor: its function here, its alarms in the Monitoring stack."""
        return "Verify" + "".join(part.capitalize() for part in self.name.split("_"))


# What a reader of the backups needs of the signing key: verify a signature, and its creation date
# (the cut-over before which unsigned manifests were all there was).
VERIFY_ACTIONS = ("kms:Verify", "kms:DescribeKey")


@dataclass(frozen=True)
class DrDrift:
    """The DR replica of the backup bucket and the DR region's protected keys, named by their aliases
    (a key of another region cannot be referenced by ARN here): the daily drift check reads the
    bucket's lock and policy and each key's policy."""

    region: str
    bucket_arn: str
    key_aliases: tuple[str, ...]  # alias/...

    def grant(self, role: iam.Role) -> None:
        role.add_to_principal_policy(iam.PolicyStatement(
            actions=["s3:GetBucketPolicy", "s3:GetBucketObjectLockConfiguration"], resources=[self.bucket_arn]))
        stack = Stack.of(role)
        role.add_to_principal_policy(iam.PolicyStatement(
            actions=["kms:DescribeKey", "kms:GetKeyPolicy"],
            resources=[f"arn:{stack.partition}:kms:{self.region}:{stack.account}:key/*"],
            conditions={"ForAnyValue:StringEquals": {"kms:ResourceAliases": list(self.key_aliases)}}))
        acknowledge_wildcards(grant_policy(role), "The DR region's keys are named by alias: any key of that region "
                              "and account, only where it carries one of the protected aliases "
                              "(kms:ResourceAliases); read-only.", select=lambda resource: ":kms:" in resource)


class VerificationJobs(Construct):
    """The scheduled verification Lambdas (tavari_dr.verification.jobs): daily monitor, weekly integrity
    and monthly S3 restore test, each a PythonFunction on an EventBridge Scheduler schedule with retries
    and its dead-letter queue, writing its reports into the reports bucket.

    jobs: the three jobs (names from tavari_dr.core.metrics).
    time_zone: of every schedule. environment: of every function (TAVARI_VERIFICATION, TAVARI_TARGETS, ...).
    reports: where reports go (read and write, never delete: reports are the evidence that checks ran).
    backups: the database backup bucket the daily and weekly checks read.
    signing_key: the key whose signature on a backup's manifest those checks verify (kms:Verify).
    change_signing_key: the change log's key, whose signatures the weekly change_chain check verifies (default
        None: no capture, no log to verify).
    scratch: the restore test's scratch bucket (the monthly job writes and removes its copies).
    invoice_access: the invoice stack's read-only managed policy.
    supabase_secrets: the secrets the daily monitor reads (id -> ARN: the Management API's, the heartbeat URL),
        through secrets_key.
    drift_keys: the keys whose policies the daily monitor's drift check reads (kms:GetKeyPolicy).
    dr_drift: what the drift check reads in the DR region, where it shares the account (default none).
    log_key / log_retention / removal_policy: as for PythonFunction.

    functions: job name -> its PythonFunction.
    """

    def __init__(self, scope: Construct, construct_id: str, *, jobs: Sequence[VerificationJob], time_zone: str,
                 environment: Mapping[str, str], reports: s3.IBucket, backups: s3.IBucket, signing_key: kms.IKey,
                 scratch: s3.IBucket,
                 invoice_access: iam.IManagedPolicy, supabase_secrets: Mapping[str, str], secrets_key: kms.IKey,
                 log_key: kms.IKey, log_retention: logs.RetentionDays, removal_policy: RemovalPolicy,
                 drift_keys: Sequence[kms.IKey] = (), dr_drift: DrDrift | None = None,
                 change_signing_key: kms.IKey | None = None) -> None:
        super().__init__(scope, construct_id)
        self.jobs = tuple(jobs)
        self.functions: dict[str, PythonFunction] = {}
        for job in self.jobs:
            name = job.construct_id.removeprefix("Verify")
            fn = PythonFunction(self, name, name=job.name, capabilities=("verification", "changes", "database"),
                                description=f"Backup verification: {job.name}", timeout=job.timeout,
                                memory_size=512, log_retention=log_retention, log_key=log_key,
                                removal_policy=removal_policy, environment=dict(environment))
            fn.role.add_managed_policy(invoice_access)
            # Read and write, never delete: reports are the evidence that checks ran.
            reports.grant_read(fn.role)
            reports.grant_put(fn.role)
            role = schedule_role(self, f"{name}ScheduleRole")
            scheduler.Schedule(self, f"{name}Schedule", description=f"Backup verification: {job.name}",
                               schedule=scheduler.ScheduleExpression.expression(job.schedule, TimeZone.of(time_zone)),
                               # execution: the run key of the job's log lines and reports.
                               target=targets.LambdaInvoke(fn.function, dead_letter_queue=fn.dead_letter_queue,
                                                           input=scheduler.ScheduleTargetInput.from_object(
                                                               {"execution": scheduler.ContextAttribute.execution_id}),
                                                           retry_attempts=2, max_event_age=Duration.hours(2),
                                                           role=role))
            acknowledge_schedule_role(role)
            self.functions[job.name] = fn
        daily, weekly, monthly = (self.functions[job] for job in (
            metrics.DAILY_MONITOR, metrics.WEEKLY_INTEGRITY, metrics.MONTHLY_RESTORE_TEST))
        for secret_id, arn in supabase_secrets.items():
            sm.Secret.from_secret_complete_arn(self, f"{secret_id}Secret", arn).grant_read(daily.role)
        secrets_key.grant_decrypt(daily.role)
        if drift_keys:
            daily.role.add_to_principal_policy(iam.PolicyStatement(
                actions=["kms:GetKeyPolicy"], resources=[key.key_arn for key in drift_keys]))
        for fn in (daily, weekly):
            backups.grant_read(fn.role)
            signing_key.grant(fn.role, *VERIFY_ACTIONS)
        if change_signing_key is not None:  # weekly: change_chain verifies the log's signatures, never signs
            change_signing_key.grant(weekly.role, *VERIFY_ACTIONS)
        # weekly: the bucket size metrics (sizes); daily: the capture's own age metric, which tells an idle
        # database from a dead capture when no segment was written lately (change_freshness).
        for fn in (daily, weekly):
            fn.role.add_to_principal_policy(iam.PolicyStatement(actions=["cloudwatch:GetMetricStatistics"],
                                                                resources=["*"]))
        scratch.grant_read(monthly.role)
        scratch.grant_put(monthly.role)
        scratch.grant_delete(monthly.role)  # scratch copies are removed after each test
        for fn in (daily, weekly):
            acknowledge_wildcards(grant_policy(fn.role), "Verification reads every object version of the buckets "
                                  "it checks and writes its reports, through their keys; keys are data.",
                                  actions=BUCKET_READ_PUT_ACTIONS)
        if dr_drift is not None:
            dr_drift.grant(daily.role)
        for fn in (daily, weekly):
            acknowledge(grant_policy(fn.role), "cloudwatch:GetMetricStatistics has no resource-level form.",
                        "AwsSolutions-IAM5[Resource::*]")
        acknowledge_wildcards(grant_policy(monthly.role), "The restore test reads and writes reports in the "
                              "reports bucket (as every verification job may), and writes, reads and then deletes "
                              "its scratch copies in the restore-test bucket, through their keys; keys are data.",
                              actions=BUCKET_READ_PUT_ACTIONS + ("s3:DeleteObject*",))
