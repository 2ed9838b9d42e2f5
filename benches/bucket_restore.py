"""Point-in-time restore in place: `tavari-dr bucket restore` vs `s3-pit-restore` 0.9, on moto.

Through benches/harness.py: per repetition and per side (order rotating), a fresh moto server
seeded with the same history (KEYS keys x 3 versions before T, then CHANGED_SHARE of keys changed
after T: overwrites, deletes, new keys), then the tool as one whole process (start-up included).
Every HTTP request each tool sends is counted from its server's log; both must end in exactly the
visible state at T. Prints the median and range of the wall and request ratios, and the load.

    .venv/bin/python benches/bucket_restore.py [--keys 2000] [--changed-share 0.02] [--repetitions 3]

s3-pit-restore is a pinned dev requirement (requirements-dev.txt), run from this interpreter's bin/.
Data stays small on purpose: moto deep-copies the bucket on every ListObjectVersions page.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import boto3
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benches import harness  # noqa: E402
from tavari_dr.drill.emulator import MotoServer as _Emulator  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BUCKET = "bench-invoices"
REPORTS = "bench-reports"  # the restore's own report goes here (part of its cost, counted)
BACKUPS = "bench-backups"  # where the erasure ledger would be (empty here; reading it is counted)
REGION = "us-east-1"


class MotoServer(_Emulator):
    def __init__(self, log: Path) -> None:
        super().__init__(log)
        self.start()

    def requests_since(self, offset: int) -> int:
        time.sleep(1.0)  # the server logs a request after answering it
        return sum(harness.count_requests(self.log.read_text()[offset:]).values())


def client(url: str):
    return boto3.client("s3", region_name=REGION, endpoint_url=url, aws_access_key_id="bench",
                        aws_secret_access_key="bench",  # noqa: S106 - a local emulator's dummy credentials
                        config=Config(max_pool_connections=32))


def seed(url: str, keys: int, changed_share: float, rng_seed: int) -> tuple[datetime, dict[str, str], int]:
    """The same history on every server; returns T, the expected state at T and the changed-key count."""
    s3 = client(url)
    s3.create_bucket(Bucket=BUCKET)
    s3.create_bucket(Bucket=REPORTS)
    s3.create_bucket(Bucket=BACKUPS)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    names = [f"invoices/2026/{i:05}.pdf" for i in range(keys)]

    def put(key: str, body: bytes) -> None:
        s3.put_object(Bucket=BUCKET, Key=key, Body=body, ContentType="application/pdf")

    expected: dict[str, str] = {}
    with ThreadPoolExecutor(16) as pool:
        for version in range(3):
            bodies = {k: f"{k} v{version} ".encode() * 20 for k in names}
            list(pool.map(lambda kv: put(*kv), bodies.items()))
            expected = {k: hashlib.md5(b).hexdigest() for k, b in bodies.items()}  # noqa: S324 - fingerprint only
    time.sleep(1.2)  # S3 times have second precision: keep T clear of both sides
    to = datetime.now(UTC)
    time.sleep(1.2)
    rng = random.Random(rng_seed)
    changed = max(3, int(keys * changed_share))
    picked = rng.sample(names, changed - changed // 3)
    overwrites, deletes = picked[: len(picked) // 2], picked[len(picked) // 2:]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: put(k, b"tampered after T"), overwrites))
        list(pool.map(lambda k: s3.delete_object(Bucket=BUCKET, Key=k), deletes))
        list(pool.map(lambda i: put(f"invoices/2026/new-{i:04}.pdf", b"created after T"), range(changed // 3)))
    return to, expected, changed


def visible(url: str) -> dict[str, str]:
    s3 = client(url)
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read()
            out[obj["Key"]] = hashlib.md5(body).hexdigest()  # noqa: S324 - fingerprint only
    return out


def run_tool(name: str, url: str, to: datetime, workdir: Path) -> float:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
           "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION}
    stamp = to.isoformat()
    if name == "tavari-dr":
        cmd = [sys.executable, "-m", "tavari_dr", "bucket", "restore", "--bucket", BUCKET, "--region", REGION,
               "--endpoint-url", url, "--to", stamp, "--apply", "--concurrency", "16",
               "--state-dir", str(workdir / "state"), "--report-bucket", REPORTS, "--backup-bucket", BACKUPS]
    else:
        cmd = [str(Path(sys.executable).parent / "s3-pit-restore"), "-b", BUCKET, "-B", BUCKET, "-t", stamp,
               "--max-workers", "16"]
        env["AWS_ENDPOINT_URL"] = url  # s3-pit-restore has no endpoint flag
    seconds, _ = harness.timed_process(cmd, cwd=ROOT, env=env)
    return seconds


def side(tool: str, args: argparse.Namespace) -> harness.Sample:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server = MotoServer(work / "moto.log")
        try:
            to, expected, changed = seed(server.url, args.keys, args.changed_share, args.seed)
            offset = server.log_size()
            seconds = run_tool(tool, server.url, to, work)
            requests = server.requests_since(offset)
            if visible(server.url) != expected:
                raise RuntimeError(f"{tool}: visible state after restore differs from the state at T")
            return harness.Sample(seconds, requests, {"changed": changed})
        finally:
            server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=2000)
    parser.add_argument("--changed-share", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repetitions", type=int, default=3)
    args = parser.parse_args()
    result = harness.compare("bucket point-in-time restore", ("tavari-dr", lambda _rep: side("tavari-dr", args)),
                             ("s3-pit-restore", lambda _rep: side("s3-pit-restore", args)), args.repetitions)
    changed = result.samples[0][0].extra["changed"]
    print(f"moto server, {args.keys} keys x 3 versions, {changed} keys changed after T ({args.changed_share:.0%}); "
          "both tools end in exactly the state at T: yes")
    print("\n".join(result.lines()))
    print("  goal: requests >= 25x fewer, wall faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
