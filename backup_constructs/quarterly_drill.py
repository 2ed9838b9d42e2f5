from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, TimeZone
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
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
from backup_constructs.scheduled_task import acknowledge_schedule_role, schedule_role

DRILL_TIMEOUT = Duration.hours(4)  # the non-critical RTO: a drill that takes longer has failed anyway


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
            payload=sfn.TaskInput.from_object({"step": "secrets"}), result_path="$.result",
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
        acknowledge_schedule_role(self.schedule_role)
        policy = grant_policy(self.state_machine.role)  # type: ignore[arg-type]
        acknowledge_wildcards(policy, "The state machine invokes its two functions (any version).")
        acknowledge(policy, "Resource * only where the APIs have no resource-level form: CloudWatch Logs delivery, "
                            "X-Ray, and ecs:DescribeTasks/StopTask of the task the state machine itself started.",
                    "AwsSolutions-IAM5[Resource::*]")
        acknowledge(self.state_machine,
                    "Execution data stays out of the logs (it carries secret check details); every state "
                    "transition is still logged.", "NIST.800.53.R5-StepFunctionStateMachineAllLogsToCloudWatch")

    def _timed(self, construct_id: str, step: str, *, critical: bool, task: sfn.TaskStateBase,
               judge: sfn.Chain | None = None) -> sfn.IChainable:
        """start marker -> task [-> judge] -> end marker; a task error still ends the branch, marked failed."""
        start = sfn.Pass(self, f"{construct_id}Start", parameters={
            "step": step, "critical": critical, "started": sfn.JsonPath.string_at("$$.State.EnteredTime")})
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
