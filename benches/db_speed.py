"""Database backup and restore speed: `tavari-dr db backup` / `db restore` beside the PostgreSQL tools beneath them.

One run, one process tree: a throwaway PostgreSQL cluster holds a Supabase-like Tavari database of
about --gb GiB, generated server-side (two large tables with primary keys, foreign keys and extra
indexes, so the post-data section is real work); S3 and KMS are one moto server on loopback. Then
--reps interleaved repetitions (the order flips every repetition) of

* backup:  `pg_dump -Fc -f FILE` (plain, the whole database)  vs  `tavari-dr db backup` to moto;
* restore: the same backup's artifacts downloaded from the same moto server with boto3, then
  `pg_restore -j 2` from the local files (pre-data, data, post-data)  vs  `tavari-dr db restore -j 2`
  into an empty database (which also verifies the manifest and every sha256, restores roles and
  counts every table's rows).

Prints every repetition's wall times and their ratio, and the median ratio (goals: backup <= 1.10,
restore <= 1.10). This box is a shared 2-core machine: absolute seconds say more about the load
than about the tools, so only ratios of side-by-side runs are reported.

    .venv/bin/python benches/db_speed.py [--gb 1.0] [--reps 3]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tavari_dr.drill import demo_data  # noqa: E402


def seed_large(url: str, gb: float) -> int:
    """A Supabase-like Tavari database of about ``gb`` GiB, generated server-side: two large tables
    (messages, call_sessions) with their primary keys, foreign keys and indexes, plus an extra index
    on each, so the post-data section (index builds, FK validation) is real work. Returns its size."""
    import psycopg

    demo_data.create_supabase_like(url)
    demo_data.seed(url, businesses=20, calls=10, messages=10, tickets=1, large_text_bytes=1000)
    # ~60 % of the bytes in messages (1 KiB rows), ~40 % in call_sessions (~330 B rows); base64 of
    # random bytes plus repeated words compresses about like real text (neither free nor incompressible).
    messages = int(gb * 0.6 * 1024**3 / 1150)
    calls = int(gb * 0.4 * 1024**3 / 420)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO public.messages (business_id, direction, body, sent_at) "
                     "SELECT b.ids[1 + g %% array_length(b.ids, 1)], CASE WHEN g %% 2 = 0 THEN 'in' ELSE 'out' END, "
                     "encode(extensions.gen_random_bytes(480), 'base64') || repeat(' dzień dobry, thank you', 16), "
                     "timestamptz '2026-01-01' + g * interval '7 seconds' "
                     "FROM generate_series(1, %s) g, (SELECT array_agg(id) ids FROM public.businesses) b", (messages,))
        conn.execute("INSERT INTO public.call_sessions (business_id, caller, status, started_at, duration_seconds, "
                     "transcript) SELECT b.ids[1 + g %% array_length(b.ids, 1)], "
                     "'+4860' || lpad((g %% 9999999)::text, 7, '0'), "
                     "(ARRAY['answered', 'missed', 'voicemail'])[1 + g %% 3]::public.call_status, "
                     "timestamptz '2026-01-01' + g * interval '3 seconds', g %% 3600, "
                     "encode(extensions.gen_random_bytes(120), 'base64') || repeat(' caller asked about hours', 4) "
                     "FROM generate_series(1, %s) g, (SELECT array_agg(id) ids FROM public.businesses) b", (calls,))
        conn.execute("CREATE INDEX messages_sent_at ON public.messages (sent_at)")
        conn.execute("CREATE INDEX call_sessions_caller ON public.call_sessions (caller)")
        conn.execute("VACUUM ANALYZE")
        return conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]


DOWNLOAD = """
import sys
import boto3
from pathlib import Path
from tavari_dr.core.aws import EMULATOR_CONFIG
endpoint, bucket, prefix, out = sys.argv[1:5]
s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=endpoint, config=EMULATOR_CONFIG)
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
    for item in page.get("Contents", []):
        path = Path(out) / item["Key"][len(prefix) + 1:]
        path.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, item["Key"], str(path))
"""


def timed(command: list[str], **kwargs) -> float:
    started = time.monotonic()
    subprocess.run(command, check=True, capture_output=True, **kwargs)
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0, help="approximate database size (GiB)")
    parser.add_argument("--reps", type=int, default=3, help="interleaved repetitions of each comparison")
    parser.add_argument("--jobs", type=int, default=2, help="pg_restore -j / tavari-dr --jobs")
    args = parser.parse_args()
    import boto3
    import psycopg

    from tavari_dr.core.aws import EMULATOR_CONFIG
    from tavari_dr.database.backup import platform_sql
    from tavari_dr.drill.emulator import MotoServer
    from tavari_dr.drill.pgcluster import LocalPostgres

    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "HOME": os.environ.get("HOME", str(ROOT)),
           "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1",
           "AWS_DEFAULT_REGION": "us-east-1", "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
    with LocalPostgres() as pg, tempfile.TemporaryDirectory(prefix="tavari-dbspeed-") as tmp, \
            MotoServer(Path(tmp) / "moto.log") as moto:
        work = Path(tmp)
        url = pg.create_database("tavari")
        started = time.monotonic()
        size = seed_large(url, args.gb)
        print(f"database {size / 1024**3:.2f} GiB (pg_database_size), seeded in {time.monotonic() - started:.0f} s "
              "(not timed)", flush=True)
        s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=moto.url, config=EMULATOR_CONFIG)
        s3.create_bucket(Bucket="bench-backups", ObjectLockEnabledForBucket=True)
        s3.create_bucket(Bucket="bench-reports")  # where each restore's audit record goes
        kms = boto3.client("kms", region_name="us-east-1", endpoint_url=moto.url, config=EMULATOR_CONFIG)
        key = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
        cli = [sys.executable, "-m", "tavari_dr", "db"]
        common = ["--endpoint-url", moto.url, "--region", "us-east-1", "--bucket", "bench-backups",
                  "--signing-key", key]
        rows: dict[str, list[tuple[float, float]]] = {"backup": [], "restore": []}
        backup_ids = []

        def plain_dump(rep: int) -> float:
            out = work / f"plain-{rep}.dump"
            seconds = timed(["pg_dump", "--format=custom", "--file", str(out), "--dbname", url])
            out.unlink()
            return seconds

        def ours_backup(rep: int) -> float:
            started = time.monotonic()
            done = subprocess.run([*cli, "backup", *common, "--reason", f"bench {rep}", "--database-url", url,
                                   "--jobs", str(args.jobs)], cwd=ROOT, env=env, capture_output=True, text=True)
            seconds = time.monotonic() - started
            if done.returncode:
                raise SystemExit(f"db backup failed: {done.stdout}{done.stderr}")
            backup_ids.append(re.search(r"^backup (\S+) \((\w+),", done.stdout, re.M).groups())
            return seconds

        for rep in range(args.reps):
            pair = (plain_dump, ours_backup) if rep % 2 == 0 else (ours_backup, plain_dump)
            seconds = {f.__name__: f(rep) for f in pair}
            rows["backup"].append((seconds["plain_dump"], seconds["ours_backup"]))
            print(f"  backup  rep {rep + 1}: pg_dump -Fc -f {seconds['plain_dump']:6.1f} s   tavari-dr db backup "
                  f"{seconds['ours_backup']:6.1f} s   ratio {seconds['ours_backup'] / seconds['plain_dump']:.2f}",
                  flush=True)

        backup_id, tier = backup_ids[0]
        prefix = f"dumps/{tier}/{backup_id}"
        listing = s3.list_objects_v2(Bucket="bench-backups", Prefix=prefix + "/")["Contents"]
        backup_bytes = sum(o["Size"] for o in listing)

        def tools_restore(rep: int) -> float:
            target = pg.create_database(f"tools_{rep}")
            with psycopg.connect(target, autocommit=True) as conn:  # what a plain target needs first (not timed)
                conn.execute(platform_sql())
            files = work / f"tools-{rep}"
            restore = ["pg_restore", "--dbname", target, "--exit-on-error"]
            _download(moto.url, prefix, files, env)
            subprocess.run([*restore, "--schema-only", str(files / "internal_schema.dump")], check=True,
                           capture_output=True)
            shutil.rmtree(files)
            started = time.monotonic()
            _download(moto.url, prefix, files, env)
            subprocess.run([*restore, "--section=pre-data", str(files / "schema.dump")], check=True,
                           capture_output=True)
            # auth/storage already have their foreign keys here: the tools' own way past their order
            subprocess.run([*restore, "--section=data", "--disable-triggers", f"--jobs={args.jobs}",
                            str(files / "data")], check=True, capture_output=True)
            subprocess.run([*restore, "--section=post-data", f"--jobs={args.jobs}", str(files / "schema.dump")],
                           check=True, capture_output=True)
            seconds = time.monotonic() - started
            shutil.rmtree(files)
            _drop(pg, f"tools_{rep}")
            return seconds

        def ours_restore(rep: int) -> float:
            target = pg.create_database(f"ours_{rep}")
            started = time.monotonic()
            done = subprocess.run([*cli, "restore", *common, "--backup", backup_id, "--target-url", target,
                                   "--report-bucket", "bench-reports", "--jobs", str(args.jobs), "--work-dir",
                                   str(work)], cwd=ROOT, env=env,
                                  capture_output=True, text=True)
            seconds = time.monotonic() - started
            if done.returncode:
                raise SystemExit(f"db restore failed: {done.stdout}{done.stderr}")
            if rep == 0:
                print("    " + "\n    ".join(line.strip() for line in done.stdout.splitlines()
                                            if "restored (" in line or "downloaded" in line), flush=True)
            _drop(pg, f"ours_{rep}")
            return seconds

        for rep in range(args.reps):
            pair = (tools_restore, ours_restore) if rep % 2 == 0 else (ours_restore, tools_restore)
            seconds = {f.__name__: f(rep) for f in pair}
            rows["restore"].append((seconds["tools_restore"], seconds["ours_restore"]))
            print(f"  restore rep {rep + 1}: download + pg_restore -j {args.jobs} {seconds['tools_restore']:6.1f} s   "
                  f"tavari-dr db restore -j {args.jobs} {seconds['ours_restore']:6.1f} s   "
                  f"ratio {seconds['ours_restore'] / seconds['tools_restore']:.2f}", flush=True)
    print(f"backup {backup_id}: {backup_bytes / 1024**2:.0f} MiB in {len(listing)} objects")
    for what, pairs in rows.items():
        ratios = [ours / base for base, ours in pairs]
        print(f"{what}: median ratio {statistics.median(ratios):.2f} over {len(ratios)} interleaved repetitions "
              f"(each: {', '.join(f'{r:.2f}' for r in ratios)}); goal <= 1.10")
    return 0


def _download(endpoint: str, prefix: str, out: Path, env: dict[str, str]) -> bool:
    subprocess.run([sys.executable, "-c", DOWNLOAD, endpoint, "bench-backups", prefix, str(out)], cwd=ROOT, env=env,
                   check=True, capture_output=True)
    return True


def _drop(pg, name: str) -> None:
    import psycopg

    with psycopg.connect(pg.url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}"')


if __name__ == "__main__":
    sys.exit(main())
