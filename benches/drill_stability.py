"""Does the drill's verdict move with machine load? Three `make run`s, two beside CPU burners.

Runs the README's main job three times in a row — the first on its own, the second and third with
two CPU-bound processes (one per core of this machine) running beside it — keeps each run's report,
and prints, per projected figure (every step's projection, every scenario's RTOs, the worst-case
RPO), its values, mean and spread ((max - min) / mean). Exit 1 if the three verdicts differ or any
figure over one second spreads by more than 5 %.

    .venv/bin/python benches/drill_stability.py [--runs 3] [--burners 2]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def burn(stop_at: float) -> None:
    """A CPU-bound loop (the load the drill must not notice), bounded in time."""
    x = 0
    while time.monotonic() < stop_at:
        x = (x * 31 + 7) % 1_000_003


def figures(report: dict) -> dict[str, float]:
    found = {}
    for step in report["steps"]:
        if step["projected_seconds"] is not None:
            found[f"step · {step['scenario']} · {step['name']}"] = step["projected_seconds"]
    for name, data in report["scenarios"].items():
        for kind in ("rto_critical", "rto_non-critical"):
            found[f"scenario · {name} · {kind} projected"] = data[kind]["projected_seconds"]
    found["RPO worst case"] = report["rpo_worst_case"]["worst_case_seconds"]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--burners", type=int, default=2, help="CPU-bound processes beside every run but the first")
    args = parser.parse_args()
    reports, walls = [], []
    with tempfile.TemporaryDirectory(prefix="tavari-stability-") as tmp:
        for run in range(args.runs):
            loaded = run > 0
            report_dir = Path(tmp) / f"run-{run + 1}"
            burners = []
            if loaded:
                stop_at = time.monotonic() + 1800
                burners = [multiprocessing.Process(target=burn, args=(stop_at,), daemon=True)
                           for _ in range(args.burners)]
                for b in burners:
                    b.start()
            started = time.monotonic()
            try:
                done = subprocess.run(["make", "run", f"DRILL_REPORT={report_dir}"], cwd=ROOT, capture_output=True,
                                      text=True, env={**os.environ})
            finally:
                for b in burners:
                    b.terminate()
                    b.join()
            walls.append(time.monotonic() - started)
            if not (report_dir / "drill-report.json").exists():
                print(done.stdout[-2000:] + done.stderr[-2000:])
                print(f"run {run + 1}: no report (make run exited {done.returncode})")
                return 1
            reports.append(json.loads((report_dir / "drill-report.json").read_text()))
            print(f"run {run + 1} ({'beside ' + str(args.burners) + ' CPU burners' if loaded else 'unloaded'}): "
                  f"exit {done.returncode}, {'PASSED' if reports[-1]['passed'] else 'FAILED'}, "
                  f"{walls[-1]:.0f} s wall", flush=True)
    per_run = [figures(r) for r in reports]
    names = sorted(set().union(*per_run))
    worst = 0.0
    print(f"\n{'figure':<100} {'values (s)':>40} {'mean':>10} {'spread':>8}")
    for name in names:
        values = [f.get(name) for f in per_run]
        if any(v is None for v in values):
            print(f"{name:<100} missing in a run: {values}")
            worst = float("inf")
            continue
        mean = statistics.fmean(values)
        spread = (max(values) - min(values)) / mean if mean else 0.0
        if mean > 1:
            worst = max(worst, spread)
        print(f"{name[:100]:<100} {' / '.join(f'{v:.1f}' for v in values):>40} {mean:>10.1f} {spread:>8.1%}")
    verdicts = {r["passed"] for r in reports}
    wall_spread = (max(walls) - min(walls)) / statistics.fmean(walls)
    print(f"\nverdicts: {sorted(verdicts)}; widest spread of a figure over 1 s: {worst:.1%} (goal <= 5 %); "
          f"wall time of the runs spread {wall_spread:.0%} (not judged)")
    return 0 if len(verdicts) == 1 and worst <= 0.05 else 1


if __name__ == "__main__":
    sys.exit(main())
