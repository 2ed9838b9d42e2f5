"""Off-site backup cost: `tavari-dr db backup` (dump + stream to S3) vs plain `pg_dump -Fc > /dev/null`.

A throwaway PostgreSQL cluster is seeded with ~SIZE GB of Tavari-like rows; S3 is a fresh moto
server on loopback. Prints both wall times, their ratio (goal <= 1.10) and the backup process's
peak memory (it streams: one 16 MiB part fills while at most two upload).

    .venv/bin/python benches/db_backup.py [--gb 1.0]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benches"))

from bucket_restore import MotoServer  # noqa: E402

from tavari_dr.drill import demo_data  # noqa: E402
from tavari_dr.drill.pgcluster import LocalPostgres  # noqa: E402

RUN_BACKUP = """
import json, resource, sys, time
import boto3
from tavari_dr.core.aws import EMULATOR_CONFIG
from tavari_dr.database.backup import run_backup
url, endpoint = sys.argv[1], sys.argv[2]

class NullS3:
    # Accepts the calls run_backup makes and drops the bytes: the pipeline's own cost, no emulator.
    def create_multipart_upload(self, **kw): return {"UploadId": "u"}
    def upload_part(self, **kw): return {"ETag": '"e"', "ChecksumCRC32": "c"}
    def complete_multipart_upload(self, **kw): return {"VersionId": "v"}
    def put_object_retention(self, **kw): return {}
    def put_object(self, **kw): return {}
    def abort_multipart_upload(self, **kw): return {}

if endpoint == "null":
    s3 = NullS3()
else:
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=endpoint, aws_access_key_id="bench",
                      aws_secret_access_key="bench", config=EMULATOR_CONFIG)
    s3.create_bucket(Bucket="bench-backups", ObjectLockEnabledForBucket=True)
started = time.monotonic()
manifest = run_backup(s3, "bench-backups", url, reason="bench")
print(json.dumps({"seconds": time.monotonic() - started, "bytes": manifest.total_bytes,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0, help="approximate database size")
    args = parser.parse_args()
    with LocalPostgres() as pg, tempfile.TemporaryDirectory() as tmp:
        url = pg.create_database("tavari")
        demo_data.create_supabase_like(url)
        demo_data.seed(url, businesses=2)
        import psycopg

        rows = int(args.gb * 1024**3 / 1100)
        started = time.monotonic()
        with psycopg.connect(url, autocommit=True) as conn:
            business = conn.execute("SELECT id FROM public.businesses LIMIT 1").fetchone()[0]
            conn.execute("INSERT INTO public.messages (business_id, direction, body, sent_at) "
                         "SELECT %s, 'in', encode(extensions.gen_random_bytes(768), 'base64'), now() "
                         "FROM generate_series(1, %s) g",  # base64 of random bytes: compresses like real text
                         (business, rows))
            size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        seeded = time.monotonic() - started

        started = time.monotonic()
        subprocess.run(["pg_dump", "--format=custom", "--dbname", url], stdout=subprocess.DEVNULL, check=True)
        plain = time.monotonic() - started

        def backup(endpoint: str) -> dict:
            done = subprocess.run([sys.executable, "-c", RUN_BACKUP, url, endpoint], cwd=ROOT, capture_output=True,
                                  text=True, check=True, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
            return json.loads(done.stdout.strip().splitlines()[-1])

        null = backup("null")
        server = MotoServer(Path(tmp) / "moto.log")
        try:
            ours = backup(server.url)
        finally:
            server.stop()
    print(f"database {size / 1024**3:.2f} GiB ({rows} extra message rows; seeding {seeded:.0f} s, not timed)")
    print(f"  pg_dump -Fc > /dev/null:          {plain:7.1f} s")
    print(f"  tavari-dr db backup (to moto S3): {ours['seconds']:7.1f} s   "
          f"{ours['bytes'] / 1024**2:.0f} MiB uploaded in 4 artifacts")
    print(f"  tavari-dr db backup (bytes dropped): {null['seconds']:5.1f} s   the pipeline alone, no emulator")
    print(f"  overhead ratio, pipeline alone: {null['seconds'] / plain:.2f} (goal <= 1.10)")
    print(f"  overhead ratio with moto as S3: {ours['seconds'] / plain:.2f} (moto shares this machine's 2 cores "
          "with pg_dump and PostgreSQL while it stores 750 MiB)")
    print(f"  peak memory of the backup process: {ours['peak_rss_mb']:.0f} MiB (bytes dropped: "
          f"{null['peak_rss_mb']:.0f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
