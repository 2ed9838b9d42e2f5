from __future__ import annotations

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack, TimeZone
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as targets
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from backup_constructs.nag import acknowledge, acknowledge_wildcards, grant_policy
from backup_constructs.scheduled_task import schedule_role

DRILL_TIMEOUT = Duration.hours(4)  # the non-critical RTO: a drill that takes longer has failed anyway
TASK_ACTIONS = ["ecs:DescribeTasks", "ecs:StopTask"]


class _DrillRole(iam.Role):
    """The state machine's role (trusted as CDK trusts its own: this account's state machines only).

    CDK's EcsRunTask grants ecs:DescribeTasks and ecs:StopTask on "*", yet both act on a task ARN
    (Service Authorization Reference: resource type task, condition key ecs:cluster). This role
    takes that one statement as the tasks of ``cluster`` instead, the cluster condition on top:
    the drill can watch and stop the task it started and no other."""

    def __init__(self, scope: Construct, construct_id: str, *, cluster: ecs.ICluster) -> None:
        stack = Stack.of(scope)
        super().__init__(scope, construct_id, assumed_by=iam.ServicePrincipal("states.amazonaws.com", conditions={
            "ArnLike": {"aws:SourceArn": stack.format_arn(service="states", resource="stateMachine",
                                                          resource_name="*",
                                                          arn_format=ArnFormat.COLON_RESOURCE_NAME)},
            "StringEquals": {"aws:SourceAccount": stack.account}}))
        self._tasks = stack.format_arn(service="ecs", resource="task", resource_name=f"{cluster.cluster_name}/*")
        self._cluster_arn = cluster.cluster_arn

    def add_to_principal_policy(self, statement: iam.PolicyStatement) -> iam.AddToPrincipalPolicyResult:
        if sorted(statement.actions) == TASK_ACTIONS and statement.resources == ["*"]:
            statement = iam.PolicyStatement(actions=TASK_ACTIONS, resources=[self._tasks],
                                            conditions={"ArnEquals": {"ecs:cluster": self._cluster_arn}})
        return super().add_to_principal_policy(statement)


class QuarterlyDrill(Construct):
    """The plan's quarterly full disaster-recovery drill as a Step Functions state machine.

    Three timed branches run in parallel against the latest backups — the database restore test
    (``restore_task``: a Fargate task that restores the newest dump into a scratch database and
    compares every row count), the invoice-bucket restore test (``bucket_test``: restores sampled
    versions and compares bytes) and a secrets check (``drill_function`` with step "secrets") —
    then ``drill_function`` (step "report") writes the report with each step's achieved RTO to the
    reports bucket and publishes the metrics; a failed step or missed objective fails the execution.

    schedule / time_zone: when it runs (quarterly); it can also be started by hand.
    cluster, subnets, security_group: where the Fargate task runs (public subnets, no NAT).
    container: the task's job container, whose exit code is the restore test's verdict.
    """

    def __init__(self, scope: Construct, construct_id: str, *, cluster: ecs.ICluster,
                 restore_task: ecs.FargateTaskDefinition, subnets: ec2.SubnetSelection,
                 security_group: ec2.ISecurityGroup, bucket_test: lambda_.IFunction, drill_function: lambda_.IFunction,
                 schedule: str, time_zone: str, log_key: kms.IKey, log_retention: logs.RetentionDays,
                 removal_policy: RemovalPolicy, dead_letter_queue: sqs.IQueue, container: str) -> None:
        super().__init__(scope, construct_id)
        database = self._timed("DatabaseRestore", "database_restore", critical=True, task=tasks.EcsRunTask(
            self, "RunDatabaseRestoreTest", cluster=cluster, task_definition=restore_task,
            launch_target=tasks.EcsFargateLaunchTarget(platform_version=ecs.FargatePlatformVersion.LATEST),
            integration_pattern=sfn.IntegrationPattern.RUN_JOB, assign_public_ip=True, subnets=subnets,
            security_groups=[security_group], result_path="$.task",
            result_selector={"codes.$": f"$.Containers[?(@.Name == '{container}')].ExitCode"},
            task_timeout=sfn.Timeout.duration(Duration.hours(2))),
            judge=self._exit_code("DatabaseRestore", "database_restore", container))
        bucket = self._timed("BucketRestore", "bucket_restore", critical=False, task=tasks.LambdaInvoke(
            self, "RunBucketRestoreTest", lambda_function=bucket_test, payload_response_only=True,
            result_path="$.result", task_timeout=sfn.Timeout.duration(Duration.minutes(16))))
        secrets = self._timed("SecretsCheck", "secrets_check", critical=True, task=tasks.LambdaInvoke(
            self, "RunSecretsCheck", lambda_function=drill_function, payload_response_only=True,
            payload=sfn.TaskInput.from_object({"step": "secrets",
                                               "execution": sfn.JsonPath.string_at("$$.Execution.Id")}),
            result_path="$.result",
            task_timeout=sfn.Timeout.duration(Duration.minutes(5))))
        branches = sfn.Parallel(self, "RestoreTests", comment="Each branch records its own start and end")
        for branch in (database, bucket, secrets):
            branches.branch(branch)
        report = tasks.LambdaInvoke(
            self, "WriteReport", lambda_function=drill_function, payload_response_only=True,
            payload=sfn.TaskInput.from_object({
                "step": "report", "branches": sfn.JsonPath.entire_payload,
                "execution": sfn.JsonPath.string_at("$$.Execution.Id"),
                "started": sfn.JsonPath.string_at("$$.Execution.StartTime")}),
            task_timeout=sfn.Timeout.duration(Duration.minutes(5)))
        verdict = sfn.Choice(self, "ObjectivesMet")
        verdict.when(sfn.Condition.boolean_equals("$.passed", True), sfn.Succeed(self, "DrillPassed"))
        verdict.otherwise(sfn.Fail(self, "DrillFailed", error="DrillFailed",
                                   cause="A step failed or an RTO objective was missed; read the drill report"))
        self.log_group = logs.LogGroup(self, "Logs", retention=log_retention, encryption_key=log_key,
                                       removal_policy=removal_policy)
        self.state_machine = sfn.StateMachine(
            self, "StateMachine", comment="Tavari quarterly disaster-recovery drill",
            role=_DrillRole(self, "StateMachineRole", cluster=cluster),
            definition_body=sfn.DefinitionBody.from_chainable(branches.next(report).next(verdict)),
            timeout=DRILL_TIMEOUT, tracing_enabled=True, removal_policy=removal_policy,
            logs=sfn.LogOptions(destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=False))
        self.schedule_role = schedule_role(self, "ScheduleRole")
        self.schedule = scheduler.Schedule(
            self, "Schedule", description="Quarterly disaster-recovery drill",
            schedule=scheduler.ScheduleExpression.expression(schedule, TimeZone.of(time_zone)),
            target=targets.StepFunctionsStartExecution(self.state_machine, dead_letter_queue=dead_letter_queue,
                                                       retry_attempts=2, max_event_age=Duration.hours(6),
                                                       role=self.schedule_role))
        grant_policy(self.schedule_role)  # states:StartExecution of this one state machine: no wildcard
        policy = grant_policy(self.state_machine.role)  # type: ignore[arg-type]
        acknowledge_wildcards(policy, "The state machine invokes its two functions (any version).",
                              select=lambda resource: resource.endswith(">:*"))
        acknowledge_wildcards(policy, "ecs:DescribeTasks/StopTask of the tasks of this one cluster (the cluster "
                                      "condition too): the task the drill starts has an ID unknown at deploy time.",
                              select=lambda resource: ":task/" in resource)
        acknowledge(policy, "Resource * only where the APIs have no resource-level form: CloudWatch Logs delivery "
                            "and X-Ray.", "AwsSolutions-IAM5[Resource::*]")

    def _timed(self, construct_id: str, step: str, *, critical: bool, task: sfn.TaskStateBase,
               judge: sfn.Chain | None = None) -> sfn.IChainable:
        """start marker -> task [-> judge] -> end marker; a task error still ends the branch, marked failed."""
        # execution: what the step's Lambda logs and annotates its trace with as "run", so one drill's
        # lines are found together (the report step is handed it explicitly).
        start = sfn.Pass(self, f"{construct_id}Start", parameters={
            "step": step, "critical": critical, "started": sfn.JsonPath.string_at("$$.State.EnteredTime"),
            "execution": sfn.JsonPath.string_at("$$.Execution.Id")})
        done = sfn.Pass(self, f"{construct_id}Done", parameters={
            "step.$": "$.step", "critical.$": "$.critical", "started.$": "$.started", "ok": True,
            "result.$": "$.result", "finished": sfn.JsonPath.string_at("$$.State.EnteredTime")})
        failed = sfn.Pass(self, f"{construct_id}Failed", parameters={
            "step.$": "$.step", "critical.$": "$.critical", "started.$": "$.started", "ok": False,
            "error.$": "States.Format('{}: {}', $.error.Error, $.error.Cause)",
            "finished": sfn.JsonPath.string_at("$$.State.EnteredTime")})
        task.add_catch(failed, result_path="$.error")
        return start.next(task).next(judge.next(done) if judge is not None else done)

    def _exit_code(self, construct_id: str, step: str, container: str) -> sfn.Chain:
        """ecs:runTask.sync succeeds whenever the task stops; the job container's exit code is the verdict."""
        code = sfn.Pass(self, f"{construct_id}ExitCode", parameters={
            "exit_code.$": "States.ArrayGetItem($.task.codes, 0)"}, result_path="$.task")
        passed = sfn.Pass(self, f"{construct_id}Passed", result=sfn.Result.from_object({"results": {step: "PASS"}}),
                          result_path="$.result")
        failed = sfn.Pass(self, f"{construct_id}NonZeroExit", parameters={
            "results": {step: "FAIL"}, "exit_code.$": "$.task.exit_code"}, result_path="$.result")
        merge = sfn.Pass(self, f"{construct_id}Judged")
        choice = sfn.Choice(self, f"{construct_id}Succeeded")
        choice.when(sfn.Condition.number_equals("$.task.exit_code", 0), passed.next(merge))
        choice.otherwise(failed.next(merge))
        code.next(choice)
        return sfn.Chain.custom(code, [merge], merge)
