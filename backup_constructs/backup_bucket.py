from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Duration, PhysicalName, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from backup_constructs.access_log_bucket import AccessLogBucket
from backup_constructs.guardrails import protect_backup_bucket, protect_key
from backup_constructs.keys import customer_managed_key
from backup_constructs.nag import acknowledge_inline_policy, acknowledge_wildcards
from backup_constructs.replication import ReplicaTarget, Replication
from backup_constructs.secure_bucket import locked_down
from tavari_dr.core.guardrails import CHANGE_SEGMENTS_PREFIX, ERASURE_PREFIX, Custodians

LOCK_MODES = {"GOVERNANCE": s3.ObjectLockRetention.governance, "COMPLIANCE": s3.ObjectLockRetention.compliance}


@dataclass(frozen=True)
class RetentionTier:
    """Objects under ``dumps/<name>/`` are locked for ``days`` and expire right after."""

    name: str
    days: int


class BackupBucket(Construct):
    """Where database dumps live: separate from everything else, versioned, SSE-KMS with its own
    key, TLS-only, access-logged, and Object Lock enabled. Each object gets its retain-until date
    at upload (from its tier); lifecycle expires a tier's objects the day after their lock ends.
    A default retention (the shortest tier's days) locks whatever is written without one, so no
    object here is ever unlocked. No write under dumps/ may overwrite (If-None-Match) and no
    delete marker may hide a backup (tavari_dr.core.guardrails). The erasure ledger lives under
    ``erasure/`` beside the dumps, append-only the same way; no lifecycle rule names it, and the one
    replication rule (every prefix) takes it to the DR region with the dumps.

    tiers: the grandfather-father-son tiers (required).
    lock_mode: GOVERNANCE (default) or COMPLIANCE, of the default retention.
    custodians: where removal_policy is retain, the only principals that may still delete versions,
        the bucket or the key, or change lifecycle, versioning, lock, replication or the policy
        (default None: those denies are left out, as a destroyable environment needs).
    removal_policy: RETAIN by default.
    access_log_retention: how long access logs are kept (default 365 days).
    name_for_other_environments: give the bucket a generated name, for a replica another
        environment's replication rule must name (default False).
    replica: replicate everything to this bucket, which must have Object Lock too (default None).
    changes_retention: how long the continuous capture's segments under ``changes/`` are kept: they
        expire then, and their noncurrent versions a day later, as a tier's dumps do (default None: no
        rule, for a bucket no capture writes to). Their Object Lock is the default retention above,
        and the denies of ``changes/`` (tavari_dr.core.guardrails) hold everywhere.
    """

    def __init__(self, scope: Construct, construct_id: str, *, tiers: Sequence[RetentionTier],
                 removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
                 access_log_retention: Duration = Duration.days(365),
                 name_for_other_environments: bool = False, replica: ReplicaTarget | None = None,
                 lock_mode: str = "GOVERNANCE", custodians: Custodians | None = None,
                 changes_retention: Duration | None = None) -> None:
        super().__init__(scope, construct_id)
        if lock_mode not in LOCK_MODES:
            raise ValueError(f"lock_mode {lock_mode!r}: choose one of {', '.join(LOCK_MODES)}")
        replication = Replication(self, replica, description="S3 replication of the database backups") \
            if replica is not None else None
        self.replication_role = replication.role if replication else None
        self.key = customer_managed_key(self, "Key", description="Database backups (SSE-KMS)",
                                        removal_policy=removal_policy)
        self.access_logs = AccessLogBucket(self, "AccessLogs", retention=access_log_retention,
                                           removal_policy=removal_policy)
        rules = [s3.LifecycleRule(id=f"Expire{t.name.capitalize()}", prefix=f"dumps/{t.name}/",
                                  expiration=Duration.days(t.days + 1),
                                  noncurrent_version_expiration=Duration.days(1))
                 for t in tiers]
        if changes_retention is not None:
            rules.append(s3.LifecycleRule(id="ExpireChanges", prefix=CHANGE_SEGMENTS_PREFIX,
                                          expiration=changes_retention,
                                          noncurrent_version_expiration=Duration.days(1)))
        rules.append(s3.LifecycleRule(id="AbortUploads", abort_incomplete_multipart_upload_after=Duration.days(1)))
        self.bucket = s3.Bucket(
            self, "Bucket",
            bucket_name=PhysicalName.GENERATE_IF_NEEDED if name_for_other_environments else None,
            **locked_down(self.key, self.access_logs.bucket, "backup-bucket/"),
            object_lock_enabled=True,
            object_lock_default_retention=LOCK_MODES[lock_mode](Duration.days(min(t.days for t in tiers))),
            lifecycle_rules=rules,
            removal_policy=removal_policy,
            replication_role=replication.role if replication else None,
            replication_rules=replication.rules if replication else None,
        )
        if replication is not None:
            # S3 reads the source's Object Lock settings to replicate them.
            replication.finish(self.bucket, self.key,
                               extra_source_actions=("s3:GetObjectRetention", "s3:GetObjectLegalHold"))
        protect_backup_bucket(self.bucket, custodians)
        if custodians is not None:
            protect_key(self.key, custodians)

    def grant_record_erasure(self, role: iam.IRole) -> None:
        """Let ``role`` (the application) add entries to the erasure ledger and nothing else: PutObject and
        the entry's Object Lock retention under ``erasure/`` through the bucket's key. No read, no list, no
        delete; the bucket policy refuses a write without If-None-Match there to everyone anyway.
        (tavari_dr.database.erasure documents the key and body the entry must have.)"""
        role.add_to_principal_policy(iam.PolicyStatement(
            actions=["s3:PutObject", "s3:PutObjectRetention"],
            resources=[self.bucket.arn_for_objects(f"{ERASURE_PREFIX}*")]))
        self.key.grant(role, "kms:GenerateDataKey")
        # An imported role gets its grants as a Policy construct under it.
        for policy in (c for c in role.node.children if isinstance(c, iam.Policy)):
            acknowledge_wildcards(
                acknowledge_inline_policy(policy),
                "The application writes new erasure-ledger entries (keys are account UUIDs and times) under "
                "erasure/ of this one bucket, through its key; it cannot read, list or delete them.",
                select=lambda resource: resource.endswith(f"/{ERASURE_PREFIX}*"))
