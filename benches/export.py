"""Account export cost: one business with --messages messages (default 1 M) exported to a ZIP.

A throwaway PostgreSQL cluster holds the Supabase-like Tavari schema with one large business
(plus two small ones, so the tenant filter has work to do). The export runs in a fresh process
exactly as the worker Lambda runs it (server-side cursors into a ZIP on local disk), without
PDFs. Prints wall time (goal <= 60 s here), peak memory (goal <= 256 MB), rows and ZIP size.

    .venv/bin/python benches/export.py [--messages 1000000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    args = parser.parse_args()
    with LocalPostgres() as pg, tempfile.TemporaryDirectory() as scratch:
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
        out = Path(scratch) / "export.zip"
        result = json.loads(subprocess.run([sys.executable, "-c", RUN_EXPORT, url, user, str(out)], check=True,
                                           capture_output=True, text=True, cwd=ROOT).stdout)
        size_mb = out.stat().st_size / 2**20
    print(f"export of {result['rows']:,} rows ({result['files']['messages.jsonl']:,} messages): "
          f"{result['seconds']:.1f} s wall (goal <= 60; counting {result['count_seconds']:.2f} s), "
          f"peak RSS {result['peak_rss_mb']:.0f} MB (goal <= 256), ZIP {size_mb:.1f} MiB")
    ok = result["seconds"] <= 60 and result["peak_rss_mb"] <= 256
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
