from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as sm
from aws_cdk import aws_sns_subscriptions as subs
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from backup_constructs.change_capture import ChangeCaptureService
from backup_constructs.inventory import FeedWatch
from backup_constructs.keys import log_group_key
from backup_constructs.monitoring import Monitoring, Runbook
from backup_constructs.python_function import PythonFunction, retention
from tavari_dr.core import metrics, outputs
from tavari_dr.core.config import ChangesConfig, EscalationConfig, InventoryConfig, MonitoringConfig

GT = cw.ComparisonOperator.GREATER_THAN_THRESHOLD
GE = cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
LT = cw.ComparisonOperator.LESS_THAN_THRESHOLD
CHANGES = {"Source": "changes"}
DAY = Duration.days(1)
ROUTER_TIMEOUT = Duration.seconds(60)
CANARY_GRACE = Duration.minutes(15)


@dataclass(frozen=True)
class ReplicationWatch:
    """What S3's replication metrics are keyed by."""

    source_bucket: str
    destination_bucket: str
    rule_id: str


class MonitoringStack(Stack):
    """Alert topic, alert router, every backup alarm and the dashboard of one environment."""

    def __init__(self, scope: Construct, construct_id: str, *, environment: str, settings: MonitoringConfig,
                 alert_emails: tuple[str, ...], invoice_bucket: s3.IBucket, webhook_secret: sm.ISecret,
                 sentry_secret: sm.ISecret | None, secrets_key: kms.IKey, replication: ReplicationWatch | None,
                 removal_policy: RemovalPolicy, pagerduty_secret: sm.ISecret | None = None,
                 escalation: EscalationConfig | None = None, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.monitoring = Monitoring(self, "Monitoring", environment=environment, runbook_url=settings.runbook_url,
                                     alert_emails=alert_emails, removal_policy=removal_policy)
        self.log_key = log_group_key(self, "LogsKey", removal_policy=removal_policy)
        self.router = PythonFunction(
            self, "AlertRouter", name="alert_router", capabilities=("alerts",),
            description="Formats alarm and job-failure notifications and posts them to the alert webhook",
            timeout=ROUTER_TIMEOUT, log_retention=retention(settings.log_retention_days),
            log_key=self.log_key, removal_policy=removal_policy,
            environment={
                "TAVARI_ENV": environment,
                # Who to call, in order: every alert ends with it (cdk.json escalation).
                "ESCALATION": (escalation or EscalationConfig()).to_json(),
                "ALERT_WEBHOOK_SECRET_ARN": webhook_secret.secret_arn,
                **({"SENTRY_DSN_SECRET_ARN": sentry_secret.secret_arn} if sentry_secret else {}),
                **({"PAGERDUTY_ROUTING_KEY_SECRET_ARN": pagerduty_secret.secret_arn} if pagerduty_secret else {}),
            },
        )
        # Granted through imports: Secret.grant_read on the owning stack's secret would also
        # write this role into the secrets key policy, and the two stacks would depend on each other.
        for secret_id, secret in (("WebhookSecret", webhook_secret), ("SentrySecret", sentry_secret),
                                  ("PagerDutySecret", pagerduty_secret)):
            if secret is not None:
                sm.Secret.from_secret_complete_arn(self, secret_id, secret.secret_arn).grant_read(self.router.role)
        secrets_key.grant_decrypt(self.router.role)
        self.monitoring.topic.add_subscription(subs.LambdaSubscription(self.router.function))
        self.monitoring.watch_function("AlertRouter", self.router.function, timeout=ROUTER_TIMEOUT,
                                       what="The alert router")
        assert self.router.dead_letter_queue is not None
        self.monitoring.watch_dead_letters("AlertDeadLetters", self.router.dead_letter_queue,
                                           what="An alert notification")

        self._backup_alarms(settings)
        self._storage_alarms(settings, invoice_bucket)
        if replication is not None:
            self._replication_alarms(settings, replication)
        self.dashboard = self._dashboard(environment, invoice_bucket, replication)

        CfnOutput(self, outputs.ALERT_TOPIC_ARN, value=self.monitoring.topic.topic_arn)
        CfnOutput(self, outputs.ALERT_ROUTER_NAME, value=self.router.function.function_name)
        CfnOutput(self, outputs.DASHBOARD_NAME, value=self.dashboard.dashboard_name)

    def watch_drill(self, state_machine: sfn.IStateMachine) -> None:
        """The quarterly drill: an execution that fails or times out, or a missed objective."""
        for name, metric in (("DrillExecutionFailed", state_machine.metric_failed(period=DAY, statistic="Sum")),
                             ("DrillExecutionTimedOut", state_machine.metric_timed_out(period=DAY, statistic="Sum"))):
            self.monitoring.alarm(
                name, metric=metric, threshold=0, comparison=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                runbook=Runbook("The quarterly disaster-recovery drill failed.",
                                "Read its report in the reports bucket (reports/quarterly_drill/); fix the step "
                                "that failed and start the state machine again.", "drill-failed"))
        self.monitoring.alarm(
            "DrillObjectiveMissed", metric=_metric(metrics.DRILL_OBJECTIVE_MISSED, None, "Maximum", DAY), threshold=0,
            comparison=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            runbook=Runbook("The quarterly drill missed an RTO objective or a restore test failed.",
                            "Read the drill report; see which step was slow or failed.", "drill-failed"))

    def watch_changes(self, settings: ChangesConfig, capture: ChangeCaptureService) -> list[cw.Alarm]:
        """The continuous capture (`db stream`): lag past the bound, WAL piling up on the source, no new
        segment (a dead service publishes nothing, so missing data breaches), a new base, a fatal error,
        and no running task. Each on the alert topic, and on the dashboard."""
        m, five = self.monitoring, Duration.minutes(5)
        age_bound, age_period = segment_age_bound(settings.segment_seconds)
        lag = _metric(metrics.REPLICATION_LAG_SECONDS, CHANGES, "Maximum", five)
        wal = _metric(metrics.RETAINED_WAL_BYTES, CHANGES, "Maximum", five)
        age = _metric(metrics.CHANGE_SEGMENT_AGE_SECONDS, CHANGES, "Maximum", age_period)
        resets = _metric(metrics.CHANGE_BASE_RESET, CHANGES, "Sum", five)
        written = _metric(metrics.CHANGE_SEGMENTS_WRITTEN, CHANGES, "Sum", five)
        gaps = _metric(metrics.CHANGE_COVERAGE_GAP, CHANGES, "Sum", five)
        fraction = _metric(metrics.RETAINED_WAL_FRACTION, CHANGES, "Maximum", five)
        running = capture.metric_running_tasks(five)
        not_breaching = cw.TreatMissingData.NOT_BREACHING
        alarms = [
            m.alarm("ChangeCaptureLag", metric=lag, threshold=settings.max_lag_seconds, comparison=GT,
                    treat_missing_data=not_breaching,
                    runbook=Runbook(f"The continuous capture lags the source by more than "
                                    f"{settings.max_lag_seconds} s: committed changes are not yet off-site (the "
                                    "RPO it gives is exceeded).",
                                    "Read the db-stream log group; check the source's load and the task's CPU.",
                                    "change-capture-lag")),
            m.alarm("ChangeCaptureRetainedWal", metric=wal, threshold=settings.retained_wal_alarm_bytes,
                    comparison=GT, treat_missing_data=not_breaching,
                    runbook=Runbook(f"The capture's replication slot holds more than "
                                    f"{settings.retained_wal_alarm_bytes} bytes of WAL on the Supabase database (its "
                                    "disk fills while it grows).",
                                    f"Get the capture consuming again before {settings.retained_wal_limit_bytes} "
                                    "bytes, where it drops the slot and starts a new base.",
                                    "change-capture-retained-wal")),
            m.alarm("ChangeCaptureStalled", metric=age, threshold=age_bound, comparison=GT,
                    treat_missing_data=cw.TreatMissingData.BREACHING,
                    runbook=Runbook(f"No new change segment for more than {age_bound} s (or the capture reports "
                                    "nothing): changes since then exist only in Supabase.",
                                    "Check the ECS service's task and the db-stream log group; take a dump "
                                    "(tavari-dr db backup) if it stays down.", "change-capture-stalled")),
            m.alarm("ChangeCaptureBaseReset", metric=resets, threshold=1, comparison=GE,
                    treat_missing_data=not_breaching,
                    runbook=Runbook("The capture started a new base (its slot was lost or dropped past the WAL bound, "
                                    "or the schema changed): no point between the last base and now is restorable "
                                    "from segments alone.",
                                    "Confirm the fresh dump it forced finished (tavari-dr db list); find why the "
                                    "slot went.", "change-capture-base-reset")),
            m.alarm("ChangeCaptureFailed",
                    metric=_metric(metrics.JOB_FAILED, {"Job": metrics.DB_STREAM}, "Sum", five), threshold=1,
                    comparison=GE, treat_missing_data=not_breaching,
                    runbook=Runbook("The continuous capture stopped on a fatal error (ECS restarts it).",
                                    "Read the db-stream log group for the error; fix the connection or the slot.",
                                    "change-capture-failed")),
            m.alarm("ChangeCaptureCoverageGap", metric=gaps, threshold=1, comparison=GE,
                    treat_missing_data=not_breaching,
                    runbook=Runbook("The source holds a table (or large objects) the capture's base did not capture: "
                                    "created after the base, or owned by a role the capture's is not a member of.",
                                    "Read the db-stream log for the tables named; the capture published what it may "
                                    "and started a new base with a fresh dump.", "change-capture-coverage-gap")),
            m.alarm("ChangeCaptureSlotHeadroom", metric=fraction, threshold=0.5, comparison=GT,
                    treat_missing_data=not_breaching,
                    runbook=Runbook("The capture's slot holds more than half the WAL the server's own "
                                    "max_slot_wal_keep_size allows: past it the server invalidates the slot.",
                                    "Get the capture consuming again; at 80 % of the server's bound it drops the "
                                    "slot itself and starts a new base with a fresh dump.",
                                    "change-capture-slot-headroom")),
            m.alarm("ChangeChainBroken", metric=_metric(metrics.CHANGE_CHAIN_BROKEN, CHANGES, "Maximum", DAY),
                    threshold=0, comparison=GT, treat_missing_data=not_breaching,
                    runbook=Runbook("The weekly change_chain check found a retained dump's change log broken: a "
                                    "segment missing, overlapping, tampered with, signed with another key, or of "
                                    "another source. A restore --to past it is refused.",
                                    "Read the change_chain report (it names the first broken segment); see the "
                                    "runbook before any restore --to.", "change-chain-broken")),
            m.alarm("RestoreTestWithLogFailed",
                    metric=_metric(metrics.RESTORE_TEST_WITH_LOG_FAILED, {"Source": "database"}, "Maximum", DAY),
                    threshold=0, comparison=GT, treat_missing_data=not_breaching,
                    runbook=Runbook("The monthly restore test of the newest dump plus its change log (to the newest "
                                    "segment) failed or could not run: a point-in-time restore may not work.",
                                    "Read the db_restore_test report: the failed check names the table, sequence or "
                                    "constraint.", "restore-test-with-log-failed")),
            m.alarm("ChangeCaptureNotRunning", metric=running, threshold=1, comparison=LT, evaluation_periods=2,
                    treat_missing_data=cw.TreatMissingData.BREACHING,
                    runbook=Runbook("The continuous capture's ECS service has had no running task for 10 minutes.",
                                    "Read the service's events (stopped reason) and the db-stream log group.",
                                    "change-capture-not-running")),
        ]
        self.dashboard.add_widgets(
            cw.GraphWidget(title="Capture lag and newest segment age (s)", left=[lag, age], width=6),
            cw.GraphWidget(title="Capture: WAL retained on the source (bytes; fraction of the server's bound)",
                           left=[wal], right=[fraction], width=6),
            cw.GraphWidget(title="Capture: segments written / new bases", left=[written, resets], width=6),
            cw.GraphWidget(title="Capture: running tasks", left=[running], width=6))
        self.dashboard.add_widgets(cw.AlarmStatusWidget(title="Continuous capture", alarms=alarms, width=24))
        return alarms

    def watch_exports(self, *, authorizer: lambda_.IFunction, api: lambda_.IFunction, api_timeout: Duration,
                      worker: lambda_.IFunction, worker_timeout: Duration,
                      worker_dead_letters: sqs.IQueue | None) -> None:
        """The account export API: the authorizer (errors, throttles, unreachable signing keys), both
        functions, the worker's DLQ, and every failed export."""
        self._authorizer_alarms(authorizer)
        self.monitoring.watch_function("ExportApi", api, timeout=api_timeout, what="The export API")
        self.monitoring.watch_function("ExportWorker", worker, timeout=worker_timeout, what="The export worker")
        if worker_dead_letters is not None:
            self.monitoring.watch_dead_letters("ExportDeadLetters", worker_dead_letters, what="An export job")
        self.monitoring.alarm(
            "ExportFailed", metric=_metric(metrics.EXPORT_FAILED, None, "Sum", Duration.hours(1)), threshold=0,
            comparison=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            runbook=Runbook("An account export (GDPR/CCPA request) failed; the user was told to retry.",
                            "Read the export functions' logs by export ID; export by hand with tavari-dr export "
                            "account if the user cannot wait.", "export-failed"))

    def watch_inventory(self, watch: FeedWatch, settings: InventoryConfig) -> None:
        """The inventory and change feed of the invoice bucket (ADR 0022): the newest inventory report too old,
        the feed silent although the canary writes, Firehose failing to deliver, the feed rules failing or
        parking events in their dead-letter queue, and the canary itself failing or not running."""
        every = watch.canary_every
        # Two canary periods: every window holds a report while the canary runs (its own alarms say when not).
        late_period = Duration.minutes(min(2 * int(every.to_minutes()), 24 * 60))
        self.monitoring.alarm(
            "InventoryLate", metric=_metric(metrics.INVENTORY_AGE_HOURS, None, "Maximum", late_period),
            threshold=settings.late_after_hours, comparison=GT, treat_missing_data=cw.TreatMissingData.BREACHING,
            runbook=Runbook(f"The invoice bucket's newest S3 Inventory report is older than "
                            f"{settings.late_after_hours} h (or no age was reported).",
                            "Check the inventory configuration and the restore-ops bucket and key policies; plan "
                            "restores by listing until a report arrives.", "inventory-late"))
        stream = {"DeliveryStreamName": watch.delivery_stream_name}
        self.monitoring.alarm(
            "FeedSilent", metric=cw.Metric(namespace="AWS/Firehose", metric_name="DeliveryToS3.Records",
                                           dimensions_map=stream, statistic="Sum",
                                           period=Duration.minutes(settings.feed_silence_minutes)),
            threshold=1, comparison=LT, treat_missing_data=cw.TreatMissingData.BREACHING,
            runbook=Runbook(f"No change-feed record reached the restore-ops bucket for "
                            f"{settings.feed_silence_minutes} minutes, although the canary writes every "
                            f"{int(every.to_minutes())}.",
                            "Check the bucket's EventBridge notifications, the feed rules and the delivery stream; "
                            "until fixed, plan restores by listing.", "feed-silent"))
        self.monitoring.alarm(
            "FeedDeliveryFailed", metric=cw.Metric(namespace="AWS/Firehose", metric_name="DeliveryToS3.Success",
                                                   dimensions_map=stream, statistic="Minimum",
                                                   period=Duration.minutes(5)),
            threshold=1, comparison=LT, treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            runbook=Runbook("Firehose failed to write change-feed records to the restore-ops bucket (it retries for "
                            "24 h, then writes them under feed-errors/).",
                            "Read the delivery stream's log group; check its role and the restore-ops key.",
                            "feed-delivery-failed"))
        failed = cw.MathExpression(
            expression=" + ".join(f"FILL(r{i}, 0)" for i in range(len(watch.rule_names))),
            using_metrics={f"r{i}": cw.Metric(namespace="AWS/Events", metric_name="FailedInvocations",
                                              dimensions_map={"RuleName": name}, statistic="Sum")
                           for i, name in enumerate(watch.rule_names)},
            period=Duration.minutes(5), label="Change-feed rules: failed invocations")
        self.monitoring.alarm(
            "FeedRuleFailures", metric=failed, threshold=0, comparison=GT,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            runbook=Runbook("An EventBridge rule of the change feed could not put an event to Firehose.",
                            "Check the rules' role and the delivery stream; parked events wait in the feed's "
                            "dead-letter queue.", "feed-delivery-failed"))
        self.monitoring.alarm(
            "FeedDeadLetters", metric=watch.dead_letters.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(5), statistic="Max"),
            threshold=0, comparison=GT, treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            runbook=Runbook("Change-feed events wait in the feed's dead-letter queue: the feed has a gap.",
                            "Fix delivery, then put the parked events to the delivery stream; a restore planned "
                            "across the gap must list instead.", "feed-dead-letters"))
        canary = watch.canary.function
        self.monitoring.alarm(
            "InventoryCanaryErrors", metric=canary.metric_errors(period=Duration.minutes(5), statistic="Sum"),
            threshold=0, comparison=GT, treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            runbook=Runbook("The inventory canary failed: it could not write under _canary/ or read the newest "
                            "inventory manifest.", "Read its log group; check its role and both keys.",
                            "inventory-canary"))
        window = Duration.seconds(every.to_seconds() + CANARY_GRACE.to_seconds())
        self.monitoring.alarm(
            "InventoryCanaryMissingRun",
            metric=_metric(metrics.JOB_SUCCEEDED, {"Job": metrics.INVENTORY_CANARY}, "Sum", window),
            threshold=1, comparison=LT, treat_missing_data=cw.TreatMissingData.BREACHING,
            runbook=Runbook(f"The inventory canary has not succeeded for {int(window.to_minutes())} minutes: a quiet "
                            "bucket no longer feeds, and the inventory's age is not judged.",
                            "Check its schedule and log group; run it by hand.", "inventory-canary"))

    def _authorizer_alarms(self, authorizer: lambda_.IFunction) -> None:
        """A failing or throttled authorizer answers 500/503 to every export request, and one that
        cannot fetch the project's JWKS refuses every ES256/RS256 token: neither is a refused token
        (those are the API working), so each alarms at once."""
        five_minutes = Duration.minutes(5)
        for name, metric, what, action in (
                ("ExportAuthorizerErrors", authorizer.metric_errors(period=five_minutes, statistic="Sum"),
                 "The export API's token authorizer raised an error; export requests fail with 500.",
                 "Read the authorizer's log group for the traceback (an import error fails every request)."),
                ("ExportAuthorizerThrottles", authorizer.metric_throttles(period=five_minutes, statistic="Sum"),
                 "The export API's token authorizer was throttled; export requests fail.",
                 "Check the account's Lambda concurrency; raise the quota."),
                ("ExportSigningKeysUnavailable",
                 _metric(metrics.EXPORT_SIGNING_KEYS_UNAVAILABLE, None, "Sum", five_minutes),
                 "The export authorizer could not fetch the Supabase project's signing keys (JWKS); "
                 "ES256/RS256 tokens are refused with 401.",
                 "Check that <SUPABASE_URL>/auth/v1/.well-known/jwks.json answers and the SUPABASE_URL secret.")):
            self.monitoring.alarm(
                name, metric=metric, threshold=0, comparison=GT, treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                runbook=Runbook(what, action, "export-authorizer"))

    def _backup_alarms(self, settings: MonitoringConfig) -> None:
        m = self.monitoring
        for source in ("supabase", "offsite"):
            m.alarm(
                # The daily monitor reports once a day: a one-day period, so a day without a report
                # (the monitor did not run) breaches, and any day with a report judges its value.
                f"BackupAge{source.capitalize()}", metric=_metric(metrics.BACKUP_AGE_HOURS, {"Source": source},
                                                                  "Maximum", DAY),
                threshold=settings.rpo_hours, comparison=GT,
                treat_missing_data=cw.TreatMissingData.BREACHING, evaluation_periods=1,
                runbook=Runbook(f"The newest {source} backup is older than the {settings.rpo_hours} h RPO "
                                "(or no age was reported).",
                                "Check the backup job and the daily monitor; take a manual backup.", "backup-age"))
        size = _metric(metrics.BACKUP_SIZE_BYTES, {"Source": "offsite"}, "Minimum", DAY)
        m.alarm("BackupSizeFloor", metric=size, threshold=settings.backup_size_floor_bytes, comparison=LT,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                runbook=Runbook(f"The newest off-site dump is smaller than {settings.backup_size_floor_bytes} bytes.",
                                "Verify the dump (tavari-dr db verify) and the source database.", "backup-size"))
        drop = cw.MathExpression(
            expression="IF(s - DIFF(s) > 0, -100 * DIFF(s) / (s - DIFF(s)), 0)", using_metrics={"s": size},
            period=DAY, label="Backup size change vs previous (%)")
        m.alarm("BackupSizeDrop", metric=drop, threshold=settings.backup_size_drop_percent, comparison=GT,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                runbook=Runbook(f"The newest off-site dump shrank by more than {settings.backup_size_drop_percent} % "
                                "against the previous one.",
                                "Compare the manifests' row counts; look for deleted data.", "backup-size-drop"))
        m.alarm("BackupTampered", metric=_metric(metrics.BACKUP_TAMPERED, None, "Sum", Duration.minutes(5)),
                threshold=0, comparison=GT, treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                runbook=Runbook("A database backup was overwritten, hidden by a delete marker, planted, or its "
                                "manifest does not verify with the signing key.",
                                "Treat as a security incident: tavari-dr db list shows what; do not restore from it "
                                "without --manifest-version.", "backup-tampered"))
        m.alarm("ErasureLedgerFailed", metric=_metric(metrics.ERASURE_LEDGER_FAILED, None, "Sum", Duration.minutes(5)),
                threshold=0, comparison=GT, treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                runbook=Runbook("The erasure ledger could not be read or re-applied: a restored database may hold "
                                "the rows of erased accounts.",
                                "Do not put the restored database in service; fix the ledger or the connection, "
                                "then run tavari-dr erasure apply --target-url.", "erasure-ledger-failed"))
        m.alarm("SupabaseConfigSnapshotFailed",
                metric=_metric(metrics.SUPABASE_CONFIG_SNAPSHOT_FAILED, None, "Sum", DAY),
                threshold=0, comparison=GT, treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                runbook=Runbook("The nightly backup could not snapshot the Supabase project's configuration (the "
                                "dump itself was taken).",
                                "Check the SUPABASE_ACCESS_TOKEN secret and the Management API; run tavari-dr db "
                                "backup --supabase-config by hand.", "supabase-config-snapshot-failed"))
        m.alarm("HeartbeatPingFailed", metric=_metric(metrics.HEARTBEAT_PING_FAILED, None, "Sum", DAY),
                threshold=0, comparison=GT, treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                runbook=Runbook("Every check passed but the daily monitor could not ping the heartbeat URL: the "
                                "service outside AWS will report this environment as down.",
                                "Check the HEARTBEAT_URL secret and the service's status; ping it by hand once "
                                "fixed.", "heartbeat"))
        m.alarm("CheckFailed", metric=_metric(metrics.CHECK_FAILED, None, "Sum", Duration.hours(1)),
                threshold=0, comparison=GT, treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                runbook=Runbook("A backup verification check failed or could not run.",
                                "Read the check's report in the reports bucket; run tavari-dr verify.",
                                "check-failed"))

    def _storage_alarms(self, settings: MonitoringConfig, bucket: s3.IBucket) -> None:
        for name, metric_name, storage_type in (("Size", "BucketSizeBytes", "StandardStorage"),
                                                ("ObjectCount", "NumberOfObjects", "AllStorageTypes")):
            daily = cw.Metric(namespace="AWS/S3", metric_name=metric_name, statistic="Average", period=DAY,
                              dimensions_map={"BucketName": bucket.bucket_name, "StorageType": storage_type})
            growth = cw.MathExpression(
                expression="IF(m - DIFF(m) > 0, 100 * DIFF(m) / (m - DIFF(m)), 0)", using_metrics={"m": daily},
                period=DAY, label=f"Invoice bucket {metric_name} growth (%)")
            self.monitoring.alarm(
                f"InvoiceBucket{name}Growth", metric=growth, threshold=settings.storage_growth_percent,
                comparison=GT, treat_missing_data=cw.TreatMissingData.NOT_BREACHING, notify_ok=False,
                runbook=Runbook(f"The invoice bucket's {metric_name} grew by more than "
                                f"{settings.storage_growth_percent} % in a day.",
                                "Look for runaway writes or a mass overwrite (data breach scenario).",
                                "storage-growth"))

    def _replication_alarms(self, settings: MonitoringConfig, r: ReplicationWatch) -> None:
        dims = {"SourceBucket": r.source_bucket, "DestinationBucket": r.destination_bucket, "RuleId": r.rule_id}
        m = self.monitoring
        m.alarm("ReplicationFailed",
                metric=cw.Metric(namespace="AWS/S3", metric_name="OperationsFailedReplication", statistic="Sum",
                                 period=Duration.minutes(5), dimensions_map=dims),
                threshold=0, comparison=GT, treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                runbook=Runbook("Objects failed to replicate to the DR replica.",
                                "Check the replication role and the replica key policy; re-replicate with "
                                "S3 Batch Replication.", "replication-failed"))
        m.alarm("ReplicationLatency",
                metric=cw.Metric(namespace="AWS/S3", metric_name="ReplicationLatency", statistic="Maximum",
                                 period=Duration.minutes(5), dimensions_map=dims),
                threshold=settings.replication_latency_seconds, comparison=GT, evaluation_periods=3,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                runbook=Runbook(f"Replication lags more than {settings.replication_latency_seconds} s.",
                                "Check BytesPendingReplication and the AWS Health dashboard.",
                                "replication-latency"))

    def _dashboard(self, environment: str, bucket: s3.IBucket, replication: ReplicationWatch | None) -> cw.Dashboard:
        def graph(title: str, *series: cw.IMetric, width: int = 8) -> cw.GraphWidget:
            return cw.GraphWidget(title=title, left=list(series), width=width)

        ages = [_metric(metrics.BACKUP_AGE_HOURS, {"Source": s}, "Maximum", Duration.hours(1))
                for s in ("supabase", "offsite")]
        s3_metric = {"namespace": "AWS/S3", "statistic": "Average", "period": DAY}
        rows: list[list[cw.IWidget]] = [
            [graph("Backup age (hours)", *ages),
             graph("Off-site backup size", _metric(metrics.BACKUP_SIZE_BYTES, {"Source": "offsite"}, "Maximum", DAY)),
             graph("Checks passed / failed", _metric(metrics.CHECK_PASSED, None, "Sum", Duration.hours(1)),
                   _metric(metrics.CHECK_FAILED, None, "Sum", Duration.hours(1)))],
            [graph("Restore test duration (s)",
                   *(_metric(metrics.RESTORE_TEST_DURATION_SECONDS, {"Source": s}, "Maximum", DAY)
                     for s in ("database", "bucket"))),
             graph("Alert router: duration and errors", self.router.function.metric_duration(),
                   self.router.function.metric_errors()),
             graph("Alerts delivered", _metric(metrics.ALERTS_DELIVERED, None, "Sum", Duration.hours(1)))],
            [graph("Invoice bucket size (bytes)",
                   cw.Metric(metric_name="BucketSizeBytes", **s3_metric,
                             dimensions_map={"BucketName": bucket.bucket_name, "StorageType": "StandardStorage"}),
                   width=12),
             graph("Invoice bucket objects",
                   cw.Metric(metric_name="NumberOfObjects", **s3_metric,
                             dimensions_map={"BucketName": bucket.bucket_name, "StorageType": "AllStorageTypes"}),
                   width=12)],
        ]
        if replication is not None:
            dims = {"SourceBucket": replication.source_bucket, "DestinationBucket": replication.destination_bucket,
                    "RuleId": replication.rule_id}
            rows.append([
                graph("Replication latency (s)", cw.Metric(namespace="AWS/S3", metric_name="ReplicationLatency",
                                                          statistic="Maximum", dimensions_map=dims), width=12),
                graph("Replication failures", cw.Metric(namespace="AWS/S3", metric_name="OperationsFailedReplication",
                                                       statistic="Sum", dimensions_map=dims), width=12),
            ])
        rows.append([cw.AlarmStatusWidget(title="Every alarm", alarms=self.monitoring.alarms, width=24)])
        return cw.Dashboard(self, "Dashboard", widgets=rows,
                            default_interval=Duration.days(14), period_override=cw.PeriodOverride.INHERIT)


def segment_age_bound(segment_seconds: int) -> tuple[int, Duration]:
    """The newest segment's age past which the capture is stalled: two segment periods (one closing late)
    and a minute for the upload; and the alarm's period, at least five minutes and never shorter than the
    bound, so a healthy capture publishes in every period and an empty one means a dead one."""
    return (metrics.capture_stalled_after_seconds(segment_seconds),
            Duration.seconds(metrics.capture_stall_period_seconds(segment_seconds)))


def _metric(name: str, dimensions: dict[str, str] | None, statistic: str, period: Duration) -> cw.Metric:
    return cw.Metric(namespace=metrics.NAMESPACE, metric_name=name, dimensions_map=dimensions,
                     statistic=statistic, period=period)

