from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct


def alias_arn(region: str, account: str, alias: str) -> str:
    """A key named by its alias in a region and account this stack cannot reference directly."""
    return f"arn:aws:kms:{region}:{account}:{alias}"


def customer_managed_key(scope: Construct, construct_id: str, *, description: str,
                         removal_policy: RemovalPolicy) -> kms.Key:
    """Every key of the project: customer-managed, yearly rotation, 30 days to undo a deletion."""
    return kms.Key(scope, construct_id, description=description, enable_key_rotation=True,
                   removal_policy=removal_policy, pending_window=Duration.days(30))


def log_group_key(scope: Construct, construct_id: str, *, removal_policy: RemovalPolicy) -> kms.Key:
    """A key CloudWatch Logs may use for this account's and region's log groups only."""
    key = customer_managed_key(scope, construct_id, description="Tavari Lambda log groups",
                               removal_policy=removal_policy)
    stack = Stack.of(scope)
    key.add_to_resource_policy(iam.PolicyStatement(
        principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
        actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
        resources=["*"],
        conditions={"ArnLike": {"kms:EncryptionContext:aws:logs:arn":
                                f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:log-group:*"}},
    ))
    return key
