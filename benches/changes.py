"""The continuous capture's speed (`tavari-dr db stream`, ADR 0020) against real PostgreSQL, beside a floor.

One process: a throwaway PostgreSQL cluster (wal_level=logical), S3 and KMS in-process moto (their
CPU is this process's too, so the capture's numbers are a lower bound). Measured, side by side:

* floor: COPY of N rows of ~1 KB into the table (the rate the server takes rows in at all);
* capture throughput: N rows committed (100 per transaction) while the capture is stopped, then the
  time the capture takes to read, segment, sign and write them all: rows/s, MB/s, ratio to the floor;
* lag: a writer at half the measured capture rate (capped at the goal's 2,500 rows/s) for --seconds,
  the capture running with --segment-seconds; each segment's ReplicationLagSeconds (its oldest
  change's wait until durably written) — p50/p99/max;
* peak memory: the process's maximum resident set size growth over the capture runs (includes moto);
* replay: the log's changes applied into a restored copy, rows/s and ratio to the floor, and the
  replay time of one day at drill.changes_per_day (cdk.json) from it.

This box is a shared 2-core machine (other work runs beside): sizes are modest, and the ratios,
not the seconds, are what to read.

    .venv/bin/python benches/changes.py [--rows 40000] [--seconds 30] [--segment-seconds 60]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# moto only: no request may reach AWS; moto's multipart checksums are not whole-object ones, which
# botocore would otherwise check on every GET of a dump's data files.
os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                   "AWS_DEFAULT_REGION": "eu-west-1", "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required"})
os.environ.pop("AWS_PROFILE", None)

import boto3  # noqa: E402
import psycopg  # noqa: E402
from moto import mock_aws  # noqa: E402

from tavari_dr.changes import replay as replay_lib  # noqa: E402
from tavari_dr.changes.capture import Capture, Settings, setup  # noqa: E402
from tavari_dr.core import metrics  # noqa: E402
from tavari_dr.core.config import load_environment  # noqa: E402
from tavari_dr.database import backup as db_lib  # noqa: E402
from tavari_dr.database.signing import KmsSigner, KmsVerifier  # noqa: E402
from tavari_dr.drill.pgcluster import LocalPostgres  # noqa: E402

BUCKET = "bench-backups"
# ~1 KB rows that do not compress: 500 random bytes as hex, from a pool of 1,024 (1 MB, wider than
# gzip's 32 KB window), so segments fill by size as real rows would ("x" * 1000 gzipped to nothing).
PAYLOADS = [random.Random(i).randbytes(500).hex() for i in range(1024)]
ROW_BYTES = 1000 + 8


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def insert_batches(url: str, rows: int, per_txn: int = 100) -> int:
    """The xid of the last transaction (an empty one would never reach the log: pgoutput skips it)."""
    with psycopg.connect(url) as conn:
        for start in range(0, rows, per_txn):
            with conn.cursor().copy("COPY public.bench (payload) FROM STDIN") as copy:
                for i in range(min(per_txn, rows - start)):
                    copy.write_row((PAYLOADS[(start + i) % len(PAYLOADS)],))
            last = int(conn.execute("SELECT txid_current()").fetchone()[0]) & 0xFFFFFFFF
            conn.commit()
        return last


def copy_floor(url: str, rows: int) -> float:
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE public.floor (id bigserial PRIMARY KEY, payload text)")
        conn.commit()
        begun = time.perf_counter()
        with conn.cursor().copy("COPY public.floor (payload) FROM STDIN") as copy:
            for i in range(rows):
                copy.write_row((PAYLOADS[i % len(PAYLOADS)],))
        conn.commit()
        seconds = time.perf_counter() - begun
        conn.execute("DROP TABLE public.floor")
        conn.commit()
    return rows / seconds


class Run:
    def __init__(self, capture: Capture) -> None:
        self.capture, self.error, self.stop = capture, None, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.capture.run(stop=self.stop.is_set)
        except BaseException as err:  # reported by wait()
            self.error = err

    def wait(self, xid: int, timeout: float = 1800) -> None:
        deadline = time.monotonic() + timeout
        while self.capture.max_xid_written < xid:
            if self.error:
                raise self.error
            if time.monotonic() > deadline:
                raise RuntimeError("the capture did not catch up")
            time.sleep(0.02)

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=40_000)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--segment-seconds", type=float, default=Settings.segment_seconds)  # the default: 60
    args = parser.parse_args()
    per_day = load_environment(json.loads((ROOT / "cdk.json").read_text())["context"], "prod").drill.changes_per_day
    with LocalPostgres(settings={"wal_level": "logical", "max_wal_senders": "5", "max_replication_slots": "5"}) as pg, \
            mock_aws():
        s3 = boto3.client("s3", region_name="eu-west-1")
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"},
                         ObjectLockEnabledForBucket=True)
        kms = boto3.client("kms", region_name="eu-west-1")
        arn = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
        signer, verifier = KmsSigner(kms, arn), KmsVerifier(kms, arn)
        url = pg.create_database("bench")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE public.bench (id bigserial PRIMARY KEY, payload text NOT NULL)")
        setup(url, "tavari_backup", "tavari_backup")
        emitted: list[dict] = []

        def new_capture(segment_seconds: float) -> Capture:
            return Capture(url, s3, BUCKET, signer, verifier, Settings(segment_seconds=segment_seconds),
                           fresh_dump=lambda _r: None, emit=lambda v, d=None, **_: emitted.append(dict(v)))

        floor = copy_floor(url, args.rows)
        print(f"floor: COPY {args.rows} rows of ~1 KB: {floor:,.0f} rows/s ({floor * ROW_BYTES / 1e6:.1f} MB/s)")
        first = Run(new_capture(args.segment_seconds))
        time.sleep(1)  # the capture has its base before the dump
        manifest = db_lib.run_backup(s3, BUCKET, url, reason="nightly", signer=signer, pg_bin=pg.client_bin, jobs=1)
        first.finish()
        rss0 = rss_mib()

        # throughput: a backlog, drained
        last = insert_batches(url, args.rows)
        drain = Run(new_capture(args.segment_seconds))
        begun = time.perf_counter()
        drain.wait(last)
        seconds = time.perf_counter() - begun
        rate = args.rows / seconds
        print(f"capture: {args.rows} rows (100 per transaction) in {seconds:.1f} s: {rate:,.0f} rows/s "
              f"({rate * ROW_BYTES / 1e6:.1f} MB/s); {rate / floor:.2f} x the COPY floor (goal >= 5,000 rows/s)")

        # lag at half that rate (at most the goal's half)
        target_rate = min(rate / 2, 2500)
        emitted.clear()
        stop = threading.Event()
        last_xid = [0]

        def paced() -> None:
            with psycopg.connect(url) as conn:
                begun_at, sent = time.perf_counter(), 0
                while not stop.is_set():
                    batch = 50
                    with conn.cursor().copy("COPY public.bench (payload) FROM STDIN") as copy:
                        for i in range(batch):
                            copy.write_row((PAYLOADS[(sent + i) % len(PAYLOADS)],))
                    last_xid[0] = int(conn.execute("SELECT txid_current()").fetchone()[0]) & 0xFFFFFFFF
                    conn.commit()
                    sent += batch
                    ahead = sent / target_rate - (time.perf_counter() - begun_at)
                    if ahead > 0:
                        time.sleep(ahead)

        writer = threading.Thread(target=paced, daemon=True)
        writer.start()
        time.sleep(args.seconds)
        stop.set()
        writer.join()
        drain.wait(last_xid[0])
        drain.finish()
        lags = sorted(v[metrics.REPLICATION_LAG_SECONDS] for v in emitted
                      if metrics.REPLICATION_LAG_SECONDS in v and metrics.CHANGE_SEGMENTS_WRITTEN in v)
        p99 = lags[min(len(lags) - 1, int(0.99 * len(lags)))]
        print(f"lag at {target_rate:,.0f} rows/s for {args.seconds:.0f} s, segments every {args.segment_seconds} s "
              f"(default 60): {len(lags)} segments, p50 {statistics.median(lags):.1f} s, p99 {p99:.1f} s, "
              f"max {lags[-1]:.1f} s (goal p99 <= 60 s at the default)")
        print(f"peak memory: the process's max RSS grew {rss_mib() - rss0:.0f} MiB over the capture runs "
              f"(max RSS {rss_mib():.0f} MiB, moto and the bench included; goal <= 256 MB)")

        # replay into a copy restored from the dump
        with psycopg.connect(url) as conn:
            to = conn.execute("SELECT clock_timestamp()").fetchone()[0]
            conn.execute("INSERT INTO public.bench (payload) VALUES ('after')")
            x = int(conn.execute("SELECT txid_current()").fetchone()[0]) & 0xFFFFFFFF
            conn.commit()
        tail = Run(new_capture(args.segment_seconds))
        tail.wait(x)
        tail.finish()
        the_plan = replay_lib.plan(s3, BUCKET, manifest, to, verifier)
        restored = pg.create_database("restored")
        db_lib.restore(s3, BUCKET, manifest.backup_id, restored, verifier=verifier, pg_bin=pg.client_bin, jobs=1)
        outcome = replay_lib.replay(s3, BUCKET, the_plan, lambda: psycopg.connect(restored), verifier)
        replay_rate = outcome.changes / outcome.seconds
        print(f"replay: {outcome.changes} changes ({outcome.applied} transactions) in {outcome.seconds:.1f} s: "
              f"{replay_rate:,.0f} changes/s, {replay_rate / floor:.2f} x the COPY floor; one day at "
              f"drill.changes_per_day = {per_day:,} replays in {per_day / replay_rate / 60:.1f} min")


if __name__ == "__main__":
    main()
