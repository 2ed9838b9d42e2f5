from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
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
