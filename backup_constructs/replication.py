from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import PhysicalName
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from backup_constructs.nag import acknowledge_wildcards, grant_policy

REPLICATION_RULE_ID = "ReplicateEverything"


@dataclass(frozen=True)
class ReplicaTarget:
    """Where the invoice bucket replicates to.

    bucket: the replica bucket (in the DR region, possibly another account).
    key: the replica's KMS key, imported by ``key_arn``; replicas are re-encrypted with it.
    key_alias: the alias that names the key (same account), or None when ``key`` carries
        the key's own ARN (cross-account: S3 would resolve an alias in the source account).
    replication_time_control: RTC (15-minute SLA) plus replication metrics.
    destination_account: set when the replica lives in another account; replicas are
        then owned by that account (owner override).
    """

    bucket: s3.IBucket
    key: kms.IKey
    key_alias: str | None = None
    replication_time_control: bool = True
    destination_account: str | None = None

    def encrypt_statement(self) -> iam.PolicyStatement:
        """What S3 needs of the replica key to write replicas, and nothing else."""
        actions = ["kms:Encrypt", "kms:GenerateDataKey"]
        if self.key_alias is None:
            return iam.PolicyStatement(actions=actions, resources=[self.key.key_arn])
        # IAM cannot match an alias ARN as a resource; the alias condition pins the key.
        return iam.PolicyStatement(
            actions=actions,
            resources=[f"arn:aws:kms:{self.key.env.region}:{self.key.env.account}:key/*"],
            conditions={"ForAnyValue:StringEquals": {"kms:ResourceAliases": self.key_alias}},
        )


class Replication:
    """CDK replication for a bucket being built: create it before the bucket (the role and the
    rule go into the bucket's props), ``finish`` it after (the grants need the bucket).

    One rule replicates everything, delete markers included; SSE-KMS objects are re-encrypted
    with the replica's key; RTC and replication metrics follow ``replica.replication_time_control``.
    """

    def __init__(self, scope: Construct, replica: ReplicaTarget, *, description: str) -> None:
        self.replica = replica
        self.role = iam.Role(
            scope, "ReplicationRole",
            assumed_by=iam.ServicePrincipal("s3.amazonaws.com"),
            # Generated only when the destination account's stack must name this role.
            role_name=PhysicalName.GENERATE_IF_NEEDED,
            description=description,
        )
        rtc = s3.ReplicationTimeValue.FIFTEEN_MINUTES if replica.replication_time_control else None
        self.rules = [s3.ReplicationRule(
            id=REPLICATION_RULE_ID,
            destination=replica.bucket,
            kms_key=replica.key,
            sse_kms_encrypted_objects=True,
            delete_marker_replication=True,
            replication_time_control=rtc,
            metrics=rtc,
            access_control_transition=True if replica.destination_account else None,
            priority=0,
            filter=s3.Filter(prefix=""),
        )]

    def finish(self, bucket: s3.Bucket, source_key: kms.IKey, *, extra_source_actions: Sequence[str] = ()) -> None:
        """extra_source_actions: e.g. the Object Lock reads S3 needs to replicate retention."""
        bucket.grant_replication_permission(
            self.role, source_decryption_key=source_key,
            destinations=[s3.GrantReplicationPermissionDestinationProps(bucket=self.replica.bucket)])
        if extra_source_actions:
            self.role.add_to_principal_policy(iam.PolicyStatement(
                actions=list(extra_source_actions), resources=[bucket.arn_for_objects("*")]))
        # Not replica.key.grant_encrypt(): for a key in another region, CDK grants
        # kms:* on Resource "*", which would reach every key that trusts the account.
        self.role.add_to_principal_policy(self.replica.encrypt_statement())
        acknowledge_wildcards(
            grant_policy(self.role),
            "S3's documented replication permissions act on every object version of exactly two "
            "buckets (source/*, replica/*); object keys are unknown at deploy time.",
            select=lambda resource: ":kms:" not in resource,
        )
        if self.replica.key_alias is not None:
            acknowledge_wildcards(grant_policy(self.role), "IAM cannot name a key by its alias: any key of the "
                                  "replica's account and region, pinned to the one replica key by the "
                                  "kms:ResourceAliases condition.", select=lambda resource: ":kms:" in resource)


def accept_cross_account_replication(bucket: s3.Bucket, key: kms.Key, role: iam.IRole, source_account: str) -> None:
    """On a replica in another account: let the source's replication role write replicas (owner
    override included) and encrypt them with this bucket's key."""
    bucket.add_replication_policy(role.role_arn, True, source_account)
    # CDK's replication policy omits tags; without this, tagged objects fail to replicate.
    bucket.add_to_resource_policy(iam.PolicyStatement(
        principals=[iam.ArnPrincipal(role.role_arn)], actions=["s3:ReplicateTags"],
        resources=[bucket.arn_for_objects("*")]))
    # A key policy statement (Resource "*" means this key); the source account's own IAM
    # policy names the key by its ARN.
    key.add_to_resource_policy(iam.PolicyStatement(
        principals=[iam.ArnPrincipal(role.role_arn)], actions=["kms:Encrypt", "kms:GenerateDataKey"],
        resources=["*"]))
