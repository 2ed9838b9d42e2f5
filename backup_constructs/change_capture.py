from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from backup_constructs.nag import acknowledge, acknowledge_wildcards, grant_policy
from backup_constructs.scheduled_task import fargate_task
from tavari_dr.core import metrics

# Fargate's longest stop timeout: on a deployment or a scale-in the consumer gets SIGTERM and this long
# to close its open segment and confirm its position on the slot before SIGKILL.
STOP_TIMEOUT = Duration.seconds(120)
CONTAINER_INSIGHTS = "ECS/ContainerInsights"


class ChangeCaptureService(Construct):
    """The continuous capture (`tavari-dr db stream`) as an always-on Fargate service: one task, never two.

    A logical replication slot has one consumer at a time (a second connection to an active slot is
    refused), so the deployment stops the old task before it starts the new one (minimum healthy 0 %,
    maximum 100 %) and the service keeps exactly one running: ECS starts a new task whenever the
    running one exits. The deployment circuit breaker rolls a deployment back when its new task keeps
    failing to start, instead of retrying it for ever.

    cluster, security_group, image: where and what it runs (the job image of the nightly backup).
    command: the tavari-dr arguments (after --log-format json).
    secrets: container secrets (the direct-connection URL); environment: plain variables.
    cpu / memory_mib: the task's size (changes.cpu / changes.memory_mib).
    subnets: public subnets; assign_public_ip: whether the task gets a public IPv4 address (the AWS
        APIs it calls are reached over IPv4 without a NAT gateway; Supabase's direct connection over
        IPv6 where the subnets are dual-stack).
    log_key / log_retention / removal_policy: its log group's.

    service, task_definition, container, log_group, role (the task role) are attributes; grant_* give
    the role exactly what the capture does.
    """

    def __init__(self, scope: Construct, construct_id: str, *, cluster: ecs.ICluster,
                 security_group: ec2.ISecurityGroup, image: ecs.ContainerImage, command: Sequence[str],
                 log_key: kms.IKey, log_retention: logs.RetentionDays, removal_policy: RemovalPolicy,
                 subnets: ec2.SubnetSelection, assign_public_ip: bool = True,
                 secrets: Mapping[str, ecs.Secret] | None = None, environment: Mapping[str, str] | None = None,
                 cpu: int = 256, memory_mib: int = 512) -> None:
        super().__init__(scope, construct_id)
        self.cluster = cluster
        self.log_group, self.task_definition = fargate_task(self, cpu=cpu, memory_mib=memory_mib, log_key=log_key,
                                                            log_retention=log_retention, removal_policy=removal_policy)
        self.container = self.task_definition.add_container(
            "Job", image=image, command=["--log-format", "json", *command], environment=dict(environment or {}),
            secrets=dict(secrets or {}), stop_timeout=STOP_TIMEOUT, readonly_root_filesystem=False,
            logging=ecs.LogDrivers.aws_logs(stream_prefix="db-stream", log_group=self.log_group))
        self.role = self.task_definition.task_role
        self.service = ecs.FargateService(
            self, "Service", cluster=cluster, task_definition=self.task_definition, desired_count=1,
            min_healthy_percent=0, max_healthy_percent=100,
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            security_groups=[security_group], vpc_subnets=subnets, assign_public_ip=assign_public_ip,
            platform_version=ecs.FargatePlatformVersion.LATEST, enable_execute_command=False,
            propagate_tags=ecs.PropagatedTagSource.SERVICE)
        self.service.apply_removal_policy(RemovalPolicy.DESTROY)  # stateless: its position is on the slot

    def grant_changes(self, bucket: s3.IBucket, key: kms.IKey, prefix: str) -> None:
        """Write new objects under ``prefix`` (the bucket policy demands If-None-Match there), read and list
        only that prefix (to resume after the newest segment), through the bucket's key."""
        self.role.add_to_principal_policy(iam.PolicyStatement(
            actions=["s3:PutObject", "s3:GetObject", "s3:GetObjectVersion"],
            resources=[bucket.arn_for_objects(f"{prefix}*")]))
        self.role.add_to_principal_policy(iam.PolicyStatement(
            actions=["s3:ListBucket", "s3:ListBucketVersions"], resources=[bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{prefix}*"]}}))
        key.grant(self.role, "kms:Decrypt", "kms:GenerateDataKey")

    def grant_signing(self, signing_key: kms.IKey, verify_actions: tuple[str, ...]) -> None:
        """Sign each segment's header and each base record with ``signing_key`` — the change records' own
        key, never the manifests' (readers trust each key for its own records only); and verify the base
        records it reads back when it resumes after a restart (a forged base would redirect it)."""
        signing_key.grant(self.role, "kms:Sign", *verify_actions)

    def grant_run_task(self, task_definition: ecs.TaskDefinition, cluster: ecs.ICluster) -> None:
        """Run ``task_definition`` (the nightly backup job's) in ``cluster`` and nothing else, passing it only
        its own two roles: a base reset's fresh dump is taken, written and signed by that job's identity."""
        self.role.add_to_principal_policy(iam.PolicyStatement(
            actions=["ecs:RunTask"], resources=[task_definition.task_definition_arn],
            conditions={"ArnEquals": {"ecs:cluster": cluster.cluster_arn}}))
        roles = [task_definition.task_role.role_arn, task_definition.obtain_execution_role().role_arn]
        self.role.add_to_principal_policy(iam.PolicyStatement(
            actions=["iam:PassRole"], resources=roles,
            conditions={"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}))

    def grant_metrics(self) -> None:
        self.role.add_to_principal_policy(iam.PolicyStatement(
            actions=["cloudwatch:PutMetricData"], resources=["*"],
            conditions={"StringEquals": {"cloudwatch:namespace": metrics.NAMESPACE}}))

    def acknowledge(self, reason: str) -> None:
        """After the grants: the task role's wildcards (keys are data) and the execution role's ECR token."""
        if isinstance(self.role, iam.Role):
            policy = grant_policy(self.role)
            acknowledge_wildcards(policy, reason, select=lambda resource: resource.endswith("/changes/*"))
            acknowledge(policy, "PutMetricData has no resource-level form; the namespace condition pins it.",
                        "AwsSolutions-IAM5[Resource::*]")
        execution = self.task_definition.obtain_execution_role()
        if isinstance(execution, iam.Role) and execution.node.try_find_child("DefaultPolicy"):
            acknowledge(grant_policy(execution),
                        "ecr:GetAuthorizationToken only accepts Resource \"*\" (AWS documentation).",
                        "AwsSolutions-IAM5[Resource::*]")

    def metric_running_tasks(self, period: Duration = Duration.minutes(5)) -> cw.Metric:
        """Container Insights' count of the service's running tasks (AWS/ECS has none): 0 is a dead capture."""
        return cw.Metric(namespace=CONTAINER_INSIGHTS, metric_name="RunningTaskCount", statistic="Minimum",
                         period=period, dimensions_map={"ClusterName": self.cluster.cluster_name,
                                                        "ServiceName": self.service.service_name})
