from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from backup_constructs.keys import log_group_key
from backup_constructs.nag import BUCKET_READ_PUT_ACTIONS, acknowledge_wildcards, grant_policy
from backup_constructs.python_function import PythonFunction, retention
from backup_constructs.secure_bucket import SecureBucket
from tavari_dr.core.outputs import RESTORE_JOBS_KEY_PREFIX


class RestoreOps(Construct):
    """What `tavari-dr bucket restore --batch-operations` needs deployed beside the bucket: a
    manifest/report bucket, a least-privilege S3 Batch Operations role and the delete-marker Lambda.

    bucket: the bucket restores write to (its KMS key comes with its grants).
    log_retention_days: of the Lambda's log group (a CloudWatch Logs value).
    removal_policy: for the manifest bucket, its key and the log group.
    also_keeps: prefix -> retention of what else the bucket holds (the invoice bucket's inventory, change
        feed and Athena results: backup_constructs.inventory); then restore jobs keep their 90 days under
        ``restore-jobs/`` and only the named prefixes expire (default None: everything after 90 days).

    Lives in the bucket's own stack: its IAM resources then name the bucket directly, and
    cdk-nag acknowledgments can name exactly those resources.
    """

    def __init__(self, scope: Construct, construct_id: str, *, bucket: s3.IBucket, log_retention_days: int,
                 removal_policy: RemovalPolicy, also_keeps: Mapping[str, Duration] | None = None) -> None:
        super().__init__(scope, construct_id)
        jobs = Duration.days(90)
        self.work = SecureBucket(self, "Manifests", purpose="Restore job manifests and completion reports",
                                 expire_after=jobs, removal_policy=removal_policy,
                                 expire_by_prefix={RESTORE_JOBS_KEY_PREFIX: jobs, **also_keeps} if also_keeps else None)
        self.log_key = log_group_key(self, "LogsKey", removal_policy=removal_policy)
        self.delete_marker = PythonFunction(
            self, "DeleteMarker", name="batch_delete_marker", capabilities=("bucket",),
            description="S3 Batch Operations task: adds a delete marker (never deletes a version)",
            timeout=Duration.minutes(5), log_retention=retention(log_retention_days),
            log_key=self.log_key, removal_policy=removal_policy,
            synchronous_reason="Invoked synchronously by S3 Batch Operations, whose completion report records "
                               "every failed task; a dead-letter queue would never receive anything.",
        )
        # Not bucket.grant_delete(): that includes s3:DeleteObjectVersion, which destroys data.
        # A plain DeleteObject on a versioned bucket only adds a delete marker.
        self.delete_marker.role.add_to_principal_policy(iam.PolicyStatement(
            actions=["s3:DeleteObject"], resources=[bucket.arn_for_objects("*")]))
        # Each task checks the key's current version first (HeadObject: s3:GetObject; s3:ListBucket
        # so that a key with no version answers 404, not 403).
        self.delete_marker.role.add_to_principal_policy(iam.PolicyStatement(
            actions=["s3:GetObject"], resources=[bucket.arn_for_objects("*")]))
        self.delete_marker.role.add_to_principal_policy(iam.PolicyStatement(
            actions=["s3:GetBucketVersioning", "s3:ListBucket"], resources=[bucket.bucket_arn]))
        acknowledge_wildcards(grant_policy(self.delete_marker.role),
                              "Delete markers go on, and current versions are checked for, whichever keys a "
                              "restore plan names.")

        self.batch_role = iam.Role(self, "BatchOperationsRole",
                                   assumed_by=iam.ServicePrincipal("batchoperations.s3.amazonaws.com"),
                                   description="S3 Batch Operations jobs created by tavari-dr bucket restore")
        bucket.grant_read(self.batch_role)           # source versions, their tags and metadata
        bucket.grant_put(self.batch_role)            # the copies, through the bucket's KMS key
        self.work.bucket.grant_read(self.batch_role)  # manifests
        self.work.bucket.grant_put(self.batch_role)   # completion reports
        self.delete_marker.function.grant_invoke(self.batch_role)
        acknowledge_wildcards(
            grant_policy(self.batch_role),
            "CDK's read/put grants on exactly two buckets and their keys (object versions named by the "
            "manifest), and invoking the delete-marker function's versions.",
            actions=BUCKET_READ_PUT_ACTIONS,
        )
