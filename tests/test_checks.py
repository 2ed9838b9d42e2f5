"""Every verification check, against moto and a local HTTP server speaking the Supabase Management API."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import boto3
import pytest
import urllib3
from moto import mock_aws

from tavari_dr.core import guardrails as g
from tavari_dr.core import metrics
from tavari_dr.core.aws import EMULATOR_CONFIG
from tavari_dr.core.guardrails import Custodians
from tavari_dr.verification import checks as c
from tests.backups import write_backup
from tests.http_stub import ScriptedServer, server_factory
from tests.throttling import record_sleeps

pytestmark = pytest.mark.moto
REGION = "eu-west-1"
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


# --------------------------------------------------------------------------- Supabase API


def SupabaseApi(*script):  # noqa: N802 - reads like the class it stands for
    """The Management API's backups endpoint, answering from (status, headers, body, delay)."""
    return ScriptedServer(list(script))


def backups_body(*, pitr=False, hours_old=3.0, extra=(), physical_hours_old=None):
    newest = NOW - timedelta(hours=hours_old)
    body = {"region": "eu-west-1", "pitr_enabled": pitr, "walg_enabled": True,
            "backups": [{"id": 1, "is_physical_backup": True, "status": "COMPLETED",
                         "inserted_at": (newest - timedelta(days=1)).isoformat()},
                        {"id": 2, "is_physical_backup": True, "status": "COMPLETED", "inserted_at": newest.isoformat()},
                        *extra],
            "physical_backup_data": {}}
    if physical_hours_old is not None:
        body["physical_backup_data"] = {
            "earliest_physical_backup_date_unix": int((NOW - timedelta(days=7)).timestamp()),
            "latest_physical_backup_date_unix": int((NOW - timedelta(hours=physical_hours_old)).timestamp())}
    return body


def run_supabase(api, *, expect_pitr=False, timeout=2.0):
    def get(url, token):
        return c.supabase_get(url, token, timeout=timeout)

    return c.run_check("supabase_backups", lambda r: c.supabase_backups(
        r, api_url=api.url, project_ref="abcd", token="sbp_token", rpo_hours=24, expect_pitr=expect_pitr, now=NOW,
        get=get))


@pytest.fixture
def slept(monkeypatch):
    """The waits urllib3's Retry asks for (backoff, Retry-After, X-RateLimit-Reset), recorded instead of slept."""
    return record_sleeps(monkeypatch, urllib3.util.retry)


@pytest.fixture
def api_factory():
    yield from server_factory(SupabaseApi)


def test_fresh_backup_passes_and_sends_the_bearer_token(api_factory):
    api = api_factory((200, {}, backups_body(hours_old=3), 0))
    result = run_supabase(api)
    assert result.status == "PASS" and result.measured["backup_age_hours"] == 3.0
    assert [(r["path"], r["headers"]["Authorization"]) for r in api.requests] == [
        ("/v1/projects/abcd/database/backups", "Bearer sbp_token")]


def test_stale_backup_fails(api_factory):
    result = run_supabase(api_factory((200, {}, backups_body(hours_old=30), 0)))
    assert result.status == "FAIL" and "30.0 h old (RPO 24 h)" in result.details[0]


def test_a_failed_latest_attempt_is_reported_and_fails(api_factory):
    failed = {"id": 3, "is_physical_backup": True, "status": "FAILED",
              "inserted_at": (NOW - timedelta(hours=1)).isoformat()}
    result = run_supabase(api_factory((200, {}, backups_body(hours_old=3, extra=[failed]), 0)))
    assert result.status == "FAIL" and result.measured["failed_backups_7d"] == 1
    assert any("FAILED" in d for d in result.details)


def test_pitr_uses_the_latest_physical_backup_time_and_must_match_config(api_factory):
    api = api_factory((200, {}, backups_body(pitr=True, hours_old=40, physical_hours_old=0.2), 0),
                      (200, {}, backups_body(pitr=False), 0))
    result = run_supabase(api, expect_pitr=True)
    assert result.status == "PASS" and result.measured["backup_age_hours"] == 0.2
    result = run_supabase(api, expect_pitr=True)
    assert result.status == "FAIL" and "PITR is off but config expects it on" in result.details[0]


def test_401_is_an_error_not_a_pass(api_factory):
    result = run_supabase(api_factory((401, {}, {"message": "Unauthorized"}, 0)))
    assert result.status == "ERROR" and "token was refused" in result.details[0]


def test_429_waits_for_the_rate_limit_reset(api_factory, slept):
    limited = {"X-RateLimit-Limit": "120", "X-RateLimit-Remaining": "0"}
    api = api_factory((429, {**limited, "X-RateLimit-Reset": "7"}, {"message": "Too many requests"}, 0),
                      (429, {**limited, "Retry-After": "3", "X-RateLimit-Reset": "9"}, {"message": "Slow down"}, 0),
                      (429, {**limited, "X-RateLimit-Reset": "3600"}, {"message": "Too many requests"}, 0),
                      (200, {}, backups_body(), 0))
    result = run_supabase(api)
    # Supabase's own header when alone, Retry-After first when both come, and never over a minute.
    assert result.status == "PASS" and slept == [7.0, 3.0, 60.0] and len(api.requests) == 4


def test_500_then_200_is_retried(api_factory, slept):
    api = api_factory((500, {}, b"oops", 0), (502, {}, b"oops", 0), (503, {}, b"oops", 0),
                      (200, {}, backups_body(), 0))
    result = run_supabase(api)
    # urllib3's backoff: the first retry at once, then 2 s, 4 s.
    assert result.status == "PASS" and slept == [2.0, 4.0] and len(api.requests) == 4


def test_a_5xx_that_lasts_gives_up_with_the_status(api_factory, slept):
    result = run_supabase(api_factory(*[(503, {}, b"down", 0)] * 4))
    assert result.status == "ERROR" and "after 4 attempts: HTTP 503" in result.details[0] and slept == [2.0, 4.0]


def test_timeout_and_malformed_json_are_errors(api_factory, slept):
    api = api_factory(*[(200, {}, backups_body(), 1.5)] * 4)
    result = run_supabase(api, timeout=0.3)
    assert result.status == "ERROR" and "gave up" in result.details[0]
    result = run_supabase(api_factory((200, {}, b"<html>maintenance</html>", 0)))
    assert result.status == "ERROR" and "malformed JSON" in result.details[0]


def test_project_ref_from_url():
    assert c.project_ref_from_url("https://abcd1234.supabase.co") == "abcd1234"
    with pytest.raises(ValueError):
        c.project_ref_from_url("https://example.com")


# --------------------------------------------------------------------------- S3 checks


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name=REGION, config=EMULATOR_CONFIG)
        for name in ("invoices", "replica", "reports", "scratch"):
            client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
            client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        yield client


ACCESS_LOGS = "invoice-access-logs"


def configure_like_the_stack(s3):
    s3.create_bucket(Bucket=ACCESS_LOGS, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_policy(Bucket=ACCESS_LOGS, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "logging.s3.amazonaws.com"}, "Action": "s3:PutObject",
        "Resource": f"arn:aws:s3:::{ACCESS_LOGS}/invoice-bucket/*"}]}))  # as CDK's log bucket policy allows
    s3.put_bucket_logging(Bucket="invoices", BucketLoggingStatus={"LoggingEnabled": {
        "TargetBucket": ACCESS_LOGS, "TargetPrefix": "invoice-bucket/"}})
    # What CDK's enforce_ssl and minimum_tls_version write (bucket-level reads still work in moto).
    s3.put_bucket_policy(Bucket="invoices", Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "s3:*", "Condition": condition,
         "Resource": ["arn:aws:s3:::invoices", "arn:aws:s3:::invoices/*"]}
        for condition in ({"Bool": {"aws:SecureTransport": "false"}}, {"NumericLessThan": {"s3:TlsVersion": 1.2}})]}))
    s3.put_bucket_lifecycle_configuration(Bucket="invoices", LifecycleConfiguration={"Rules": [{
        "ID": "ArchiveNoncurrentVersions", "Status": "Enabled", "Filter": {"ObjectSizeGreaterThan": 131071},
        "NoncurrentVersionTransitions": [{"NoncurrentDays": 90, "StorageClass": "GLACIER_IR"}]}]})
    s3.put_public_access_block(Bucket="invoices", PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
    s3.put_bucket_encryption(Bucket="invoices", ServerSideEncryptionConfiguration={"Rules": [{
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "arn:aws:kms:key/1"}}]})
    s3.put_bucket_replication(Bucket="invoices", ReplicationConfiguration={
        "Role": "arn:aws:iam::123456789012:role/r", "Rules": [{
            "ID": "ReplicateEverything", "Status": "Enabled", "Priority": 0, "Filter": {"Prefix": ""},
            "DeleteMarkerReplication": {"Status": "Enabled"},
            "Destination": {"Bucket": "arn:aws:s3:::replica"}}]})


def _log_to_scratch(s3):
    s3.put_bucket_policy(Bucket="scratch", Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "logging.s3.amazonaws.com"}, "Action": "s3:PutObject",
        "Resource": "arn:aws:s3:::scratch/*"}]}))
    s3.put_bucket_logging(Bucket="invoices", BucketLoggingStatus={"LoggingEnabled": {
        "TargetBucket": "scratch", "TargetPrefix": "x/"}})


EXPECT = c.BucketExpectation("invoices", 90, "GLACIER_IR", "arn:aws:kms:key/1", "arn:aws:s3:::replica", ACCESS_LOGS)


def drift(s3):
    return c.run_check("bucket_drift", lambda r: c.bucket_drift(r, s3=s3, expect=EXPECT))


def test_drift_passes_on_the_declared_configuration(s3):
    configure_like_the_stack(s3)
    assert drift(s3).status == "PASS"


@pytest.mark.parametrize(("break_it", "message"), [
    (lambda s3: s3.put_bucket_versioning(Bucket="invoices", VersioningConfiguration={"Status": "Suspended"}),
     "versioning is Suspended"),
    (lambda s3: s3.delete_bucket_lifecycle(Bucket="invoices"), "no enabled rule moves noncurrent versions"),
    (lambda s3: s3.put_bucket_lifecycle_configuration(Bucket="invoices", LifecycleConfiguration={"Rules": [{
        "ID": "x", "Status": "Enabled", "Filter": {"Prefix": ""},
        "NoncurrentVersionTransitions": [{"NoncurrentDays": 90, "StorageClass": "STANDARD_IA"}]}]}),
     "no enabled rule moves noncurrent versions to GLACIER_IR"),
    (lambda s3: s3.delete_bucket_replication(Bucket="invoices"), "no enabled replication rule"),
    (lambda s3: s3.put_public_access_block(Bucket="invoices", PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": False,
        "RestrictPublicBuckets": True}), "BlockPublicPolicy off"),
    (lambda s3: s3.delete_bucket_encryption(Bucket="invoices"), "default encryption is"),
    (lambda s3: s3.delete_bucket_policy(Bucket="invoices"), "the bucket policy no longer denies requests without TLS"),
    (lambda s3: s3.put_bucket_policy(Bucket="invoices", Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Condition": {"Bool": {"aws:SecureTransport": "false"}},
         "Resource": ["arn:aws:s3:::invoices", "arn:aws:s3:::invoices/*"]}]})),
     "the bucket policy no longer denies TLS older than 1.2"),
    (lambda s3: s3.put_bucket_logging(Bucket="invoices", BucketLoggingStatus={}), "server access logging is off"),
    (lambda s3: _log_to_scratch(s3), "access logs go to scratch"),
])
def test_drift_catches_each_change(s3, break_it, message):
    configure_like_the_stack(s3)
    break_it(s3)
    result = drift(s3)
    assert result.status == "FAIL" and any(message in d for d in result.details), result.details


# --------------------------------------------------------------------------- backup drift, on what CDK synthesized


def lock_like_a_dev_stack(s3, backups):
    """A destroyable environment's default retention (moto sets one only on an empty bucket)."""
    s3.put_object_lock_configuration(Bucket=backups, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 7}}})


def guard_like_a_dev_stack(s3, backups, reports):
    """A destroyable environment's backup and reports buckets with the denies that hold everywhere
    (moto would refuse object writes under them, whatever their conditions: put objects first)."""
    for bucket, statements in ((backups, g.backup_bucket_statements(f"arn:aws:s3:::{backups}", None)),
                               (reports, g.audit_statements(f"arn:aws:s3:::{reports}", retain=False))):
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": statements}))


def deploy_guardrails(env, s3, kms, *, account):
    """The synthesized backup bucket's lock and policy, the reports bucket's policy and the protected keys'
    policies, as CloudFormation would put them, on moto buckets named as tests.policy_eval resolves them."""
    from tests.policy_eval import bucket_policies, key_policies
    from tests.test_guardrails import logical

    template = env.templates[env.stack("DatabaseBackups")]
    storage = env.templates[env.stack("InvoiceStorage")]
    backups, reports = (logical(template, p, "AWS::S3::Bucket") for p in ("BackupsBucket", "ReportsBucket"))
    policies = bucket_policies(template, account=account, region=REGION)
    for bucket in (backups, reports):
        s3.create_bucket(Bucket=bucket.lower(), CreateBucketConfiguration={"LocationConstraint": REGION},
                         ObjectLockEnabledForBucket=bucket == backups)
        s3.put_bucket_policy(Bucket=bucket.lower(), Policy=json.dumps(policies[bucket]))
    s3.put_object_lock_configuration(
        Bucket=backups.lower(), ObjectLockConfiguration=template["Resources"][backups]["Properties"][
            "ObjectLockConfiguration"])
    keys = {}
    for name, source, prefix in (("backup", template, "BackupsKey"),
                                 ("manifest signing", template, "ManifestSigningKey"),
                                 ("reports", template, "ReportsKey"), ("invoice", storage, "InvoicesKey")):
        policy = key_policies(source, account=account, region=REGION)[logical(source, prefix, "AWS::KMS::Key")]
        keys[name] = kms.create_key(Policy=json.dumps(policy))["KeyMetadata"]["Arn"]
    return backups.lower(), reports.lower(), keys


PROD_CUSTODIANS = Custodians("arn:aws:iam::123456789012:role/cdk-hnb659fds-cfn-exec-role-123456789012-eu-west-1",
                             "arn:aws:iam::123456789012:role/tavari-break-glass")


@pytest.fixture
def guarded(prod):
    """prod's guardrails deployed on moto, and what the daily check expects of them."""
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION, config=EMULATOR_CONFIG)
        kms = boto3.client("kms", region_name=REGION)
        backups, reports, keys = deploy_guardrails(prod, s3, kms, account="123456789012")
        yield s3, kms, c.BackupExpectation(backups, "COMPLIANCE", 35, reports, keys, PROD_CUSTODIANS)


def backup_drift(s3, kms, expect):
    return c.run_check("backup_drift", lambda r: c.backup_drift(r, s3=s3, kms=kms, expect=expect))


def test_backup_drift_passes_on_what_cdk_synthesized(guarded):
    result = backup_drift(*guarded)
    assert result.status == "PASS", result.details
    assert result.measured == {"lock_mode": "COMPLIANCE", "default_retention_days": 35, "policies_checked": 6}


def _edit_policy(s3, bucket, change):
    policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    change(policy["Statement"])
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))


def _statement(statements, sid):
    return next(s for s in statements if s.get("Sid") == sid)


def _exempt_one_more(statements):
    _statement(statements, g.BUCKET_TAMPERING_SID)["Condition"]["ArnNotLike"]["aws:PrincipalArn"].append(
        "arn:aws:iam::123456789012:role/attacker")


@pytest.mark.parametrize(("break_it", "message"), [
    (lambda s3, kms, e: s3.put_object_lock_configuration(Bucket=e.bucket, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}}),
     "default retention is"),
    (lambda s3, kms, e: _edit_policy(s3, e.bucket, lambda st: st.remove(_statement(st, g.VERSION_DESTRUCTION_SID))),
     f"{g.VERSION_DESTRUCTION_SID}: missing"),
    (lambda s3, kms, e: _edit_policy(s3, e.bucket, _exempt_one_more),
     f"{g.BUCKET_TAMPERING_SID}: differs in Condition"),
    (lambda s3, kms, e: _edit_policy(s3, e.bucket, lambda st: _statement(st, g.BUCKET_TAMPERING_SID)["Action"].remove(
        "s3:PutBucketPolicy")), f"{g.BUCKET_TAMPERING_SID}: differs in Action"),
    (lambda s3, kms, e: _edit_policy(s3, e.bucket, lambda st: _statement(st, g.UNCONDITIONAL_WRITE_SID).update(
        Condition={"Null": {"s3:if-none-match": "true"}})), f"{g.UNCONDITIONAL_WRITE_SID}: differs in Condition"),
    (lambda s3, kms, e: s3.delete_bucket_policy(Bucket=e.bucket), f"{g.DELETE_MARKER_SID}: missing"),
    (lambda s3, kms, e: _edit_policy(s3, e.reports_bucket, lambda st: st.remove(_statement(st, g.AUDIT_DELETE_SID))),
     f"{g.AUDIT_DELETE_SID}: missing"),
    (lambda s3, kms, e: kms.put_key_policy(KeyId=e.keys["manifest signing"], PolicyName="default", Policy=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*",
                                                "Principal": {"AWS": "arn:aws:iam::123456789012:root"}}]})),
     f"manifest signing key: {g.KEY_DESTRUCTION_SID}: missing"),
])
def test_backup_drift_catches_each_change(guarded, break_it, message):
    s3, kms, expect = guarded
    break_it(s3, kms, expect)
    result = backup_drift(s3, kms, expect)
    assert result.status == "FAIL" and any(message in d for d in result.details), result.details


def test_backup_drift_fails_on_a_bucket_without_object_lock(guarded):
    s3, kms, expect = guarded
    s3.create_bucket(Bucket="unlocked", CreateBucketConfiguration={"LocationConstraint": REGION})
    result = backup_drift(s3, kms, c.BackupExpectation("unlocked", "COMPLIANCE", 35, expect.reports_bucket))
    assert result.status == "FAIL" and "Object Lock is not enabled" in result.details


def test_backup_drift_fails_on_a_key_it_cannot_name(guarded):
    s3, kms, expect = guarded
    expect = c.BackupExpectation(expect.bucket, expect.lock_mode, expect.default_retention_days, expect.reports_bucket,
                                 {**expect.keys, "secrets": None}, expect.custodians)
    result = backup_drift(s3, kms, expect)
    assert result.status == "FAIL" and result.details == ["secrets key: its ARN is unknown (stack output missing)"]


def test_backup_drift_in_dev_expects_only_the_denies_that_hold_everywhere(dev):
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION, config=EMULATOR_CONFIG)
        kms = boto3.client("kms", region_name=REGION)
        backups, reports, keys = deploy_guardrails(dev, s3, kms, account="123456789012")
        assert backup_drift(s3, kms, c.BackupExpectation(backups, "GOVERNANCE", 7, reports, keys)).status == "PASS"
        # Held to prod's expectations, dev's deployment lacks every retain-only statement.
        result = backup_drift(s3, kms, c.BackupExpectation(backups, "GOVERNANCE", 7, reports, keys, PROD_CUSTODIANS))
        assert result.status == "FAIL"
        assert {d.split(": ")[1] for d in result.details} == {
            g.VERSION_DESTRUCTION_SID, g.BUCKET_TAMPERING_SID, g.AUDIT_DELETE_SID, g.KEY_DESTRUCTION_SID}


def test_integrity_sample_records_baselines_then_catches_a_corrupted_version(s3):
    from botocore.config import Config
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    # Objects written before S3 added default checksums carry none: the baseline path covers them.
    legacy = boto3.client("s3", region_name=REGION, config=Config(request_checksum_calculation="when_required"))
    for i in range(8):
        writer = legacy if i == 3 else s3
        writer.put_object(Bucket="invoices", Key=f"inv/{i}.pdf", Body=f"%PDF v1 {i}".encode())
        writer.put_object(Bucket="invoices", Key=f"inv/{i}.pdf", Body=f"%PDF v2 {i}".encode())
    s3.put_object(Bucket="invoices", Key="inv/old.pdf", Body=b"cold", StorageClass="GLACIER")
    s3.put_object(Bucket="invoices", Key="inv/signed.pdf", Body=b"with checksum", ChecksumAlgorithm="SHA256")

    def run():
        store = c.BaselineStore(s3, "reports", "invoices")
        return c.run_check("integrity", lambda r: c.integrity_sample(r, s3=s3, bucket="invoices", n=100,
                                                                      baselines=store, rng=random.Random(1)))

    first = run()
    assert first.status == "PASS", first.details
    assert first.measured["sampled"] == 18 and first.measured["archived"] == 1 and first.measured["read"] == 17
    assert first.measured["new_baselines"] >= 16
    assert run().measured["new_baselines"] == 0  # baselines persist in the reports bucket
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["global"]
    for name in ("inv/3.pdf", "inv/5.pdf"):  # bit rot in storage, same length
        version = s3.list_object_versions(Bucket="invoices", Prefix=name)["Versions"][-1]["VersionId"]
        key = backend.get_object("invoices", name, version_id=version)
        key._value_buffer.seek(0)
        key._value_buffer.write(b"%PDF XX")
    broken = run()
    assert broken.status == "FAIL"
    # No S3 checksum: our baseline sees it. With one: S3's checksum (validated on read) sees it.
    assert any("inv/3.pdf" in d and "changed since first seen" in d for d in broken.details), broken.details
    assert any("inv/5.pdf" in d and "did not match" in d for d in broken.details), broken.details


def test_replication_health_compares_replicas_by_size_and_checksum_never_etag(s3):
    s3.put_object(Bucket="invoices", Key="a.pdf", Body=b"same", ChecksumAlgorithm="SHA256")
    s3.put_object(Bucket="replica", Key="a.pdf", Body=b"same", ChecksumAlgorithm="SHA256")
    s3.put_object(Bucket="invoices", Key="b.pdf", Body=b"12345", ChecksumAlgorithm="SHA256")
    s3.put_object(Bucket="replica", Key="b.pdf", Body=b"54321", ChecksumAlgorithm="SHA256")

    class WithStatus:
        """moto never replicates; S3 reports each object's ReplicationStatus on HEAD."""

        def __init__(self, real, statuses):
            self.real, self.statuses = real, statuses

        def __getattr__(self, name):
            return getattr(self.real, name)

        def head_object(self, **kwargs):
            head = self.real.head_object(**kwargs)
            return {**head, "ReplicationStatus": self.statuses[kwargs["Key"]]}

    def run(statuses, now=datetime.now(UTC)):
        return c.run_check("replication", lambda r: c.replication_health(
            r, s3=WithStatus(s3, statuses), replica_s3=s3, bucket="invoices", replica_bucket="replica", n=10,
            max_pages=2, pending_threshold=timedelta(minutes=15), now=now))

    result = run({"a.pdf": "COMPLETED", "b.pdf": "COMPLETED"})
    assert result.status == "FAIL" and any("b.pdf: replica checksum differs" in d for d in result.details)
    result = run({"a.pdf": "COMPLETED", "b.pdf": "FAILED"})
    assert result.status == "FAIL" and result.measured["failed"] == 1
    result = run({"a.pdf": "COMPLETED", "b.pdf": "PENDING"})
    assert result.status == "PASS" and result.measured["pending"] == 1  # recent: within the RTC window
    result = run({"a.pdf": "COMPLETED", "b.pdf": "PENDING"}, now=datetime.now(UTC) + timedelta(hours=1))
    assert result.status == "FAIL" and "PENDING for more than" in result.details[0]
    # The inventory canary's objects, newest of all, are not the invoices' sample (ADR 0022).
    for i in range(12):
        s3.put_object(Bucket="invoices", Key=f"_canary/2026-12-01T0{i % 10}-00-0{i // 10}Z/probe a+b", Body=b"c")
    result = run({"a.pdf": "COMPLETED", "b.pdf": "FAILED"})
    assert result.measured["sampled"] == 2 and result.measured["failed"] == 1


def freshness(s3, signing, verify=False):
    return c.run_check("offsite", lambda r: c.offsite_freshness(r, s3=s3, bucket="scratch", verifier=signing.verifier,
                                                                rpo_hours=24, now=NOW, verify_sha256=verify))


def test_offsite_freshness_uses_only_complete_dumps(s3, signing):
    assert freshness(s3, signing).status == "FAIL"  # nothing yet
    write_backup(s3, "scratch", signing.signer, finished=NOW - timedelta(hours=30))
    s3.put_object(Bucket="scratch", Key="dumps/daily/20261125T110000Z-nightly/data.dump", Body=b"no manifest")
    result = freshness(s3, signing)
    assert result.status == "FAIL" and result.measured["backup_age_hours"] == 30.0  # the incomplete one is ignored
    write_backup(s3, "scratch", signing.signer, finished=NOW - timedelta(hours=2))
    result = freshness(s3, signing, verify=True)
    assert result.status == "PASS" and result.measured["trust"] == "signed" and not result.measured["tampered"]


def test_a_pre_restore_copy_does_not_reset_the_backup_age(s3, signing):
    """The copy `db restore --force` takes of its target is not a backup of the source: the daily
    monitor's age (BackupAgeHours, alarmed against the RPO) stays the newest nightly's."""
    from tavari_dr.database.manifest import PRE_RESTORE

    write_backup(s3, "scratch", signing.signer, finished=NOW - timedelta(hours=30))
    write_backup(s3, "scratch", signing.signer, finished=NOW - timedelta(hours=1), reason=PRE_RESTORE)
    result = freshness(s3, signing)
    assert result.status == "FAIL" and result.measured["backup_age_hours"] == 30.0
    assert result.measured["backup_id"].endswith("-nightly")


def test_offsite_checks_fail_on_a_replaced_dump_and_say_tampered(s3, signing):
    manifest = write_backup(s3, "scratch", signing.signer, finished=NOW - timedelta(hours=2))
    s3.put_object(Bucket="scratch", Key=manifest.artifacts["data.dump"]["key"], Body=b"PGDMP replaced")
    for verify in (False, True):  # the daily freshness check sees it too, not only the weekly sha256 pass
        result = freshness(s3, signing, verify=verify)
        assert result.status == "FAIL" and result.measured["tampered"] is True
        assert "data.dump: 2 versions" in result.details[0]


def test_a_tampered_backup_publishes_backup_tampered_for_the_alarm(s3, signing):
    from tavari_dr.verification import jobs

    manifest = write_backup(s3, "scratch", signing.signer, finished=NOW - timedelta(hours=2))
    # A second version (a delete marker would be judged against the backup's retention, i.e. the date).
    s3.put_object(Bucket="scratch", Key=manifest.artifacts["schema.dump"]["key"], Body=b"PGDMP swapped")
    emitted = []
    jobs.record([freshness(s3, signing)], job="daily_monitor", s3=s3, reports_bucket="reports", now=NOW,
                emit=lambda values, dims=None, **_: emitted.append((values, dims)))
    assert ({"BackupTampered": 1}, None) in emitted and ({"BackupTampered": 1}, {"Source": "offsite"}) in emitted


def put_storage_metrics(cw, bucket, size, count):
    for name, storage, value in (("BucketSizeBytes", "StandardStorage", size),
                                 ("NumberOfObjects", "AllStorageTypes", count)):
        cw.put_metric_data(Namespace="AWS/S3", MetricData=[{
            "MetricName": name, "Value": value, "Timestamp": NOW - timedelta(hours=6),
            "Dimensions": [{"Name": "BucketName", "Value": bucket}, {"Name": "StorageType", "Value": storage}]}])


def test_sizes_from_storage_metrics_and_a_shrunk_bucket_fails(s3):
    cw = boto3.client("cloudwatch", region_name=REGION)
    put_storage_metrics(cw, "sized", 800_000, 8_000)  # moto keeps metrics across tests: a name of its own

    def run(previous):
        return c.run_check("sizes", lambda r: c.sizes(r, cloudwatch=cw, bucket="sized", previous=previous,
                                                      max_shrink_percent=10, now=NOW))

    first = run(None)
    assert first.status == "PASS" and first.measured["BucketSizeBytes"] == 800_000
    assert run({"BucketSizeBytes": 820_000, "NumberOfObjects": 8_100}).status == "PASS"
    shrunk = run({"BucketSizeBytes": 1_000_000, "NumberOfObjects": 8_000})
    assert shrunk.status == "FAIL" and "BucketSizeBytes shrank 20.0 %" in shrunk.details[0]


def test_sizes_without_metrics_fails_rather_than_passing(s3):
    cw = boto3.client("cloudwatch", region_name=REGION)
    result = c.run_check("sizes", lambda r: c.sizes(r, cloudwatch=cw, bucket="never-measured", previous=None,
                                                    max_shrink_percent=10, now=NOW))
    assert result.status == "FAIL" and "no BucketSizeBytes datapoint" in result.details[0]


def test_monthly_s3_restore_test_restores_checks_times_and_cleans_up(s3):
    for i in range(5):
        for v in range(3):
            s3.put_object(Bucket="invoices", Key=f"inv/{i}.pdf", Body=f"v{v} of {i}".encode())
    result = c.run_check("s3_restore_test", lambda r: c.s3_restore_test(
        r, s3=s3, bucket="invoices", scratch_bucket="scratch", n=4, rto_seconds=3600, run_id="2026-11",
        rng=random.Random(3)))
    assert result.status == "PASS", result.details
    assert result.measured["restored"] == 4 and result.measured["seconds"] < 3600
    assert "Versions" not in s3.list_object_versions(Bucket="scratch", Prefix="restore-test/")


def test_a_check_that_raises_is_error_with_the_reason():
    def broken(result):
        raise KeyError("AccessDenied on s3:GetBucketVersioning")

    result = c.run_check("drift", broken)
    assert result.status == "ERROR" and "AccessDenied" in result.details[0] and not result.ok


def daily_targets(env):
    from tests.test_lambda_assets import rendered

    template = env.templates[env.stack("DatabaseBackups")]
    (fn,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"
             and r["Properties"].get("Description") == "Backup verification: daily_monitor"]
    return json.loads(rendered(fn["Properties"]["Environment"]["Variables"]["TAVARI_TARGETS"]))


def test_the_daily_monitor_is_told_the_dr_side_of_the_backups(prod, dev):
    dr = daily_targets(prod)["dr_backups"]
    from tests.test_guardrails import logical

    replica = prod.templates[prod.stack("DatabaseBackupsReplica")]
    name = replica["Resources"][logical(replica, "BackupsBucket", "AWS::S3::Bucket")]["Properties"]["BucketName"]
    assert dr["region"] == "eu-central-1" and dr["bucket"] == name  # the replica's generated physical name
    assert dr["keys"] == {name: f"arn:aws:kms:eu-central-1:123456789012:alias/tavari-prod-{purpose}-replica"
                          for name, purpose in (("backup replica", "backups"), ("invoice replica", "invoice"),
                                                ("secrets replica", "secrets"))}
    assert dr["custodian_arns"] == [
        "arn:aws:iam::123456789012:role/cdk-hnb659fds-cfn-exec-role-123456789012-eu-central-1",
        "arn:aws:iam::123456789012:role/tavari-break-glass"]
    assert daily_targets(dev).get("dr_backups") is None  # dev does not replicate (to_json_string drops nulls)


def test_backup_drift_reads_the_dr_replica_and_the_dr_keys_through_their_aliases(prod):
    from tavari_dr.verification import jobs
    from tests.policy_eval import bucket_policies, key_policies
    from tests.test_guardrails import logical

    dr_region, account = "eu-central-1", "123456789012"
    told = daily_targets(prod)["dr_backups"]
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION, config=EMULATOR_CONFIG)
        primary_kms = boto3.client("kms", region_name=REGION)
        backups, reports, keys = deploy_guardrails(prod, s3, primary_kms, account=account)
        regional = {(service, dr_region): boto3.client(service, region_name=dr_region, config=EMULATOR_CONFIG)
                    for service in ("s3", "kms")}
        dr_s3, dr_kms = regional[("s3", dr_region)], regional[("kms", dr_region)]
        replica = prod.templates[prod.stack("DatabaseBackupsReplica")]
        logical_id = logical(replica, "BackupsBucket", "AWS::S3::Bucket")
        bucket = told["bucket"]  # its physical name, as the primary stack names it
        dr_s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": dr_region},
                            ObjectLockEnabledForBucket=True)
        policy = bucket_policies(replica, account=account, region=dr_region)[logical_id]
        dr_s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy).replace(logical_id.lower(), bucket))
        dr_s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration=replica["Resources"][
            logical_id]["Properties"]["ObjectLockConfiguration"])
        for stack, prefix, alias in (("DatabaseBackupsReplica", "BackupsKey", told["keys"]["backup replica"]),
                                     ("InvoiceReplica", "ReplicaKey", told["keys"]["invoice replica"]),
                                     ("SecretsReplicaKey", "Key", told["keys"]["secrets replica"])):
            template = prod.templates[prod.stack(stack)]
            policy = key_policies(template, account=account, region=dr_region)[
                logical(template, prefix, "AWS::KMS::Key")]
            key = dr_kms.create_key(Policy=json.dumps(policy))["KeyMetadata"]["KeyId"]
            dr_kms.create_alias(AliasName=alias.split(":", 5)[5], TargetKeyId=key)
        targets = jobs.Targets(
            invoice_bucket="invoices", invoice_key_arn=None, archive_after_days=90, archive_storage_class="GLACIER_IR",
            backup_bucket=backups, reports_bucket=reports, scratch_bucket="scratch", backup_lock_mode="COMPLIANCE",
            backup_default_retention_days=35, protected_keys=keys, custodian_arns=PROD_CUSTODIANS.arns,
            dr_backups=told)
        clients = jobs.Clients(s3=s3, replica_s3=dr_s3, cloudwatch=None, secretsmanager=None, kms=primary_kms,
                               regional=lambda service, region: regional[(service, region)])
        result = c.run_check("backup_drift", lambda r: jobs._backup_drift(r, clients, targets))
        assert result.status == "PASS", result.details
        assert result.measured["dr_policies_checked"] == 4 and result.measured["dr_lock_mode"] == "COMPLIANCE"
        # A DR-region admin's change is caught there too.
        key_id = dr_kms.describe_key(KeyId=told["keys"]["secrets replica"])["KeyMetadata"]["KeyId"]
        dr_kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*",
                                                    "Principal": {"AWS": f"arn:aws:iam::{account}:root"}}]}))
        dr_s3.delete_bucket_policy(Bucket=bucket)
        result = c.run_check("backup_drift", lambda r: jobs._backup_drift(r, clients, targets))
        assert result.status == "FAIL"
        assert any(d.startswith("DR (eu-central-1): secrets replica key:") for d in result.details), result.details
        assert any(d.startswith(f"DR (eu-central-1): bucket {bucket}:") for d in result.details)


def test_a_cross_account_dr_side_is_said_to_be_unchecked(guarded):
    from tavari_dr.verification import jobs

    s3, kms, expect = guarded
    targets = jobs.Targets(
        invoice_bucket="invoices", invoice_key_arn=None, archive_after_days=90, archive_storage_class="GLACIER_IR",
        backup_bucket=expect.bucket, reports_bucket=expect.reports_bucket, scratch_bucket="scratch",
        backup_lock_mode="COMPLIANCE", backup_default_retention_days=35, protected_keys=expect.keys,
        custodian_arns=PROD_CUSTODIANS.arns, dr_backups_unchecked="the backup replica is in account 210987654321")
    clients = jobs.Clients(s3=s3, replica_s3=None, cloudwatch=None, secretsmanager=None, kms=kms)
    result = c.run_check("backup_drift", lambda r: jobs._backup_drift(r, clients, targets))
    assert result.status == "PASS" and result.details == [
        "DR side not checked: the backup replica is in account 210987654321"]


# --------------------------------------------------------------------------- continuous capture


def _segment(s3, hour, name="seg"):
    """A change segment filed under ``hour``'s prefix; returns its key and S3's LastModified."""
    key = f"{c.SEGMENTS_PREFIX}{hour:%Y/%m/%d/%H}/{hour:%Y%m%dT%H%M%SZ}-{name}.seg"
    s3.put_object(Bucket="backups", Key=key, Body=b"changes")
    return key, s3.head_object(Bucket="backups", Key=key)["LastModified"]


def _listed(s3):
    """The Prefix of every ListObjectsV2 call made through ``s3`` from now on."""
    prefixes = []
    s3.meta.events.register("provide-client-params.s3.ListObjectsV2",
                            lambda params, **_: prefixes.append(params.get("Prefix")))
    return prefixes


def _freshness(s3, now, *, enabled=True, max_lag=180, cloudwatch=None):
    return c.run_check("change_freshness", lambda r: c.change_freshness(
        r, s3=s3, bucket="backups", enabled=enabled, max_lag_seconds=max_lag, now=now, cloudwatch=cloudwatch))


def _published(cloudwatch, age_seconds, at):
    """What the capture publishes on each tick (ChangeSegmentAgeSeconds{Source=changes})."""
    cloudwatch.put_metric_data(Namespace=metrics.NAMESPACE, MetricData=[{
        "MetricName": metrics.CHANGE_SEGMENT_AGE_SECONDS, "Value": age_seconds, "Unit": "Seconds", "Timestamp": at,
        "Dimensions": [{"Name": "Source", "Value": "changes"}]}])


def test_segment_hour_prefixes_are_this_hour_and_the_one_before_across_a_day():
    assert c.segment_hour_prefixes(datetime(2027, 3, 1, 0, 1, tzinfo=UTC), 180) == [
        "changes/segments/2027/03/01/00/", "changes/segments/2027/02/28/23/"]
    assert c.segment_hour_prefixes(datetime(2027, 3, 1, 10, 30, tzinfo=UTC), 7200) == [
        "changes/segments/2027/03/01/10/", "changes/segments/2027/03/01/09/", "changes/segments/2027/03/01/08/"]


def test_a_fresh_segment_passes_and_only_the_hour_prefixes_are_listed(s3):
    s3.create_bucket(Bucket="backups", CreateBucketConfiguration={"LocationConstraint": REGION})
    _segment(s3, datetime.now(UTC) - timedelta(hours=1), "older")
    key, written = _segment(s3, datetime.now(UTC), "newest")
    listed = _listed(s3)
    result = _freshness(s3, written + timedelta(seconds=30))
    assert result.status == c.PASS, result.details
    assert result.measured["newest_segment"] == key and 29 <= result.measured["segment_age_seconds"] <= 31
    assert len(listed) == 2 and all(p.startswith(c.SEGMENTS_PREFIX) and p.count("/") == 6 for p in listed)


def test_a_segment_older_than_the_lag_bound_fails(s3):
    s3.create_bucket(Bucket="backups", CreateBucketConfiguration={"LocationConstraint": REGION})
    key, written = _segment(s3, datetime.now(UTC))
    result = _freshness(s3, written + timedelta(seconds=185))
    assert result.status == c.FAIL and key in result.details[0] and "max_lag_seconds 180" in result.details[0]


def test_no_segment_while_enabled_fails_and_segments_outside_the_window_are_not_looked_for(s3):
    s3.create_bucket(Bucket="backups", CreateBucketConfiguration={"LocationConstraint": REGION})
    assert _freshness(s3, datetime.now(UTC)).status == c.FAIL
    # Filed three hours back (the window of a 180 s bound is this hour and the last): never listed.
    _segment(s3, datetime.now(UTC) - timedelta(hours=3))
    result = _freshness(s3, datetime.now(UTC) + timedelta(seconds=5))
    assert result.status == c.FAIL and "wrote nothing" in result.details[0]


def test_an_old_segment_passes_when_the_capture_says_it_is_caught_up_and_fails_when_it_says_nothing(s3):
    """A quiet database: no commit, no segment; the capture's own metric tells idle from dead."""
    s3.create_bucket(Bucket="backups", CreateBucketConfiguration={"LocationConstraint": REGION})
    _key, written = _segment(s3, datetime.now(UTC))
    now = written + timedelta(seconds=600)
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    silent = _freshness(s3, now, cloudwatch=cloudwatch)
    assert silent.status == c.FAIL and "published no ChangeSegmentAgeSeconds" in silent.details[0]
    _published(cloudwatch, 0, now - timedelta(seconds=30))
    idle = _freshness(s3, now, cloudwatch=cloudwatch)
    assert idle.status == c.PASS and "caught up" in idle.details[0], idle.details
    # An old publication (before the window) does not count: the capture died since.
    late = _freshness(s3, now + timedelta(seconds=400), cloudwatch=cloudwatch)
    assert late.status == c.FAIL
    _published(cloudwatch, 900, now + timedelta(seconds=370))
    behind = _freshness(s3, now + timedelta(seconds=400), cloudwatch=cloudwatch)
    assert behind.status == c.FAIL and "900 s old" in behind.details[0]


def test_with_the_capture_off_the_check_passes_without_listing(s3):
    listed = _listed(s3)
    result = _freshness(s3, NOW, enabled=False)
    assert result.status == c.PASS and result.measured == {"enabled": False} and listed == []
