"""How `bucket restore --from-inventory` scales: plan time and peak memory at 1 M, 10 M, 100 M versions.

For each size, DuckDB itself writes a synthetic inventory report (Parquet, two versions a key, none
sharing a second) and a change feed (GZIP JSON lines) in which 1 % of the versions changed after the
report, half rewritten and half deleted; then a child process plans a restore to a moment between the
two with the same settings as the CLI (threads=2, memory_limit, temp_directory for spilling). Beside it,
in the same child and over the same files, the floor: one GROUP BY key over the inventory, the least
any per-key plan must read. The listing planner's cost is the drill cost model's (ceil(versions /
1,000) pages x S3's request latency, tavari_dr/core/costmodel.py); the download of the files is not
in the plan time (the bench reads them from disk), and is priced at S3's per-connection rate.

    python benches/plan_scale.py --sizes 1000000,10000000 [--dir /tmp/plan-scale] [--write]

--write stores the fitted rate in tavari_dr/core/data/inventory_plan.json (the drill's cost model
prices the inventory planning path with it). Files are deleted after each size unless --keep.
"""

# ruff: noqa: S608 -- the bench's queries are built from its own numbers and paths (no outside input).
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tavari_dr.core import costmodel  # noqa: E402

BASE = datetime(2026, 1, 1, tzinfo=UTC)
INVENTORY_AT = BASE + timedelta(days=100)
TO = INVENTORY_AT + timedelta(hours=1)
CHANGES_AT = INVENTORY_AT + timedelta(days=1)
GOAL = {"versions": 100_000_000, "seconds": 600, "bytes": 4 * 1024**3}


def generate(versions: int, into: Path) -> dict[str, int]:
    """The report and the feed for ``versions`` versions (two a key), written by DuckDB."""
    import duckdb

    keys = versions // 2
    shutil.rmtree(into, ignore_errors=True)  # a kept run's files
    (into / "inventory").mkdir(parents=True, exist_ok=True)
    (into / "feed").mkdir(exist_ok=True)
    con = duckdb.connect(config={"threads": 2, "memory_limit": "3GB", "temp_directory": str(into / "spill"),
                                 "preserve_insertion_order": False})
    con.execute("SET TimeZone = 'UTC'")
    base = BASE.strftime("%Y-%m-%d %H:%M:%S")
    con.execute(f"""COPY (
      SELECT 'invoices' AS bucket, 'inv/' || lpad(CAST(k AS VARCHAR), 10, '0') || '.pdf' AS key,
        lpad(to_hex(hash(k, j)), 32, '0') AS version_id, j = 1 AS is_latest, false AS is_delete_marker,
        CAST(1000 + k % 5000 + j AS BIGINT) AS size,
        (TIMESTAMPTZ '{base}+00' + to_seconds(j * 3456000 + k % 1000000)) AS last_modified_date,
        lpad(to_hex(hash(k * 3 + j)), 32, '0') AS e_tag, 'STANDARD' AS storage_class,
        false AS is_multipart_uploaded
      FROM range({keys}) t(k), range(2) s(j)
    ) TO '{into / "inventory"}' (FORMAT parquet, PER_THREAD_OUTPUT true)""")
    changes = CHANGES_AT.strftime("%Y-%m-%d %H:%M:%S")
    con.execute(f"""COPY (
      SELECT 'ev-' || CAST(k AS VARCHAR) AS event_id,
        strftime(TIMESTAMP '{changes}' + to_seconds(k % 86400), '%Y-%m-%dT%H:%M:%SZ') AS event_time,
        'invoices' AS bucket, 'inv/' || lpad(CAST(k AS VARCHAR), 10, '0') || '.pdf' AS key,
        'new' || lpad(to_hex(hash(k)), 29, '0') AS version_id, upper(to_hex(1000000000000 + k)) AS sequencer,
        CASE WHEN k % 100 = 0 THEN 'delete_marker' ELSE 'put' END AS kind,
        CASE WHEN k % 100 = 0 THEN NULL ELSE CAST(900 AS BIGINT) END AS size,
        CASE WHEN k % 100 = 0 THEN NULL ELSE lpad(to_hex(hash(k)), 32, '0') END AS etag
      FROM range({keys}) t(k) WHERE k % 50 = 0
      UNION ALL SELECT 'canary', '2026-04-11T08:00:00Z', 'invoices', '_canary/2026-04-11T08-00-00Z/probe+a%2Bb',
        'canary', '0A', 'put', 1, 'c'
    ) TO '{into / "feed" / "feed.json.gz"}' (FORMAT json, COMPRESSION gzip)""")
    con.close()
    shutil.rmtree(into / "spill", ignore_errors=True)
    size = sum(p.stat().st_size for p in into.rglob("*") if p.is_file())
    return {"keys": keys, "feed_records": keys // 50 + 1, "bytes_on_disk": size}


def child(versions: int, into: Path, memory_limit: str) -> None:
    """Plan (and the floor) in this process; print one JSON line."""
    from tavari_dr.bucket import inventory_plan as ip

    class Bucket:  # versioning is all the planner asks S3 here (no version needs a HEAD)
        def get_bucket_versioning(self, Bucket):  # noqa: N803
            return {"Status": "Enabled"}

        def head_object(self, **kwargs):
            raise AssertionError(f"unexpected HEAD {kwargs}")

    files = sorted((into / "inventory").rglob("*.parquet"))
    spill = into / "spill"
    spill.mkdir(exist_ok=True)
    engine = ip.DuckDbEngine(files, [into / "feed" / "feed.json.gz"], memory_limit=memory_limit, threads=2,
                             temp_directory=spill)
    started = time.perf_counter()
    floor = next(engine.rows(f"SELECT count(*) AS keys FROM (SELECT key, max(last_modified_date) "
                             f"FROM {engine.inventory} GROUP BY key)"))
    floor_seconds = time.perf_counter() - started
    started = time.perf_counter()
    plan, _ = ip.plan_from_inventory(Bucket(), engine, "invoices", TO, now=CHANGES_AT + timedelta(days=2),
                                     feed_first_day=BASE)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert plan.keys_in_scope == floor["keys"] and len(plan.actions) == versions // 100, plan.summary()
    print(json.dumps({"versions": versions, "plan_seconds": seconds, "floor_seconds": floor_seconds,
                      "peak_bytes": peak, "actions": len(plan.actions), "ambiguous": len(plan.ambiguous)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/plan-scale"),  # noqa: S108 (the room is there)
                        help="where the files go (~10 GB at 100 M: the report, then its key-range copy)")
    parser.add_argument("--memory-limit", default="3GB")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--write", action="store_true", help="store the fitted rate for the cost model")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.dir / str(args.child), args.memory_limit)
        return
    load = os.getloadavg()
    print(f"host {platform.node()}: {os.cpu_count()} cpus, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
          f"(uptime), free disk {shutil.disk_usage(args.dir.parent).free / 1e9:.0f} GB at {args.dir.parent}")
    rows = []
    for versions in (int(s) for s in args.sizes.split(",")):
        into = args.dir / str(versions)
        started = time.perf_counter()
        facts = generate(versions, into)
        generated = time.perf_counter() - started
        out = subprocess.run([sys.executable, __file__, "--child", str(versions), "--dir", str(args.dir),
                              "--memory-limit", args.memory_limit], capture_output=True, text=True, check=False)
        if out.returncode:
            print(out.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"planning {versions} versions failed")
        row = {**json.loads(out.stdout.strip().splitlines()[-1]), **facts, "generate_seconds": generated}
        rows.append(row)
        if not args.keep:
            shutil.rmtree(into, ignore_errors=True)
        print(f"  {versions:>11,} versions generated in {generated:.0f} s, {facts['bytes_on_disk'] / 1e9:.2f} GB")
    print()
    print("| versions | plan (DuckDB) | floor (GROUP BY key) | plan / floor | peak RSS | files (GB) | download at "
          "85 MB/s | listing planner (model) | listing / plan |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        listing = costmodel.list_seconds(row["versions"])
        download = row["bytes_on_disk"] / costmodel.S3_CONNECTION_BYTES_PER_SECOND
        print(f"| {row['versions']:,} | {row['plan_seconds']:.1f} s | {row['floor_seconds']:.1f} s | "
              f"{row['plan_seconds'] / row['floor_seconds']:.1f} | {row['peak_bytes'] / 2**30:.2f} GiB | "
              f"{row['bytes_on_disk'] / 1e9:.2f} | {download:.0f} s | {listing:,.0f} s ({listing / 3600:.1f} h) | "
              f"{listing / row['plan_seconds']:.0f}x |")
    if len(rows) >= 2:
        fit = costmodel.fit_linear([(r["versions"], r["plan_seconds"]) for r in rows])
        per_version = [r["plan_seconds"] / r["versions"] for r in rows]
        print(f"\nfit: {fit.fixed_seconds:.1f} s + {fit.seconds_per_byte * 1e6:.2f} s per million versions; "
              f"seconds per million versions by size: " + ", ".join(f"{p * 1e6:.2f}" for p in per_version))
        goal = fit(GOAL["versions"])
        measured = [r for r in rows if r["versions"] == GOAL["versions"]]
        print(f"100 M versions: {'measured' if measured else 'extrapolated'} "
              f"{(measured[0]['plan_seconds'] if measured else goal):.0f} s (goal <= {GOAL['seconds']} s); peak "
              f"memory {max(r['peak_bytes'] for r in rows) / 2**30:.2f} GiB at the largest size run "
              f"(goal <= 4 GiB, DuckDB memory_limit {args.memory_limit})")
        if args.write:
            path = ROOT / "tavari_dr" / "core" / "data" / "inventory_plan.json"
            path.write_text(json.dumps({
                "written_by": "benches/plan_scale.py", "command": " ".join(["python", *sys.argv]),
                "host": {"name": platform.node(), "cpus": os.cpu_count(), "load": [round(x, 2) for x in load]},
                "date": datetime.now(UTC).isoformat(timespec="seconds"), "threads": 2,
                "memory_limit": args.memory_limit, "fixed_seconds": round(fit.fixed_seconds, 3),
                "seconds_per_version": fit.seconds_per_byte, "bytes_per_version":
                    max(r["bytes_on_disk"] / r["versions"] for r in rows),
                "sizes": [{k: r[k] for k in ("versions", "plan_seconds", "floor_seconds", "peak_bytes",
                                               "bytes_on_disk")} for r in rows]}, indent=1) + "\n")
            print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
