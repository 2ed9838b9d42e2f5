"""What the drill compares: a database's rows and content, a bucket's visible state, and the CRR
it emulates (moto never replicates)."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tavari_dr.core import costmodel


def fingerprints(url: str, schema: str = "public") -> dict[str, dict[str, Any]]:
    """Row count and an order-independent content hash of every table of ``schema``."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(url) as conn:
        tables = [f"{s}.{t}" for s, t in conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
            "AND table_schema = %s ORDER BY 1, 2", (schema,))]
        result = {}
        for table in tables:
            schema, name = table.split(".")
            rows, digest = conn.execute(sql.SQL(
                "SELECT count(*), md5(coalesce(string_agg(md5(t::text), '' ORDER BY md5(t::text)), '')) "
                "FROM {} t").format(sql.Identifier(schema, name))).fetchone()
            result[table] = {"rows": rows, "md5": digest}
    return result


def bucket_state(s3: Any, bucket: str) -> dict[str, str]:
    """Visible keys -> sha256 of their bytes, read on costmodel.DRILL_VERIFY_CONCURRENCY connections."""
    keys = [item["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for item in page.get("Contents", [])]

    def digest(key: str) -> str:
        return hashlib.sha256(s3.get_object(Bucket=bucket, Key=key)["Body"].read()).hexdigest()

    with ThreadPoolExecutor(max_workers=costmodel.DRILL_VERIFY_CONCURRENCY) as pool:
        return dict(zip(keys, pool.map(digest, keys), strict=True))


def state_difference(state: dict[str, str], expected: dict[str, str]) -> str:
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    changed = sorted(k for k in set(state) & set(expected) if state[k] != expected[k])
    return (f"{len(missing)} missing {missing[:3]}, {len(extra)} unexpected {extra[:3]}, "
            f"{len(changed)} with other bytes {changed[:3]}")


def emulate_crr(s3: Any, source: str, destination: str, done: set[tuple[str, str]]) -> int:
    """Copy every version and delete marker not yet in ``done``, oldest first, as CRR would have
    (moto never replicates). Called right after each round of writes, so replicas lag by seconds."""
    events: list[tuple[Any, str, bool, int, str, bool]] = []  # (LastModified, key, latest, order, version, marker)
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=source):
        # S3 times have one-second resolution: within a second, the current version (IsLatest) is
        # the newest, and versions among themselves are listed newest first.
        for version in page.get("Versions", []) + page.get("DeleteMarkers", []):
            events.append((version["LastModified"], version["Key"], version.get("IsLatest", False), -len(events),
                           version["VersionId"], "Size" not in version))
    copied = 0
    for _, key, _, _, version_id, is_marker in sorted(events):
        if (key, version_id) in done:
            continue
        done.add((key, version_id))
        if is_marker:
            s3.delete_object(Bucket=destination, Key=key)
        else:
            s3.copy_object(Bucket=destination, Key=key, CopySource={"Bucket": source, "Key": key,
                                                                    "VersionId": version_id})
        copied += 1
    return copied


def reported_actions(state_dir: Path) -> int:
    """Actions in a bucket restore's per-key report (one JSON line each)."""
    return sum(len(path.read_text().splitlines()) for path in state_dir.glob("*.report.jsonl"))
