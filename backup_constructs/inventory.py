"""Planning bucket restores without listing (ADR 0022, docs/formats/inventory-and-feed.md): a daily S3
Inventory of every version of the invoice bucket and an ordered change feed of every write and delete,
both delivered to the restore-ops bucket, with an Athena workgroup and Glue tables over them and a canary
so that a quiet bucket still feeds."""

from __future__ import annotations

from dataclasses import dataclass

import jsii
from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_athena as athena
from aws_cdk import aws_events as events
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from backup_constructs.nag import acknowledge, acknowledge_wildcards, grant_policy
from backup_constructs.python_function import PythonFunction
from backup_constructs.scheduled_task import acknowledge_schedule_role, schedule_role
from backup_constructs.secure_bucket import SecureBucket
from tavari_dr.core import guardrails, metrics
from tavari_dr.core.config import InventoryConfig
from tavari_dr.core.outputs import (
    ATHENA_RESULTS_KEY_PREFIX,
    CANARY_KEY_PREFIX,
    FEED_ERRORS_KEY_PREFIX,
    FEED_KEY_PREFIX,
    INVENTORY_CONFIGURATION_ID,
    INVENTORY_DESTINATION_PREFIX,
    inventory_key_prefix,
)

# S3 Inventory's documented OptionalFields this contract asks for (no checksum values exist among them).
OPTIONAL_FIELDS = ("Size", "LastModifiedDate", "ETag", "StorageClass", "IsMultipartUploaded")
# S3's documented Athena schema of a Parquet inventory, for those fields.
INVENTORY_COLUMNS = (("bucket", "string"), ("key", "string"), ("version_id", "string"), ("is_latest", "boolean"),
                     ("is_delete_marker", "boolean"), ("size", "bigint"), ("last_modified_date", "timestamp"),
                     ("e_tag", "string"), ("storage_class", "string"), ("is_multipart_uploaded", "boolean"))
FEED_COLUMNS = (("event_id", "string"), ("event_time", "string"), ("bucket", "string"), ("key", "string"),
                ("version_id", "string"), ("sequencer", "string"), ("kind", "string"), ("size", "bigint"),
                ("etag", "string"))
# kind -> the content filter of its rule (EventBridge event message structure, S3 User Guide).
KINDS = {
    "put": {"detail_type": ["Object Created"]},
    "delete_marker": {"detail_type": ["Object Deleted"], "deletion_type": "Delete Marker Created"},
    "permanent_delete": {"detail_type": ["Object Deleted"], "deletion_type": "Permanently Deleted"},
}
ATHENA_RESULTS_DAYS = 7
FEED_BUFFER = Duration.minutes(5)
# EventBridge's most patient retry policy: a record Firehose refuses for a day goes to the dead-letter queue.
RULE_MAX_EVENT_AGE = Duration.hours(24)
CANARY_TIMEOUT = Duration.minutes(1)
PARTITION_PROJECTION_START = "2026-01-01"
# The canary's objects (and the delete markers their expiry leaves) last a day in the invoice bucket and its replica.
CANARY_SHORT_LIVED = {CANARY_KEY_PREFIX: Duration.days(1)}


def prefix_retention(settings: InventoryConfig) -> dict[str, Duration]:
    """What the restore-ops bucket keeps for how long besides its restore jobs (RestoreOps.also_keeps)."""
    feed = Duration.days(settings.feed_retention_days)
    return {f"{INVENTORY_DESTINATION_PREFIX}/": Duration.days(settings.retention_days), FEED_KEY_PREFIX: feed,
            FEED_ERRORS_KEY_PREFIX: feed, ATHENA_RESULTS_KEY_PREFIX: Duration.days(ATHENA_RESULTS_DAYS)}


# Feed field -> where its value is in the EventBridge event (docs/formats/inventory-and-feed.md, §2).
FEED_PATHS = {"event_id": "$.id", "event_time": "$.time", "bucket": "$.detail.bucket.name",
              "key": "$.detail.object.key", "version_id": "$.detail.object.version-id",
              "sequencer": "$.detail.object.sequencer", "size": "$.detail.object.size",
              "etag": "$.detail.object.etag"}
NOT_IN_DELETES = ("size", "etag")


def feed_transformer(kind: str) -> dict[str, object]:
    """The input transformer of one kind's rule: one flat JSON line. Every variable stands unquoted, as a
    whole JSON value, so EventBridge inserts strings quoted and escaped (a key may hold quotes or
    backslashes); the deletes carry no size or etag, written as null so every line has every field."""
    deletes = kind != "put"
    paths = {field: path for field, path in FEED_PATHS.items() if not (deletes and field in NOT_IN_DELETES)}
    values = [f'"{field}":<{field}>' if field in paths else f'"{field}":null' for field in FEED_PATHS]
    values.insert(list(FEED_PATHS).index("sequencer") + 1, f'"kind":"{kind}"')
    return {"InputPathsMap": paths, "InputTemplate": "{" + ",".join(values) + "}"}


@jsii.implements(events.IRuleTarget)
class _FirehoseWithDeadLetters:
    """A Firehose target with what CDK's FirehoseDeliveryStream target lacks: a dead-letter queue and the
    retry policy, so an event Firehose refuses is kept (and alarmed) rather than dropped."""

    def __init__(self, stream: firehose.CfnDeliveryStream, role: iam.IRole, dead_letters: sqs.IQueue) -> None:
        self.stream, self.role, self.dead_letters = stream, role, dead_letters

    def bind(self, rule: events.IRule, _id: str | None = None) -> events.RuleTargetConfig:
        # The queue policy names each rule: EventBridge sends only on behalf of these rules.
        self.dead_letters.add_to_resource_policy(iam.PolicyStatement(
            principals=[iam.ServicePrincipal("events.amazonaws.com")], actions=["sqs:SendMessage"],
            resources=[self.dead_letters.queue_arn], conditions={"ArnEquals": {"aws:SourceArn": rule.rule_arn}}))
        return events.RuleTargetConfig(
            arn=self.stream.attr_arn, role=self.role,
            dead_letter_config=events.CfnRule.DeadLetterConfigProperty(arn=self.dead_letters.queue_arn),
            retry_policy=events.CfnRule.RetryPolicyProperty(
                maximum_event_age_in_seconds=int(RULE_MAX_EVENT_AGE.to_seconds()), maximum_retry_attempts=185))


@dataclass(frozen=True)
class FeedWatch:
    """What the Monitoring stack's inventory alarms are keyed by."""

    delivery_stream_name: str
    rule_names: tuple[str, ...]
    dead_letters: sqs.IQueue
    canary: PythonFunction
    canary_every: Duration


class InvoiceInventory(Construct):
    """S3 Inventory, the change feed, Athena and the canary of the invoice bucket.

    bucket: the invoice bucket (created or adopted by this stack: its CfnBucket gets the inventory
        configuration and EventBridge notifications). key: its KMS key (the canary writes through it).
    ops: the restore-ops bucket both are delivered to (its key encrypts them).
    settings: the ``inventory`` section. retain: the environment keeps its data (feed versions too).
    adopted_bucket_name: the invoice bucket's name where it is fixed (``invoice_bucket.existing_bucket_name``).
    log_key / log_retention / removal_policy: for the canary's and Firehose's log groups.

    feed_watch: the names and resources the alarms (Monitoring stack) need.
    """

    def __init__(self, scope: Construct, construct_id: str, *, bucket: s3.Bucket, key: kms.IKey, ops: SecureBucket,
                 settings: InventoryConfig, retain: bool, log_key: kms.IKey, log_retention: logs.RetentionDays,
                 removal_policy: RemovalPolicy, adopted_bucket_name: str | None = None) -> None:
        super().__init__(scope, construct_id)
        self.inventory_prefix = inventory_key_prefix(bucket.bucket_name)
        self._inventory(bucket, ops, adopted_bucket_name)
        stream, writer = self._delivery_stream(ops, log_key, log_retention, removal_policy)
        # Append-only: nobody but Firehose writes the feed, nobody deletes it (tavari_dr.core.guardrails).
        for statement in guardrails.feed_statements(ops.bucket.bucket_arn, (FEED_KEY_PREFIX, FEED_ERRORS_KEY_PREFIX),
                                                    writer_arn=writer.role_arn, retain=retain):
            ops.bucket.add_to_resource_policy(iam.PolicyStatement.from_json(statement))
        self.dead_letters = sqs.Queue(
            self, "FeedDeadLetters", encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True,
            retention_period=Duration.days(14), removal_policy=removal_policy)
        acknowledge(self.dead_letters, "This queue is itself the dead-letter queue of the feed rules.",
                    "AwsSolutions-SQS3")
        put_role = iam.Role(self, "FeedRulesRole", assumed_by=iam.ServicePrincipal("events.amazonaws.com"),
                            description="EventBridge rules of the invoice bucket's change feed: put to Firehose")
        put_role.add_to_principal_policy(iam.PolicyStatement(
            actions=["firehose:PutRecord", "firehose:PutRecordBatch"], resources=[stream.attr_arn]))
        grant_policy(put_role)  # inline, on its one role: it puts records to its one delivery stream only
        self.rules = []
        for kind, match in KINDS.items():
            detail: dict[str, object] = {"bucket": {"name": [bucket.bucket_name]}}
            if "deletion_type" in match:
                detail["deletion-type"] = [match["deletion_type"]]
            rule = events.Rule(
                self, "Feed" + "".join(p.capitalize() for p in kind.split("_")),
                description=f"Change feed of the invoice bucket: {kind} (docs/formats/inventory-and-feed.md)",
                event_pattern=events.EventPattern(source=["aws.s3"], detail_type=match["detail_type"],
                                                  detail=detail))
            rule.add_target(_FirehoseWithDeadLetters(stream, put_role, self.dead_letters))
            # Written as CloudFormation takes it: CDK's RuleTargetInput drops a null value, and a line
            # without size or etag is not the documented record.
            rule.node.default_child.add_property_override(  # type: ignore[union-attr]
                "Targets.0.InputTransformer", feed_transformer(kind))
            self.rules.append(rule)
        self.workgroup, self.database = self._athena(bucket, ops, removal_policy, settings)
        self.canary = self._canary(bucket, key, ops, settings, log_key, log_retention, removal_policy)
        self.feed_watch = FeedWatch(delivery_stream_name=stream.ref, rule_names=tuple(r.rule_name for r in self.rules),
                                    dead_letters=self.dead_letters, canary=self.canary,
                                    canary_every=Duration.minutes(settings.canary_minutes))

    def _inventory(self, bucket: s3.Bucket, ops: SecureBucket, bucket_name: str | None) -> None:
        """The daily inventory of every version (L1: CloudFormation's inventory destination has no encryption
        setting, so the reports take the restore-ops bucket's default SSE-KMS), and EventBridge notifications
        on the bucket (L1 too: CDK's eventBridgeEnabled adds a custom-resource Lambda for it)."""
        stack = Stack.of(self)
        cfn: s3.CfnBucket = bucket.node.default_child  # type: ignore[assignment]
        cfn.inventory_configurations = [s3.CfnBucket.InventoryConfigurationProperty(
            id=INVENTORY_CONFIGURATION_ID, enabled=True, included_object_versions="All", schedule_frequency="Daily",
            optional_fields=list(OPTIONAL_FIELDS),
            destination=s3.CfnBucket.DestinationProperty(
                bucket_arn=ops.bucket.bucket_arn, format="Parquet", prefix=INVENTORY_DESTINATION_PREFIX,
                bucket_account_id=stack.account))]
        cfn.notification_configuration = s3.CfnBucket.NotificationConfigurationProperty(
            event_bridge_configuration=s3.CfnBucket.EventBridgeConfigurationProperty(event_bridge_enabled=True))
        # S3 User Guide, "Granting permissions for S3 Inventory": the destination lets S3 write, for this
        # source bucket and account only, and the destination's key lets S3 encrypt for the same.
        source = {"ArnLike": {"aws:SourceArn": bucket.bucket_arn}, "StringEquals": {"aws:SourceAccount": stack.account}}
        ops.bucket.add_to_resource_policy(iam.PolicyStatement(
            sid="AllowS3InventoryDelivery", principals=[iam.ServicePrincipal("s3.amazonaws.com")],
            actions=["s3:PutObject"], resources=[ops.bucket.arn_for_objects(f"{INVENTORY_DESTINATION_PREFIX}/*")],
            conditions={"ArnLike": source["ArnLike"], "StringEquals": {
                **source["StringEquals"], "s3:x-amz-acl": "bucket-owner-full-control"}}))
        # The key policy names the source bucket only where its name is fixed (an adopted bucket): a
        # generated name would make the key depend on the invoice bucket, which depends on the restore-ops
        # bucket (its inventory destination), which depends on the key. aws:SourceAccount holds everywhere.
        adopted = bucket_name is not None
        ops.key.add_to_resource_policy(iam.PolicyStatement(
            sid="AllowS3InventoryEncryption", principals=[iam.ServicePrincipal("s3.amazonaws.com")],
            actions=["kms:GenerateDataKey"], resources=["*"],
            conditions={"StringEquals": {"aws:SourceAccount": stack.account},
                        **({"ArnLike": {"aws:SourceArn": f"arn:{stack.partition}:s3:::{bucket_name}"}}
                           if adopted else {})}))

    def _delivery_stream(self, ops: SecureBucket, log_key: kms.IKey, log_retention: logs.RetentionDays,
                         removal_policy: RemovalPolicy) -> tuple[firehose.CfnDeliveryStream, iam.Role]:
        """Firehose → feed/dt=<day>/, GZIP, one JSON object a line (AppendDelimiterToRecord), SSE-KMS with the
        restore-ops key; what it cannot deliver goes to feed-errors/."""
        stack = Stack.of(self)
        log_group = logs.LogGroup(self, "FeedLogs", retention=log_retention, encryption_key=log_key,
                                  removal_policy=removal_policy)
        log_stream = logs.LogStream(self, "FeedLogStream", log_group=log_group, removal_policy=removal_policy)
        role = iam.Role(self, "FeedDeliveryRole", assumed_by=iam.ServicePrincipal(
            "firehose.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": stack.account}}),
            description="Firehose delivery of the invoice bucket's change feed into the restore-ops bucket")
        prefixes = (FEED_KEY_PREFIX, FEED_ERRORS_KEY_PREFIX)
        # The S3 destination's documented permissions (Firehose Developer Guide, "Grant Firehose access to an
        # Amazon S3 destination"), objects limited to the two prefixes.
        role.add_to_principal_policy(iam.PolicyStatement(
            actions=["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
            resources=[ops.bucket.bucket_arn]))
        role.add_to_principal_policy(iam.PolicyStatement(
            actions=["s3:AbortMultipartUpload", "s3:GetObject", "s3:PutObject"],
            resources=[ops.bucket.arn_for_objects(f"{p}*") for p in prefixes]))
        # Through S3 only. With the bucket's S3 Bucket Key on, S3 asks KMS with the bucket's ARN as the
        # encryption context (the object's ARN without it): both are allowed, the S3 grants above limit where.
        role.add_to_principal_policy(iam.PolicyStatement(
            actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=[ops.key.key_arn],
            conditions={"StringEquals": {"kms:ViaService": f"s3.{stack.region}.amazonaws.com"},
                        "StringLike": {"kms:EncryptionContext:aws:s3:arn": [
                            ops.bucket.bucket_arn, *(ops.bucket.arn_for_objects(f"{p}*") for p in prefixes)]}}))
        log_group.grant_write(role)
        acknowledge_wildcards(grant_policy(role), "Firehose writes new, uniquely named objects under feed/ and "
                              "feed-errors/ of the restore-ops bucket (and its log streams); names are Firehose's.",
                              select=lambda resource: not resource.endswith(":*") or ":log-group:" in resource)
        stream = firehose.CfnDeliveryStream(
            self, "Feed", delivery_stream_type="DirectPut",
            delivery_stream_encryption_configuration_input=firehose.CfnDeliveryStream
            .DeliveryStreamEncryptionConfigurationInputProperty(key_type="AWS_OWNED_CMK"),
            extended_s3_destination_configuration=firehose.CfnDeliveryStream.ExtendedS3DestinationConfigurationProperty(
                bucket_arn=ops.bucket.bucket_arn, role_arn=role.role_arn,
                prefix=f"{FEED_KEY_PREFIX}dt=!{{timestamp:yyyy-MM-dd}}/",
                error_output_prefix=f"{FEED_ERRORS_KEY_PREFIX}!{{firehose:error-output-type}}/"
                                    "dt=!{timestamp:yyyy-MM-dd}/",
                buffering_hints=firehose.CfnDeliveryStream.BufferingHintsProperty(
                    interval_in_seconds=int(FEED_BUFFER.to_seconds()), size_in_m_bs=64),
                compression_format="GZIP",
                encryption_configuration=firehose.CfnDeliveryStream.EncryptionConfigurationProperty(
                    kms_encryption_config=firehose.CfnDeliveryStream.KMSEncryptionConfigProperty(
                        awskms_key_arn=ops.key.key_arn)),
                processing_configuration=firehose.CfnDeliveryStream.ProcessingConfigurationProperty(
                    enabled=True, processors=[firehose.CfnDeliveryStream.ProcessorProperty(
                        type="AppendDelimiterToRecord")]),
                cloud_watch_logging_options=firehose.CfnDeliveryStream.CloudWatchLoggingOptionsProperty(
                    enabled=True, log_group_name=log_group.log_group_name,
                    log_stream_name=log_stream.log_stream_name)))
        # The role's policy must exist before Firehose first assumes the role.
        stream.node.add_dependency(role)
        return stream, role

    def _athena(self, bucket: s3.Bucket, ops: SecureBucket, removal_policy: RemovalPolicy,
                settings: InventoryConfig) -> tuple[athena.CfnWorkGroup, glue.CfnDatabase]:
        stack = Stack.of(self)
        base = stack.stack_name.lower().replace("-", "_")
        ops_url = f"s3://{ops.bucket.bucket_name}"
        workgroup = athena.CfnWorkGroup(
            self, "Workgroup", name=f"{stack.stack_name}-inventory",
            description="Planning invoice-bucket restores from the inventory and the change feed",
            recursive_delete_option=removal_policy == RemovalPolicy.DESTROY,
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                enforce_work_group_configuration=True, publish_cloud_watch_metrics_enabled=True,
                bytes_scanned_cutoff_per_query=settings.athena_scan_limit_gb * 1024 ** 3,
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=f"{ops_url}/{ATHENA_RESULTS_KEY_PREFIX}",
                    encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(
                        encryption_option="SSE_KMS", kms_key=ops.key.key_arn))))
        workgroup.apply_removal_policy(removal_policy)
        database = glue.CfnDatabase(self, "Database", catalog_id=stack.account, database_input=glue.CfnDatabase
                                    .DatabaseInputProperty(name=f"{base}_inventory",
                                                           description="Inventory and change feed of the invoice "
                                                                       "bucket (docs/formats/inventory-and-feed.md)"))
        database.apply_removal_policy(removal_policy)

        def columns(spec: tuple[tuple[str, str], ...]) -> list[glue.CfnTable.ColumnProperty]:
            return [glue.CfnTable.ColumnProperty(name=n, type=t) for n, t in spec]

        inventory_location = f"{ops_url}/{self.inventory_prefix}hive/"
        feed_location = f"{ops_url}/{FEED_KEY_PREFIX}"
        tables = {
            # S3 User Guide, "Querying Amazon S3 Inventory with Amazon Athena": the hive/ symlinks, Parquet.
            "inventory": (inventory_location, columns(INVENTORY_COLUMNS), glue.CfnTable.SerdeInfoProperty(
                serialization_library="org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"),
                "org.apache.hadoop.hive.ql.io.SymlinkTextInputFormat",
                "org.apache.hadoop.hive.ql.io.IgnoreKeyTextOutputFormat",
                {"projection.dt.format": "yyyy-MM-dd-HH-mm", "projection.dt.interval.unit": "HOURS",
                 "projection.dt.range": f"{PARTITION_PROJECTION_START}-00-00,NOW",
                 "storage.location.template": f"{inventory_location}dt=${{dt}}/"}),
            "change_feed": (feed_location, columns(FEED_COLUMNS), glue.CfnTable.SerdeInfoProperty(
                serialization_library="org.openx.data.jsonserde.JsonSerDe"),
                "org.apache.hadoop.mapred.TextInputFormat",
                "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
                {"projection.dt.format": "yyyy-MM-dd", "projection.dt.interval.unit": "DAYS",
                 "projection.dt.range": f"{PARTITION_PROJECTION_START},NOW",
                 "storage.location.template": f"{feed_location}dt=${{dt}}/"}),
        }
        for name, (location, cols, serde, input_format, output_format, projection) in tables.items():
            table = glue.CfnTable(
                self, "".join(p.capitalize() for p in name.split("_")) + "Table", catalog_id=stack.account,
                database_name=database.ref, table_input=glue.CfnTable.TableInputProperty(
                    name=name, table_type="EXTERNAL_TABLE",
                    partition_keys=[glue.CfnTable.ColumnProperty(name="dt", type="string")],
                    parameters={"classification": "parquet" if name == "inventory" else "json",
                                "projection.enabled": "true", "projection.dt.type": "date",
                                "projection.dt.interval": "1", **projection},
                    storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                        columns=cols, location=location, input_format=input_format, output_format=output_format,
                        serde_info=serde)))
            table.apply_removal_policy(removal_policy)
        return workgroup, database

    def _canary(self, bucket: s3.Bucket, key: kms.IKey, ops: SecureBucket, settings: InventoryConfig,
                log_key: kms.IKey, log_retention: logs.RetentionDays, removal_policy: RemovalPolicy
                ) -> PythonFunction:
        fn = PythonFunction(
            self, "Canary", name=metrics.INVENTORY_CANARY, capabilities=("bucket",),
            description="Inventory canary: writes under _canary/ so a quiet invoice bucket still feeds; reports "
                        "the newest inventory's age",
            timeout=CANARY_TIMEOUT, log_retention=log_retention, log_key=log_key, removal_policy=removal_policy,
            environment={"TAVARI_INVOICE_BUCKET": bucket.bucket_name,
                         "TAVARI_RESTORE_OPS_BUCKET": ops.bucket.bucket_name,
                         "TAVARI_INVENTORY_PREFIX": self.inventory_prefix, "TAVARI_FEED_PREFIX": FEED_KEY_PREFIX})
        # Writes (and, to confirm a retried write, reads) only its own prefix of the invoice bucket.
        fn.role.add_to_principal_policy(iam.PolicyStatement(
            actions=["s3:PutObject", "s3:GetObject"], resources=[bucket.arn_for_objects(f"{CANARY_KEY_PREFIX}*")]))
        key.grant(fn.role, "kms:GenerateDataKey", "kms:Decrypt")
        fn.role.add_to_principal_policy(iam.PolicyStatement(
            actions=["s3:ListBucket"], resources=[ops.bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{self.inventory_prefix}*", f"{FEED_KEY_PREFIX}*"]}}))
        fn.role.add_to_principal_policy(iam.PolicyStatement(
            actions=["s3:GetObject"], resources=[ops.bucket.arn_for_objects(f"{self.inventory_prefix}*")]))
        ops.key.grant_decrypt(fn.role)
        acknowledge_wildcards(grant_policy(fn.role), "The canary writes new objects under _canary/ of the invoice "
                              "bucket and reads the inventory manifests of the restore-ops bucket; their names "
                              "are times.")
        role = schedule_role(self, "CanaryScheduleRole")
        scheduler.Schedule(
            self, "CanarySchedule", description="Inventory canary of the invoice bucket",
            schedule=scheduler.ScheduleExpression.rate(Duration.minutes(settings.canary_minutes)),
            target=scheduler_targets.LambdaInvoke(
                fn.function, dead_letter_queue=fn.dead_letter_queue, role=role, retry_attempts=2,
                max_event_age=Duration.minutes(min(settings.canary_minutes, 60)),
                input=scheduler.ScheduleTargetInput.from_object(
                    {"execution": scheduler.ContextAttribute.execution_id})))
        acknowledge_schedule_role(role)
        return fn
