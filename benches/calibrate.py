"""Calibrate the drill's cost model: PostgreSQL dump / restore / scan throughput and CLI start-up.

Seeds Tavari-like databases of several sizes in a throwaway PostgreSQL cluster and times, on each,
the very code the drill's steps run — `tavari_dr.database.backup.run_backup` (roles, schema and data
dumps, every table counted) and `restore` (sha256 of every artifact, roles, schema, data, every
table's row count checked) against an S3 stand-in on local disk, so that no emulator's speed gets
into the fit (the cost model adds S3's transfer itself), and the drill's integrity scan — fits
seconds = fixed + per-byte x dump bytes by least squares, and times a `tavari-dr` process that
imports the CLI, loads cdk.json and makes an AWS client. Then it checks
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
from tavari_dr.database import backup as db_backup  # noqa: E402
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


class DiskS3:
    """The S3 calls run_backup and restore make, kept in a folder: their own cost, no emulator's."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.uploads: dict[str, dict[int, bytes]] = {}

    def _path(self, key: str) -> Path:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def create_multipart_upload(self, *, Key, **_):  # noqa: N803 - boto3's argument names
        self.uploads[Key] = {}
        return {"UploadId": Key}

    def upload_part(self, *, Key, PartNumber, Body, **_):  # noqa: N803
        self.uploads[Key][PartNumber] = Body
        return {"ETag": f'"{PartNumber}"', "ChecksumCRC32": "c"}

    def complete_multipart_upload(self, *, Key, **_):  # noqa: N803
        with self._path(Key).open("wb") as out:
            for number in sorted(self.uploads[Key]):
                out.write(self.uploads[Key][number])
        del self.uploads[Key]
        return {"VersionId": "v1"}

    def abort_multipart_upload(self, *, Key, **_):  # noqa: N803
        self.uploads.pop(Key, None)

    def put_object_retention(self, **_):
        return {}

    def put_object(self, *, Key, Body, **_):  # noqa: N803
        self._path(Key).write_bytes(Body)
        return {"VersionId": "v1"}

    def get_object(self, *, Key, **_):  # noqa: N803
        return {"Body": (self.root / Key).open("rb")}

    def get_paginator(self, _name):
        root = self.root

        class Pages:
            def paginate(self, *, Prefix="", **_):  # noqa: N803
                found = sorted(p for p in (root / Prefix).rglob("*") if p.is_file())
                yield {"Contents": [{"Key": p.relative_to(root).as_posix(), "Size": p.stat().st_size,
                                     "LastModified": datetime.fromtimestamp(p.stat().st_mtime, UTC)}
                                    for p in found]}

        return Pages()


def measure(pg: LocalPostgres, scale: int, work: Path) -> dict[str, float]:
    """One database of ``scale`` x the drill's default rows: back up, restore and scan, as the drill does."""
    source = pg.create_database(f"calibrate_{scale}")
    demo_data.create_supabase_like(source)
    demo_data.seed(source, businesses=DEFAULT.businesses * scale, calls=DEFAULT.calls, messages=DEFAULT.messages)
    s3 = DiskS3(work / f"s3-{scale}")
    manifests = []
    dump_seconds = timed(lambda: manifests.append(db_backup.run_backup(s3, "calibration", source,
                                                                       reason="calibration")))
    target = pg.create_database(f"calibrate_{scale}_restored")
    restore_seconds = timed(lambda: db_backup.restore(s3, "calibration", manifests[0].backup_id, target))
    scan_seconds = timed(lambda: fingerprints(target))
    return {"scale": scale, "dump_bytes": manifests[0].total_bytes, "dump_seconds": round(dump_seconds, 3),
            "restore_seconds": round(restore_seconds, 3), "scan_seconds": round(scan_seconds, 3)}


STARTUP = """
import boto3
import tavari_dr.cli
from tavari_dr.config import load_from_file
load_from_file("prod", "cdk.json")
boto3.client("s3", region_name="eu-west-1")
"""


def cli_start_seconds(samples: int = 5) -> float:
    """Median cost of what every drill command pays before its first request: the interpreter, the
    CLI's imports, cdk.json loaded and validated, an AWS client made."""
    command = [sys.executable, "-c", STARTUP]
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
