"""Calibrate the drill's cost model: PostgreSQL dump / restore / scan throughput and CLI start-up.

Seeds Tavari-like databases of several sizes in a throwaway PostgreSQL cluster, times `pg_dump -Fc`,
`pg_restore` into an empty database and the drill's integrity scan on each, fits seconds = fixed +
per-byte x dump bytes by least squares, and times a `tavari-dr` process start-up. Then it checks
the fit on a database larger than any it was fitted on (at least 10x the drill's default data):
predicted / measured restore time must be within 0.75-1.33, or it exits 1 and writes nothing.

The result goes to tavari_dr/core/data/calibration.json with the command, host and date; the drill reads
it and never measures these itself, so a loaded machine cannot move a drill's verdict.

    .venv/bin/python benches/calibrate.py [--scales 20,60,120] [--check-scale 300] [--dry-run]
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tavari_dr.core.costmodel import fit_linear  # noqa: E402
from tavari_dr.drill import demo_data  # noqa: E402
from tavari_dr.drill.context import Sizes  # noqa: E402
from tavari_dr.drill.pgcluster import LocalPostgres  # noqa: E402
from tavari_dr.drill.state import fingerprints  # noqa: E402

OUT = ROOT / "tavari_dr" / "core" / "data" / "calibration.json"
DEFAULT = Sizes()  # the drill's default toy data; scale 1 is that


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def run(command: list[str], **kwargs) -> None:
    subprocess.run(command, check=True, capture_output=True, **kwargs)


def measure(pg: LocalPostgres, scale: int, work: Path) -> dict[str, float]:
    """One database of ``scale`` x the drill's default rows: dump, restore, scan."""
    source = pg.create_database(f"calibrate_{scale}")
    demo_data.create_supabase_like(source)
    demo_data.seed(source, businesses=DEFAULT.businesses * scale, calls=DEFAULT.calls, messages=DEFAULT.messages)
    dump = work / f"{scale}.dump"
    env = {**os.environ, "PGCONNECT_TIMEOUT": "10"}
    dump_seconds = timed(lambda: run(["pg_dump", "--format=custom", "--file", str(dump), "--dbname", source],
                                     env=env))
    target = pg.create_database(f"calibrate_{scale}_restored")
    # The restore target gets the same Supabase-like roles and schemas first, as `db restore` does.
    restore_seconds = timed(lambda: run(["pg_restore", "--no-owner", "--exit-on-error", "--dbname", target,
                                         "--clean", "--if-exists", str(dump)], env=env))
    scan_seconds = timed(lambda: fingerprints(target))
    size = dump.stat().st_size
    dump.unlink()
    return {"scale": scale, "dump_bytes": size, "dump_seconds": round(dump_seconds, 3),
            "restore_seconds": round(restore_seconds, 3), "scan_seconds": round(scan_seconds, 3)}


def cli_start_seconds(samples: int = 5) -> float:
    """Median start-up of one `tavari-dr` command that loads the config (what every drill command pays)."""
    command = [sys.executable, "-m", "tavari_dr", "secrets", "--help"]
    return statistics.median(timed(lambda: run(command, cwd=ROOT)) for _ in range(samples))


def server_version(pg: LocalPostgres) -> str:
    import psycopg

    with psycopg.connect(pg.url("postgres")) as conn:
        return conn.execute("SHOW server_version").fetchone()[0]


def client_version() -> str:
    return subprocess.run(["pg_restore", "--version"], capture_output=True, text=True, check=True).stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="20,60,120", help="fit sizes, as multiples of the drill's default data")
    parser.add_argument("--check-scale", type=int, default=300, help="the held-out size the fit must predict")
    parser.add_argument("--dry-run", action="store_true", help="print, do not write the calibration file")
    args = parser.parse_args()
    scales = [int(s) for s in args.scales.split(",")]
    if args.check_scale < 10 or args.check_scale <= max(scales):
        parser.error("--check-scale must be at least 10 and larger than every fit scale")
    started = datetime.now(UTC)
    with LocalPostgres() as pg, tempfile.TemporaryDirectory(prefix="tavari-calibrate-") as tmp:
        work = Path(tmp)
        points = []
        for scale in scales:
            points.append(measure(pg, scale, work))
            print(f"scale {scale:>4}: {json.dumps(points[-1])}", flush=True)
        fits = {name: fit_linear([(p["dump_bytes"], p[f"{name}_seconds"]) for p in points])
                for name in ("dump", "restore", "scan")}
        check = measure(pg, args.check_scale, work)
        predicted = fits["restore"](check["dump_bytes"])
        ratio = predicted / check["restore_seconds"]
        print(f"check scale {args.check_scale}: {check['dump_bytes'] / 1e6:.1f} MB dump, restore predicted "
              f"{predicted:.2f} s, measured {check['restore_seconds']:.2f} s, predicted/measured {ratio:.2f} "
              "(must be 0.75-1.33)")
        versions = {"server": server_version(pg), "client": client_version()}
    startup = cli_start_seconds()
    print(f"tavari-dr start-up: {startup:.2f} s")
    if not 0.75 <= ratio <= 1.33:
        print("calibration REJECTED: the fit does not predict the held-out database; nothing written")
        return 1
    document = {
        "written_by": "benches/calibrate.py",
        "command": " ".join(shlex.quote(a) for a in [".venv/bin/python", "benches/calibrate.py", *sys.argv[1:]]),
        "host": {"name": platform.node(), "cpus": os.cpu_count(), "machine": platform.machine(),
                 "python": platform.python_version(), "user": getpass.getuser()},
        "date": started.isoformat(timespec="seconds"),
        "postgres": versions,
        "unit": "seconds = fixed_seconds + seconds_per_byte x custom-format dump bytes",
        **{name: {"fixed_seconds": fit.fixed_seconds, "seconds_per_byte": fit.seconds_per_byte}
           for name, fit in fits.items()},
        "cli_start_seconds": round(startup, 3),
        "points": points,
        "check": {**check, "predicted_restore_seconds": round(predicted, 3), "ratio": round(ratio, 3)},
    }
    if args.dry_run:
        print(json.dumps(document, indent=1))
    else:
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps(document, indent=1) + "\n")
        print(f"written: {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
