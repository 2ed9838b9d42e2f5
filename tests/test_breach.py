"""`tavari-dr breach scope`: the accounts a breach touched, from real PostgreSQL (the live database against
the last backup before T, restored into a scratch database) and from the object logs on moto (server
access logs in the documented format, CloudTrail data events as the trail delivers them)."""

from __future__ import annotations

import csv
import gzip
import io
import json
import time
from datetime import UTC, datetime, timedelta

import boto3
import psycopg
import pytest
from click.testing import CliRunner
from moto import mock_aws

from tavari_dr.breach import logs, scope
from tavari_dr.breach.diff import DataDiff, TableDiff, compare
from tavari_dr.cli import main
from tavari_dr.core.aws import EMULATOR_CONFIG
from tavari_dr.core.config import DEFAULT_DATASETS
from tavari_dr.database import backup as db_lib
from tavari_dr.database.signing import KmsSigner, KmsVerifier
from tests.conftest import ROOT

pytestmark = pytest.mark.moto

# The documentation's example record ("Amazon S3 server access log format"), and one object read.
DOC_EXAMPLE = (
    '79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be DOC-EXAMPLE-BUCKET1 [06/Feb/2019:00:00:38 '
    '+0000] 192.0.2.3 79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be 3E57427F3EXAMPLE '
    'REST.GET.VERSIONING - "GET /DOC-EXAMPLE-BUCKET1?versioning HTTP/1.1" 200 - 113 - 7 - "-" "S3Console/0.4" - '
    's9lzHYrFp76ZVxRcpX9+5cjAnEH2ROuNkd2BHfIa6UkFVdtjf5mKR3/eTPFvsiP/XV/VLi31234= SigV4 '
    'ECDHE-RSA-AES128-GCM-SHA256 AuthHeader DOC-EXAMPLE-BUCKET1.s3.us-west-1.amazonaws.com TLSV1.2 '
    'arn:aws:s3:us-west-1:123456789012:accesspoint/example-AP Yes')


def access_log_line(bucket: str, when: datetime, operation: str, key: str, ip: str = "203.0.113.9") -> str:
    return (f'owner {bucket} [{when:%d/%b/%Y:%H:%M:%S} +0000] {ip} arn:aws:iam::123456789012:user/intruder REQ1 '
            f'{operation} {key} "GET /{bucket}/{key} HTTP/1.1" 200 - 1024 1024 12 11 "-" "curl/8.5" - hostid= '
            f'SigV4 ECDHE-RSA-AES128-GCM-SHA256 AuthHeader {bucket}.s3.eu-west-1.amazonaws.com TLSv1.3 - -')


def test_the_documented_record_parses_field_by_field():
    record = logs.parse_access_log_line(DOC_EXAMPLE)
    assert record["bucket"] == "DOC-EXAMPLE-BUCKET1" and record["remote_ip"] == "192.0.2.3"
    assert record["operation"] == "REST.GET.VERSIONING" and record["key"] == "-"
    assert record["request_uri"] == "GET /DOC-EXAMPLE-BUCKET1?versioning HTTP/1.1"
    assert record["user_agent"] == "S3Console/0.4" and record["tls_version"] == "TLSV1.2"
    assert record["acl_required"] == "Yes"
    assert logs.access_log_time(record["time"]) == datetime(2019, 2, 6, 0, 0, 38, tzinfo=UTC)
    assert logs.parse_access_log_line("not a record") is None
    # Only object requests since T count; keys are URL-encoded in the log.
    since = datetime(2026, 11, 30, 12, tzinfo=UTC)
    events = logs.access_log_events([
        DOC_EXAMPLE, access_log_line("inv", since - timedelta(seconds=1), "REST.GET.OBJECT", "a.pdf"),
        access_log_line("inv", since, "REST.GET.OBJECT", "invoices/b%20c.pdf"),
        access_log_line("inv", since, "REST.PUT.OBJECT", "d.pdf"),
        access_log_line("other", since, "REST.GET.OBJECT", "e.pdf")], "inv", since)
    assert [(e.action, e.key) for e in events] == [("read", "invoices/b c.pdf"), ("write", "d.pdf")]


class _OneLogFile:
    """The S3 calls read_access_logs makes, for one log file of the given lines."""

    def __init__(self, lines):
        self.body = "\n".join(lines).encode()

    def get_bucket_logging(self, Bucket):  # noqa: N803 - boto3's parameter names
        return {"LoggingEnabled": {"TargetBucket": "logs", "TargetPrefix": "inv/"}}

    def get_paginator(self, _name):
        return self

    def paginate(self, **_kwargs):
        return [{"Contents": [{"Key": "inv/2026-11-30-12-00-00-GENERATED", "LastModified": datetime.now(UTC)}]}]

    def get_object(self, Bucket, Key):  # noqa: N803
        from botocore.response import StreamingBody

        return {"Body": StreamingBody(io.BytesIO(self.body), len(self.body))}


def test_a_log_file_is_streamed_a_million_lines_in_bounded_memory():
    """benches/breach_logs.py in its own process: 1,000,000 generated records (every hundredth an invoice
    read since T) read through the S3 body. Read whole, as before, the peak grew by about a gigabyte
    (the issue's 150,000-line file: 530 MiB); streamed, only the events found stay."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(ROOT / "benches" / "breach_logs.py"), "--lines", "1000000"],
                          capture_output=True, text=True, check=True, timeout=600)
    measured = json.loads(done.stdout)
    assert measured["read"] and measured["events"] == 10_000 and measured["malformed"] == 0
    assert measured["peak_rss_growth_mib"] < 64, measured


def test_a_malformed_log_line_is_counted_and_reported_never_fatal():
    since = datetime(2026, 11, 30, 12, tzinfo=UTC)
    good = access_log_line("inv", since + timedelta(seconds=5), "REST.GET.OBJECT", "invoices/a.pdf")
    bad_time = good.replace("[30/Nov/2026:12:00:05 +0000]", "[31/Nov/2026:25:00:05 +0000]")
    lines = [good, bad_time, "", "garbage that is no record", good]
    source = logs.read_access_logs(_OneLogFile(lines), "inv", since)
    assert source.read and len(source.events) == 2
    assert source.malformed.count == 2 and source.malformed.first == "inv/2026-11-30-12-00-00-GENERATED:2"
    assert "2 malformed record(s) skipped" in source.detail
    found = scope.Scope(since, "b", "t", DataDiff([], [], {}, {}), [source],
                        scope.deadlines(since, now=since))
    assert found.document()["malformed_log_records"] == 2
    assert found.document()["sources"][1]["malformed_records"] == 2
    assert any("2 log record(s) could not be read" in line for line in found.lines())
    # A trail record whose time does not read: counted the same way.
    record = {"eventSource": "s3.amazonaws.com", "eventName": "GetObject", "eventTime": "yesterday",
              "requestParameters": {"bucketName": "inv", "key": "k"}}
    malformed = logs.Malformed()
    assert logs.trail_events([record, "not a record"], "inv", since, malformed, where="f.json.gz") == []
    assert malformed.count == 2 and malformed.first == "f.json.gz#1"


def test_csv_cells_a_spreadsheet_would_run_are_written_as_text():
    """OWASP's CSV injection guidance: = + - @ tab and carriage return start a formula."""
    emails = {"a": "=HYPERLINK(\"http://x.example\",\"click\")@x.example", "b": "+cmd|'/C calc'!A0@x.example",
              "c": "-2+3@x.example", "d": "@SUM(1)@x.example", "e": "\tx@x.example", "f": "\rx@x.example",
              "g": "plain@x.example"}
    table = TableDiff("public.businesses", ["id"])
    for account in emails:
        table.counts["changed"][account] = 1
    found = scope.Scope(datetime(2026, 11, 30, tzinfo=UTC), "b", "t", DataDiff([table], [], emails, {}), [],
                        scope.deadlines(datetime(2026, 11, 30, tzinfo=UTC), now=datetime(2026, 11, 30, tzinfo=UTC)))
    rows = {r["account_id"]: r for r in csv.DictReader(io.StringIO(found.csv()))}
    for account, email in emails.items():
        expected = email if account == "g" else "'" + email
        assert rows[account]["email"] == expected, account
    assert rows["a"]["rows_changed"] == "1"  # numbers stay numbers
    # The JSON keeps the address as it is (it is evidence, not a spreadsheet).
    assert {r["account_id"]: r["email"] for r in found.document()["accounts"]} == emails


def test_a_trail_logs_the_buckets_reads_only_when_its_selectors_say_so():
    arn = "arn:aws:s3:::inv"
    basic = {"EventSelectors": [{"ReadWriteType": "All", "DataResources": [
        {"Type": "AWS::S3::Object", "Values": [f"{arn}/"]}]}]}
    assert logs._logs_reads(basic, arn)
    writes_only = {"EventSelectors": [{"ReadWriteType": "WriteOnly", "DataResources": [
        {"Type": "AWS::S3::Object", "Values": [f"{arn}/"]}]}]}
    assert not logs._logs_reads(writes_only, arn)
    other = {"EventSelectors": [{"ReadWriteType": "All", "DataResources": [
        {"Type": "AWS::S3::Object", "Values": ["arn:aws:s3:::backups/"]}]}]}
    assert not logs._logs_reads(other, arn)
    advanced = {"AdvancedEventSelectors": [{"FieldSelectors": [
        {"Field": "eventCategory", "Equals": ["Data"]}, {"Field": "resources.type", "Equals": ["AWS::S3::Object"]},
        {"Field": "resources.ARN", "StartsWith": [f"{arn}/"]}]}]}
    assert logs._logs_reads(advanced, arn)
    advanced["AdvancedEventSelectors"][0]["FieldSelectors"].append({"Field": "readOnly", "Equals": ["false"]})
    assert not logs._logs_reads(advanced, arn)


def test_deadlines_count_72_hours_from_awareness_and_quote_the_articles():
    aware = datetime(2026, 11, 30, 9, tzinfo=UTC)
    found = scope.deadlines(aware, now=aware + timedelta(hours=10))
    assert found["supervisory_authority"]["not_later_than"] == "2026-12-03T09:00:00+00:00"
    assert found["supervisory_authority"]["hours_left"] == 62.0
    assert "not later than 72 hours after having become aware of it" in found["supervisory_authority"]["quote"]
    assert "without undue delay" in found["data_subjects"]["quote"] and "not legal advice" in found["note"]


def _owners(url):
    with psycopg.connect(url) as conn:
        return [(str(b), str(u)) for b, u in conn.execute("SELECT id, owner_id FROM public.businesses ORDER BY id")]


def _breach(url, owners):
    """Account 0's business renamed; account 1's messages deleted; a message planted for account 2's
    business; account 3 and 4 untouched in the data."""
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE public.businesses SET name = 'pwned' WHERE id = %s", (owners[0][0],))
        deleted = conn.execute("DELETE FROM public.messages WHERE business_id = %s", (owners[1][0],)).rowcount
        conn.execute("INSERT INTO public.messages (business_id, direction, body, sent_at) VALUES (%s, 'in', 'x', "
                     "now())", (owners[2][0],))
    return deleted


def test_the_diff_counts_each_accounts_rows_by_kind(source, empty_db):
    import subprocess

    before = empty_db()
    subprocess.run(f"pg_dump '{source}' | psql -q '{before}'", shell=True, check=True,  # noqa: S602 - test URLs
                   capture_output=True)
    owners = _owners(source)
    deleted = _breach(source, owners)
    found = compare(before, source, DEFAULT_DATASETS)
    tables = {t.table: t for t in found.tables}
    assert dict(tables["public.businesses"].counts["changed"]) == {owners[0][1]: 1}
    assert dict(tables["public.messages"].counts["deleted"]) == {owners[1][1]: deleted}
    assert dict(tables["public.messages"].counts["added"]) == {owners[2][1]: 1}
    assert tables["public.usage"].keyed_by == ["business_id", "period"]  # a composite key
    assert found.accounts() == {owners[0][1], owners[1][1], owners[2][1]}
    assert not found.missing


@pytest.fixture
def aws_env(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "t")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "t")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    # As the drill runs its commands: moto's whole-object checksums do not match (tavari_dr.core.aws).
    monkeypatch.setenv("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required")
    monkeypatch.chdir(ROOT)
    with mock_aws():
        yield


def test_scope_names_the_accounts_from_the_data_and_the_logs(source, aws_env, tmp_path):
    region = "eu-west-1"
    s3 = boto3.client("s3", region_name=region, config=EMULATOR_CONFIG)
    for bucket, lock in (("backups", True), ("invoices", False), ("access-logs", False), ("trail", False)):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region},
                         ObjectLockEnabledForBucket=lock)
    s3.put_bucket_policy(Bucket="access-logs", Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "logging.s3.amazonaws.com"}, "Action": "s3:PutObject",
        "Resource": "arn:aws:s3:::access-logs/*"}]}))
    s3.put_bucket_logging(Bucket="invoices", BucketLoggingStatus={"LoggingEnabled": {
        "TargetBucket": "access-logs", "TargetPrefix": "invoice-bucket/"}})
    kms = boto3.client("kms", region_name=region)
    key = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    change_key = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    db_lib.run_backup(s3, "backups", source, reason="nightly", signer=KmsSigner(kms, key))
    time.sleep(1.1)  # backup IDs have one-second resolution: T falls after this one's
    since = datetime.now(UTC).replace(microsecond=0)
    owners = _owners(source)
    _breach(source, owners)
    later = since + timedelta(seconds=30)
    # The logs: account 3's invoice read through the access logs, account 4's through the trail.
    s3.put_object(Bucket="access-logs", Key=f"invoice-bucket/{later:%Y-%m-%d-%H-%M-%S}-ABCDEF", Body="\n".join([
        access_log_line("invoices", later, "REST.GET.OBJECT", f"invoices/{owners[3][0]}/1.pdf"),
        access_log_line("invoices", since - timedelta(hours=1), "REST.GET.OBJECT", f"invoices/{owners[4][0]}/1.pdf"),
        # A record whose time does not read: counted and reported, never the end of the scope.
        access_log_line("invoices", later, "REST.GET.OBJECT", "invoices/x.pdf").replace(
            f"[{later:%d/%b/%Y:%H:%M:%S}", "[99/Xyz/2026:99:99:99"),
    ]).encode())
    cloudtrail = boto3.client("cloudtrail", region_name=region)
    trail = cloudtrail.create_trail(Name="tamper-trail", S3BucketName="trail")["TrailARN"]
    cloudtrail.put_event_selectors(TrailName=trail, EventSelectors=[{"ReadWriteType": "All", "DataResources": [
        {"Type": "AWS::S3::Object", "Values": ["arn:aws:s3:::invoices/"]}]}])
    records = {"Records": [{"eventVersion": "1.09", "eventSource": "s3.amazonaws.com", "eventName": "GetObject",
                            "eventCategory": "Data", "eventTime": f"{later:%Y-%m-%dT%H:%M:%SZ}",
                            "sourceIPAddress": "198.51.100.7",
                            "userIdentity": {"arn": "arn:aws:sts::123456789012:assumed-role/app/x"},
                            "requestParameters": {"bucketName": "invoices",
                                                  "key": f"invoices/{owners[4][0]}/2.pdf"}}]}
    s3.put_object(Bucket="trail", Key=f"AWSLogs/123456789012/CloudTrail/{region}/{later:%Y/%m/%d}/x.json.gz",
                  Body=gzip.compress(json.dumps(records).encode()))
    out = tmp_path / "scope"
    args = ["breach", "scope", "--env", "prod", "--since", since.isoformat(), "--database-url", source,
            "--out", str(out), "--bucket", "backups", "--signing-key", key, "--change-signing-key", change_key,
            "--invoice-bucket", "invoices",
            "--trail-arn", trail, "--aware-at", since.isoformat()]
    result = CliRunner().invoke(main, [*args, "--format", "json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    document = json.loads(result.output[result.output.index("{"):])["result"]
    assert {s["source"]: s["read"] for s in document["sources"]} == {
        "database diff": True, "S3 server access logs": True, "CloudTrail data events": True}
    assert document["malformed_log_records"] == 1
    rows = list(csv.DictReader(io.StringIO((out / "accounts.csv").read_text())))
    by_account = {r["account_id"]: r for r in rows}
    assert set(by_account) == {u for _, u in owners[:5]}
    assert by_account[owners[0][1]]["tables"] == "public.businesses" and by_account[owners[0][1]]["rows_changed"] == "1"
    assert by_account[owners[1][1]]["rows_deleted"] != "0" and by_account[owners[2][1]]["rows_added"] == "1"
    assert by_account[owners[3][1]]["objects_read"] == "1" and by_account[owners[3][1]]["tables"] == ""
    assert by_account[owners[4][1]]["objects_read"] == "1"  # the trail's read; the access log's was before T
    assert all(r["email"].endswith("@tavari.example") for r in rows)
    assert document["deadlines"]["supervisory_authority"]["not_later_than"] == (
        since + timedelta(hours=72)).isoformat()
    # The scratch database is gone; a second run refuses to overwrite the files without --force.
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "exists; pass --force" in result.output
    # Without read data events in the trail, the source is named as not read, and why.
    cloudtrail.put_event_selectors(TrailName=trail, EventSelectors=[{"ReadWriteType": "WriteOnly", "DataResources": [
        {"Type": "AWS::S3::Object", "Values": ["arn:aws:s3:::invoices/"]}]}])
    result = CliRunner().invoke(main, [*args, "--force"])
    assert result.exit_code == 0, result.output
    assert "NOT READ: CloudTrail data events: the trail" in result.output
    assert "logs no read data events of invoices" in result.output
    # No trail named and none deployed: the scope still completes, and says which source it lacked.
    without_trail = [a for i, a in enumerate(args) if a != "--trail-arn" and (i == 0 or args[i - 1] != "--trail-arn")]
    result = CliRunner().invoke(main, [*without_trail, "--force"])
    assert result.exit_code == 0, result.output
    assert "NOT READ: CloudTrail data events: no trail named (--trail-arn), and stack Tavari-Prod-TamperWatch is " \
           "not deployed" in result.output
    # A change log that covers the backup but cannot show T (its capture behind): the scope says so and
    # compares with the last backup before T, never a state the log did not reach.
    from tavari_dr.changes import pitr
    from tavari_dr.changes import replay as replay_lib

    def behind(*_args, **_kwargs):
        raise replay_lib.ReplayError("the change log reaches only 10:00:00")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pitr, "newest_dump_before", lambda *a, **k: db_lib.find_backup(
            s3, "backups", "latest", verifier=KmsVerifier(kms, key)).manifest)
        patch.setattr(replay_lib, "plan", lambda *a, **k: None)
        patch.setattr(pitr, "restore_to", behind)
        result = CliRunner().invoke(main, [*args, "--force", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert "the change log cannot show the state at" in result.stderr
    assert json.loads(result.stdout)["result"]["compared_with"]["replayed_to"] is None
