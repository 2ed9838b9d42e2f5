"""Point-in-time restore in place: `tavari-dr bucket restore` vs `s3-pit-restore` 0.9, on moto.

Each tool gets its own fresh moto server seeded with the same history: KEYS keys x 3 versions
before T, then CHANGED_SHARE of keys changed after T (overwrites, deletes, new keys). Both
restore in place to T; the script checks both end in the same visible state (and that it is the
state at T), and prints wall times, their ratio and write requests per changed key, counted from
each server's request log.

    .venv/bin/python benches/bucket_restore.py [--keys 2000] [--changed-share 0.02]

s3-pit-restore runs from its own venv (.bench/s3pit-venv, created on first use). Data stays
small on purpose: moto deep-copies the bucket on every ListObjectVersions page and keeps it.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import boto3
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tavari_dr.drill.emulator import MotoServer as _Emulator  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / ".bench"
S3PIT_VENV = BENCH_DIR / "s3pit-venv"
BUCKET = "bench-invoices"
REGION = "us-east-1"
WRITE_RE = re.compile(r'"(?:\x1b\[[0-9;]*m)*(PUT|POST|DELETE) /')  # werkzeug may colour the method


class MotoServer(_Emulator):
    def __init__(self, log: Path) -> None:
        super().__init__(log)
        self.start()

    def writes_since(self, offset: int) -> int:
        time.sleep(1.0)  # the server logs a request after answering it
        return len(WRITE_RE.findall(self.log.read_text()[offset:]))


def client(url: str):
    return boto3.client("s3", region_name=REGION, endpoint_url=url, aws_access_key_id="bench",
                        aws_secret_access_key="bench",  # noqa: S106 - a local emulator's dummy credentials
                        config=Config(max_pool_connections=32))


def seed(url: str, keys: int, changed_share: float, rng_seed: int) -> tuple[datetime, dict[str, str], int]:
    """The same history on every server; returns T, the expected state at T and the changed-key count."""
    s3 = client(url)
    s3.create_bucket(Bucket=BUCKET)
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


def ensure_s3pit() -> Path:
    script = S3PIT_VENV / "bin" / "s3-pit-restore"
    if not script.exists():
        subprocess.run([sys.executable, "-m", "venv", str(S3PIT_VENV)], check=True)
        subprocess.run([str(S3PIT_VENV / "bin" / "pip"), "install", "--quiet", "s3-pit-restore==0.9", "boto3"],
                       check=True)
    return script


def listing_seconds(url: str) -> float:
    """The floor any tool that reads the version history pays on this server."""
    s3 = client(url)
    started = time.monotonic()
    for _ in s3.get_paginator("list_object_versions").paginate(Bucket=BUCKET, PaginationConfig={"PageSize": 1000}):
        pass
    return time.monotonic() - started


def run_tool(name: str, url: str, to: datetime, workdir: Path) -> None:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
           "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION}
    stamp = to.isoformat()
    if name == "tavari-dr":
        cmd = [sys.executable, "-m", "tavari_dr", "bucket", "restore", "--bucket", BUCKET, "--region", REGION,
               "--endpoint-url", url, "--to", stamp, "--apply", "--concurrency", "16",
               "--state-dir", str(workdir / "state")]
    else:
        cmd = [str(ensure_s3pit()), "-b", BUCKET, "-B", BUCKET, "-t", stamp, "--max-workers", "16"]
        env["AWS_ENDPOINT_URL"] = url  # s3-pit-restore has no endpoint flag
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise RuntimeError(f"{name} failed ({result.returncode}): {result.stderr[-2000:]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=2000)
    parser.add_argument("--changed-share", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    BENCH_DIR.mkdir(exist_ok=True)
    ensure_s3pit()
    results = {}
    states = {}
    for tool in ("tavari-dr", "s3-pit-restore"):
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            server = MotoServer(work / "moto.log")
            try:
                started = time.monotonic()
                to, expected, changed = seed(server.url, args.keys, args.changed_share, args.seed)
                seeded = time.monotonic() - started
                offset = server.log_size()
                started = time.monotonic()
                run_tool(tool, server.url, to, work)
                wall = time.monotonic() - started
                writes = server.writes_since(offset)
                listing = listing_seconds(server.url)
                states[tool] = visible(server.url)
                if states[tool] != expected:
                    raise RuntimeError(f"{tool}: visible state after restore differs from the state at T")
                results[tool] = (wall, writes, changed, seeded, listing)
            finally:
                server.stop()
    if states["tavari-dr"] != states["s3-pit-restore"]:
        print("FAIL: the two tools left different visible states")
        return 1
    print(f"moto server, {args.keys} keys x 3 versions, {results['tavari-dr'][2]} keys changed after T "
          f"({args.changed_share:.0%}); both tools end in the state at T: yes")
    for tool, (wall, writes, changed, seeded, listing) in results.items():
        print(f"  {tool:<15} restore {wall:7.2f} s   writes {writes:6d}   writes/changed key {writes / changed:6.2f}"
              f"   (one full version listing on its server: {listing:.2f} s; seeding {seeded:.0f} s, not timed)")
    ours, theirs = results["tavari-dr"], results["s3-pit-restore"]
    print(f"  speed-up, wall: {theirs[0] / ours[0]:.1f}x (goal >= 5x on moto)")
    print(f"  speed-up beyond the shared listing floor: {(theirs[0] - theirs[4]) / max(ours[0] - ours[4], 1e-3):.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
