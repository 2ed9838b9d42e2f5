"""The deny statements of tavari_dr.core.guardrails, written into bucket and key policies.

Where ``removal_policy`` is retain, a stack gets the security settings and protects its buckets
and keys (``custodians_of`` names who stays able to act); elsewhere it gets None and only the
denies that hold in every environment apply. Deny statements cannot lock out the deployer: each
one exempts the stack's CloudFormation execution role by aws:PrincipalArn (tests prove it with
an evaluator over the synthesized policies).
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import IConstruct

from tavari_dr.core import guardrails
from tavari_dr.core.config import SecurityConfig
from tavari_dr.core.guardrails import Custodians


def custodians_of(scope: IConstruct, security: SecurityConfig, *, region: str | None = None) -> Custodians:
    """The deploy and break-glass roles of the account and region ``scope``'s stack deploys to (a
    replica stack's are those of the DR region, and of the backup account when there is one), or of
    another ``region`` of the same account."""
    stack = Stack.of(scope)
    return Custodians.of(security, partition=stack.partition, account=stack.account, region=region or stack.region)


def _add(bucket: s3.IBucket, statements: list[dict]) -> None:
    for statement in statements:
        bucket.add_to_resource_policy(iam.PolicyStatement.from_json(statement))


def protect_backup_bucket(bucket: s3.IBucket, custodians: Custodians | None) -> None:
    """No overwrite and no delete marker under dumps/ (everywhere); with ``custodians``, no version,
    bucket, lifecycle, versioning, lock, replication or policy change by anyone else either."""
    _add(bucket, guardrails.backup_bucket_statements(bucket.bucket_arn, custodians))


def protect_audit_prefix(bucket: s3.IBucket, *, retain: bool) -> None:
    _add(bucket, guardrails.audit_statements(bucket.bucket_arn, retain=retain))


def protect_key(key: kms.IKey, custodians: Custodians) -> None:
    """No ScheduleKeyDeletion, DisableKey or PutKeyPolicy but by the custodians: a deleted or disabled
    key makes every object it encrypts (or every manifest it signed) unusable, Object Lock or not."""
    key.add_to_resource_policy(iam.PolicyStatement.from_json(guardrails.key_statement(custodians)))
