"""What re-applying the erasure ledger adds to a restore: reading N ledger entries (moto, in process) and
deleting those accounts' rows from a seeded database (one DELETE per mapped table for all accounts).

    .venv/bin/python benches/erasure.py [--businesses 200] [--erased 50]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402
import psycopg  # noqa: E402
from moto import mock_aws  # noqa: E402

from tavari_dr.core.aws import EMULATOR_CONFIG  # noqa: E402
from tavari_dr.database import erasure  # noqa: E402
from tavari_dr.drill import demo_data  # noqa: E402
from tavari_dr.drill.pgcluster import LocalPostgres  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--businesses", type=int, default=200)
    parser.add_argument("--erased", type=int, default=50)
    args = parser.parse_args()
    with LocalPostgres() as pg, mock_aws():
        url = pg.create_database("bench_erasure")
        demo_data.create_supabase_like(url)
        counts = demo_data.seed(url, businesses=args.businesses, calls=20, messages=50)
        with psycopg.connect(url) as conn:
            accounts = [str(r[0]) for r in conn.execute("SELECT DISTINCT owner_id FROM public.businesses "
                                                        "ORDER BY 1 LIMIT %s", (args.erased,))]
        s3 = boto3.client("s3", region_name="eu-west-1", config=EMULATOR_CONFIG)
        s3.create_bucket(Bucket="bench-ledger", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"},
                         ObjectLockEnabledForBucket=True)
        started = time.perf_counter()
        for account in accounts:
            erasure.record(s3, "bench-ledger", account, erased_at=datetime(2026, 11, 24, tzinfo=UTC))
        recorded = time.perf_counter() - started
        started = time.perf_counter()
        entries = erasure.read_ledger(s3, "bench-ledger")
        read = time.perf_counter() - started
        started = time.perf_counter()
        with psycopg.connect(url) as conn:
            removed = erasure.apply_erasures(conn, entries)
        applied = time.perf_counter() - started
        with psycopg.connect(url) as conn:
            again = erasure.apply_erasures(conn, entries)
    print(f"database: {sum(counts.values())} rows, {args.businesses} businesses; ledger: {len(entries)} entries")
    print(f"record {len(accounts)} entries: {recorded:.2f} s; read the ledger: {read:.2f} s (moto, in process)")
    print(f"apply: {sum(removed.values())} rows removed in {applied:.3f} s; again: {sum(again.values())} rows")


if __name__ == "__main__":
    main()
