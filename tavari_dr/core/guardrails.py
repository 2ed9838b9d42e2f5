"""The deny statements that keep the backups from being overwritten or destroyed, as policy JSON.

The stacks write them into bucket and key policies (backup_constructs.guardrails) and the daily
drift check reads them back and compares (tavari_dr.verification.checks.backup_drift): one
definition, so what is deployed and what is checked cannot disagree. ADR 0011 says why each
statement exists and what none of them can stop (the account root, and anyone who can deploy).

Two kinds:
- everywhere: no write to the backup prefix without ``If-None-Match`` (so nothing overwrites a
  backup) and no plain DeleteObject there (a delete marker is allowed by Object Lock and would
  hide a backup); the same for the erasure ledger (``erasure/``) and the continuous capture's
  change segments (``changes/``) beside the dumps, and for the reports bucket's ``audit/`` prefix.
- where ``removal_policy`` is retain: the calls that destroy versions, the bucket or a key are
  refused to every principal but the CloudFormation execution role and the break-glass role.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tavari_dr.core.config import SecurityConfig

BACKUP_PREFIX = "dumps/"
ERASURE_PREFIX = "erasure/"  # the erasure ledger (tavari_dr.database.erasure), beside the dumps
CHANGES_PREFIX = "changes/"  # the continuous capture's signed change segments (`db stream`), beside the dumps
# Under it: the segments, which expire after changes.retention_days, and the base records, which never do —
# a base lives as long as its slot and schema, often longer than that, and every replay starts from it.
CHANGE_SEGMENTS_PREFIX = f"{CHANGES_PREFIX}segments/"
CHANGE_BASES_PREFIX = f"{CHANGES_PREFIX}bases/"
AUDIT_PREFIX = "audit/"

UNCONDITIONAL_WRITE_SID = "DenyUnconditionalBackupWrites"
DELETE_MARKER_SID = "DenyBackupDeleteMarkers"
VERSION_DESTRUCTION_SID = "DenyBackupVersionDestruction"
BUCKET_TAMPERING_SID = "DenyBackupBucketTampering"
ERASURE_WRITE_SID = "DenyUnconditionalErasureWrites"
ERASURE_DELETE_SID = "DenyErasureDeletion"
CHANGES_WRITE_SID = "DenyUnconditionalChangeWrites"
CHANGES_DELETE_SID = "DenyChangeDeleteMarkers"
AUDIT_WRITE_SID = "DenyUnconditionalAuditWrites"
AUDIT_DELETE_SID = "DenyAuditDeletion"
KEY_DESTRUCTION_SID = "DenyKeyDestruction"
FEED_WRITE_SID = "DenyFeedWritesButFirehose"
FEED_DELETE_SID = "DenyFeedDeletion"

# Action names as the Service Authorization Reference spells them (the API is in brackets when it differs).
VERSION_DESTRUCTION = ("s3:DeleteObjectVersion", "s3:BypassGovernanceRetention")
BUCKET_TAMPERING = (
    "s3:DeleteBucket",
    "s3:PutLifecycleConfiguration",  # PutBucketLifecycleConfiguration and DeleteBucketLifecycle
    "s3:PutBucketVersioning",
    "s3:PutBucketObjectLockConfiguration",  # PutObjectLockConfiguration: the default retention
    "s3:PutReplicationConfiguration",  # PutBucketReplication and DeleteBucketReplication
    # Not in the list the attack asked for, but without them an administrator simply rewrites this
    # policy. The account root can still put and delete a bucket policy whatever it says (S3 keeps
    # that exception so an owner cannot lock itself out); only an SCP or RCP stops the root.
    "s3:PutBucketPolicy",
    "s3:DeleteBucketPolicy",
)
KEY_DESTRUCTION = ("kms:ScheduleKeyDeletion", "kms:DisableKey", "kms:PutKeyPolicy")

# S3's documented way to require If-None-Match (User Guide, "Enforce conditional writes on Amazon S3
# buckets"): Bool s3:ObjectCreationOperation exempts CreateMultipartUpload, UploadPart and
# UploadPartCopy, which cannot carry the header; PutObject, CopyObject and CompleteMultipartUpload must.
CONDITIONAL_WRITE = {"Null": {"s3:if-none-match": "true"}, "Bool": {"s3:ObjectCreationOperation": "true"}}
ANYONE = {"AWS": "*"}


def role_arn(partition: str, account: str, name: str) -> str:
    return f"arn:{partition}:iam::{account}:role/{name}"


@dataclass(frozen=True)
class Custodians:
    """The only principals the destruction denies leave able to act, in one account and region.

    deploy_role_arn: CDK's CloudFormation execution role there; it must keep every action a deploy
        makes, or the next deploy (and KMS's lockout check on PutKeyPolicy) fails.
    break_glass_role_arn: the role a human assumes, under MFA and a second person's approval, to do
        on purpose what the denies refuse (docs/security/index.md).

    Both are matched on aws:PrincipalArn, which for an assumed-role session is the role's ARN.
    """

    deploy_role_arn: str
    break_glass_role_arn: str

    @property
    def arns(self) -> tuple[str, ...]:
        return (self.deploy_role_arn, self.break_glass_role_arn)

    @classmethod
    def of(cls, security: SecurityConfig, *, partition: str, account: str, region: str) -> Custodians:
        return cls(role_arn(partition, account, security.deploy_role_name(account, region)),
                   role_arn(partition, account, security.break_glass_role_name))

    def condition(self) -> dict[str, Any]:
        return {"ArnNotLike": {"aws:PrincipalArn": list(self.arns)}}


def _deny(sid: str, actions: tuple[str, ...], resources: list[str], condition: dict[str, Any] | None = None
          ) -> dict[str, Any]:
    statement: dict[str, Any] = {"Sid": sid, "Effect": "Deny", "Principal": ANYONE, "Action": list(actions),
                                 "Resource": resources}
    if condition:
        statement["Condition"] = condition
    return statement


def backup_bucket_statements(bucket_arn: str, custodians: Custodians | None) -> list[dict[str, Any]]:
    """The backup bucket's (and its replica's) denies; ``custodians`` None: only the ones for every environment.

    S3 replication writes replicas with s3:ReplicateObject and delete markers with s3:ReplicateDelete,
    never s3:PutObject or s3:DeleteObject, so none of these stand in its way."""
    dumps = f"{bucket_arn}/{BACKUP_PREFIX}*"
    statements = [_deny(UNCONDITIONAL_WRITE_SID, ("s3:PutObject",), [dumps], CONDITIONAL_WRITE),
                  _deny(DELETE_MARKER_SID, ("s3:DeleteObject",), [dumps]),
                  *erasure_statements(bucket_arn), *changes_statements(bucket_arn)]
    if custodians is not None:
        statements += [
            _deny(VERSION_DESTRUCTION_SID, VERSION_DESTRUCTION, [f"{bucket_arn}/*"], custodians.condition()),
            _deny(BUCKET_TAMPERING_SID, BUCKET_TAMPERING, [bucket_arn], custodians.condition()),
        ]
    return statements


def erasure_statements(bucket_arn: str) -> list[dict[str, Any]]:
    """The erasure ledger (``erasure/``) is append-only, like the dumps: every entry is a new object
    (If-None-Match) and none is ever deleted, not even by a delete marker. Statements of their own (not
    a second resource on the dumps' ones), so each prefix's guard reads on its own in the drift check.
    No lifecycle rule of the bucket names ``erasure/`` (each expires one tier's ``dumps/<tier>/``), so
    entries never expire; their Object Lock ends after every backup that can hold the account's rows."""
    ledger = f"{bucket_arn}/{ERASURE_PREFIX}*"
    return [_deny(ERASURE_WRITE_SID, ("s3:PutObject",), [ledger], CONDITIONAL_WRITE),
            _deny(ERASURE_DELETE_SID, ("s3:DeleteObject",), [ledger])]


def changes_statements(bucket_arn: str) -> list[dict[str, Any]]:
    """The change segments (``changes/``) are what a point-in-time restore replays after a dump, so they
    get the dumps' two denies: every segment is a new object (If-None-Match; the capture writes them with
    a conditional PutObject) and no delete marker may hide one. Statements of their own, so the drift
    check names the prefix whose guard changed. Their expiry is the bucket's lifecycle rule for
    ``changes/`` (S3's own, no principal's), after ``changes.retention_days``."""
    changes = f"{bucket_arn}/{CHANGES_PREFIX}*"
    return [_deny(CHANGES_WRITE_SID, ("s3:PutObject",), [changes], CONDITIONAL_WRITE),
            _deny(CHANGES_DELETE_SID, ("s3:DeleteObject",), [changes])]


def audit_statements(bucket_arn: str, *, retain: bool) -> list[dict[str, Any]]:
    """The reports bucket's ``audit/`` prefix: written once (If-None-Match), never deleted by anyone.
    Versions can only be deleted where the environment is destroyable: emptying every version is how
    a dev bucket is removed (there is no auto-delete function), and a deny to every principal would
    keep it until its lifecycle expiry. Lifecycle expiry is S3's own and no principal's, so the
    reports bucket's expiry still ends audit records after ``report_retention_days``."""
    audit = f"{bucket_arn}/{AUDIT_PREFIX}*"
    deletes = ("s3:DeleteObject", "s3:DeleteObjectVersion") if retain else ("s3:DeleteObject",)
    return [_deny(AUDIT_WRITE_SID, ("s3:PutObject",), [audit], CONDITIONAL_WRITE),
            _deny(AUDIT_DELETE_SID, deletes, [audit])]


def feed_statements(bucket_arn: str, prefixes: tuple[str, ...], *, writer_arn: str, retain: bool
                    ) -> list[dict[str, Any]]:
    """The change feed (``feed/``, and what Firehose could not deliver, ``feed-errors/``, in the restore-ops
    bucket) is append-only: only the Firehose delivery role writes there (every object a new, uniquely named
    one; Firehose cannot send If-None-Match), and no principal deletes. As for ``audit/``, versions stay
    deletable where the environment is destroyable, and lifecycle expiry (S3's own) still ends records
    after ``inventory.feed_retention_days``."""
    resources = [f"{bucket_arn}/{prefix}*" for prefix in prefixes]
    deletes = ("s3:DeleteObject", "s3:DeleteObjectVersion") if retain else ("s3:DeleteObject",)
    return [_deny(FEED_WRITE_SID, ("s3:PutObject",), resources, {"ArnNotEquals": {"aws:PrincipalArn": writer_arn}}),
            _deny(FEED_DELETE_SID, deletes, resources)]


def key_statement(custodians: Custodians) -> dict[str, Any]:
    """In a key policy "Resource": "*" means this key."""
    return _deny(KEY_DESTRUCTION_SID, KEY_DESTRUCTION, ["*"], custodians.condition())


# --------------------------------------------------------------------------- reading them back


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def normalized(statement: dict[str, Any]) -> dict[str, Any]:
    """A statement as a comparable value: order of actions, resources and condition values ignored,
    ``"*"`` and ``{"AWS": "*"}`` the same principal, the Sid left out (compared separately)."""
    principal = statement.get("Principal")
    if principal == "*":
        principal = ANYONE
    return {
        "Effect": statement.get("Effect"),
        "Principal": principal,
        "Action": sorted(_as_list(statement.get("Action", []))),
        "Resource": sorted(_as_list(statement.get("Resource", []))),
        "Condition": {op: {key: sorted(str(v) for v in _as_list(values)) for key, values in block.items()}
                      for op, block in (statement.get("Condition") or {}).items()},
    }


def missing_statements(document: dict[str, Any], expected: list[dict[str, Any]]) -> list[str]:
    """What of ``expected`` the policy ``document`` lacks, one line each: a Sid not found, or found but
    changed (a narrower action list, another resource, an extra exemption or condition)."""
    by_sid = {s.get("Sid"): s for s in _as_list(document.get("Statement", []))}
    problems = []
    for want in expected:
        found = by_sid.get(want["Sid"])
        if found is None:
            problems.append(f"{want['Sid']}: missing")
        elif normalized(found) != normalized(want):
            have, need = normalized(found), normalized(want)
            differs = [k for k in need if have[k] != need[k]]
            problems.append(f"{want['Sid']}: differs in {', '.join(differs)} "
                            f"(found {', '.join(f'{k}={have[k]}' for k in differs)})")
    return problems


def dr_side(*, region: str, account: str, bucket: str, key_aliases: Mapping[str, str],
            custodians: Custodians | None) -> dict[str, Any]:
    """What the drift check reads in the DR region where it shares the account (the daily monitor's
    targets and `tavari-dr verify` alike): the backup replica, each key by its alias ARN, the custodians."""
    return {"region": region, "bucket": bucket,
            "keys": {name: f"arn:aws:kms:{region}:{account}:{alias}" for name, alias in key_aliases.items()},
            "custodian_arns": list(custodians.arns) if custodians else []}


def dr_side_unchecked(account: str | None) -> str:
    """Why a backup account's side is not read by the drift check."""
    return (f"the backup replica and its keys are in account {account}, where the daily monitor has no role; that "
            "account's tamper watch alarms on any change to them")
