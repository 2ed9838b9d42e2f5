"""`make oracle SEEDS=N [FIRST=1] [MAJOR=15] [PROBE=all|pitr|bucket]`: N seeded histories through the restore
oracles (tests/oracle/pitr.py: point-in-time database restores on real PostgreSQL; tests/oracle/bucket.py:
bucket restores by every planner), printed as figures: histories, restore points, exact, refused (with
reasons) and silent-wrong (each with its seed and instant, to replay alone with FIRST=<seed> SEEDS=1).
Exits 1 on any silent-wrong restore."""

from __future__ import annotations

import argparse
import sys
import time

from tests.oracle import bucket as bucket_oracle


def _pitr(args: argparse.Namespace) -> int:
    from tests import changes_harness as h
    from tests.backups import backup_s3
    from tests.oracle import pitr as oracle

    primary, failover = h.cluster(args.major), h.cluster(args.major)
    totals = oracle.Totals()
    begun = time.monotonic()
    try:
        for seed in range(args.first, args.first + args.seeds):
            with backup_s3(oracle.BUCKET) as s3:
                outcome = oracle.History(seed, h.Aws.on(s3, oracle.BUCKET), primary, failover,
                                         log=print if args.verbose else lambda _m: None).run()
            totals.add(outcome)
            print(f"seed {seed}: {outcome.points} points, exact {outcome.exact}, refused "
                  f"{sum(outcome.refused.values())}, silent-wrong {len(outcome.silent_wrong)}", flush=True)
    finally:
        primary.stop()
        failover.stop()
    print(f"point in time, PostgreSQL {args.major}, seeds {args.first}..{args.first + args.seeds - 1}, "
          f"{time.monotonic() - begun:.0f} s")
    print("\n".join(totals.lines()), flush=True)
    return len(totals.silent_wrong)


def _bucket(args: argparse.Namespace) -> int:
    totals = bucket_oracle.Totals()
    begun = time.monotonic()
    for seed in range(args.first, args.first + args.seeds):
        outcome = bucket_oracle.run(seed)
        totals.add(outcome)
        print(f"bucket seed {seed}: {outcome.points} points, exact {outcome.exact}, refused "
              f"{outcome.refused_points}, silent-wrong {len(outcome.silent_wrong)}", flush=True)
    print(f"bucket, seeds {args.first}..{args.first + args.seeds - 1}, {time.monotonic() - begun:.0f} s")
    print("\n".join(totals.lines()), flush=True)
    return len(totals.silent_wrong)


def main() -> int:
    parser = argparse.ArgumentParser(prog="make oracle")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first", type=int, default=1)
    parser.add_argument("--major", type=int, default=15)
    parser.add_argument("--probe", choices=("all", "pitr", "bucket"), default="all")
    parser.add_argument("--verbose", action="store_true", help="print each refusal and silent-wrong as it happens")
    args = parser.parse_args()
    wrong = 0
    if args.probe in ("all", "bucket"):
        wrong += _bucket(args)
    if args.probe in ("all", "pitr"):
        wrong += _pitr(args)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
