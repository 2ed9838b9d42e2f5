from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct

from backup_constructs.nag import acknowledge


class AccessLogBucket(Construct):
    """Target of S3 server access logs: locked down, and expiring on its own schedule.

    retention: how long log objects are kept (required).
    removal_policy: RETAIN in prod; DESTROY only where the environment allows it.
    """

    def __init__(self, scope: Construct, construct_id: str, *, retention: Duration,
                 removal_policy: RemovalPolicy) -> None:
        super().__init__(scope, construct_id)
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            # S3 server access logging can only deliver to SSE-S3 buckets, not SSE-KMS.
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            removal_policy=removal_policy,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ExpireAccessLogs",
                    expiration=retention,
                    noncurrent_version_expiration=Duration.days(1),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                )
            ],
        )
        # No S1/S3BucketLoggingEnabled acknowledgment: cdk-nag counts a bucket that receives access logs
        # as compliant (logging it to itself would loop).
        acknowledge(
            self.bucket,
            "S3 server access logging delivers only to SSE-S3 encrypted buckets; SSE-KMS is not supported here.",
            "NIST.800.53.R5-S3DefaultEncryptionKMS",
        )
        acknowledge(
            self.bucket,
            "Access logs are diagnostic copies with their own expiry; replicating them adds cost without "
            "protecting any customer data.",
            "NIST.800.53.R5-S3BucketReplicationEnabled",
        )
