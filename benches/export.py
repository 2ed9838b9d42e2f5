"""Account export against its floor: PostgreSQL writing the same rows as JSON (`psql \\copy`), side by side.

A throwaway PostgreSQL cluster holds the Supabase-like Tavari schema with one large business
(--messages messages, default 1 M; plus two small ones, so the tenant filter has work to do). Each
rep runs, back to back in this one process, (1) `psql \\copy (SELECT row_to_json(t) FROM (SELECT *
... WHERE <the account's filter> ORDER BY 1) t) TO file` for every dataset — the database's own
speed at serializing those rows, no ZIP — and (2) the export in a fresh process exactly as the
worker Lambda runs it (into a ZIP on local disk, without PDFs). The verdict is the median ratio
export / psql (goal <= 3) and the export's peak RSS (goal <= 256 MB), never a wall time alone: the
machine is shared, and the ratio of two runs under the same load is what says how close the export
is to the database's speed.

    .venv/bin/python benches/export.py [--messages 1000000] [--reps 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tavari_dr.core.config import DEFAULT_DATASETS  # noqa: E402
from tavari_dr.drill import demo_data  # noqa: E402
from tavari_dr.drill.pgcluster import LocalPostgres  # noqa: E402

RUN_EXPORT = """
import json, resource, sys, time
from tavari_dr.export.account import count_rows, export_account
url, user, out = sys.argv[1], sys.argv[2], sys.argv[3]
started = time.monotonic()
rows = count_rows(url, user)
counted = time.monotonic() - started
metadata = export_account(url, user, out)
print(json.dumps({"seconds": time.monotonic() - started, "count_seconds": counted, "rows": rows,
                  "files": {k: v["rows"] for k, v in metadata["files"].items()},
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

GOAL_RATIO, GOAL_RSS_MB = 3.0, 256


def psql_script(url: str, user: str, scratch: Path) -> str:
    """One \\copy per dataset: the same rows the export writes, as PostgreSQL's plain row_to_json."""
    import psycopg

    with psycopg.connect(url) as conn:
        businesses = [str(r[0]) for r in conn.execute("SELECT id FROM public.businesses WHERE owner_id = %s",
                                                      (user,))]
    in_list = ", ".join(f"'{b}'" for b in businesses) or "NULL"
    lines = []
    for d in DEFAULT_DATASETS:
        where = f"{d.column} = '{user}'" if d.owner == "user" else f"{d.column} IN ({in_list})"
        select = f"SELECT * FROM {d.table} WHERE {where} ORDER BY 1"  # noqa: S608 - the bench's own IDs
        lines.append(f"\\copy (SELECT row_to_json(t) FROM ({select}) t) TO '{scratch / (d.name + '.json')}'")  # noqa: S608
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    with LocalPostgres() as pg, tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        url = pg.create_database("tavari")
        demo_data.create_supabase_like(url)
        started = time.monotonic()
        demo_data.seed(url, businesses=1, calls=20_000, messages=args.messages, seed_value=1)
        demo_data.seed(url, businesses=2, calls=100, messages=1000, seed_value=2)
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
            user = str(conn.execute("SELECT b.owner_id FROM public.businesses b JOIN public.messages m ON "
                                    "m.business_id = b.id GROUP BY 1 ORDER BY count(*) DESC LIMIT 1").fetchone()[0])
        print(f"seeded in {time.monotonic() - started:.1f} s", flush=True)
        script = scratch / "copy.sql"
        script.write_text(psql_script(url, user, scratch))
        psql = str(pg.client_bin / "psql")
        out = scratch / "export.zip"
        ratios, exports, floors, rss = [], [], [], []
        for rep in range(args.reps):
            out.unlink(missing_ok=True)
            began = time.monotonic()
            subprocess.run([psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(script), url], check=True)
            floor = time.monotonic() - began
            result = json.loads(subprocess.run([sys.executable, "-c", RUN_EXPORT, url, user, str(out)], check=True,
                                               capture_output=True, text=True, cwd=ROOT).stdout)
            floors.append(floor)
            exports.append(result["seconds"])
            ratios.append(result["seconds"] / floor)
            rss.append(result["peak_rss_mb"])
            print(f"rep {rep + 1}: psql \\copy {floor:.2f} s, export {result['seconds']:.2f} s "
                  f"(counting {result['count_seconds']:.2f} s), ratio {ratios[-1]:.2f}, "
                  f"peak RSS {result['peak_rss_mb']:.0f} MB", flush=True)
        json_mb = sum(p.stat().st_size for p in scratch.glob("*.json")) / 2**20
        size_mb = out.stat().st_size / 2**20
    ratio, peak = statistics.median(ratios), max(rss)
    print(f"export of {result['rows']:,} rows ({result['files']['messages.jsonl']:,} messages), {args.reps} reps: "
          f"median export {statistics.median(exports):.2f} s vs psql \\copy {statistics.median(floors):.2f} s "
          f"({json_mb:.0f} MiB of JSON) -> median ratio {ratio:.2f} (goal <= {GOAL_RATIO:g}); "
          f"peak RSS {peak:.0f} MB (goal <= {GOAL_RSS_MB}); ZIP {size_mb:.1f} MiB")
    return 0 if ratio <= GOAL_RATIO and peak <= GOAL_RSS_MB else 1


if __name__ == "__main__":
    sys.exit(main())
