from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, PhysicalName, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from stacks.invoice_storage import invoice_bucket_from
from tavari_dr import outputs
from tavari_dr.config import InvoiceBucketConfig


def replica_key_alias(env_name: str) -> str:
    return f"alias/tavari-{env_name}-invoice-replica"


class InvoiceReplicaStack(Stack):
    """The DR replica of the invoice bucket, in the DR region (and maybe a backup account).

    settings: the same lifecycle as the primary bucket.
    key_alias: the alias through which the source environment names the replica key.
    """

    def __init__(self, scope: Construct, construct_id: str, *, settings: InvoiceBucketConfig,
                 removal_policy: RemovalPolicy, key_alias: str,
                 **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.replica = invoice_bucket_from(
            self, "Replica", settings, removal_policy=removal_policy,
            # Referenced from the primary's environment (another region, maybe another account):
            # a generated name keeps that reference literal, with no cross-stack export.
            bucket_name=PhysicalName.GENERATE_IF_NEEDED,
            no_replication_reason="This bucket is itself the cross-region replica of the invoice bucket.",
        )
        # A name the primary's environment can use before this key exists; a key ARN would
        # need a cross-region export, which another account cannot read.
        kms.Alias(self, "KeyAlias", alias_name=key_alias, target_key=self.replica.key)
        CfnOutput(self, outputs.REPLICA_BUCKET_NAME, value=self.replica.bucket.bucket_name)
        CfnOutput(self, outputs.REPLICA_BUCKET_ARN, value=self.replica.bucket.bucket_arn)
        CfnOutput(self, outputs.REPLICA_KEY_ARN, value=self.replica.key.key_arn)

    def accept_replication_from(self, role: iam.IRole, source_account: str) -> None:
        """Cross-account: let the source's replication role write replicas and use our key."""
        self.replica.bucket.add_replication_policy(role.role_arn, True, source_account)
        # CDK's replication policy omits tags; without this, tagged invoices fail to replicate.
        self.replica.bucket.add_to_resource_policy(iam.PolicyStatement(
            principals=[iam.ArnPrincipal(role.role_arn)],
            actions=["s3:ReplicateTags"],
            resources=[self.replica.bucket.arn_for_objects("*")],
        ))
        # A key policy statement (Resource "*" means this key); the source account's own
        # IAM policy pins the key through its alias.
        self.replica.key.add_to_resource_policy(iam.PolicyStatement(
            principals=[iam.ArnPrincipal(role.role_arn)],
            actions=["kms:Encrypt", "kms:GenerateDataKey"],
            resources=["*"],
        ))
