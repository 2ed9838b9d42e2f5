"""Data exports against a real PostgreSQL server with the Supabase-like Tavari schema."""

from __future__ import annotations

import base64
import io
import json
import zipfile

import psycopg
import pytest
from click.testing import CliRunner

from tavari_dr.cli import main
from tavari_dr.export import account as x
from tests.conftest import ROOT, owners

pytestmark = pytest.mark.postgres


def read_zip(data):
    zf = zipfile.ZipFile(io.BytesIO(data))
    return zf, json.loads(zf.read("metadata.json"))


def test_account_export_holds_exactly_that_users_rows(db):
    alice, bob, _ = owners(db)
    out = io.BytesIO()
    metadata = x.export_account(db, alice, out)
    zf, meta = read_zip(out.getvalue())
    assert meta == metadata and meta["user_id"] == alice and len(meta["business_ids"]) == 1
    assert meta["schema_version"] == x.SCHEMA_VERSION and meta["exported_at"].endswith("+00:00")
    business_id = meta["business_ids"][0]
    expected = {"business.jsonl": 1, "call_history.jsonl": 5, "messages.jsonl": 7, "usage.jsonl": 3,
                "invoices.jsonl": 3, "support_tickets.jsonl": 3}
    assert {k: v["rows"] for k, v in meta["files"].items()} == expected
    for name, info in meta["files"].items():
        data = zf.read(name)
        import hashlib

        assert hashlib.sha256(data).hexdigest() == info["sha256"]
        rows = [json.loads(line) for line in data.decode().splitlines()]
        assert len(rows) == info["rows"]
        for row in rows:
            owner = row.get("owner_id") if name == "business.jsonl" else row.get("business_id")
            assert owner in (alice, business_id)  # nothing of another tenant
    assert bob not in zf.read("business.jsonl").decode()


def test_every_type_round_trips_losslessly(db):
    alice = owners(db)[0]
    out = io.BytesIO()
    x.export_account(db, alice, out)
    zf, meta = read_zip(out.getvalue())
    with psycopg.connect(db) as conn:
        ticket = conn.execute("SELECT id, attachment, body FROM public.support_tickets WHERE attachment IS NOT NULL "
                              "AND business_id = %s", (meta["business_ids"][0],)).fetchone()
        invoice = conn.execute("SELECT number, amount, issued_at FROM public.invoices WHERE business_id = %s "
                               "ORDER BY number LIMIT 1", (meta["business_ids"][0],)).fetchone()
        business = conn.execute("SELECT name, settings FROM public.businesses WHERE owner_id = %s",
                                (alice,)).fetchone()
    tickets = {r["id"]: r for r in map(json.loads, zf.read("support_tickets.jsonl").decode().splitlines())}
    assert base64.b64decode(tickets[ticket[0]]["attachment"]["$base64"]) == bytes(ticket[1])  # bytea
    big = next(r for r in tickets.values() if len(r["body"]) > 100_000)
    assert "łóżko" in big["body"]  # large, unicode text
    invoices = sorted(map(json.loads, zf.read("invoices.jsonl").decode().splitlines()), key=lambda r: r["number"])
    assert invoices[0]["amount"] == str(invoice[1])  # numeric as an exact string
    assert invoices[0]["issued_at"] == invoice[2].isoformat()
    row = json.loads(zf.read("business.jsonl").decode())
    assert row["name"] == business[0] and row["settings"] == business[1]  # jsonb as JSON, emoji intact
    calls = [json.loads(line) for line in zf.read("call_history.jsonl").decode().splitlines()]
    assert any(c["transcript"] is None for c in calls)  # NULL as null


def test_a_user_without_data_gets_a_valid_empty_export(db):
    out = io.BytesIO()
    meta = x.export_account(db, "00000000-0000-4000-8000-000000000000", out)
    zf, _ = read_zip(out.getvalue())
    assert meta["business_ids"] == [] and all(f["rows"] == 0 for f in meta["files"].values())
    assert zf.read("messages.jsonl") == b""


def test_table_csv_matches_copy_byte_for_byte(db, tmp_path):
    code = CliRunner().invoke(main, ["export", "tables", "--tables", "public.messages,public.invoices",
                                     "--database-url", db, "--out", str(tmp_path)], catch_exceptions=False)
    assert code.exit_code == 0, code.output
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    with psycopg.connect(db) as conn:
        for table in ("public.messages", "public.invoices"):
            expected = io.BytesIO()
            with conn.cursor().copy(f"COPY {table} TO STDOUT WITH (FORMAT csv, HEADER)") as copy:
                for chunk in copy:
                    expected.write(bytes(chunk))
            assert (tmp_path / f"{table}.csv").read_bytes() == expected.getvalue()
            count = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608 - fixed names
            assert manifest["tables"][table]["rows"] == count
            assert len(x.csv_rows(expected.getvalue())) == count + 1


def test_cli_account_export_and_usage_errors(db, tmp_path):
    alice = owners(db)[0]
    out = tmp_path / "alice.zip"
    runner = CliRunner()
    result = runner.invoke(main, ["export", "account", "--user-id", alice, "--database-url", db, "--out", str(out)])
    assert result.exit_code == 0 and "1 business(es)" in result.output
    assert runner.invoke(main, ["export", "account", "--user-id", alice, "--database-url", db,
                                "--out", str(out)]).exit_code == 2  # exists
    assert runner.invoke(main, ["export", "account", "--user-id", "1; DROP TABLE x", "--database-url", db,
                                "--out", str(tmp_path / "x.zip")]).exit_code == 2


def test_cli_takes_the_datasets_from_the_environments_config(db, tmp_path):
    alice = owners(db)[0]
    context = json.loads((ROOT / "cdk.json").read_text())
    context["context"]["environments"]["dev"]["data_export"] = {"datasets": [
        {"name": "just_messages", "table": "public.messages", "owner": "business", "column": "business_id"}]}
    cdk_json = tmp_path / "cdk.json"
    cdk_json.write_text(json.dumps(context))
    out = tmp_path / "alice.zip"
    result = CliRunner().invoke(main, ["export", "account", "--user-id", alice, "--database-url", db, "--out",
                                       str(out), "--env", "dev", "--cdk-json", str(cdk_json)])
    assert result.exit_code == 0, result.output
    _, meta = read_zip(out.read_bytes())
    assert list(meta["files"]) == ["just_messages.jsonl"] and meta["files"]["just_messages.jsonl"]["rows"] == 7


def test_invoice_pdfs_are_included_when_asked(db):
    import boto3
    from moto import mock_aws

    alice = owners(db)[0]
    with mock_aws():
        s3 = boto3.client("s3", region_name="eu-west-1")
        s3.create_bucket(Bucket="invoices", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        with psycopg.connect(db) as conn:
            keys = [r[0] for r in conn.execute(
                "SELECT pdf_key FROM public.invoices i JOIN public.businesses b ON b.id = i.business_id "
                "WHERE b.owner_id = %s", (alice,))]
        for key in keys:
            s3.put_object(Bucket="invoices", Key=key, Body=b"%PDF " + key.encode())
        out = io.BytesIO()
        meta = x.export_account(db, alice, out, s3=s3, pdf_bucket="invoices")
    zf, _ = read_zip(out.getvalue())
    assert sorted(n.removeprefix("invoices/") for n in zf.namelist() if n.startswith("invoices/")) == sorted(keys)
    assert all(meta["files"][f"invoices/{k}"]["bytes"] == len(b"%PDF " + k.encode()) for k in keys)
