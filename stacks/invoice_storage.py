from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from backup_constructs.guardrails import custodians_of, protect_key
from backup_constructs.inventory import CANARY_SHORT_LIVED, InvoiceInventory, prefix_retention
from backup_constructs.invoice_backup import InvoiceBackupPlan
from backup_constructs.invoice_bucket import InvoiceBucket
from backup_constructs.nag import acknowledge_wildcards
from backup_constructs.python_function import retention
from backup_constructs.replication import ReplicaTarget
from backup_constructs.restore_ops import RestoreOps
from tavari_dr.core import outputs
from tavari_dr.core.config import InventoryConfig, InvoiceBucketConfig, SecurityConfig

STORAGE_CLASSES = {
    "GLACIER_IR": s3.StorageClass.GLACIER_INSTANT_RETRIEVAL,
    "GLACIER": s3.StorageClass.GLACIER,
    "DEEP_ARCHIVE": s3.StorageClass.DEEP_ARCHIVE,
}


def invoice_bucket_from(scope: Construct, construct_id: str, settings: InvoiceBucketConfig, *,
                        removal_policy: RemovalPolicy, **kwargs: Any) -> InvoiceBucket:
    """The InvoiceBucket that one config section describes (primary and replica alike)."""
    return InvoiceBucket(
        scope,
        construct_id,
        noncurrent_archive_after=Duration.days(settings.archive_after_days),
        archive_storage_class=STORAGE_CLASSES[settings.archive_storage_class],
        archive_small_objects=settings.small_objects == "archive",
        noncurrent_expiration=(
            Duration.days(settings.noncurrent_expiration_days)
            if settings.noncurrent_expiration_days is not None else None
        ),
        abort_incomplete_multipart_after=Duration.days(settings.abort_incomplete_multipart_days),
        access_log_retention=Duration.days(settings.access_log_retention_days),
        removal_policy=removal_policy,
        **kwargs,
    )


class InvoiceStorageStack(Stack):
    """The invoice bucket in the primary region, optionally replicating to a DR replica."""

    def __init__(self, scope: Construct, construct_id: str, *, settings: InvoiceBucketConfig,
                 removal_policy: RemovalPolicy, replica_bucket: s3.IBucket | None = None,
                 replica_key_arn: str | None = None, replica_key_alias: str | None = None,
                 replica_account: str | None = None, replication_time_control: bool = True,
                 no_replication_reason: str | None = None, log_retention_days: int = 365,
                 guard: SecurityConfig | None = None, inventory: InventoryConfig | None = None,
                 **kwargs: Any) -> None:
        """replica_bucket: the DR replica (default None: no replication).
        replica_key_arn: the replica key's alias ARN (same account) or key ARN (cross-account).
        replica_key_alias: the alias name when replica_key_arn is an alias ARN.
        replica_account: the replica's account when it is not this stack's (owner override).
        no_replication_reason: why there is no replica, for the nag acknowledgment.
        guard: the security settings where removal_policy is retain: the invoice key refuses deletion,
        disabling and policy changes to all but the deploy and break-glass roles (default None).
        inventory: the ``inventory`` section: S3 Inventory, the change feed, Athena and the canary of the
        invoice bucket, delivered to the restore-ops bucket (default None, or enabled=false: none of them)."""
        super().__init__(scope, construct_id, **kwargs)
        replica = None
        if replica_bucket is not None:
            if replica_key_arn is None:
                raise ValueError("replica_key_arn is required with replica_bucket")
            replica = ReplicaTarget(
                bucket=replica_bucket,
                key=kms.Key.from_key_arn(self, "ReplicaKey", replica_key_arn),
                key_alias=replica_key_alias,
                replication_time_control=replication_time_control,
                destination_account=replica_account,
            )
        extra: dict[str, Any] = {"no_replication_reason": no_replication_reason} if no_replication_reason else {}
        planning = inventory if inventory is not None and inventory.enabled else None
        if planning is not None:
            extra["short_lived"] = CANARY_SHORT_LIVED
        self.invoices = invoice_bucket_from(
            self, "Invoices", settings, removal_policy=removal_policy, replica=replica,
            bucket_name=settings.existing_bucket_name, **extra,
        )
        if guard is not None:
            protect_key(self.invoices.key, custodians_of(self, guard))
        self.backup_plan = None
        if settings.aws_backup_enabled:
            self.backup_plan = InvoiceBackupPlan(
                self, "AwsBackup", bucket=self.invoices.bucket,
                retention=Duration.days(settings.aws_backup_retention_days),
                copy_vault_arn=settings.aws_backup_copy_vault_arn, removal_policy=removal_policy)
        self.restore_ops = RestoreOps(self, "RestoreOps", bucket=self.invoices.bucket,
                                      log_retention_days=log_retention_days, removal_policy=removal_policy,
                                      also_keeps=prefix_retention(planning) if planning else None)
        self.inventory = None
        if planning is not None:
            self.inventory = InvoiceInventory(
                self, "Inventory", bucket=self.invoices.bucket, key=self.invoices.key, ops=self.restore_ops.work,
                settings=planning, retain=removal_policy == RemovalPolicy.RETAIN, log_key=self.restore_ops.log_key,
                log_retention=retention(log_retention_days), removal_policy=removal_policy,
                adopted_bucket_name=settings.existing_bucket_name)
        self.verifier_access = self._verifier_access()
        self.export_access = self._export_access()
        if settings.app_principal_arn:
            app_role = iam.Role.from_role_arn(self, "AppPrincipal", settings.app_principal_arn)
            self.invoices.grant_app_access(app_role)

        CfnOutput(self, outputs.INVOICE_BUCKET_NAME, value=self.invoices.bucket.bucket_name,
                  description="Invoice PDF bucket (versioned, SSE-KMS)")
        CfnOutput(self, outputs.INVOICE_BUCKET_ARN, value=self.invoices.bucket.bucket_arn)
        CfnOutput(self, outputs.INVOICE_KEY_ARN, value=self.invoices.key.key_arn,
                  description="KMS key encrypting the invoice bucket")
        CfnOutput(self, outputs.INVOICE_ACCESS_LOG_BUCKET_NAME, value=self.invoices.access_logs.bucket.bucket_name)
        CfnOutput(self, outputs.RESTORE_OPS_BUCKET_NAME, value=self.restore_ops.work.bucket.bucket_name)
        CfnOutput(self, outputs.BATCH_OPERATIONS_ROLE_ARN, value=self.restore_ops.batch_role.role_arn)
        CfnOutput(self, outputs.DELETE_MARKER_FUNCTION_ARN,
                  value=self.restore_ops.delete_marker.function.function_arn)
        if self.inventory is not None:
            CfnOutput(self, outputs.INVENTORY_WORKGROUP, value=self.inventory.workgroup.ref,
                      description="Athena workgroup over the invoice bucket's inventory and change feed")
            CfnOutput(self, outputs.INVENTORY_DATABASE, value=self.inventory.database.ref,
                      description="Glue database: tables inventory and change_feed")
            CfnOutput(self, outputs.INVENTORY_PREFIX, value=self.inventory.inventory_prefix,
                      description="The invoice bucket's S3 Inventory reports in the restore-ops bucket")
            CfnOutput(self, outputs.FEED_PREFIX, value=outputs.FEED_KEY_PREFIX,
                      description="The invoice bucket's change feed (JSON lines, GZIP) in the restore-ops bucket")
        if self.invoices.replication_role is not None:
            CfnOutput(self, outputs.REPLICATION_ROLE_ARN, value=self.invoices.replication_role.role_arn)

    def _verifier_access(self) -> iam.ManagedPolicy:
        """What the verification jobs read here, as a managed policy their roles (in another stack)
        attach: grants made from that stack would name this bucket through cross-stack outputs."""
        bucket, replica = self.invoices.bucket, self.invoices.replica
        statements = [
            iam.PolicyStatement(actions=["s3:ListBucket", "s3:ListBucketVersions", "s3:GetBucketVersioning",
                                         "s3:GetLifecycleConfiguration", "s3:GetBucketPublicAccessBlock",
                                         "s3:GetEncryptionConfiguration", "s3:GetReplicationConfiguration",
                                         "s3:GetBucketPolicy", "s3:GetBucketLogging"],
                                resources=[bucket.bucket_arn]),
            iam.PolicyStatement(actions=["s3:GetObject", "s3:GetObjectVersion"],
                                resources=[bucket.arn_for_objects("*")]),
            iam.PolicyStatement(actions=["kms:Decrypt", "kms:GetKeyPolicy"], resources=[self.invoices.key.key_arn]),
        ]
        if replica is not None:
            statements.append(iam.PolicyStatement(actions=["s3:GetObject"],
                                                  resources=[replica.bucket.arn_for_objects("*")]))
        policy = iam.ManagedPolicy(self, "VerifierAccess", statements=statements,
                                   description="Read access for the backup verification jobs")
        acknowledge_wildcards(policy, "Verification samples any object version of the invoice bucket (and reads "
                                      "replicas by key); the keys are data, unknown at deploy time.")
        return policy

    def _export_access(self) -> iam.ManagedPolicy:
        """What the account export (its API and worker, in the DataExport stack) reads here: the current
        version of the invoice PDFs its rows name. s3:GetObject without s3:GetObjectVersion refuses a
        versionId; no listing, no replica, and the key only as S3 uses it. It lives beside the bucket
        so its one wildcard is acknowledged where the bucket's ARN is not a cross-stack output."""
        statements = [
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[self.invoices.bucket.arn_for_objects("*")]),
            iam.PolicyStatement(actions=["kms:Decrypt"], resources=[self.invoices.key.key_arn],
                                conditions={"StringEquals": {"kms:ViaService": f"s3.{self.region}.amazonaws.com"}}),
        ]
        policy = iam.ManagedPolicy(self, "ExportAccess", statements=statements,
                                   description="Read access of the account export: current invoice PDFs only")
        acknowledge_wildcards(policy, "An account export reads the invoice PDFs its user's invoice rows name, "
                                      "current versions only; the keys are data, unknown at deploy time.")
        return policy
