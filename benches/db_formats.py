"""Which dump format and compression: pg_dump's data dump in each candidate, side by side.

The same database as benches/db_speed.py (--gb GiB, generated server-side); --reps interleaved
repetitions (the order reverses every repetition) of each candidate's data-only dump to local disk,
then one pg_restore -j 2 of each candidate's data into a database holding the schema's pre-data.
Prints median dump seconds relative to `pg_dump -Fc` (the old data.dump), the dump size, and the
restore seconds of the data. Candidates needing pg_dump 16+ (zstd, lz4) run with --pg-bin-16 (a
directory of PostgreSQL 16+ client binaries), else are skipped. ADR 0014 quotes its output.

    .venv/bin/python benches/db_formats.py [--gb 1.0] [--reps 2] [--pg-bin-16 DIR]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benches"))

from db_speed import seed_large  # noqa: E402


def size_of(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*")) if path.is_dir() else path.stat().st_size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--pg-bin-16", type=Path, help="PostgreSQL 16+ client binaries (zstd, lz4)")
    args = parser.parse_args()
    from tavari_dr.drill.pgcluster import LocalPostgres

    j = f"--jobs={args.jobs}"
    candidates = {"-Fc (gzip 6), the old data.dump": ("", ["--format=custom"]),
                  f"-Fd {j} gzip 6": ("", ["--format=directory", j]),
                  f"-Fd {j} gzip 1": ("", ["--format=directory", j, "--compress=1"])}
    if args.pg_bin_16:
        new = f"{args.pg_bin_16}/"
        candidates.update({f"-Fd {j} gzip 1 (16+)": (new, ["--format=directory", j, "--compress=gzip:1"]),
                           f"-Fd {j} zstd (level 3)": (new, ["--format=directory", j, "--compress=zstd"]),
                           f"-Fd {j} zstd:1": (new, ["--format=directory", j, "--compress=zstd:1"]),
                           f"-Fd {j} lz4": (new, ["--format=directory", j, "--compress=lz4"])})
    seconds: dict[str, list[float]] = {name: [] for name in candidates}
    sizes: dict[str, int] = {}
    restores: dict[str, float] = {}
    with LocalPostgres() as pg, tempfile.TemporaryDirectory(prefix="tavari-formats-") as tmp:
        url = pg.create_database("tavari")
        print(f"database {seed_large(url, args.gb) / 1024**3:.2f} GiB", flush=True)
        schema = Path(tmp) / "schema.dump"
        subprocess.run(["pg_dump", "--format=custom", "--schema-only", "--file", str(schema), "--dbname", url],
                       check=True)
        order = list(candidates)
        for rep in range(args.reps):
            for name in order if rep % 2 == 0 else reversed(order):
                prefix, options = candidates[name]
                out = Path(tmp) / "out"
                started = time.monotonic()
                subprocess.run([f"{prefix}pg_dump", *options, "--data-only", "--file", str(out), "--dbname", url],
                               check=True, capture_output=True)
                seconds[name].append(time.monotonic() - started)
                sizes[name] = size_of(out)
                if rep == 0:
                    target = pg.create_database(f"restore_{len(restores)}")
                    subprocess.run(["pg_restore", "--section=pre-data", "--dbname", target, str(schema)], check=True,
                                   capture_output=True)
                    started = time.monotonic()
                    done = subprocess.run([f"{prefix}pg_restore", "--section=data", "--disable-triggers", j,
                                           "--dbname", target, str(out)], capture_output=True, text=True)
                    restores[name] = time.monotonic() - started if done.returncode == 0 else float("nan")
                    if done.returncode:
                        print(f"  {name}: pg_restore failed: {done.stderr.strip()[-200:]}", flush=True)
                print(f"  rep {rep + 1} {name}: {seconds[name][-1]:.1f} s, {sizes[name] / 1024**2:.0f} MiB", flush=True)
                shutil.rmtree(out) if out.is_dir() else out.unlink()
    base = statistics.median(seconds[order[0]])
    print(f"{'candidate':<36} {'dump (x -Fc)':>12} {'size MiB':>9} {'restore data s':>15}")
    for name in order:
        print(f"{name:<36} {statistics.median(seconds[name]) / base:>12.2f} {sizes[name] / 1024**2:>9.0f} "
              f"{restores[name]:>15.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
