"""`make oracle SEEDS=N [FIRST=1] [MAJOR=15] [PROBE=all|pitr|bucket] [JOBS=1]`: N seeded histories through the
restore oracles (tests/oracle/pitr.py: point-in-time database restores on real PostgreSQL; tests/oracle/bucket.py:
bucket restores by every planner), printed as figures: histories, restore points, exact, refused (with reasons)
and silent-wrong (each with its seed and instant, to replay alone with FIRST=<seed> SEEDS=1). JOBS > 1 runs the
seeds in that many processes (each with its own clusters; the histories wait on segment timers, so a 2-core
machine keeps 3 busy) and adds their figures up. Exits 1 on any silent-wrong restore, or a history the oracle
could not finish (said as an oracle error: not a verdict on the tool)."""

from __future__ import annotations

import argparse
import json
import queue
import subprocess
import sys
import threading
import time
import traceback
from typing import Any

from tests.oracle.tally import Tally, record

RECORD = "oracle-record "  # one line per history: its figures as JSON, added up by the parent (--jobs)


def _pitr_seeds(args: argparse.Namespace, seeds: list[int]) -> None:
    from tests import changes_harness as h
    from tests.backups import backup_s3
    from tests.oracle import pitr as oracle

    primary, failover = h.cluster(args.major), h.cluster(args.major)
    try:
        for seed in seeds:
            error = ""
            with backup_s3(oracle.BUCKET) as s3:
                history = oracle.History(seed, h.Aws.on(s3, oracle.BUCKET), primary, failover,
                                         log=print if args.verbose else lambda _m: None)
                try:
                    outcome = history.run()
                except Exception as err:  # the oracle's own failure: said, counted, never a verdict
                    outcome, error = history.out, f"{type(err).__name__}: {err}"[:300]
                    traceback.print_exc()
            print(RECORD + json.dumps(record("pitr", outcome, error)), flush=True)
    finally:
        primary.stop()
        failover.stop()


def _bucket_seeds(args: argparse.Namespace, seeds: list[int]) -> None:
    from tests.oracle import bucket as oracle

    for seed in seeds:
        outcome = oracle.run(seed)
        print(RECORD + json.dumps(record("bucket", outcome)), flush=True)


def _run(args: argparse.Namespace, probe: str) -> Tally:
    """The seeds in ``args.jobs`` worker processes (interleaved), their records added up as they arrive."""
    seeds = list(range(args.first, args.first + args.seeds))
    tally = Tally()
    begun = time.monotonic()
    workers = [subprocess.Popen(  # noqa: S603 (this very module, our own arguments)
        [sys.executable, "-m", "tests.oracle", "--probe", probe, "--major", str(args.major), "--worker",
         "--seed-list", ",".join(map(str, seeds[i::args.jobs]))] + (["--verbose"] if args.verbose else []),
        stdout=subprocess.PIPE, text=True) for i in range(min(args.jobs, len(seeds)))]
    # Every worker's output read as it comes (one thread each): a worker left unread would block on a full pipe.
    lines: queue.Queue[str | None] = queue.Queue()

    def pump(stream: Any) -> None:
        for line in stream:
            lines.put(line)
        lines.put(None)

    for worker in workers:
        threading.Thread(target=pump, args=(worker.stdout,), daemon=True).start()
    running = len(workers)
    while running:
        line = lines.get()
        if line is None:
            running -= 1
            continue
        if not line.startswith(RECORD):
            print(line, end="", flush=True)
            continue
        r = json.loads(line[len(RECORD):])
        tally.add(r)
        print(f"{probe} seed {r['seed']}: {r['points']} points, exact {r['exact']}, refused "
              f"{r['refused_points']}, silent-wrong {len(r['silent_wrong'])}"
              + (f", ORACLE ERROR {r['error']}" if r["error"] else ""), flush=True)
        for wrong in r["silent_wrong"]:  # said at once, not only in the figures at the end
            print(f"  SILENT-WRONG {wrong}", flush=True)
    for worker in workers:
        if worker.wait() != 0:
            tally.errors.append(f"a worker exited {worker.returncode}")
    print(f"{probe}: seeds {args.first}..{args.first + args.seeds - 1} in {len(workers)} process(es), "
          f"{time.monotonic() - begun:.0f} s" + (f", PostgreSQL {args.major}" if probe == "pitr" else ""))
    print("\n".join(tally.lines(probe)), flush=True)
    return tally


def main() -> int:
    parser = argparse.ArgumentParser(prog="make oracle")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first", type=int, default=1)
    parser.add_argument("--major", type=int, default=15)
    parser.add_argument("--probe", choices=("all", "pitr", "bucket"), default="all")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (each with its own clusters)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seed-list", default="", help=argparse.SUPPRESS)
    parser.add_argument("--verbose", action="store_true", help="print each refusal and silent-wrong as it happens")
    args = parser.parse_args()
    if args.worker:
        seeds = [int(s) for s in args.seed_list.split(",") if s]
        (_pitr_seeds if args.probe == "pitr" else _bucket_seeds)(args, seeds)
        return 0
    args.jobs = max(1, args.jobs)
    bad = 0
    for probe in (("bucket", "pitr") if args.probe == "all" else (args.probe,)):
        tally = _run(args, probe)
        bad += len(tally.silent_wrong) + len(tally.errors)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
