"""Point-in-time restore against moto: generated histories, edge cases, resume, retries, CLI."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from click.testing import CliRunner
from freezegun import freeze_time
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from tavari_dr.bucket import restore as r
from tavari_dr.cli import main
from tavari_dr.core import aws
from tests.s3_history import BASE, History
from tests.throttling import INTERNAL_ERROR, Throttle, record_sleeps

pytestmark = pytest.mark.moto  # AWS emulated in-process: its own budget (benches/synth.sh)

REGION = "eu-west-1"
NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


def make_bucket(client, name, *, versioned=True, kms_key=None):
    client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    if versioned:
        client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    if kms_key:
        client.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": [{
            "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": kms_key}}]})


def restore(client, bucket, to, tmp_path, **kwargs):
    plan = r.plan_restore(client, bucket, to, now=NOW, **kwargs)
    journal = r.Journal(tmp_path / f"{plan.fingerprint()}.journal.jsonl")
    summary = r.apply_plan(client, plan, journal=journal, report_path=tmp_path / "report.jsonl", concurrency=4)
    return plan, summary


# --------------------------------------------------------------------------- generated histories

KEYS = ["a.pdf", "b.pdf", "inv/c.pdf", "inv/d.pdf"]
operation = st.one_of(
    st.tuples(st.just("put"), st.sampled_from(KEYS), st.binary(min_size=0, max_size=24),
              st.dictionaries(st.sampled_from(["customer", "invoice-no"]), st.text("abc123", max_size=5),
                              max_size=2)),
    st.tuples(st.just("delete"), st.sampled_from(KEYS), st.just(b""), st.just({})),
)


# TAVARI_HYPOTHESIS_EXAMPLES raises the count for a deeper search (e.g. 300 before a release).
@settings(max_examples=int(os.environ.get("TAVARI_HYPOTHESIS_EXAMPLES", "25")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(before_versioning=st.lists(st.sampled_from(KEYS), max_size=2, unique=True),
       ops=st.lists(operation, min_size=1, max_size=12), pick=st.integers(min_value=0), data=st.data())
def test_restore_to_t_reproduces_the_state_at_t_exactly(tmp_path_factory, before_versioning, ops, pick, data):
    tmp_path = tmp_path_factory.mktemp("gen")
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        make_bucket(s3, "invoices", versioned=False)
        history = History(s3, "invoices")
        for key in before_versioning:  # these become "null" versions
            history.put(key, f"pre-{key}".encode())
        s3.put_bucket_versioning(Bucket="invoices", VersioningConfiguration={"Status": "Enabled"})
        for kind, key, body, metadata in ops:
            if kind == "put":
                history.put(key, body, metadata)
            else:
                history.delete(key)
        index = pick % len(history.snapshots)
        to = history.time_after(index)
        prefix = data.draw(st.sampled_from(["", "inv/"]))
        try:
            r.plan_restore(s3, "invoices", to, prefix=prefix, now=NOW)
        except r.PlanError as err:
            assert "nothing to restore" in str(err) or "before the oldest version" in str(err)
            return
        plan, summary = restore(s3, "invoices", to, tmp_path, prefix=prefix)
        assert summary.ok, summary.results
        assert r.visible_state(s3, "invoices", prefix) == history.state_after(index, prefix)
        # Outside the prefix nothing moved.
        outside = {k: v for k, v in history.visible.items() if not k.startswith(prefix)}
        assert {k: v for k, v in r.visible_state(s3, "invoices").items() if not k.startswith(prefix)} == outside
        # A second restore to the same T is a no-op.
        again = r.plan_restore(s3, "invoices", to, prefix=prefix, now=NOW)
        assert again.actions == []
        # Into another bucket: the state at T, and again a no-op the second time.
        make_bucket(s3, "rebuilt")
        restore(s3, "invoices", to, tmp_path, prefix=prefix, target_bucket="rebuilt")
        assert r.visible_state(s3, "rebuilt") == history.state_after(index, prefix)
        assert r.plan_restore(s3, "invoices", to, prefix=prefix, target_bucket="rebuilt", now=NOW).actions == []


# --------------------------------------------------------------------------- named cases


@pytest.fixture
def s3():
    with mock_aws():
        client = aws.client("s3", region=REGION)
        make_bucket(client, "invoices")
        client.create_bucket(Bucket="reports", CreateBucketConfiguration={"LocationConstraint": REGION})
        client.create_bucket(Bucket="backups", CreateBucketConfiguration={"LocationConstraint": REGION})  # the ledger
        yield client


def test_plan_classifies_every_case(s3, tmp_path):
    h = History(s3, "invoices")
    h.put("same.pdf", b"1")            # 0: unchanged since T
    h.put("changed.pdf", b"old")       # 1
    h.put("deleted.pdf", b"gone")      # 2
    h.put("expired.pdf", b"x")         # 3
    h.delete("expired.pdf")            # 4: ... and once lifecycle expires the version,
    (version,) = [v for v in r.list_versions(s3, "invoices", "expired") if not v.delete_marker]
    s3.delete_object(Bucket="invoices", Key="expired.pdf", VersionId=version.version_id)  # only a marker is left
    to = h.time_after(4)
    h.put("changed.pdf", b"new")       # changed after T
    h.delete("deleted.pdf")            # deleted after T
    h.put("created.pdf", b"late")      # created after T
    plan = r.plan_restore(s3, "invoices", to, now=NOW)
    actions = {a.key: a.action for a in plan.actions}
    assert actions == {"changed.pdf": "copy", "deleted.pdf": "copy", "created.pdf": "delete-marker"}
    assert plan.unchanged == 1 and plan.absent == 1 and plan.keys_in_scope == 5
    summary = plan.summary()
    assert summary["copy"] == {"keys": 2, "bytes": 7} and summary["delete-marker"]["keys"] == 1
    plan_again = r.Plan.from_json(plan.to_json())
    assert plan_again == plan


def test_restore_never_deletes_a_version(s3, tmp_path):
    h = History(s3, "invoices")
    h.put("a.pdf", b"v1")
    to = h.time_after(0)
    h.put("a.pdf", b"v2")
    h.put("b.pdf", b"new")
    before = {(v.key, v.version_id) for v in r.list_versions(s3, "invoices")}
    restore(s3, "invoices", to, tmp_path)
    after = {(v.key, v.version_id) for v in r.list_versions(s3, "invoices")}
    assert before < after  # every old version still there, plus new ones


def test_metadata_tags_content_type_and_bucket_kms_key_are_kept(tmp_path):
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        key_id = boto3.client("kms", region_name=REGION).create_key()["KeyMetadata"]["KeyId"]
        make_bucket(s3, "invoices", kms_key=key_id)
        h = History(s3, "invoices")
        h.put("inv.pdf", b"%PDF-1", {"customer": "c-42"}, content_type="application/pdf",
              Tagging="retention=long", ChecksumAlgorithm="SHA256")
        to = h.time_after(0)
        h.put("inv.pdf", b"tampered", {"customer": "evil"}, content_type="text/plain")
        _, summary = restore(s3, "invoices", to, tmp_path)
        assert summary.ok
        head = s3.head_object(Bucket="invoices", Key="inv.pdf", ChecksumMode="ENABLED")
        assert head["Metadata"] == {"customer": "c-42"} and head["ContentType"] == "application/pdf"
        assert head["ServerSideEncryption"] == "aws:kms" and key_id in head["SSEKMSKeyId"]
        assert head.get("ChecksumSHA256")
        assert s3.get_object_tagging(Bucket="invoices", Key="inv.pdf")["TagSet"] == [
            {"Key": "retention", "Value": "long"}]


def test_multipart_copy_above_the_threshold_keeps_bytes_metadata_and_tags(s3, tmp_path):
    body = bytes(range(256)) * (6 * 4096 + 7)  # just over 6 MiB
    h = History(s3, "invoices")
    h.put("big.pdf", body, {"pages": "900"}, Tagging="kind=archive")
    to = h.time_after(0)
    h.delete("big.pdf")
    plan = r.plan_restore(s3, "invoices", to, now=NOW)
    summary = r.apply_plan(s3, plan, journal=r.Journal(tmp_path / "j.jsonl"), multipart_threshold=5 * 1024**2,
                           part_size=5 * 1024**2)
    assert summary.ok
    # moto gives a multipart copy a whole-object checksum that does not match; real S3 marks it
    # composite ("-N"), which botocore does not validate. Read without response validation.
    from botocore.config import Config

    reader = boto3.client("s3", region_name=REGION, config=Config(response_checksum_validation="when_required"))
    got = reader.get_object(Bucket="invoices", Key="big.pdf")
    assert got["Body"].read() == body and got["Metadata"] == {"pages": "900"}
    assert s3.get_object_tagging(Bucket="invoices", Key="big.pdf")["TagSet"] == [{"Key": "kind", "Value": "archive"}]


class VersionedRestore:
    """moto's RestoreObject ignores VersionId (it restores the current version); S3 does not."""

    def __init__(self, client):
        self._client = client
        self.requests = []

    def __getattr__(self, name):
        return getattr(self._client, name)

    def restore_object(self, *, Bucket, Key, VersionId, RestoreRequest):  # noqa: N803
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.s3.models import s3_backends

        self.requests.append((Key, VersionId, RestoreRequest))
        s3_backends[DEFAULT_ACCOUNT_ID]["global"].get_object(Bucket, Key, version_id=VersionId).restore(
            RestoreRequest["Days"])
        return {}


def test_archived_version_is_restored_from_glacier_first_then_copied(s3, tmp_path):
    h = History(s3, "invoices")
    h.put("old.pdf", b"archived bytes", StorageClass="GLACIER")
    to = h.time_after(0)
    h.put("old.pdf", b"newer")
    plan = r.plan_restore(s3, "invoices", to, now=NOW)
    assert [(a.action, a.storage_class) for a in plan.actions] == [("restore-archived", "GLACIER")]
    client = VersionedRestore(s3)
    summary = r.apply_plan(client, plan, journal=r.Journal(tmp_path / "j.jsonl"))
    assert summary.counts == {"pending": 1} and not summary.ok
    assert "run the same command again" in summary.results[0].detail
    assert client.requests == [("old.pdf", plan.actions[0].version_id,
                                {"Days": 7, "GlacierJobParameters": {"Tier": "Standard"}})]
    # moto completes the restore at once; the next run copies.
    plan = r.plan_restore(s3, "invoices", to, now=NOW)
    assert [a.action for a in plan.actions] == ["copy"]
    assert r.apply_plan(s3, plan, journal=r.Journal(tmp_path / "j2.jsonl")).ok
    assert s3.get_object(Bucket="invoices", Key="old.pdf")["Body"].read() == b"archived bytes"


class Dying:
    """A client whose operator presses Ctrl-C after ``die_after_copies`` copies."""

    def __init__(self, client, *, die_after_copies=None):
        self._client = client
        self.die_after = die_after_copies
        self.copies = 0

    def __getattr__(self, name):
        return getattr(self._client, name)

    def copy_object(self, **kwargs):
        if self.die_after is not None and self.copies >= self.die_after:
            raise KeyboardInterrupt("operator pressed Ctrl-C")
        self.copies += 1
        return self._client.copy_object(**kwargs)


def changed_history(s3, n=12):
    h = History(s3, "invoices")
    for i in range(n):
        h.put(f"k{i:02}.pdf", f"v1-{i}".encode())
    to = h.time_after(n - 1)
    for i in range(n):
        h.put(f"k{i:02}.pdf", f"v2-{i}".encode())
    return h, to


@pytest.fixture
def backoffs(monkeypatch):
    """The waits botocore's retry handler asks for, recorded instead of slept."""
    import botocore.endpoint

    return record_sleeps(monkeypatch, botocore.endpoint)


def test_the_project_client_retries_in_standard_mode_s3_longest():
    with mock_aws():
        assert aws.client("s3", region=REGION).meta.config.retries == {"mode": "standard", "total_max_attempts": 10}
        assert aws.client("kms", region=REGION).meta.config.retries == {"mode": "standard", "total_max_attempts": 5}
        target = aws.AwsTarget(region=REGION, endpoint_url="http://127.0.0.1:1")
        emulated = target.client("s3")
        assert emulated.meta.config.retries == aws.RETRIES["s3"]
        assert emulated.meta.config.response_checksum_validation == "when_required"


def test_an_operators_own_retry_settings_win(monkeypatch, backoffs):
    """AWS_MAX_ATTEMPTS / AWS_RETRY_MODE are botocore's documented settings: an operator who sets them
    (a test that wants one attempt, a throttled account that wants more) gets them."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    with mock_aws():
        client = aws.client("s3", region=REGION)
        assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 2}
        client.create_bucket(Bucket="retry-settings", CreateBucketConfiguration={"LocationConstraint": REGION})
        throttle = Throttle(client, "HeadBucket", failures=5)
        with pytest.raises(ClientError):
            client.head_bucket(Bucket="retry-settings")
        assert list(throttle.attempts.values()) == [2]


def test_a_restore_under_slowdown_and_5xx_completes(s3, tmp_path, backoffs):
    """Every copy is answered 503 SlowDown twice, every delete marker 500 InternalError once, every
    HEAD SlowDown once: botocore backs off and retries each call, and the restore completes."""
    h, to = changed_history(s3)
    h.delete("k11.pdf")
    h.put("k12.pdf", b"after T")
    plan = r.plan_restore(s3, "invoices", to, now=NOW)
    copies = Throttle(s3, "CopyObject", failures=2)
    markers = Throttle(s3, "DeleteObject", failures=1, error=INTERNAL_ERROR)
    heads = Throttle(s3, "HeadObject", failures=1)
    summary = r.apply_plan(s3, plan, journal=r.Journal(tmp_path / "j.jsonl"), concurrency=3)
    assert summary.counts == {"done": 13} and summary.ok, [x for x in summary.results if x.status != "done"]
    assert sorted(copies.attempts.values()) == [3] * 12 and list(markers.attempts.values()) == [2]
    # Once per URL: each of the 13 keys' read-back after the last write (copies need no HEAD of
    # their source, and the check before a write is the write's own S3 condition).
    assert heads.failed == 13
    assert len(backoffs) == copies.failed + markers.failed + heads.failed == 24 + 1 + 13
    assert all(0 <= wait <= 20 for wait in backoffs)
    assert r.visible_state(s3, "invoices") == h.state_after(11)


def test_slowdown_that_never_ends_fails_the_key_after_the_policy_s_attempts(s3, tmp_path, backoffs):
    _, to = changed_history(s3, n=2)
    plan = r.plan_restore(s3, "invoices", to, now=NOW)
    copies = Throttle(s3, "CopyObject", failures=99)
    summary = r.apply_plan(s3, plan, journal=r.Journal(tmp_path / "j.jsonl"))
    assert summary.counts == {"failed": 2} and not summary.ok
    assert "SlowDown" in summary.results[0].detail and "reached max retries: 9" in summary.results[0].detail
    assert list(copies.attempts.values()) == [aws.RETRIES["s3"]["total_max_attempts"]] * 2


def test_a_client_error_that_is_not_transient_is_not_retried(s3, tmp_path, backoffs):
    _, to = changed_history(s3, n=1)
    plan = r.plan_restore(s3, "invoices", to, now=NOW)
    denied = Throttle(s3, "CopyObject", failures=99, error=(403, "AccessDenied", "Access Denied"))
    summary = r.apply_plan(s3, plan, journal=r.Journal(tmp_path / "j.jsonl"))
    assert summary.counts == {"failed": 1} and "AccessDenied" in summary.results[0].detail
    assert list(denied.attempts.values()) == [1] and backoffs == []


def test_interrupted_run_resumes_without_redoing_completed_keys(s3, tmp_path):
    h, to = changed_history(s3)
    plan = r.plan_restore(s3, "invoices", to, now=NOW)
    journal_path = tmp_path / "j.jsonl"
    dying = Dying(s3, die_after_copies=5)
    with pytest.raises(KeyboardInterrupt):
        r.apply_plan(dying, plan, journal=r.Journal(journal_path), concurrency=1)
    assert len(journal_path.read_text().splitlines()) == 5
    resumed = Dying(s3)
    summary = r.apply_plan(resumed, plan, journal=r.Journal(journal_path), concurrency=2)
    assert summary.counts == {"skipped": 5, "done": 7} and resumed.copies == 7
    assert r.visible_state(s3, "invoices") == h.state_after(11)


@pytest.mark.parametrize(("text", "message"), [
    ("2026-11-20T14:00:00", "has no time zone"),
    ("20/11/2026 2pm", "is not an ISO 8601 time"),
])
def test_bad_time_strings(text, message):
    with pytest.raises(r.PlanError, match=message):
        r.parse_time(text)


def test_times_in_the_future_or_before_the_oldest_version_are_refused(s3):
    h = History(s3, "invoices")
    h.put("a.pdf", b"1")
    with pytest.raises(r.PlanError, match="is in the future"):
        r.plan_restore(s3, "invoices", NOW + timedelta(minutes=1), now=NOW)
    with pytest.raises(r.PlanError, match="before the oldest version in scope"):
        r.plan_restore(s3, "invoices", BASE - timedelta(days=1), now=NOW)


def test_unversioned_or_suspended_buckets_are_refused(s3):
    make_bucket(s3, "plain", versioned=False)
    with freeze_time(BASE):
        s3.put_object(Bucket="plain", Key="a", Body=b"1")
    with pytest.raises(r.PlanError, match="versioning never enabled"):
        r.plan_restore(s3, "plain", NOW, now=NOW)
    s3.put_bucket_versioning(Bucket="invoices", VersioningConfiguration={"Status": "Suspended"})
    with pytest.raises(r.PlanError, match="versioning Suspended"):
        r.plan_restore(s3, "invoices", NOW, now=NOW)


def test_unversioned_target_is_refused(s3):
    History(s3, "invoices").put("a.pdf", b"1")
    make_bucket(s3, "target", versioned=False)
    with pytest.raises(r.PlanError, match="bucket target has versioning never enabled"):
        r.plan_restore(s3, "invoices", NOW, target_bucket="target", now=NOW)


# --------------------------------------------------------------------------- CLI


def run_cli(*args):
    # Every restore reads the erasure ledger (here: an empty one); without --env the CLI is told where.
    ledger = [] if "--env" in args else ["--backup-bucket", "backups"]
    result = CliRunner().invoke(main, ["bucket", "restore", *ledger, *args], catch_exceptions=False)
    return result.exit_code, result.output


def test_cli_dry_run_plan_file_apply_and_no_op(s3, tmp_path):
    h, to = changed_history(s3, n=3)
    h.put("new.pdf", b"x")
    plan_file = tmp_path / "plan.json"
    code, out = run_cli("--bucket", "invoices", "--region", REGION, "--to", to.isoformat(),
                        "--plan-out", str(plan_file))
    assert code == 0, out
    assert "copy" in out and "delete-marker" in out and "dry run: nothing written" in out
    assert len(json.loads(plan_file.read_text())["actions"]) == 4
    code, out = run_cli("--bucket", "invoices", "--region", REGION, "--plan-in", str(plan_file), "--apply",
                        "--state-dir", str(tmp_path / "state"), "--report-bucket", "reports")
    assert code == 0, out
    assert "4 done" in out and "audit record: s3://reports/audit/bucket_restore/" in out
    (record,) = audit_records(s3)
    assert record["outcome"] == "restored" and record["caller"].startswith("arn:aws:")
    assert record["source"] == {"bucket": "invoices", "to": to.isoformat(), "prefix": ""}
    assert record["target"]["bucket"] == "invoices" and record["details"]["counts"] == {"done": 4}
    report = [json.loads(line) for line in next((tmp_path / "state").glob("*.report.jsonl")).read_text().splitlines()]
    assert {row["status"] for row in report} == {"done"} and len(report) == 4
    assert r.visible_state(s3, "invoices") == h.state_after(2)
    code, out = run_cli("--bucket", "invoices", "--region", REGION, "--to", to.isoformat(), "--apply",
                        "--report-bucket", "reports")
    assert code == 0 and "nothing to do" in out
    assert len(audit_records(s3)) == 1  # nothing was written, so nothing to record


def audit_records(s3):
    listed = s3.list_objects_v2(Bucket="reports", Prefix="audit/").get("Contents", [])
    return [json.loads(s3.get_object(Bucket="reports", Key=o["Key"])["Body"].read()) for o in listed]


@pytest.mark.parametrize(("to", "message"), [
    ("2026-11-20T14:00:00", "has no time zone"),
    ("yesterday", "is not an ISO 8601 time"),
    ("2099-01-01T00:00:00Z", "is in the future"),
    ("2001-01-01T00:00:00Z", "before the oldest version in scope"),
])
def test_cli_bad_times_exit_2_with_one_line(s3, to, message):
    History(s3, "invoices").put("a.pdf", b"1")
    code, out = run_cli("--bucket", "invoices", "--region", REGION, "--to", to)
    assert code == 2 and message in out and "Traceback" not in out


def test_cli_needs_a_bucket_and_a_time(s3):
    assert run_cli("--region", REGION, "--to", "2026-11-20T14:00:00Z")[0] == 2
    code, out = run_cli("--bucket", "invoices", "--region", REGION)
    assert code == 2 and "--to is required" in out


def test_cli_finds_the_invoice_bucket_through_the_stack_output(s3, tmp_path, monkeypatch):
    from tests.conftest import ROOT

    monkeypatch.chdir(ROOT)
    History(s3, "invoices").put("a.pdf", b"1")
    template = {"Resources": {"Anchor": {"Type": "AWS::SNS::Topic"}},
                "Outputs": {"InvoiceBucketName": {"Value": "invoices"}}}
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName="Tavari-Dev-InvoiceStorage", TemplateBody=json.dumps(template))
    code, out = run_cli("--env", "dev", "--to", datetime.now(UTC).isoformat())
    assert code == 1 and "Tavari-Dev-DatabaseBackups" in out  # no erasure ledger found: no restore
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName="Tavari-Dev-DatabaseBackups", TemplateBody=json.dumps({
            "Resources": {"Anchor": {"Type": "AWS::SNS::Topic"}},
            "Outputs": {"BackupBucketName": {"Value": "backups"}}}))
    code, out = run_cli("--env", "dev", "--to", datetime.now(UTC).isoformat())
    assert code == 0, out
    assert "restore s3://invoices/" in out and "erasure ledger s3://backups/erasure/" in out


def test_cli_exit_1_when_a_key_fails(s3, tmp_path, monkeypatch):
    _, to = changed_history(s3, n=2)
    real = r.copy_version

    def broken(client, source_bucket, key, *args, **kwargs):
        if key == "k01.pdf":
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "CopyObject")
        return real(client, source_bucket, key, *args, **kwargs)

    monkeypatch.setattr(r, "copy_version", broken)
    code, out = run_cli("--bucket", "invoices", "--region", REGION, "--to", to.isoformat(), "--apply",
                        "--state-dir", str(tmp_path / "s"), "--report-bucket", "reports")
    assert code == 1
    (record,) = audit_records(s3)
    assert record["outcome"].startswith("failed: 1 failed")
    assert "failed   k01.pdf" in out and "AccessDenied" in out and "1 failed" in out
    assert Path(tmp_path / "s").exists()


# --------------------------------------------------------------------------- findings: order, versioning, writers


def version_ids(s3, *buckets):
    return {(b, v.key, v.version_id) for b in buckets for v in r.list_versions(s3, b)}


def test_same_second_put_and_delete_before_t_is_ambiguous_on_moto_and_left_alone(s3, tmp_path):
    """moto lists all versions, then all markers, with whole-second times: which of a put and a
    delete in one second came last cannot be known, so the key is reported, not guessed."""
    with freeze_time(BASE):
        s3.put_object(Bucket="invoices", Key="a.pdf", Body=b"v1")
        s3.delete_object(Bucket="invoices", Key="a.pdf")
        s3.put_object(Bucket="invoices", Key="other.pdf", Body=b"o1")
    to = BASE + timedelta(minutes=5)
    with freeze_time(BASE + timedelta(minutes=10)):
        s3.put_object(Bucket="invoices", Key="a.pdf", Body=b"v2")
        s3.put_object(Bucket="invoices", Key="other.pdf", Body=b"o2")
    code, out = run_cli("--bucket", "invoices", "--region", REGION, "--to", to.isoformat(), "--apply",
                        "--state-dir", str(tmp_path / "s"), "--report-bucket", "reports")
    assert code == 1, out
    assert "ambiguous a.pdf" in out and "left alone" in out and "1 key(s) ambiguous" in out
    assert s3.get_object(Bucket="invoices", Key="a.pdf")["Body"].read() == b"v2"  # not v1, never a guess
    assert s3.get_object(Bucket="invoices", Key="other.pdf")["Body"].read() == b"o1"  # the rest is restored


class SmallPages:
    """ListObjectVersions pages of ``size`` entries, so a few keys span pages (moto copies the
    whole bucket for every page: small data, small pages). With ``continued_latest``, the first
    version of a key continued from the previous page also says IsLatest, as moto 5.1 listed it
    (moto 5.2 marks only the newest): a listing whose IsLatest cannot be trusted."""

    def __init__(self, client, size, *, continued_latest=False):
        self._client, self.size, self.continued_latest = client, size, continued_latest

    def __getattr__(self, name):
        return getattr(self._client, name)

    def get_paginator(self, name):
        paginator, size, continued_latest = self._client.get_paginator(name), self.size, self.continued_latest

        def mark_continued(pages):
            continued = None
            for page in pages:
                for version in page.get("Versions", [])[:1]:
                    if version["Key"] == continued:
                        version["IsLatest"] = True
                continued = page.get("NextKeyMarker")
                yield page

        class Paginator:
            def paginate(self, **kwargs):
                pages = paginator.paginate(**{**kwargs, "PaginationConfig": {
                    **kwargs.get("PaginationConfig", {}), "PageSize": size}})
                return mark_continued(pages) if continued_latest else pages

        return Paginator()


@pytest.mark.parametrize("page_size", [4, 5])
def test_versions_spanning_listing_pages_are_ordered_by_the_listing_not_is_latest(s3, tmp_path, page_size):
    """A listing that also marks the first version of a key on a later page IsLatest (moto 5.1's
    did): the restore orders versions by the listing, never by IsLatest."""
    h = History(s3, "invoices")
    for i in range(4):
        h.put(f"k{i}.pdf", f"v1-{i}".encode())
    for i in range(4):
        h.put(f"k{i}.pdf", f"v2-{i}".encode())
    to = h.time_after(7)
    for i in range(4):
        h.put(f"k{i}.pdf", f"v3-{i}".encode())
    small = SmallPages(s3, page_size, continued_latest=True)
    pages = list(small.get_paginator("list_object_versions").paginate(Bucket="invoices"))
    assert sum(v["IsLatest"] for p in pages for v in p["Versions"]) > 4  # the wrong IsLatest is there
    plan, summary = restore(small, "invoices", to, tmp_path)
    assert summary.ok and len(plan.actions) == 4, summary.results
    assert r.visible_state(s3, "invoices") == h.state_after(7)


def test_plan_in_apply_rechecks_versioning_and_never_removes_a_version(s3, tmp_path):
    h = History(s3, "invoices")
    h.put("a.pdf", b"1")
    to = h.time_after(0)
    h.put("late.pdf", b"created after T")
    plan_file = tmp_path / "plan.json"
    assert run_cli("--bucket", "invoices", "--region", REGION, "--to", to.isoformat(),
                   "--plan-out", str(plan_file))[0] == 0
    s3.put_bucket_versioning(Bucket="invoices", VersioningConfiguration={"Status": "Suspended"})
    s3.put_object(Bucket="invoices", Key="late.pdf", Body=b"written while suspended")  # the null version
    before = version_ids(s3, "invoices")
    code, out = run_cli("--bucket", "invoices", "--region", REGION, "--plan-in", str(plan_file), "--apply",
                        "--state-dir", str(tmp_path / "s"), "--report-bucket", "reports")
    assert version_ids(s3, "invoices") >= before
    assert s3.get_object(Bucket="invoices", Key="late.pdf")["Body"].read() == b"written while suspended"
    assert code == 1 and "refused before writing anything" in out and "versioning Suspended" in out, out


def _interrupt_after_first_copy(monkeypatch):
    real, calls = r.copy_version, []

    def dying(*args, **kwargs):
        if calls:
            raise KeyboardInterrupt("operator pressed Ctrl-C")
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(r, "copy_version", dying)
    return lambda: monkeypatch.setattr(r, "copy_version", real)


@pytest.mark.parametrize("path", ["apply", "plan-in", "resume"])
@pytest.mark.parametrize("suspended", ["invoices", "rebuilt"])
def test_every_apply_path_checks_both_buckets_and_version_ids_only_grow(s3, tmp_path, monkeypatch, path, suspended):
    make_bucket(s3, "rebuilt")
    h = History(s3, "invoices")
    for i in range(3):
        h.put(f"k{i}.pdf", f"v1-{i}".encode())
    to = h.time_after(2)
    for i in range(3):
        h.put(f"k{i}.pdf", f"v2-{i}".encode())
    with freeze_time(BASE + timedelta(hours=2)):
        s3.put_object(Bucket="rebuilt", Key="extra.pdf", Body=b"only in the target")
        s3.put_object(Bucket="rebuilt", Key="k0.pdf", Body=b"target's own k0")
    common = ("--bucket", "invoices", "--region", REGION, "--target-bucket", "rebuilt",
              "--state-dir", str(tmp_path / "s"), "--report-bucket", "reports", "--concurrency", "1")
    plan_file = tmp_path / "plan.json"
    assert run_cli(*common, "--to", to.isoformat(), "--plan-out", str(plan_file))[0] == 0
    if path == "resume":
        restore_copy = _interrupt_after_first_copy(monkeypatch)
        code, _ = run_cli(*common, "--plan-in", str(plan_file), "--apply")
        assert code == 1  # interrupted after one key
        restore_copy()
    seen = {}

    def suspend_and_write():
        s3.put_bucket_versioning(Bucket=suspended, VersioningConfiguration={"Status": "Suspended"})
        with freeze_time(BASE + timedelta(hours=3)):
            s3.put_object(Bucket=suspended, Key="extra.pdf", Body=b"null version")
            s3.put_object(Bucket=suspended, Key="k1.pdf", Body=b"null version")
        seen["before"] = version_ids(s3, "invoices", "rebuilt")

    if path == "apply":  # between this run's own plan and its first write
        real_plan = r.plan_restore

        def plan_then_suspend(*args, **kwargs):
            planned = real_plan(*args, **kwargs)
            if not seen:
                suspend_and_write()
            return planned

        monkeypatch.setattr(r, "plan_restore", plan_then_suspend)
        how = ("--to", to.isoformat())
    else:
        suspend_and_write()
        how = ("--plan-in", str(plan_file))
    code, out = run_cli(*common, *how, "--apply")
    assert version_ids(s3, "invoices", "rebuilt") >= seen["before"]
    assert s3.get_object(Bucket=suspended, Key="k1.pdf")["Body"].read() == b"null version"
    assert s3.get_object(Bucket=suspended, Key="extra.pdf")["Body"].read() == b"null version"
    assert code == 1, out
    assert "refused before writing anything" in out and f"bucket {suspended} has versioning Suspended" in out


def _s3_condition_holds(client, bucket, key, conditions):
    """S3's documented answer to a write's destination condition (If-Match: the current version's
    ETag; If-None-Match: *: no live version). moto 5.2.6 still ignores both on CopyObject, so the
    wrapper below answers for S3; on DeleteObject moto 5.2 answers If-Match itself (412, which 5.1.18
    ignored), and the wrapper's answer, given first, is the same one."""
    try:
        etag = client.head_object(Bucket=bucket, Key=key)["ETag"]
    except ClientError:
        etag = None
    if "IfMatch" in conditions and (etag is None or etag.strip('"') != conditions["IfMatch"].strip('"')):
        return False
    return not ("IfNoneMatch" in conditions and etag is not None)


def _precondition_failed(operation):
    return ClientError({"Error": {"Code": "PreconditionFailed", "Message": "At least one of the pre-conditions "
                                  "you specified did not hold"}, "ResponseMetadata": {"HTTPStatusCode": 412}},
                       operation)


class Writers:
    """The application writing while the restore runs: ``before[key]`` writes when the restore's
    first copy starts; ``after[key]`` writes just after the restore's copy of that key. Writes are
    checked against their S3 conditions as S3 does (see _s3_condition_holds)."""

    def __init__(self, client, *, before, after):
        self._client, self.before, self.after = client, dict(before), dict(after)
        self.conditions = []

    def __getattr__(self, name):
        return getattr(self._client, name)

    def _conditions(self, kwargs):
        found = {k: kwargs[k] for k in ("IfMatch", "IfNoneMatch") if k in kwargs}
        self.conditions.append((kwargs["Key"], found))
        return found

    def copy_object(self, **kwargs):
        for key, body in self.before.items():
            self._client.put_object(Bucket=kwargs["Bucket"], Key=key, Body=body)
        self.before = {}
        if not _s3_condition_holds(self._client, kwargs["Bucket"], kwargs["Key"], self._conditions(kwargs)):
            raise _precondition_failed("CopyObject")
        response = self._client.copy_object(**kwargs)
        if kwargs["Key"] in self.after:
            self._client.put_object(Bucket=kwargs["Bucket"], Key=kwargs["Key"], Body=self.after.pop(kwargs["Key"]))
        return response

    def delete_object(self, **kwargs):
        if not _s3_condition_holds(self._client, kwargs["Bucket"], kwargs["Key"], self._conditions(kwargs)):
            raise _precondition_failed("DeleteObject")
        return self._client.delete_object(**kwargs)


def test_keys_written_during_the_restore_are_reported_and_fail_the_run(s3, tmp_path, monkeypatch):
    """A key written between the plan and its copy is refused by S3 (the copy's condition) and
    reported; one written after its copy is found by the read-back after the last write. A key the
    restore does not write is not read again (no second listing, ADR 0031): the application's write
    to it is left as it is, never overwritten."""
    h, to = changed_history(s3, n=4)
    h.put("steady.pdf", b"unchanged")  # written after T: the plan gives it a delete marker
    with freeze_time(BASE):
        s3.put_object(Bucket="invoices", Key="quiet.pdf", Body=b"same at T and now")
    writers = Writers(s3, before={"k03.pdf": b"app, before its copy", "quiet.pdf": b"app, unplanned key"},
                      after={"k01.pdf": b"app, right after its copy"})
    real_client = boto3.session.Session.client
    monkeypatch.setattr(boto3.session.Session, "client", lambda self, name, *a, **k: writers if name == "s3"
                        else real_client(self, name, *a, **k))
    before = version_ids(s3, "invoices")
    code, out = run_cli("--bucket", "invoices", "--region", REGION, "--to", to.isoformat(), "--apply",
                        "--concurrency", "1", "--state-dir", str(tmp_path / "s"), "--report-bucket", "reports")
    assert code == 1, out
    assert "2 key(s) changed during restore" in out and "plan again" in out
    for key, when in (("k03.pdf", "before its write"), ("k01.pdf", "after its write")):
        assert f"changed  {key}: changed during restore ({when})" in out, key
    assert s3.get_object(Bucket="invoices", Key="k03.pdf")["Body"].read() == b"app, before its copy"
    assert s3.get_object(Bucket="invoices", Key="quiet.pdf")["Body"].read() == b"app, unplanned key"
    assert version_ids(s3, "invoices") >= before
    # Every write carried a condition: copies of changed keys If-Match, the marker for steady.pdf too.
    assert writers.conditions and all(found for _key, found in writers.conditions)
    assert dict(writers.conditions)["steady.pdf"].keys() == {"IfMatch"}
    report = [json.loads(line) for line in next((tmp_path / "s").glob("*.report.jsonl")).read_text().splitlines()]
    assert {row["key"] for row in report if row["status"] == "changed"} == {"k01.pdf", "k03.pdf"}


def test_tags_are_part_of_the_state(s3, tmp_path):
    h = History(s3, "invoices")
    h.put("inv.pdf", b"%PDF", {"customer": "c-1"}, Tagging="retention=long")
    to = h.time_after(0)
    # The application re-uploads the same bytes and metadata with other tags: a new version, same content.
    h.put("inv.pdf", b"%PDF", {"customer": "c-1"}, Tagging="retention=short&legal-hold=no")
    args = ("--bucket", "invoices", "--region", REGION, "--to", to.isoformat(), "--apply",
            "--state-dir", str(tmp_path / "s"), "--report-bucket", "reports")
    code, out = run_cli(*args)
    assert s3.get_object_tagging(Bucket="invoices", Key="inv.pdf")["TagSet"] == [{"Key": "retention", "Value": "long"}]
    assert code == 0 and "restore-tags" in out and "1 done" in out, out
    assert r.plan_restore(s3, "invoices", to, now=NOW).actions == []
    # --no-tags: reported, not restored.
    h.put("inv.pdf", b"%PDF", {"customer": "c-1"}, Tagging="retention=none")
    code, out = run_cli(*args, "--no-tags")
    assert code == 0 and "tags differ inv.pdf" in out and "not restored: --no-tags" in out, out
    assert s3.get_object_tagging(Bucket="invoices", Key="inv.pdf")["TagSet"] == [{"Key": "retention", "Value": "none"}]
    # Into another bucket: its same-content copy with other tags gets the tags of the version at T.
    make_bucket(s3, "rebuilt")
    s3.put_object(Bucket="rebuilt", Key="inv.pdf", Body=b"%PDF", Metadata={"customer": "c-1"},
                  ContentType="application/pdf", Tagging="retention=none")
    plan, summary = restore(s3, "invoices", to, tmp_path, target_bucket="rebuilt")
    assert s3.get_object_tagging(Bucket="rebuilt", Key="inv.pdf")["TagSet"] == [{"Key": "retention", "Value": "long"}]
    assert [a.action for a in plan.actions] == ["restore-tags"] and summary.ok


def test_a_tag_change_on_the_version_current_at_t_cannot_be_seen_and_is_said_so(s3):
    h = History(s3, "invoices")
    h.put("inv.pdf", b"%PDF", Tagging="retention=long")
    to = h.time_after(0)
    s3.put_object_tagging(Bucket="invoices", Key="inv.pdf", Tagging={"TagSet": [{"Key": "retention", "Value": "x"}]})
    code, out = run_cli("--bucket", "invoices", "--region", REGION, "--to", to.isoformat())
    assert code == 0 and "S3 keeps no history of a version's tags" in out


def test_an_old_plan_file_is_refused_with_one_line(s3, tmp_path):
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"bucket": "invoices", "to": NOW.isoformat(), "actions": []}))
    code, out = run_cli("--bucket", "invoices", "--region", REGION, "--plan-in", str(old), "--apply")
    assert code == 2 and "older tavari-dr" in out and "Traceback" not in out


def test_cli_json_logs_carry_the_job_and_the_restore_id(s3, tmp_path, monkeypatch):
    from tavari_dr.core import observability
    from tests.lambda_logs import JsonLogs

    _, to = changed_history(s3, n=2)
    logs = JsonLogs()
    monkeypatch.setattr(observability._JSON_HANDLER, "stream", logs.buffer)
    result = CliRunner().invoke(main, ["--log-format", "json", "bucket", "restore", "--backup-bucket", "backups",
                                       "--bucket", "invoices",
                                       "--region", REGION, "--to", to.isoformat(), "--apply",
                                       "--state-dir", str(tmp_path / "s"), "--report-bucket", "reports"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (line,) = logs.lines()
    fingerprint = next((tmp_path / "s").glob("*.journal.jsonl")).name.removesuffix(".journal.jsonl")
    assert line["message"] == "restore_applied" and line["counts"] == {"done": 2}
    assert line["job"] == "bucket_restore" and line["restore_id"] == fingerprint and line["service"] == "tavari"
    assert "restore_applied" not in result.output  # the log lines are on stderr, not in the answer
