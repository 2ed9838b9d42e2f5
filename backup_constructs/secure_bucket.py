from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from backup_constructs.access_log_bucket import AccessLogBucket
from backup_constructs.keys import customer_managed_key
from backup_constructs.nag import acknowledge


def locked_down(key: kms.IKey, access_logs: s3.IBucket, log_prefix: str) -> dict[str, Any]:
    """The s3.Bucket properties every bucket of the project holds: versioned, SSE-KMS with its own
    key (bucket key on), no public access, TLS 1.2+ only, owner-enforced, access-logged."""
    return {
        "versioned": True,
        "encryption": s3.BucketEncryption.KMS,
        "encryption_key": key,
        "bucket_key_enabled": True,
        "block_public_access": s3.BlockPublicAccess.BLOCK_ALL,
        "enforce_ssl": True,
        "minimum_tls_version": 1.2,
        "object_ownership": s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        "server_access_logs_bucket": access_logs,
        "server_access_logs_prefix": log_prefix,
    }


def _rule_name(prefix: str) -> str:
    """restore-jobs/ -> RestoreJobs (a lifecycle rule ID)."""
    return "".join(part.capitalize() for part in prefix.strip("/").replace("_", "-").split("-") if part)


class SecureBucket(Construct):
    """A private working bucket (manifests, reports, exports): versioned, SSE-KMS with its own
    key, TLS 1.2+ only, access-logged, and expiring its objects.

    purpose: says what the bucket holds (key description, log prefix).
    expire_after: objects (and their old versions) are deleted after this long (required).
    removal_policy: RETAIN by default.
    access_log_retention: how long access logs are kept (default 365 days).
    not_replicated_because: why the bucket has no replica (default: its objects are re-creatable
        working copies, which is not true of every bucket built here).
    expire_by_prefix: prefix -> how long objects under it are kept, instead of one rule for every object
        (default None). S3 honours the shortest of overlapping expirations, so a prefix that must live
        longer than ``expire_after`` cannot sit beside a bucket-wide rule: with this, only the prefixes
        named expire (``expire_after`` still describes the working copies in the acknowledgment).
    """

    def __init__(self, scope: Construct, construct_id: str, *, purpose: str, expire_after: Duration,
                 removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
                 access_log_retention: Duration = Duration.days(365),
                 not_replicated_because: str | None = None,
                 expire_by_prefix: Mapping[str, Duration] | None = None) -> None:
        super().__init__(scope, construct_id)
        self.key = customer_managed_key(self, "Key", description=purpose, removal_policy=removal_policy)
        self.access_logs = AccessLogBucket(self, "AccessLogs", retention=access_log_retention,
                                           removal_policy=removal_policy)
        if expire_by_prefix is None:
            rules = [s3.LifecycleRule(id="Expire", expiration=expire_after,
                                      noncurrent_version_expiration=Duration.days(1),
                                      abort_incomplete_multipart_upload_after=Duration.days(1))]
        else:
            rules = [s3.LifecycleRule(id=f"Expire{_rule_name(prefix)}", prefix=prefix, expiration=kept,
                                      noncurrent_version_expiration=Duration.days(1))
                     for prefix, kept in expire_by_prefix.items()]
            rules.append(s3.LifecycleRule(id="AbortUploads", abort_incomplete_multipart_upload_after=Duration.days(1)))
        self.bucket = s3.Bucket(
            self, "Bucket",
            **locked_down(self.key, self.access_logs.bucket, "bucket/"),
            lifecycle_rules=rules,
            removal_policy=removal_policy,
        )
        acknowledge(self.bucket, not_replicated_because or (
            f"Working copies ({purpose}) that expire after {expire_after.to_days()} days; they are "
            "re-creatable and not a backup."), "NIST.800.53.R5-S3BucketReplicationEnabled")
