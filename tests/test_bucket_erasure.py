"""A bucket restore never brings back an erased account's invoice PDFs: the erasure ledger (in the backup
bucket) names the account's businesses, the account map (data_export.invoice_key_prefix) their keys;
the listing planner, the inventory planner and a saved plan leave them out and the report counts them.
S3 on moto."""

from __future__ import annotations

import json

from tavari_dr.bucket import restore as r
from tavari_dr.database import erasure
from tests.s3_history import History
from tests.test_inventory_cli import BACKUPS, REGION, deliver, oldest_first, run, s3  # noqa: F401 (fixture)

ERASED_BUSINESS = "1b0a8f44-3c1e-4f7a-9d5e-2a6b7c8d9e0f"
KEPT_BUSINESS = "7e6d5c4b-3a29-4f18-8e07-f6e5d4c3b2a1"
ERASED_ACCOUNT = "6f1c1a52-8d5e-4f3c-9a0b-3c2d1e0f9a8b"


def invoices(business: str) -> list[str]:
    return [f"invoices/{business}/{month}.pdf" for month in (1, 2, 3)]


def erased_then_lost(s3_client) -> tuple[History, object]:
    """Both businesses' PDFs at T; then one account is erased (its PDFs deleted, the erasure recorded)
    and the other's PDFs are lost (deleted by mistake): restoring to T must bring back only the latter."""
    h = History(s3_client, "invoices")
    for key in invoices(ERASED_BUSINESS) + invoices(KEPT_BUSINESS):
        h.put(key, b"%PDF " + key.encode())
    to = h.time_after(5)
    for key in invoices(ERASED_BUSINESS):
        h.delete(key)
    erasure.record(s3_client, BACKUPS, ERASED_ACCOUNT, business_ids=[ERASED_BUSINESS])
    for key in invoices(KEPT_BUSINESS):
        h.delete(key)
    return h, to


def visible(s3_client) -> set[str]:
    return set(r.visible_state(s3_client, "invoices"))


def test_the_listing_planner_restores_the_others_and_none_of_the_erased_accounts_pdfs(s3, tmp_path):  # noqa: F811
    _h, to = erased_then_lost(s3)
    code, out = run("--to", to.isoformat(), "--apply", "--state-dir", str(tmp_path / "s"), "--report-bucket",
                    "reports")
    assert code == 0, out
    report = json.loads(out)["result"]
    assert visible(s3) == set(invoices(KEPT_BUSINESS))  # 3 of 3 back, 0 of the erased account's
    assert report["erased"] == {"ledger": f"s3://{BACKUPS}/erasure/", "prefixes": 1, "left_out": 3,
                                "keys": invoices(ERASED_BUSINESS)}
    assert report["summary"]["erased (left out)"]["keys"] == 3 and report["result"]["counts"] == {"done": 3}


def test_the_inventory_planner_leaves_them_out_too(s3, tmp_path):  # noqa: F811
    _h, to = erased_then_lost(s3)
    deliver(s3, inventory_after=6, history=oldest_first(s3))  # the report saw the PDFs; the feed has the deletes
    code, out = run("--to", to.isoformat(), "--from-inventory", "--apply", "--state-dir", str(tmp_path / "s"),
                    "--report-bucket", "reports")
    assert code == 0, out
    report = json.loads(out)["result"]
    assert visible(s3) == set(invoices(KEPT_BUSINESS))
    assert report["erased"]["left_out"] == 3 and report["summary"]["copy"]["keys"] == 3


def test_a_plan_saved_before_the_erasure_is_applied_without_the_erased_keys(s3, tmp_path):  # noqa: F811
    h = History(s3, "invoices")
    for key in invoices(ERASED_BUSINESS) + invoices(KEPT_BUSINESS):
        h.put(key, b"%PDF " + key.encode())
    to = h.time_after(5)
    for key in invoices(ERASED_BUSINESS) + invoices(KEPT_BUSINESS):
        h.delete(key)  # lost: the plan, made now, copies all six back
    plan_file = tmp_path / "plan.json"
    code, out = run("--to", to.isoformat(), "--plan-out", str(plan_file))
    assert code == 0 and json.loads(out)["result"]["summary"]["copy"]["keys"] == 6, out
    erasure.record(s3, BACKUPS, ERASED_ACCOUNT, business_ids=[ERASED_BUSINESS])  # erased before the apply
    code, out = run("--plan-in", str(plan_file), "--apply", "--state-dir", str(tmp_path / "s"), "--report-bucket",
                    "reports")
    assert code == 0, out
    assert visible(s3) == set(invoices(KEPT_BUSINESS)) and json.loads(out)["result"]["erased"]["left_out"] == 3


def test_an_entry_that_does_not_name_its_businesses_refuses_the_restore(s3):  # noqa: F811
    _h, to = erased_then_lost(s3)
    s3.put_object(Bucket=BACKUPS, Key=f"erasure/{ERASED_ACCOUNT}/20261124T070000.000000Z-0123456789ab.json",
                  Body=json.dumps({"format": erasure.FORMAT_V1, "account_id": ERASED_ACCOUNT,
                                   "erased_at": "2026-11-24T07:00:00+00:00"}).encode(), ChecksumAlgorithm="SHA256")
    before = visible(s3)
    code, out = run("--to", to.isoformat(), "--apply")
    assert code == 1 and "record the erasure again with its businesses" in out and "Traceback" not in out
    assert visible(s3) == before


def test_without_a_ledger_to_read_the_restore_is_refused(s3):  # noqa: F811
    from click.testing import CliRunner

    from tavari_dr.cli import main

    result = CliRunner().invoke(main, ["bucket", "restore", "--bucket", "invoices", "--region", REGION, "--to",
                                       "2026-11-01T12:00:00Z"])
    assert result.exit_code == 2 and "erasure ledger" in result.output
