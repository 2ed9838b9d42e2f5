from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_backup as backup
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from backup_constructs.keys import customer_managed_key
from backup_constructs.nag import acknowledge


class InvoiceBackupPlan(Construct):
    """AWS Backup for a bucket: continuous backups (point-in-time restore within ``retention``)
    into a vault locked for at least that long, optionally copied to another account's vault.

    bucket: the bucket (versioning stays on: AWS Backup for S3 requires it).
    retention: 1-35 days, the PITR window and the vault-lock minimum (default 35 days).
    copy_vault_arn: also copy recovery points there, e.g. a vault in the backup account (default None).
    removal_policy: for the vault and its key (RETAIN by default).

    AWS Backup needs the bucket's EventBridge notifications: set natively on the bucket resource,
    so no custom-resource Lambda is involved.
    """

    def __init__(self, scope: Construct, construct_id: str, *, bucket: s3.Bucket,
                 retention: Duration = Duration.days(35), copy_vault_arn: str | None = None,
                 removal_policy: RemovalPolicy = RemovalPolicy.RETAIN) -> None:
        super().__init__(scope, construct_id)
        bucket.node.default_child.add_property_override(  # type: ignore[union-attr]
            "NotificationConfiguration.EventBridgeConfiguration.EventBridgeEnabled", True)
        self.key = customer_managed_key(self, "VaultKey", description="AWS Backup vault for invoices",
                                        removal_policy=removal_policy)
        # Governance-mode lock: recovery points cannot be deleted before min_retention, but the lock
        # itself can still be changed (compliance mode would make that permanent).
        self.vault = backup.BackupVault(self, "Vault", encryption_key=self.key, removal_policy=removal_policy,
                                        lock_configuration=backup.LockConfiguration(min_retention=retention))
        copy_actions = None
        if copy_vault_arn:
            copy_actions = [backup.BackupPlanCopyActionProps(
                destination_backup_vault=backup.BackupVault.from_backup_vault_arn(self, "CopyVault", copy_vault_arn),
                delete_after=retention)]
        self.plan = backup.BackupPlan(self, "Plan", backup_vault=self.vault)
        self.plan.add_rule(backup.BackupPlanRule(
            rule_name="ContinuousInvoices", enable_continuous_backup=True, delete_after=retention,
            schedule_expression=events.Schedule.cron(hour="3", minute="0"), copy_actions=copy_actions))
        self.selection = self.plan.add_selection("Invoices", resources=[backup.BackupResource.from_arn(
            bucket.bucket_arn)], allow_restores=True)
        s3_policies = ("AWSBackupServiceRolePolicyForS3Backup", "AWSBackupServiceRolePolicyForS3Restore")
        for name in s3_policies:
            self.selection.grant_principal.add_managed_policy(  # type: ignore[union-attr]
                iam.ManagedPolicy.from_aws_managed_policy_name(name))
        managed = ("service-role/AWSBackupServiceRolePolicyForBackup",
                   "service-role/AWSBackupServiceRolePolicyForRestores", *s3_policies)
        acknowledge(self.selection.grant_principal,  # type: ignore[arg-type]
                    "AWS Backup's own service-role policies for backup, restore and S3 are the documented, "
                    "AWS-maintained way to let the service read and restore the bucket.",
                    *(f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{name}]" for name in managed))
