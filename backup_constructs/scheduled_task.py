from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy, Stack, TimeZone
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as targets
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from backup_constructs.compute import cpu_architecture
from backup_constructs.nag import acknowledge, acknowledge_wildcards, grant_policy


def schedule_role(scope: Construct, construct_id: str) -> iam.Role:
    """The role an EventBridge Scheduler schedule invokes its target with, trusted as CDK's own per-target
    role is (this account's default schedule group). Owned by the construct that owns the schedule, so
    that construct acknowledges the policy its target grants, instead of the stack searching for CDK's
    ``SchedulerRoleForTarget-*`` singletons by id."""
    stack = Stack.of(scope)
    return iam.Role(scope, construct_id, assumed_by=iam.ServicePrincipal("scheduler.amazonaws.com", conditions={
        "StringEquals": {"aws:SourceAccount": stack.account,
                         "aws:SourceArn": stack.format_arn(service="scheduler", resource="schedule-group",
                                                           resource_name="default")}}))


def acknowledge_schedule_role(role: iam.Role) -> None:
    """The policy a schedule's target granted its role: inline, and only its one target (any version)."""
    acknowledge_wildcards(grant_policy(role), "The scheduler may invoke its one target function (any version).")


@dataclass(frozen=True)
class Sidecar:
    """A second container the job needs running first (e.g. a scratch database).

    name, image, environment, secrets: as for a container; health_command: CMD-SHELL test the job waits for.
    """

    name: str
    image: ecs.ContainerImage
    health_command: str
    environment: Mapping[str, str]
    secrets: Mapping[str, ecs.Secret]


def fargate_task(scope: Construct, *, cpu: int, memory_mib: int, log_key: kms.IKey, log_retention: logs.RetentionDays,
                 removal_policy: RemovalPolicy) -> tuple[logs.LogGroup, ecs.FargateTaskDefinition]:
    """The job image's task (Linux, on compute.architecture's processor: the image is built for it) and its
    encrypted log group, as children "Logs" and "Task" of ``scope``: the scheduled jobs and the always-on
    capture share them."""
    log_group = logs.LogGroup(scope, "Logs", retention=log_retention, encryption_key=log_key,
                              removal_policy=removal_policy)
    task_definition = ecs.FargateTaskDefinition(scope, "Task", cpu=cpu, memory_limit_mib=memory_mib,
                                                runtime_platform=ecs.RuntimePlatform(
                                                    cpu_architecture=cpu_architecture(scope),
                                                    operating_system_family=ecs.OperatingSystemFamily.LINUX))
    return log_group, task_definition


class ScheduledFargateJob(Construct):
    """One container job on a schedule: a Fargate task definition, its log group, and an
    EventBridge Scheduler schedule (explicit time zone) with retries and a dead-letter queue.

    The task runs in public subnets with a public IP (no NAT gateway: README, cost), with an
    egress-only security group. The job's own outcome is a metric (JobSucceeded/JobFailed) the
    Monitoring facade alarms on; failures to *start* land in the schedule's DLQ.
    """

    def __init__(self, scope: Construct, construct_id: str, *, cluster: ecs.ICluster,
                 security_group: ec2.ISecurityGroup, image: ecs.ContainerImage, command: Sequence[str],
                 schedule: str, time_zone: str,
                 log_key: kms.IKey, log_retention: logs.RetentionDays, removal_policy: RemovalPolicy,
                 environment: Mapping[str, str] | None = None, secrets: Mapping[str, ecs.Secret] | None = None,
                 cpu: int = 1024, memory_mib: int = 2048, sidecar: Sidecar | None = None,
                 description: str = "") -> None:
        super().__init__(scope, construct_id)
        self.log_group, self.task_definition = fargate_task(self, cpu=cpu, memory_mib=memory_mib, log_key=log_key,
                                                            log_retention=log_retention, removal_policy=removal_policy)
        logging = ecs.LogDrivers.aws_logs(stream_prefix=construct_id.lower(), log_group=self.log_group)
        self.container = self.task_definition.add_container(
            # The job is tavari-dr: structured logs (tavari_dr.core.observability), searchable by backup ID.
            "Job", image=image, command=["--log-format", "json", *command], environment=dict(environment or {}),
            secrets=dict(secrets or {}), logging=logging, readonly_root_filesystem=False)
        if sidecar is not None:
            helper = self.task_definition.add_container(
                sidecar.name, image=sidecar.image, essential=False, logging=logging,
                environment=dict(sidecar.environment), secrets=dict(sidecar.secrets),
                health_check=ecs.HealthCheck(command=["CMD-SHELL", sidecar.health_command],
                                             interval=Duration.seconds(10), retries=12,
                                             start_period=Duration.seconds(60)))
            self.container.add_container_dependencies(ecs.ContainerDependency(
                container=helper, condition=ecs.ContainerDependencyCondition.HEALTHY))
        self.dead_letter_queue = sqs.Queue(self, "ScheduleDeadLetters", encryption=sqs.QueueEncryption.KMS_MANAGED,
                                           enforce_ssl=True, retention_period=Duration.days(14),
                                           removal_policy=removal_policy)
        acknowledge(self.dead_letter_queue, "This queue is itself the schedule's dead-letter queue.",
                    "AwsSolutions-SQS3")
        self.schedule_role = schedule_role(self, "ScheduleRole")
        self.schedule = scheduler.Schedule(
            self, "Schedule", description=description,
            schedule=scheduler.ScheduleExpression.expression(schedule, TimeZone.of(time_zone)),
            target=targets.EcsRunFargateTask(
                cluster, task_definition=self.task_definition, assign_public_ip=True,
                vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
                security_groups=[security_group], dead_letter_queue=self.dead_letter_queue,
                retry_attempts=3, max_event_age=Duration.hours(2), role=self.schedule_role))
        self._acknowledge()

    def _acknowledge(self) -> None:
        grant_policy(self.schedule_role)  # ecs:RunTask of this task definition and PassRole of its roles
        execution = self.task_definition.obtain_execution_role()
        if isinstance(execution, iam.Role) and execution.node.try_find_child("DefaultPolicy"):
            acknowledge(grant_policy(execution),
                        "ecr:GetAuthorizationToken only accepts Resource \"*\" (AWS documentation).",
                        "AwsSolutions-IAM5[Resource::*]")
