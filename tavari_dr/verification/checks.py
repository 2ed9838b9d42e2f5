"""Backup verification checks, as plain functions returning structured results.

Each check returns a CheckResult: PASS, FAIL, or ERROR when it could not run at all (API down,
permission denied, malformed answer) — ERROR counts as a failure everywhere. Nothing is swallowed:
the exception text lands in ``details``.

One module over 400 lines: the checks are short functions over one result type, one sampling
routine and one error policy (run_check); the jobs that run them are tavari_dr.verification.jobs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tavari_dr.core import guardrails, metrics
from tavari_dr.core.guardrails import Custodians
from tavari_dr.core.outputs import CANARY_KEY_PREFIX
from tavari_dr.core.supabase_api import (  # noqa: F401 - re-exported: the checks' names for the client
    SupabaseApiError,
    project_ref_from_url,
    supabase_get,
)

PASS, FAIL, ERROR = "PASS", "FAIL", "ERROR"
ARCHIVED_CLASSES = ("GLACIER", "DEEP_ARCHIVE")


@dataclass
class CheckResult:
    name: str
    status: str
    measured: dict[str, Any] = field(default_factory=dict)
    details: list[str] = field(default_factory=list)
    duration_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == PASS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_check(name: str, check: Callable[[CheckResult], None]) -> CheckResult:
    """Run ``check`` on a fresh result; an exception makes it ERROR (never a silent PASS)."""
    from botocore.exceptions import BotoCoreError, ClientError

    result = CheckResult(name, PASS)
    started = time.monotonic()
    try:
        check(result)
    except (ClientError, BotoCoreError, OSError, ValueError, KeyError, TypeError) as err:
        result.status = ERROR
        result.details.append(f"could not run: {type(err).__name__}: {err}")
    result.duration_seconds = round(time.monotonic() - started, 3)
    return result


def fail(result: CheckResult, message: str) -> None:
    result.status = FAIL if result.status != ERROR else ERROR
    result.details.append(message)


# --------------------------------------------------------------------------- Supabase backups


# The Management API client (SupabaseApiError, supabase_get) is core's: the nightly job's configuration
# snapshot uses it too (tavari_dr.core.supabase_api); its names stay importable from here.


def supabase_backups(result: CheckResult, *, api_url: str, project_ref: str, token: str, rpo_hours: float,
                     expect_pitr: bool, now: datetime, get: Callable[..., Any] = supabase_get) -> None:
    data = get(f"{api_url.rstrip('/')}/v1/projects/{project_ref}/database/backups", token)
    if not isinstance(data, dict) or not isinstance(data.get("backups"), list):
        raise ValueError(f"unexpected response shape: {str(data)[:120]}")
    pitr = bool(data.get("pitr_enabled"))
    result.measured["pitr_enabled"] = pitr
    if pitr != expect_pitr:
        fail(result, f"PITR is {'on' if pitr else 'off'} but config expects it {'on' if expect_pitr else 'off'}")
    newest = None
    if pitr:
        latest = (data.get("physical_backup_data") or {}).get("latest_physical_backup_date_unix")
        if latest:
            newest = datetime.fromtimestamp(int(latest), UTC)
    completed = [b for b in data["backups"] if b.get("status") == "COMPLETED"]
    if newest is None and completed:
        newest = max(_parse_time(b["inserted_at"]) for b in completed)
    failed = [b for b in data["backups"] if b.get("status") == "FAILED"
              and _parse_time(b["inserted_at"]) > now - timedelta(days=7)]
    result.measured["failed_backups_7d"] = len(failed)
    for b in failed:
        result.details.append(f"backup {b.get('id')} FAILED at {b.get('inserted_at')}")
    if newest is None:
        fail(result, "no COMPLETED backup and no physical backup time")
        return
    age = (now - newest).total_seconds() / 3600
    result.measured["backup_age_hours"] = round(age, 2)
    if age > rpo_hours:
        fail(result, f"newest backup is {age:.1f} h old (RPO {rpo_hours} h)")
    if failed and max(_parse_time(b["inserted_at"]) for b in failed) > newest:
        fail(result, "the most recent backup attempt FAILED")


def _parse_time(text: str) -> datetime:
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


# --------------------------------------------------------------------------- bucket drift


@dataclass(frozen=True)
class BucketExpectation:
    bucket: str
    archive_after_days: int
    archive_storage_class: str
    key_arn: str | None = None
    replica_bucket_arn: str | None = None
    access_log_bucket: str | None = None  # None: any target, as long as access logging is on


def tls_only_statements(bucket_arn: str) -> dict[str, dict[str, Any]]:
    """What CDK's enforce_ssl and minimum_tls_version=1.2 write into every bucket policy of the
    project, by what each refuses."""
    both = [bucket_arn, f"{bucket_arn}/*"]
    return {"requests without TLS": {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": both,
                                     "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
            "TLS older than 1.2": {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": both,
                                   "Condition": {"NumericLessThan": {"s3:TlsVersion": "1.2"}}}}


def bucket_drift(result: CheckResult, *, s3: Any, expect: BucketExpectation) -> None:
    b = expect.bucket
    versioning = s3.get_bucket_versioning(Bucket=b).get("Status")
    result.measured["versioning"] = versioning or "never enabled"
    if versioning != "Enabled":
        fail(result, f"versioning is {versioning or 'never enabled'}, not Enabled")
    rules = _client_get(s3.get_bucket_lifecycle_configuration, "NoSuchLifecycleConfiguration", Bucket=b).get(
        "Rules", [])
    archive = [t for r in rules if r.get("Status") == "Enabled" for t in r.get("NoncurrentVersionTransitions", [])]
    if not any(t.get("NoncurrentDays") == expect.archive_after_days
               and t.get("StorageClass") == expect.archive_storage_class for t in archive):
        fail(result, f"no enabled rule moves noncurrent versions to {expect.archive_storage_class} after "
                     f"{expect.archive_after_days} days (found {archive or 'none'})")
    block = _client_get(s3.get_public_access_block, "NoSuchPublicAccessBlockConfiguration", Bucket=b).get(
        "PublicAccessBlockConfiguration", {})
    missing = [k for k in ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
               if not block.get(k)]
    if missing:
        fail(result, f"public access block incomplete: {', '.join(missing)} off")
    encryption = _client_get(s3.get_bucket_encryption, "ServerSideEncryptionConfigurationNotFoundError",
                             Bucket=b).get("ServerSideEncryptionConfiguration", {}).get("Rules", [{}])
    default = encryption[0].get("ApplyServerSideEncryptionByDefault", {}) if encryption else {}
    result.measured["encryption"] = default.get("SSEAlgorithm")
    if default.get("SSEAlgorithm") != "aws:kms" or (expect.key_arn and default.get("KMSMasterKeyID") != expect.key_arn):
        fail(result, f"default encryption is {default or 'none'}, expected aws:kms with {expect.key_arn}")
    if expect.replica_bucket_arn:
        replication = _client_get(s3.get_bucket_replication, "ReplicationConfigurationNotFoundError", Bucket=b).get(
            "ReplicationConfiguration", {})
        enabled = [r for r in replication.get("Rules", []) if r.get("Status") == "Enabled"
                   and r.get("Destination", {}).get("Bucket") == expect.replica_bucket_arn]
        if not enabled:
            fail(result, f"no enabled replication rule to {expect.replica_bucket_arn}")
    policy = bucket_policy(s3, b)
    have = [guardrails.normalized(s) for s in policy.get("Statement", [])]
    for refused, want in tls_only_statements(f"arn:aws:s3:::{b}").items():
        if guardrails.normalized(want) not in have:
            fail(result, f"the bucket policy no longer denies {refused}")
    logging = s3.get_bucket_logging(Bucket=b).get("LoggingEnabled")
    result.measured["access_logs"] = logging.get("TargetBucket") if logging else None
    if not logging:
        fail(result, "server access logging is off")
    elif expect.access_log_bucket and logging.get("TargetBucket") != expect.access_log_bucket:
        fail(result, f"access logs go to {logging.get('TargetBucket')}, not {expect.access_log_bucket}")


def bucket_policy(s3: Any, bucket: str) -> dict[str, Any]:
    """The bucket's policy document ({} when it has none)."""
    text = _client_get(s3.get_bucket_policy, "NoSuchBucketPolicy", Bucket=bucket).get("Policy")
    return json.loads(text) if text else {}


# --------------------------------------------------------------------------- backup drift


@dataclass(frozen=True)
class BackupExpectation:
    """What protects the backups (tavari_dr.core.guardrails; ADR 0011).

    keys: name -> ARN of each protected key this check can read (None: its stack output is missing).
    custodians: the deploy and break-glass roles where removal_policy is retain; None: a destroyable
        environment, where only the denies that hold everywhere are expected.
    """

    bucket: str
    lock_mode: str
    default_retention_days: int
    reports_bucket: str | None  # None: the DR side, which has no reports bucket
    keys: dict[str, str | None] = field(default_factory=dict)  # an alias ARN is resolved (DescribeKey) first
    custodians: Custodians | None = None
    where: str = ""  # said before each finding of a second side (the DR region)


def backup_drift(result: CheckResult, *, s3: Any, kms: Any, expect: BackupExpectation) -> None:
    """The backup bucket's default lock, and every deny statement still in place and unchanged in the
    backup bucket's, the reports bucket's and the protected keys' policies. (The CloudTrail trail
    that records who tried is checked apart, by its own check next to this one.)"""
    where = f"{expect.where}: " if expect.where else ""
    prefix = f"{expect.where.split()[0].lower()}_" if expect.where else ""
    lock = _client_get(s3.get_object_lock_configuration, "ObjectLockConfigurationNotFoundError",
                       Bucket=expect.bucket).get("ObjectLockConfiguration", {})
    default = lock.get("Rule", {}).get("DefaultRetention", {})
    result.measured.update({f"{prefix}lock_mode": default.get("Mode"),
                            f"{prefix}default_retention_days": default.get("Days")})
    if lock.get("ObjectLockEnabled") != "Enabled":
        fail(result, f"{where}Object Lock is not enabled")
    if default.get("Mode") != expect.lock_mode or default.get("Days") != expect.default_retention_days:
        fail(result, f"{where}default retention is {default or 'none'}, expected {expect.lock_mode} for "
                     f"{expect.default_retention_days} days")
    checked = [(f"bucket {expect.bucket}", bucket_policy(s3, expect.bucket),
                guardrails.backup_bucket_statements(f"arn:aws:s3:::{expect.bucket}", expect.custodians))]
    if expect.reports_bucket is not None:
        checked.append((f"bucket {expect.reports_bucket}", bucket_policy(s3, expect.reports_bucket),
                        guardrails.audit_statements(f"arn:aws:s3:::{expect.reports_bucket}",
                                                    retain=expect.custodians is not None)))
    if expect.custodians is not None:
        for name, arn in expect.keys.items():
            if arn is None:
                fail(result, f"{where}{name} key: its ARN is unknown (stack output missing)")
                continue
            if ":alias/" in arn:  # GetKeyPolicy takes a key, never an alias
                arn = kms.describe_key(KeyId=arn)["KeyMetadata"]["Arn"]
            document = json.loads(kms.get_key_policy(KeyId=arn, PolicyName="default")["Policy"])
            checked.append((f"{name} key", document, [guardrails.key_statement(expect.custodians)]))
    result.measured[f"{prefix}policies_checked"] = len(checked)
    for what, document, expected in checked:
        for problem in guardrails.missing_statements(document, expected):
            fail(result, f"{where}{what}: {problem}")


def _client_get(call: Callable[..., dict[str, Any]], missing_code: str, **kwargs: Any) -> dict[str, Any]:
    from botocore.exceptions import ClientError

    try:
        return call(**kwargs)
    except ClientError as err:
        if err.response["Error"]["Code"] == missing_code:
            return {}
        raise


# --------------------------------------------------------------------------- sampling and integrity


@dataclass(frozen=True)
class Sampled:
    key: str
    version_id: str
    size: int
    storage_class: str
    last_modified: datetime
    is_latest: bool


def sample_versions(s3: Any, bucket: str, n: int, *, max_pages: int, rng: random.Random) -> tuple[list[Sampled], int]:
    """Reservoir-sample n versions from at most max_pages listing pages (1,000 versions each), so a
    Lambda's time stays bounded whatever the bucket's size; returns (sample, versions seen)."""
    sample: list[Sampled] = []
    seen = 0
    pages = s3.get_paginator("list_object_versions").paginate(
        Bucket=bucket, PaginationConfig={"PageSize": 1000, "MaxItems": max_pages * 1000})
    for page in pages:
        for v in page.get("Versions", []):
            item = Sampled(v["Key"], v["VersionId"], v.get("Size", 0), v.get("StorageClass", "STANDARD"),
                           v["LastModified"], v["IsLatest"])
            seen += 1
            if len(sample) < n:
                sample.append(item)
            else:
                j = rng.randrange(seen)
                if j < n:
                    sample[j] = item
    return sample, seen


def _sha256_of(s3: Any, bucket: str, key: str, version_id: str) -> tuple[str, dict[str, Any]]:
    # ChecksumMode: botocore validates S3's stored checksum on the way; we hash the bytes ourselves too.
    response = s3.get_object(Bucket=bucket, Key=key, VersionId=version_id, ChecksumMode="ENABLED")
    digest = hashlib.sha256()
    for chunk in iter(lambda: response["Body"].read(1024 * 1024), b""):
        digest.update(chunk)
    return digest.hexdigest(), response


class BaselineStore:
    """sha256 of each version the first time it is read, kept as one JSON object per bucket."""

    def __init__(self, s3: Any, bucket: str, subject: str) -> None:
        from botocore.exceptions import ClientError

        self.s3, self.bucket, self.key = s3, bucket, f"baselines/{subject}.json"
        try:
            self.values: dict[str, str] = json.loads(s3.get_object(Bucket=bucket, Key=self.key)["Body"].read())
        except ClientError as err:
            if err.response["Error"]["Code"] not in ("NoSuchKey", "404"):
                raise
            self.values = {}
        self.changed = False

    def get(self, key: str, version_id: str) -> str | None:
        return self.values.get(f"{version_id}/{key}")

    def put(self, key: str, version_id: str, sha256: str) -> None:
        self.values[f"{version_id}/{key}"] = sha256
        self.changed = True

    def save(self) -> None:
        if self.changed:
            self.s3.put_object(Bucket=self.bucket, Key=self.key, Body=json.dumps(self.values).encode(),
                               ContentType="application/json")


def integrity_sample(result: CheckResult, *, s3: Any, bucket: str, n: int, baselines: BaselineStore,
                     max_pages: int = 50, rng: random.Random | None = None) -> None:
    from botocore.exceptions import BotoCoreError

    sample, seen = sample_versions(s3, bucket, n, max_pages=max_pages, rng=rng or random.Random())  # noqa: S311
    result.measured.update(versions_listed=seen, sampled=len(sample), archived=0, read=0, new_baselines=0)
    for v in sample:
        if v.storage_class in ARCHIVED_CLASSES:
            result.measured["archived"] += 1  # counted, not read: a Glacier restore costs hours and money
            continue
        try:
            sha, response = _sha256_of(s3, bucket, v.key, v.version_id)
        except BotoCoreError as err:  # botocore's own checksum validation failed: S3's bytes are corrupt
            fail(result, f"{v.key}@{v.version_id}: {err}")
            continue
        result.measured["read"] += 1
        stored = response.get("ChecksumSHA256")
        if stored:
            if base64.b64encode(bytes.fromhex(sha)).decode() != stored:
                fail(result, f"{v.key}@{v.version_id}: sha256 differs from S3's stored checksum")
            continue
        known = baselines.get(v.key, v.version_id)
        if known is None:
            baselines.put(v.key, v.version_id, sha)
            result.measured["new_baselines"] += 1
        elif known != sha:
            fail(result, f"{v.key}@{v.version_id}: bytes changed since first seen (sha256 {known[:12]}… → {sha[:12]}…)")
    baselines.save()


# --------------------------------------------------------------------------- replication health


def replication_health(result: CheckResult, *, s3: Any, replica_s3: Any, bucket: str, replica_bucket: str,
                       n: int, max_pages: int, pending_threshold: timedelta, now: datetime) -> None:
    newest: list[dict[str, Any]] = []
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, PaginationConfig={"PageSize": 1000, "MaxItems": max_pages * 1000})
    for page in pages:
        # The inventory canary writes the newest objects every hour (ADR 0022): sampled, they would
        # crowd the invoices out of a quiet bucket's sample.
        newest.extend(o for o in page.get("Contents", []) if not o["Key"].startswith(CANARY_KEY_PREFIX))
        newest = sorted(newest, key=lambda o: o["LastModified"], reverse=True)[:n]
    result.measured.update(sampled=len(newest), completed=0, pending=0, failed=0)
    for obj in newest:
        head = s3.head_object(Bucket=bucket, Key=obj["Key"], ChecksumMode="ENABLED")
        status = head.get("ReplicationStatus")
        if status == "FAILED":
            result.measured["failed"] += 1
            fail(result, f"{obj['Key']}: replication FAILED")
        elif status in ("PENDING", None):
            result.measured["pending"] += 1
            if now - obj["LastModified"] > pending_threshold:
                fail(result, f"{obj['Key']}: replication {status or 'not started'} for more than {pending_threshold}")
        else:
            result.measured["completed"] += 1
            replica = replica_s3.head_object(Bucket=replica_bucket, Key=obj["Key"], ChecksumMode="ENABLED")
            if replica.get("ContentLength") != head.get("ContentLength"):
                fail(result, f"{obj['Key']}: replica is {replica.get('ContentLength')} bytes, source "
                             f"{head.get('ContentLength')}")
            mismatch = [a for a in ("CRC64NVME", "CRC32", "CRC32C", "SHA1", "SHA256")
                        if head.get(f"Checksum{a}") and replica.get(f"Checksum{a}")
                        and head[f"Checksum{a}"] != replica[f"Checksum{a}"]]
            if mismatch:
                fail(result, f"{obj['Key']}: replica checksum differs ({mismatch[0]})")


# --------------------------------------------------------------------------- off-site dumps


def offsite_freshness(result: CheckResult, *, s3: Any, bucket: str, verifier: Any, rpo_hours: float, now: datetime,
                      verify_sha256: bool = False) -> None:
    """The newest off-site dump: its manifest's signature and recorded versions (tampering fails the
    check and publishes BackupTampered), its age against the RPO, and with ``verify_sha256`` every
    artifact's bytes."""
    from tavari_dr.database.manifest import BackupError, BackupTampered, fetch_verified, find_backup

    try:
        opened = find_backup(s3, bucket, "latest", verifier=verifier)
    except BackupTampered as err:
        result.measured.update(backup_id=err.backup_id, tampered=True)  # the job publishes BackupTampered
        fail(result, str(err))
        return
    except BackupError as err:
        fail(result, str(err))
        return
    manifest = opened.manifest
    finished = _parse_time(manifest.finished_at)
    age = (now - finished).total_seconds() / 3600
    result.measured.update(backup_id=manifest.backup_id, backup_age_hours=round(age, 2),
                           backup_size_bytes=manifest.total_bytes, trust=opened.trust, tampered=False)
    if age > rpo_hours:
        fail(result, f"newest complete dump {manifest.backup_id} is {age:.1f} h old (RPO {rpo_hours} h)")
    if verify_sha256:
        for name in manifest.artifacts:
            try:
                fetch_verified(s3, bucket, manifest, name, _NullWriter())
            except BackupError as err:
                fail(result, str(err))
        result.measured["sha256_verified"] = result.status == PASS


# --------------------------------------------------------------------------- continuous capture

SEGMENTS_PREFIX = guardrails.CHANGE_SEGMENTS_PREFIX


def segment_hour_prefixes(now: datetime, lookback_seconds: float) -> list[str]:
    """The hour prefixes (changes/segments/<YYYY>/<MM>/<DD>/<HH>/) a segment written within
    ``lookback_seconds`` of ``now`` can be under, newest first: always this UTC hour and the one before
    (a segment is filed by its first commit, which may be in the previous hour), never the whole prefix."""
    now = now.astimezone(UTC)
    hour = now.replace(minute=0, second=0, microsecond=0)
    oldest = min(hour - timedelta(hours=1), now - timedelta(seconds=lookback_seconds))
    prefixes = []
    while hour >= oldest.replace(minute=0, second=0, microsecond=0):
        prefixes.append(f"{SEGMENTS_PREFIX}{hour:%Y/%m/%d/%H}/")
        hour -= timedelta(hours=1)
    return prefixes


def change_freshness(result: CheckResult, *, s3: Any, bucket: str, enabled: bool, max_lag_seconds: float | None,
                     now: datetime, cloudwatch: Any = None) -> None:
    """The newest change segment of the continuous capture (`db stream`): written (S3 LastModified) no
    more than ``max_lag_seconds`` ago. Only the hour prefixes that window can reach are listed.

    A capture writes a segment only when a commit arrives: on a quiet database the newest one ages while
    the capture is well. Then its own ChangeSegmentAgeSeconds (published each idle tick, 0 when caught up)
    decides: published lately and no older than the bound, the capture is idle; missing or past it, it is dead."""
    result.measured["enabled"] = enabled
    if not enabled:
        result.details.append("the continuous capture is off in this environment (changes.enabled)")
        return
    if max_lag_seconds is None:
        raise ValueError("changes_max_lag_seconds is not configured")
    prefixes = segment_hour_prefixes(now, max_lag_seconds)
    newest: dict[str, Any] | None = None
    for prefix in prefixes:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                if newest is None or item["LastModified"] > newest["LastModified"]:
                    newest = item
    result.measured["prefixes_listed"] = len(prefixes)
    if newest is None:
        stale = (f"no change segment under {prefixes[-1]} … {prefixes[0]}: the capture wrote nothing in the "
                 f"last {len(prefixes)} hours (bound {max_lag_seconds:g} s)")
    else:
        age = (now - newest["LastModified"]).total_seconds()
        result.measured.update(newest_segment=newest["Key"], segment_age_seconds=round(age, 1))
        if age <= max_lag_seconds:
            return
        stale = (f"newest change segment {newest['Key']} was written {age:.0f} s ago "
                 f"(changes.max_lag_seconds {max_lag_seconds:g})")
    idle = _capture_caught_up(cloudwatch, now, max_lag_seconds) if cloudwatch is not None else None
    if idle is None:
        fail(result, f"{stale}, and the capture published no ChangeSegmentAgeSeconds within the bound: it is not "
                     "running or cannot publish")
        return
    result.measured["published_segment_age_seconds"] = idle
    if idle > max_lag_seconds:
        fail(result, f"{stale}; the capture says its open work is {idle:.0f} s old")
        return
    result.details.append(f"{stale}; the capture is running and caught up (its newest ChangeSegmentAgeSeconds: "
                          f"{idle:.0f} s): no change was committed since")


def _capture_caught_up(cloudwatch: Any, now: datetime, window_seconds: float) -> float | None:
    """The capture's newest published ChangeSegmentAgeSeconds{Source=changes} (its Maximum per minute)
    within ``window_seconds`` of ``now``, or None when it published none."""
    answer = cloudwatch.get_metric_statistics(
        Namespace=metrics.NAMESPACE, MetricName=metrics.CHANGE_SEGMENT_AGE_SECONDS,
        Dimensions=[{"Name": "Source", "Value": "changes"}], StartTime=now - timedelta(seconds=window_seconds),
        EndTime=now, Period=60, Statistics=["Maximum"])
    points = sorted(answer.get("Datapoints", []), key=lambda p: p["Timestamp"])
    return float(points[-1]["Maximum"]) if points else None


class _NullWriter:
    def write(self, _data: bytes) -> None:
        return None


# --------------------------------------------------------------------------- sizes


def sizes(result: CheckResult, *, cloudwatch: Any, bucket: str, previous: dict[str, Any] | None,
          max_shrink_percent: float, now: datetime) -> None:
    """Bucket bytes and object count from S3's daily storage metrics (no listing), against the last run."""
    values = {}
    for metric, storage in (("BucketSizeBytes", "StandardStorage"), ("NumberOfObjects", "AllStorageTypes")):
        stats = cloudwatch.get_metric_statistics(
            Namespace="AWS/S3", MetricName=metric, StartTime=now - timedelta(days=3), EndTime=now, Period=86400,
            Statistics=["Average"], Dimensions=[{"Name": "BucketName", "Value": bucket},
                                                {"Name": "StorageType", "Value": storage}])
        points = sorted(stats.get("Datapoints", []), key=lambda p: p["Timestamp"])
        if not points:
            fail(result, f"no {metric} datapoint in the last 3 days (S3 storage metrics are daily)")
            continue
        values[metric] = points[-1]["Average"]
    result.measured.update(values)
    for metric, value in values.items():
        before = (previous or {}).get(metric)
        if before:
            change = 100 * (value - before) / before
            result.measured[f"{metric}_change_percent"] = round(change, 2)
            if change < -max_shrink_percent:
                fail(result, f"{metric} shrank {-change:.1f} % since the last run ({before:.0f} → {value:.0f})")


# --------------------------------------------------------------------------- restore test


def s3_restore_test(result: CheckResult, *, s3: Any, bucket: str, scratch_bucket: str, n: int, rto_seconds: float,
                    run_id: str, max_pages: int = 20, rng: random.Random | None = None) -> None:
    """Restore a sample of noncurrent versions into a scratch prefix, check the bytes, time it, clean up."""
    rng = rng or random.Random()  # noqa: S311 - sampling, not secrets
    sample, _ = sample_versions(s3, bucket, n * 4, max_pages=max_pages, rng=rng)
    chosen = [v for v in sample if not v.is_latest and v.storage_class not in ARCHIVED_CLASSES][:n]
    if not chosen:
        fail(result, "no readable noncurrent version to restore")
        return
    prefix = f"restore-test/{run_id}/"
    started = time.monotonic()
    written = []
    try:
        for v in chosen:
            target = prefix + v.key
            s3.copy_object(Bucket=scratch_bucket, Key=target, MetadataDirective="COPY",
                           CopySource={"Bucket": bucket, "Key": v.key, "VersionId": v.version_id})
            written.append(target)
            original, _ = _sha256_of(s3, bucket, v.key, v.version_id)
            restored = hashlib.sha256(s3.get_object(Bucket=scratch_bucket, Key=target)["Body"].read()).hexdigest()
            if original != restored:
                fail(result, f"{v.key}@{v.version_id}: restored bytes differ")
        duration = time.monotonic() - started
    finally:
        for key in written:
            for version in s3.list_object_versions(Bucket=scratch_bucket, Prefix=key).get("Versions", []):
                s3.delete_object(Bucket=scratch_bucket, Key=key, VersionId=version["VersionId"])
    result.measured.update(restored=len(chosen), seconds=round(duration, 3),
                           bytes=sum(v.size for v in chosen), rto_seconds=rto_seconds)
    if duration > rto_seconds:
        fail(result, f"restoring {len(chosen)} versions took {duration:.0f} s, over the RTO of {rto_seconds:.0f} s")


# --------------------------------------------------------------------------- tamper watch


# EventBridge rule states that match events; the break-glass rule uses the second (read-only
# management events too).
ENABLED_RULE_STATES = ("ENABLED", "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS")


def tamper_watch(result: CheckResult, *, client: Callable[[str, str], Any], expect: dict[str, Any]) -> None:
    """The tamper alarms can still see: the trail they depend on is logging (and, for the trail this
    app created, still logs every management event and the backup buckets' write data events), and
    every tamper rule is enabled with its target (the alert topic in the primary region, the primary
    region's event bus elsewhere). ``client(service, region)`` makes a client; ``expect`` is the
    TamperWatch stack's expectation (its TamperWatchExpectation output)."""
    from botocore.exceptions import ClientError

    trail_arn = expect["trail_arn"]
    trails = client("cloudtrail", expect["primary_region"])
    logging = bool(trails.get_trail_status(Name=trail_arn).get("IsLogging"))
    result.measured.update(trail=trail_arn, trail_logging=logging)
    if not logging:
        fail(result, f"trail {trail_arn} is not logging: no tamper rule sees anything")
    if expect.get("trail_created"):
        selectors = trails.get_event_selectors(TrailName=trail_arn)
        if not _logs_management_events(selectors):
            fail(result, f"trail {trail_arn} no longer logs management events")
        unlogged = [arn for arn in expect.get("data_event_bucket_arns", []) if not _logs_object_writes(selectors, arn)]
        if unlogged:
            fail(result, f"trail {trail_arn} does not log write data events of {', '.join(unlogged)}")
    checked = 0
    for region, names in expect["rules"].items():
        rules = client("events", region)
        wanted = expect["targets"][region]
        for name in names:
            checked += 1
            try:
                state = rules.describe_rule(Name=name).get("State")
            except ClientError as err:
                if err.response["Error"]["Code"] != "ResourceNotFoundException":
                    raise
                fail(result, f"rule {name} ({region}) does not exist")
                continue
            if state not in ENABLED_RULE_STATES:
                fail(result, f"rule {name} ({region}) is {state}")
            arns = [t.get("Arn", "") for t in rules.list_targets_by_rule(Rule=name).get("Targets", [])]
            if not any(arn.startswith(wanted) for arn in arns):
                fail(result, f"rule {name} ({region}) targets {arns or 'nothing'}, not {wanted}")
    result.measured["rules_checked"] = checked


def _logs_management_events(selectors: dict[str, Any]) -> bool:
    if any(s.get("IncludeManagementEvents") for s in selectors.get("EventSelectors") or []):
        return True
    for selector in selectors.get("AdvancedEventSelectors") or []:
        fields = {f["Field"]: f for f in selector.get("FieldSelectors", [])}
        if "Management" in fields.get("eventCategory", {}).get("Equals", []) and "readOnly" not in fields:
            return True
    return False


def _logs_object_writes(selectors: dict[str, Any], bucket_arn: str) -> bool:
    """Whether some selector logs write (or all) data events on every object of ``bucket_arn``."""
    objects = bucket_arn + "/"
    for selector in selectors.get("EventSelectors") or []:
        if selector.get("ReadWriteType", "All") in ("All", "WriteOnly") and any(
                resource.get("Type") == "AWS::S3::Object"
                and any(objects.startswith(value) for value in resource.get("Values", []))
                for resource in selector.get("DataResources") or []):
            return True
    for selector in selectors.get("AdvancedEventSelectors") or []:
        fields = {f["Field"]: f for f in selector.get("FieldSelectors", [])}
        if "Data" not in fields.get("eventCategory", {}).get("Equals", []):
            continue
        if "AWS::S3::Object" not in fields.get("resources.type", {}).get("Equals", []):
            continue
        if fields.get("readOnly", {}).get("Equals") == ["true"]:
            continue
        arn = fields.get("resources.ARN")
        if arn is None:
            return True
        excluded = any(objects.startswith(v) for v in arn.get("NotStartsWith", [])) or \
            objects in arn.get("NotEquals", [])
        if not excluded and (any(objects.startswith(v) for v in arn.get("StartsWith", []))
                             or (not arn.get("StartsWith") and not arn.get("Equals"))):
            return True
    return False
