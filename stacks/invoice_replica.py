from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, PhysicalName, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from backup_constructs.guardrails import custodians_of, protect_key
from backup_constructs.inventory import CANARY_SHORT_LIVED
from backup_constructs.replication import accept_cross_account_replication
from stacks.invoice_storage import invoice_bucket_from
from tavari_dr.core import outputs
from tavari_dr.core.config import InvoiceBucketConfig, SecurityConfig


def replica_key_alias(env_name: str) -> str:
    return outputs.replica_key_alias(env_name, "invoice")


class InvoiceReplicaStack(Stack):
    """The DR replica of the invoice bucket, in the DR region (and maybe a backup account).

    settings: the same lifecycle as the primary bucket.
    key_alias: the alias through which the source environment names the replica key.
    guard: the security settings where removal_policy is retain: the replica key refuses deletion,
        disabling and policy changes to all but this account's and region's deploy and break-glass
        roles (default None).
    canary_expires: replicas of the inventory canary's objects expire as on the primary (default False).
    """

    def __init__(self, scope: Construct, construct_id: str, *, settings: InvoiceBucketConfig,
                 removal_policy: RemovalPolicy, key_alias: str, guard: SecurityConfig | None = None,
                 canary_expires: bool = False, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.replica = invoice_bucket_from(
            self, "Replica", settings, removal_policy=removal_policy,
            # Referenced from the primary's environment (another region, maybe another account):
            # a generated name keeps that reference literal, with no cross-stack export.
            bucket_name=PhysicalName.GENERATE_IF_NEEDED,
            no_replication_reason="This bucket is itself the cross-region replica of the invoice bucket.",
            short_lived=CANARY_SHORT_LIVED if canary_expires else None,
        )
        # A name the primary's environment can use before this key exists; a key ARN would
        # need a cross-region export, which another account cannot read.
        kms.Alias(self, "KeyAlias", alias_name=key_alias, target_key=self.replica.key)
        if guard is not None:
            protect_key(self.replica.key, custodians_of(self, guard))
        CfnOutput(self, outputs.REPLICA_BUCKET_NAME, value=self.replica.bucket.bucket_name)
        CfnOutput(self, outputs.REPLICA_BUCKET_ARN, value=self.replica.bucket.bucket_arn)
        CfnOutput(self, outputs.REPLICA_KEY_ARN, value=self.replica.key.key_arn)

    def accept_replication_from(self, role: iam.IRole, source_account: str) -> None:
        """Cross-account: let the source's replication role write replicas and use our key."""
        accept_cross_account_replication(self.replica.bucket, self.replica.key, role, source_account)
