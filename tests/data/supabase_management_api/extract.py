"""Cut the Management API's OpenAPI document down to the paths Tavari calls (PATHS), with every component
they reference, unchanged. Run from the repository root with the full document on stdin:

    git -C <supabase/cli checkout> show <commit>:packages/api/src/generated/openapi.json \
        | .venv/bin/python tests/data/supabase_management_api/extract.py <commit> \
        > tests/data/supabase_management_api/openapi.json

Then update SOURCE.md beside it (the commit) and run tests/test_supabase_config.py: a changed method, body
or answer there fails the contract tests instead of a restore."""

from __future__ import annotations

import json
import sys
from typing import Any

# Every path tavari_dr calls (tavari_dr/configbackup/supabase_config.py SECTIONS, tavari_dr/verification/checks.py).
PATHS = (
    "/v1/projects/{ref}/config/auth",
    "/v1/projects/{ref}/config/database/postgres",
    "/v1/projects/{ref}/config/database/pooler",
    "/v1/projects/{ref}/network-restrictions",
    "/v1/projects/{ref}/network-restrictions/apply",
    "/v1/projects/{ref}/postgrest",
    "/v1/projects/{ref}/config/storage",
    "/v1/projects/{ref}/ssl-enforcement",
    "/v1/projects/{ref}/database/backups",
)
PREFIX = "#/components/schemas/"


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"][len(PREFIX):]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


def extract(document: dict[str, Any], commit: str) -> dict[str, Any]:
    paths = {p: document["paths"][p] for p in PATHS}
    schemas = document["components"]["schemas"]
    wanted, todo = set(), _refs(paths)
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            todo |= _refs(schemas[name])
    return {"openapi": document["openapi"],
            "info": {**document["info"], "x-extracted-from": f"supabase/cli@{commit}:packages/api/src/generated/"
                                                              "openapi.json (tests/data/supabase_management_api)"},
            "paths": paths, "components": {"schemas": {n: schemas[n] for n in sorted(wanted)}}}


if __name__ == "__main__":
    json.dump(extract(json.load(sys.stdin), sys.argv[1]), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
