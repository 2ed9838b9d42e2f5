"""Calibrate the drill's cost model: PostgreSQL dump / restore / scan throughput and CLI start-up.

Seeds Tavari-like databases of several sizes in a throwaway PostgreSQL cluster and times, on each,
the very code the drill's steps run — `tavari_dr.database.backup.run_backup` (roles, schema and data
dumps, every table counted) and `restore` (every artifact downloaded and its sha256 checked, then
roles, pre-data, data, post-data and every table's row count, each phase timed after the download,
so that no emulator's speed gets into those fits: the cost model adds S3's transfer itself) with
S3 and KMS in-process (moto), and the drill's integrity scan — fits seconds = fixed + per-byte x
backup bytes by least squares (the restore as a whole and each of its phases), and times a `tavari-dr` process that
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


# The restore's phases after the download (ADR 0014); "roles" includes a plain target's platform schemas.
SECTIONS = ("roles", "pre-data", "data", "post-data", "row counts")


class Emulated:
    """S3 and KMS in-process (moto): the bucket and signing key run_backup and restore need. The
    restore's phases are timed after its download (result.timings), so no emulator's speed gets into
    their fits; the dump's includes the in-process upload (a little over, never under)."""

    def __init__(self) -> None:
        import boto3
        from moto import mock_aws

        from tavari_dr.database.signing import KmsSigner, KmsVerifier

        self.mock = mock_aws()
        self.mock.start()
        from tavari_dr.core.aws import EMULATOR_CONFIG

        # moto's multipart objects carry no whole-object checksum: the emulator configuration reads them
        self.s3 = boto3.client("s3", region_name="us-east-1", config=EMULATOR_CONFIG)
        self.s3.create_bucket(Bucket="calibration", ObjectLockEnabledForBucket=True)
        kms = boto3.client("kms", region_name="us-east-1")
        arn = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
        self.signer, self.verifier = KmsSigner(kms, arn), KmsVerifier(kms, arn)

    def stop(self) -> None:
        self.mock.stop()


def measure(pg: LocalPostgres, scale: int, aws: Emulated) -> dict[str, float]:
    """One database of ``scale`` x the drill's default rows: back up, restore and scan, as the drill does."""
    source = pg.create_database(f"calibrate_{scale}")
    demo_data.create_supabase_like(source)
    demo_data.seed(source, businesses=DEFAULT.businesses * scale, calls=DEFAULT.calls, messages=DEFAULT.messages)
    manifests, results = [], []
    dump_seconds = timed(lambda: manifests.append(db_backup.run_backup(
        aws.s3, "calibration", source, reason=f"calibration {scale}", signer=aws.signer, jobs=JOBS)))
    target = pg.create_database(f"calibrate_{scale}_restored")
    results.append(db_backup.restore(aws.s3, "calibration", manifests[0].backup_id, target, verifier=aws.verifier,
                                     jobs=JOBS))
    scan_seconds = timed(lambda: fingerprints(target))
    sections = {name: results[0].timings[name] for name in SECTIONS}
    return {"scale": scale, "dump_bytes": manifests[0].total_bytes, "dump_seconds": round(dump_seconds, 3),
            "restore_seconds": round(sum(sections.values()), 3),
            **{f"{name.replace('-', '_').replace(' ', '_')}_seconds": round(v, 3) for name, v in sections.items()},
            "scan_seconds": round(scan_seconds, 3)}


JOBS = 2  # pg_dump / pg_restore -j: the default on a 2-CPU host (the monthly restore task has 2 vCPUs)


STARTUP = """
import boto3
import tavari_dr.cli
from tavari_dr.core.config import load_from_file
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
    aws = Emulated()
    with LocalPostgres() as pg:
        points = []
        for scale in scales:
            points.append(measure(pg, scale, aws))
            print(f"scale {scale:>4}: {json.dumps(points[-1])}", flush=True)
        fits = {name: fit_linear([(p["dump_bytes"], p[f"{name}_seconds"]) for p in points])
                for name in ("dump", "restore", "scan", *(n.replace("-", "_").replace(" ", "_") for n in SECTIONS))}
        check = measure(pg, args.check_scale, aws)
        predicted = fits["restore"](check["dump_bytes"])
        ratio = predicted / check["restore_seconds"]
        print(f"check scale {args.check_scale}: {check['dump_bytes'] / 1e6:.1f} MB dump, restore predicted "
              f"{predicted:.2f} s, measured {check['restore_seconds']:.2f} s, predicted/measured {ratio:.2f} "
              "(must be 0.75-1.33)")
        versions = {"server": server_version(pg), "client": client_version()}
    aws.stop()
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
        "unit": "seconds = fixed_seconds + seconds_per_byte x backup bytes (every artifact)",
        "jobs": JOBS,
        **{name: {"fixed_seconds": fit.fixed_seconds, "seconds_per_byte": fit.seconds_per_byte}
           for name, fit in fits.items() if name in ("dump", "restore", "scan")},
        "restore_sections": {name: {"fixed_seconds": fits[key].fixed_seconds,
                                    "seconds_per_byte": fits[key].seconds_per_byte}
                             for name in SECTIONS for key in [name.replace("-", "_").replace(" ", "_")]},
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
