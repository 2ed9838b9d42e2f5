"""The erasure ledger: append-only, no personal data, re-applied by every restore path (restore, the full
and quick verify, by hand), its guard in the bucket policy, its alarm, the app's grant."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from click.testing import CliRunner

from tavari_dr.cli import main
from tavari_dr.core import accountmap, metrics
from tavari_dr.core import guardrails as g
from tavari_dr.core.config import DEFAULT_DATASETS
from tavari_dr.database import backup as d
from tavari_dr.database import erasure
from tests.backups import backup_s3
from tests.conftest import APP_ROLE_ARN, owners
from tests.policy_eval import Request, decide
from tests.test_guardrails import ACCOUNT, ADMIN, DEV_ACCOUNT, policy_of

pytestmark = [pytest.mark.postgres, pytest.mark.moto]
REGION = "eu-west-1"
BUCKET = "tavari-db-backups"
TUESDAY = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
ERASED = TUESDAY + timedelta(hours=5)  # after the backup started


@pytest.fixture
def s3():
    with backup_s3(BUCKET, REGION) as client:
        yield client




def account_rows(url: str, account: str) -> dict[str, int]:
    """Every row of the account, by the export's map (the one source of truth), and its auth user."""
    with psycopg.connect(url) as conn:
        businesses = accountmap.business_ids(conn, [account])
        counts = {}
        for dataset in accountmap.deletion_order(DEFAULT_DATASETS):
            where, value = accountmap.owner_filter(dataset, [account], businesses)
            counts[dataset.table] = conn.execute(
                psycopg.sql.SQL("SELECT count(*) FROM {} WHERE {}").format(accountmap.ident(dataset.table), where),
                (value,)).fetchone()[0]
        counts["auth.users"] = conn.execute("SELECT count(*) FROM auth.users WHERE id = %s", (account,)).fetchone()[0]
        counts["storage.objects"] = conn.execute("SELECT count(*) FROM storage.objects WHERE owner = %s",
                                                 (account,)).fetchone()[0]
        return counts


def erase(url: str, s3, account: str, when: datetime = ERASED) -> dict[str, int]:
    """What the app does on an erasure request: delete the rows, record the erasure."""
    with psycopg.connect(url) as conn:
        businesses = [str(b) for b in accountmap.business_ids(conn, [account])]
        removed = erasure.apply_erasures(conn, [erasure.LedgerEntry(account, when)], datasets=DEFAULT_DATASETS)
    erasure.record(s3, BUCKET, account, business_ids=businesses, erased_at=when)
    return removed


# --------------------------------------------------------------------------- the ledger on S3


def test_a_second_record_of_the_same_account_is_a_new_object_and_nothing_is_overwritten(s3):
    account = "6f1c1a52-8d5e-4f3c-9a0b-3c2d1e0f9a8b"
    first = erasure.record(s3, BUCKET, account, business_ids=[], erased_at=ERASED)
    # the same account, the same instant
    second = erasure.record(s3, BUCKET, account.upper(), business_ids=[], erased_at=ERASED)
    assert first.key != second.key and first.key.startswith(f"erasure/{account}/20261124T070000.000000Z-")
    for entry in (first, second):
        versions = s3.list_object_versions(Bucket=BUCKET, Prefix=entry.key)["Versions"]
        assert [v["VersionId"] for v in versions] == [entry.version_id]
    # A write to a key already taken is refused (If-None-Match), not an overwrite.
    with pytest.raises(erasure.ErasureError, match="refusing to overwrite"):
        from tavari_dr.core import s3sink

        s3sink.put_new(s3, BUCKET, first.key, b'{"other": 1}', error=erasure.ErasureError,
                       ChecksumAlgorithm="SHA256")
    assert len(s3.list_object_versions(Bucket=BUCKET, Prefix=first.key)["Versions"]) == 1
    ledger = erasure.read_ledger(s3, BUCKET)
    assert [(e.account_id, e.erased_at) for e in ledger] == [(account, ERASED)] * 2


def test_an_entry_holds_the_account_uuid_and_the_time_only_and_is_locked_past_every_backup(s3, source):
    account = owners(source)[0]
    with psycopg.connect(source) as conn:
        email, meta = conn.execute("SELECT email, raw_user_meta_data::text FROM auth.users WHERE id = %s",
                                   (account,)).fetchone()
        business, business_id = conn.execute("SELECT name, id::text FROM public.businesses WHERE owner_id = %s",
                                             (account,)).fetchone()
    entry = erasure.record(s3, BUCKET, account, business_ids=[business_id], erased_at=ERASED)
    body = s3.get_object(Bucket=BUCKET, Key=entry.key)["Body"].read()
    assert json.loads(body) == {"format": erasure.FORMAT, "account_id": account,
                                "erased_at": "2026-11-24T07:00:00.000000+00:00", "business_ids": [business_id]}
    for personal in (email, business, *json.loads(meta).values()):
        assert str(personal).encode() not in body and str(personal) not in entry.key
    head = s3.head_object(Bucket=BUCKET, Key=entry.key, VersionId=entry.version_id)
    longest = max(t.retention_days for t in d.DEFAULT_TIERS)
    assert head["ObjectLockMode"] == "GOVERNANCE"
    assert head["ObjectLockRetainUntilDate"] == ERASED + timedelta(days=longest + 1)


@pytest.mark.parametrize(("key", "body", "why"), [
    ("erasure/6f1c1a52-8d5e-4f3c-9a0b-3c2d1e0f9a8b/20261124T070000.000000Z-0123456789ab.json",
     {"format": erasure.FORMAT, "account_id": "6f1c1a52-8d5e-4f3c-9a0b-3c2d1e0f9a8b",
      "erased_at": "2026-11-24T07:00:00+00:00", "email": "a@example.com"}, "nothing else"),
    ("erasure/6f1c1a52-8d5e-4f3c-9a0b-3c2d1e0f9a8b/20261124T070000.000000Z-0123456789ab.json",
     {"format": erasure.FORMAT_V1, "account_id": "00000000-0000-0000-0000-000000000001",
      "erased_at": "2026-11-24T07:00:00+00:00"}, "its key another"),
    ("erasure/notes.txt", {}, "not a ledger entry"),
])
def test_anything_else_under_erasure_fails_the_read_instead_of_being_skipped(s3, key, body, why):
    s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(body).encode(), ChecksumAlgorithm="SHA256")
    with pytest.raises(erasure.ErasureError, match=why):
        erasure.read_ledger(s3, BUCKET)


# --------------------------------------------------------------------------- restores re-apply it


def test_erase_after_the_backup_then_restore_it_and_the_account_stays_gone(s3, source, empty_db, signing):
    manifest = d.run_backup(s3, BUCKET, source, signer=signing.signer, reason="nightly", now=TUESDAY)
    erased, kept = owners(source)[:2]
    before = account_rows(source, erased)
    assert all(before[t] > 0 for t in ("public.businesses", "public.messages", "auth.users", "storage.objects"))
    removed_live = erase(source, s3, erased)
    assert removed_live == before and sum(account_rows(source, erased).values()) == 0
    target = empty_db()
    logged = []
    result = d.restore(s3, BUCKET, "latest", target, verifier=signing.verifier, log=logged.append)
    assert sum(account_rows(target, erased).values()) == 0
    assert account_rows(target, kept) == account_rows(source, kept)  # nobody else lost a row
    assert {t: n for t, n in result.erased.items() if n} == {t: n for t, n in before.items() if n}
    assert result.ok and not result.mismatches()  # the count check knows what the ledger removed
    assert result.table_counts["public.messages"] == (manifest.tables["public.messages"],
                                                      manifest.tables["public.messages"] - before["public.messages"])
    assert any("1 erased account(s) re-applied" in line for line in logged)
    with psycopg.connect(target) as conn:  # idempotent: a second application finds nothing
        assert sum(erasure.apply_erasures(conn, erasure.read_ledger(s3, BUCKET), datasets=DEFAULT_DATASETS
                                          ).values()) == 0


def test_the_cli_restore_and_the_full_verify_report_the_rows_removed_and_a_broken_ledger_alarms(
        s3, source, empty_db, signing, monkeypatch):
    monkeypatch.setenv("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required")
    published = []
    monkeypatch.setattr(metrics, "put", lambda _cw, values, dims=None: published.append((values, dims)))
    d.run_backup(s3, BUCKET, source, signer=signing.signer, reason="nightly", now=TUESDAY)
    erased = owners(source)[0]
    rows = sum(n for n in erase(source, s3, erased).values())
    runner = CliRunner()

    def run(*args):
        result = runner.invoke(main, [*args, "--region", REGION], catch_exceptions=False)
        return result.exit_code, result.output

    code, out = run("db", "restore", "--bucket", BUCKET, "--target-url", empty_db(), "--signing-key", signing.arn,
                    "--report-bucket", "reports")
    assert code == 0, out
    assert f"({rows} row(s) of erased accounts removed)" in out and "ERASED" in out
    (audit_key,) = [o["Key"] for o in s3.list_objects_v2(Bucket="reports", Prefix="audit/db_restore/")["Contents"]]
    audit = json.loads(s3.get_object(Bucket="reports", Key=audit_key)["Body"].read())
    assert sum(audit["details"]["erased_rows"].values()) == rows
    # The monthly restore test (db verify --scratch-url) re-applies it and says so in its report.
    code, out = run("db", "verify", "--bucket", BUCKET, "--scratch-url", empty_db(), "--signing-key", signing.arn,
                    "--format", "json")
    assert code == 0, out
    report = json.loads(out)["result"]
    assert report["status"] == "PASS" and report["erased_rows"] == rows
    assert report["table_counts"]["auth.users"]["erased"] == 1
    # The weekly quick check reads the ledger; a stranger under erasure/ fails it and alarms.
    code, out = run("db", "verify", "--quick", "--bucket", BUCKET, "--signing-key", signing.arn, "--format", "json")
    assert code == 0 and {"name": "erasure ledger", "passed": True,
                          "detail": "1 entry, each an account UUID and a time"} in json.loads(out)["result"]["checks"]
    s3.put_object(Bucket=BUCKET, Key="erasure/planted.json", Body=b"{}", ChecksumAlgorithm="SHA256")
    code, out = run("db", "verify", "--quick", "--bucket", BUCKET, "--signing-key", signing.arn, "--format", "json",
                    "--publish-metrics")
    answer = json.loads(out)  # one document, also when the check fails
    assert code == 1 and not answer["ok"] and not answer["result"]["checks"][-1]["passed"]
    assert ({metrics.ERASURE_LEDGER_FAILED: 1}, None) in published
    # A full restore with a broken ledger fails (never a silent pass) and alarms.
    published.clear()
    code, out = run("db", "verify", "--bucket", BUCKET, "--scratch-url", empty_db(), "--signing-key", signing.arn,
                    "--publish-metrics")
    assert code == 1 and "could not read the erasure ledger" not in out and "not a ledger entry" in out
    assert ({metrics.ERASURE_LEDGER_FAILED: 1}, None) in published
    assert ({"JobFailed": 1}, {"Job": metrics.DB_RESTORE_TEST}) in published


def test_erasure_cli_records_audited_lists_and_applies_by_hand(s3, source, monkeypatch):
    monkeypatch.setenv("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required")
    runner = CliRunner()
    account = owners(source)[1]

    def run(*args):
        result = runner.invoke(main, ["erasure", *args, "--region", REGION, "--bucket", BUCKET],
                               catch_exceptions=False)
        return result.exit_code, result.output

    code, out = run("record", "--account", "not-a-uuid", "--report-bucket", "reports")
    assert code == 2 and "not an account UUID" in out and "Traceback" not in out
    code, out = run("record", "--account", account, "--report-bucket", "reports")
    assert code == 2 and "name the account's businesses" in out  # its invoice keys name them
    code, out = run("record", "--account", account, "--database-url", source, "--report-bucket", "reports")
    assert code == 0 and f"recorded the erasure of {account} (1 business(es))" in out
    (audit_key,) = [o["Key"] for o in s3.list_objects_v2(Bucket="reports", Prefix="audit/erasure_record/")["Contents"]]
    audit = json.loads(s3.get_object(Bucket="reports", Key=audit_key)["Body"].read())
    assert audit["outcome"] == "recorded" and audit["target"] == {"account": account}
    code, out = run("list", "--format", "json")
    assert code == 0 and [e["account_id"] for e in json.loads(out)["result"]["entries"]] == [account]
    # After a restore the CLI did not run (Supabase's own PITR): apply by hand.
    before = sum(account_rows(source, account).values())
    code, out = run("apply", "--target-url", source, "--report-bucket", "reports")
    assert code == 0 and f"erasure ledger applied: {before} row(s) removed" in out
    assert sum(account_rows(source, account).values()) == 0


def test_the_export_and_the_erasure_read_the_same_map(source):
    """What an account export holds is exactly what an erasure deletes (plus the account itself)."""
    from tavari_dr.export.account import count_rows

    account = owners(source)[2]
    counts = account_rows(source, account)
    assert count_rows(source, account) == sum(n for t, n in counts.items()
                                              if t not in (t for t, _ in accountmap.ACCOUNT_REFERENCES))


# --------------------------------------------------------------------------- the infrastructure


@pytest.mark.parametrize("env_name", ["dev", "prod"])
def test_the_ledger_prefix_is_append_only_never_expires_and_replicates(synthesized, env_name):
    env = synthesized[env_name]
    account = DEV_ACCOUNT if env_name == "dev" else ACCOUNT
    for purpose in ["DatabaseBackups"] + (["DatabaseBackupsReplica"] if env_name == "prod" else []):
        policy, arn = policy_of(env, purpose, "BackupsBucket", account=account)
        key = f"{arn}/erasure/6f1c1a52-8d5e-4f3c-9a0b-3c2d1e0f9a8b/x.json"
        assert decide(policy, Request(ADMIN, "s3:PutObject", key, {"s3:ObjectCreationOperation": "true"})) == "deny"
        assert decide(policy, Request(ADMIN, "s3:PutObject", key, {"s3:ObjectCreationOperation": "true",
                                                                  "s3:if-none-match": "*"})) != "deny"
        assert decide(policy, Request(ADMIN, "s3:DeleteObject", key)) == "deny"
        sids = {s.get("Sid") for s in policy["Statement"]}
        assert {g.ERASURE_WRITE_SID, g.ERASURE_DELETE_SID} <= sids
        template = env.templates[env.stack(purpose)]
        (bucket,) = [r for k, r in template["Resources"].items()
                     if r["Type"] == "AWS::S3::Bucket" and k.startswith("BackupsBucket")]
        for rule in bucket["Properties"]["LifecycleConfiguration"]["Rules"]:
            expires = "ExpirationInDays" in rule or "NoncurrentVersionExpiration" in rule
            # nothing expires erasure/ (the dumps' tiers and changes/ expire; no rule's prefix covers the ledger)
            assert not expires or (rule["Prefix"] and not g.ERASURE_PREFIX.startswith(rule["Prefix"])), rule
    if env_name == "prod":
        template = env.templates[env.stack("DatabaseBackups")]
        (bucket,) = [r for k, r in template["Resources"].items()
                     if r["Type"] == "AWS::S3::Bucket" and k.startswith("BackupsBucket")]
        (rule,) = bucket["Properties"]["ReplicationConfiguration"]["Rules"]
        assert rule["Status"] == "Enabled" and rule["Filter"] == {"Prefix": ""}  # every prefix, erasure/ too


def test_the_drift_check_expects_the_ledger_guard():
    statements = g.backup_bucket_statements("arn:aws:s3:::b", None)
    ledger = [s for s in statements if s["Sid"] not in (g.ERASURE_WRITE_SID, g.ERASURE_DELETE_SID)]
    assert g.missing_statements({"Statement": ledger}, statements) == [
        f"{g.ERASURE_WRITE_SID}: missing", f"{g.ERASURE_DELETE_SID}: missing"]


def test_the_application_may_add_ledger_entries_and_nothing_else(synthesized):
    template = synthesized["prod-app"].templates["Tavari-Prod-DatabaseBackups"]
    policies = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::IAM::Policy"
                and r["Properties"].get("Roles") == [APP_ROLE_ARN.rsplit("/", 1)[1]]]
    (policy,) = policies
    statements = policy["PolicyDocument"]["Statement"]
    s3_statement = next(s for s in statements if "s3:PutObject" in s["Action"])
    assert sorted(s3_statement["Action"]) == ["s3:PutObject", "s3:PutObjectRetention"]
    assert s3_statement["Resource"]["Fn::Join"][1][-1] == "/erasure/*"
    kms_statement = next(s for s in statements if s is not s3_statement)
    assert kms_statement["Action"] == "kms:GenerateDataKey"
    assert "Tavari-Prod-DatabaseBackups" in synthesized["prod"].templates  # and without an app role, no grant
    assert not [r for r in synthesized["prod"].templates["Tavari-Prod-DatabaseBackups"]["Resources"].values()
                if r["Type"] == "AWS::IAM::Policy" and r["Properties"].get("Roles") == ["tavari-app"]]


def test_a_failed_ledger_alarms(prod):
    template = prod.templates[prod.stack("Monitoring")]
    alarms = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm"
              and r["Properties"].get("MetricName") == metrics.ERASURE_LEDGER_FAILED]
    (alarm,) = alarms
    assert alarm["Threshold"] == 0 and alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["AlarmDescription"].endswith("#erasure-ledger-failed")
