from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from backup_constructs.keys import customer_managed_key
from tavari_dr.core import metrics


@dataclass(frozen=True)
class Runbook:
    """What an alarm tells the person it wakes: what happened, what to do, and where to read more."""

    what: str
    action: str
    section: str


class Monitoring(Construct):
    """The one place every stack registers what it wants watched (a small facade).

    environment: environment name, shown in every alarm description.
    alert_emails: email subscriptions of the alert topic (default none).
    runbook_url: base URL of docs/runbooks/alarms.md; descriptions link ``#<section>``.
    removal_policy: for the topic's key (RETAIN by default).

    Every alarm created through it notifies the one alert topic (ALARM, and OK where
    recovery news is useful), treats missing data explicitly and says what to do.
    The topic's key lets CloudWatch and EventBridge publish: with the AWS-managed
    ``alias/aws/sns`` key, alarm notifications are dropped silently.
    """

    def __init__(self, scope: Construct, construct_id: str, *, environment: str, runbook_url: str,
                 alert_emails: Sequence[str] = (), removal_policy: RemovalPolicy = RemovalPolicy.RETAIN) -> None:
        super().__init__(scope, construct_id)
        self.environment = environment
        self.runbook_url = runbook_url
        self.key = customer_managed_key(self, "TopicKey", description="Tavari alert topic",
                                        removal_policy=removal_policy)
        for service in ("cloudwatch.amazonaws.com", "events.amazonaws.com"):
            self.key.add_to_resource_policy(iam.PolicyStatement(
                principals=[iam.ServicePrincipal(service)],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
            ))
        self.topic = sns.Topic(self, "AlertTopic", master_key=self.key, enforce_ssl=True,
                               display_name=f"Tavari {environment} backup alerts")
        for email in alert_emails:
            self.topic.add_subscription(subs.EmailSubscription(email))
        self.alarms: list[cw.Alarm] = []
        self._action = cw_actions.SnsAction(self.topic)

    def alarm(self, construct_id: str, *, metric: cw.IMetric, threshold: float,
              comparison: cw.ComparisonOperator, treat_missing_data: cw.TreatMissingData, runbook: Runbook,
              evaluation_periods: int = 1, notify_ok: bool = True) -> cw.Alarm:
        """An alarm on the alert topic; every other helper ends here."""
        description = (f"[{self.environment}] {runbook.what} Do: {runbook.action} "
                       f"Runbook: {self.runbook_url}#{runbook.section}")
        alarm = cw.Alarm(self, construct_id, metric=metric, threshold=threshold, comparison_operator=comparison,
                         evaluation_periods=evaluation_periods, treat_missing_data=treat_missing_data,
                         alarm_description=description)
        alarm.add_alarm_action(self._action)
        if notify_ok:
            alarm.add_ok_action(self._action)
        self.alarms.append(alarm)
        return alarm

    def watch_function(self, construct_id: str, function: lambda_.IFunction, *, timeout: Duration,
                       what: str) -> list[cw.Alarm]:
        """Errors > 0, throttles > 0 and duration above 80 % of the timeout."""
        five_minutes = Duration.minutes(5)
        return [
            self.alarm(f"{construct_id}Errors", metric=function.metric_errors(period=five_minutes, statistic="Sum"),
                       threshold=0, comparison=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                       treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                       runbook=Runbook(f"{what} raised an error.",
                                       "Read its log group for the traceback, fix, re-run.", "job-errors")),
            self.alarm(f"{construct_id}Throttles",
                       metric=function.metric_throttles(period=five_minutes, statistic="Sum"),
                       threshold=0, comparison=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                       treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                       runbook=Runbook(f"{what} was throttled.",
                                       "Check the account's Lambda concurrency; raise the quota.", "job-throttles")),
            self.alarm(f"{construct_id}NearTimeout",
                       metric=function.metric_duration(period=five_minutes, statistic="Maximum"),
                       threshold=timeout.to_milliseconds() * 0.8,
                       comparison=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                       treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                       runbook=Runbook(f"{what} ran longer than 80 % of its timeout.",
                                       "Look for growth in data size; raise the timeout or split the work.",
                                       "job-duration")),
        ]

    def watch_scheduled_job(self, construct_id: str, function: lambda_.IFunction, *, job: str, every: Duration,
                            grace: Duration, timeout: Duration) -> list[cw.Alarm]:
        """The function alarms plus a missing-run alarm: no ``JobSucceeded{Job=job}`` within
        one schedule period plus grace is ALARM, and missing data counts as breaching."""
        window = Duration.seconds(every.to_seconds() + grace.to_seconds())
        missing = self._missing_run(construct_id, job, window)
        return [*self.watch_function(construct_id, function, timeout=timeout, what=f"Job {job}"), missing]

    def watch_task_job(self, construct_id: str, *, job: str, every: Duration, grace: Duration) -> list[cw.Alarm]:
        """A job outside Lambda (ECS task): JobFailed > 0, and the missing-run alarm on JobSucceeded."""
        window = Duration.seconds(every.to_seconds() + grace.to_seconds())
        dims = {"Job": job}
        return [
            self.alarm(f"{construct_id}Failed",
                       metric=cw.Metric(namespace=metrics.NAMESPACE, metric_name=metrics.JOB_FAILED,
                                        dimensions_map=dims, statistic="Sum", period=Duration.hours(1)),
                       threshold=0, comparison=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                       treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                       runbook=Runbook(f"Job {job} failed.", "Read the task's log group; re-run it by hand.",
                                       "job-errors")),
            self._missing_run(construct_id, job, window),
        ]

    def _missing_run(self, construct_id: str, job: str, window: Duration) -> cw.Alarm:
        succeeded = cw.Metric(namespace=metrics.NAMESPACE, metric_name=metrics.JOB_SUCCEEDED,
                              dimensions_map={"Job": job}, statistic="Sum", period=window)
        return self.alarm(
            f"{construct_id}MissingRun", metric=succeeded, threshold=1,
            comparison=cw.ComparisonOperator.LESS_THAN_THRESHOLD,
            treat_missing_data=cw.TreatMissingData.BREACHING,
            runbook=Runbook(f"Scheduled job {job} has not finished successfully within its schedule plus grace.",
                            "Check the schedule is enabled and the job's log group; run it by hand.", "missing-run"))

    def watch_dead_letters(self, construct_id: str, queue: sqs.IQueue, *, what: str) -> cw.Alarm:
        return self.alarm(
            construct_id,
            metric=queue.metric_approximate_number_of_messages_visible(period=Duration.minutes(5), statistic="Max"),
            threshold=0, comparison=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            runbook=Runbook(f"{what} could not be delivered and waits in a dead-letter queue.",
                            "Read the parked message, fix delivery (webhook URL, secret), then redrive.",
                            "dead-letters"))
