"""Verification at scale: the integrity sample and the size check over a moto bucket of VERSIONS versions.

Prints each check's wall time and the process's peak memory. The integrity sample reads at most
`max_list_pages` pages of 1,000 versions (reservoir sampling), so its cost is bounded by that,
not by the bucket; the size check reads S3's daily storage metrics and never lists.

    .venv/bin/python benches/verification.py [--versions 100000] [--pages 50] [--sample 50]

Seeding goes through moto's backend directly (no HTTP) to keep it short; the checks use boto3 as
in production. moto copies the whole bucket for every ListObjectVersions page, so the listing
figure here is far above S3's (~100 ms a page).
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tavari_dr.core.aws import EMULATOR_CONFIG  # noqa: E402
from tavari_dr.verification import checks  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=100_000)
    parser.add_argument("--pages", type=int, default=50, help="max_list_pages (the Lambda's bound)")
    parser.add_argument("--sample", type=int, default=50)
    args = parser.parse_args()
    with mock_aws():
        s3 = boto3.client("s3", region_name="eu-west-1", config=EMULATOR_CONFIG)
        for name in ("invoices", "reports"):
            s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        backend = s3_backends[DEFAULT_ACCOUNT_ID]["global"]
        started = time.monotonic()
        keys = args.versions // 3
        for version in range(3):
            for i in range(keys):
                body = b"%PDF-1.7 " * 40 + bytes([version])
                backend.put_object("invoices", f"invoices/{i // 1000:03}/{i:07}.pdf", body)
        seeded = time.monotonic() - started
        cw = boto3.client("cloudwatch", region_name="eu-west-1")
        for name, storage, value in (("BucketSizeBytes", "StandardStorage", 361.0 * keys * 3),
                                     ("NumberOfObjects", "AllStorageTypes", keys * 3)):
            cw.put_metric_data(Namespace="AWS/S3", MetricData=[{
                "MetricName": name, "Value": value, "Timestamp": datetime.now(UTC) - timedelta(hours=2),
                "Dimensions": [{"Name": "BucketName", "Value": "invoices"},
                               {"Name": "StorageType", "Value": storage}]}])
        store = checks.BaselineStore(s3, "reports", "invoices")
        integrity = checks.run_check("integrity_sample", lambda r: checks.integrity_sample(
            r, s3=s3, bucket="invoices", n=args.sample, baselines=store, max_pages=args.pages,
            rng=random.Random(7)))
        size = checks.run_check("sizes", lambda r: checks.sizes(
            r, cloudwatch=cw, bucket="invoices", previous=None, max_shrink_percent=10, now=datetime.now(UTC)))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"moto bucket: {keys * 3} versions ({keys} keys x 3); seeding {seeded:.0f} s (not timed)")
    print(f"  integrity_sample: {integrity.status} in {integrity.duration_seconds:.1f} s  "
          f"(listed {integrity.measured.get('versions_listed')} versions in <= {args.pages} pages, "
          f"read {integrity.measured.get('read')})")
    print(f"  sizes:            {size.status} in {size.duration_seconds:.2f} s  (storage metrics, no listing)")
    print(f"  peak memory (process incl. moto): {peak:.0f} MiB")
    return 0 if integrity.ok and size.ok else 1


if __name__ == "__main__":
    sys.exit(main())
