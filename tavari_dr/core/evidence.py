"""What a drill report must carry to be filed by an auditor: which code, which tools, where, who.

Shared by the local drill and the quarterly drill in AWS (one report schema for both,
``tavari_dr/core/data/drill-report.schema.json``), plus the SHA256SUMS that seals a report folder.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import platform
import subprocess
from importlib import metadata, resources
from pathlib import Path
from typing import Any

from tavari_dr import __version__

REPORT_SCHEMA = "data/drill-report.schema.json"
SUMS = "SHA256SUMS"


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return f"uid {os.getuid()}"


def git_state(root: Path) -> dict[str, Any]:
    """The commit the drill ran from and whether the work tree differed from it; None outside a checkout."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None, "note": f"{root} is not a git checkout"}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit.strip(), "dirty": bool(status and status.strip())}


def _package(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _tool(command: list[str]) -> str | None:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=30).stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


def versions(*, postgres_server: str | None = None, local: bool = False) -> dict[str, str | None]:
    # tavari_dr's own version, not the distribution's metadata: a Lambda bundle has none (it said None there).
    found = {"tavari-dr": __version__, "boto3": _package("boto3"), "python": platform.python_version()}
    if local:
        found.update({"aws-cdk-lib": _package("aws-cdk-lib"), "moto": _package("moto"),
                      "postgresql-server": postgres_server, "pg_dump": _tool(["pg_dump", "--version"]),
                      "pg_restore": _tool(["pg_restore", "--version"])})
    return found


def host() -> dict[str, Any]:
    return {"name": platform.node(), "platform": platform.platform(), "cpus": os.cpu_count()}


def seal(folder: Path, files: list[Path]) -> Path:
    """Write ``folder``/SHA256SUMS (the format `sha256sum -c` reads) over ``files``, which lie below it."""
    lines = []
    for path in files:
        lines.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.relative_to(folder).as_posix()}")
    sums = folder / SUMS
    sums.write_text("\n".join(lines) + "\n")
    return sums


def report_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(resources.files("tavari_dr.core").joinpath(REPORT_SCHEMA).read_text())
    return schema
