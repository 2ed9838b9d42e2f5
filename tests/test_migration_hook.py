"""The backup-before-migration hook: `tavari-dr db backup --before-migration NAME --env ENV`, and the
documented `premigrate` snippet run by npm (its exit code is what stops a migration)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tavari_dr.cli import main
from tavari_dr.database import backup as d
from tavari_dr.drill import demo_data
from tests.backups import backup_s3

pytestmark = [pytest.mark.postgres, pytest.mark.moto]
ROOT = Path(__file__).resolve().parent.parent
REGION = "eu-west-1"
BUCKET = "tavari-db-backups"


@pytest.fixture
def s3():
    with backup_s3(BUCKET, REGION) as client:
        yield client


@pytest.fixture(scope="module")
def source(pg):
    url = pg.create_database("app")
    demo_data.create_supabase_like(url)
    demo_data.seed(url)
    return url


def hook(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["db", "backup", *args, "--region", REGION, "--cdk-json",
                                       str(ROOT / "cdk.json")])
    return result.exit_code, result.output


def stored_keys(s3) -> list[str]:
    return [v["Key"] for v in s3.list_object_versions(Bucket=BUCKET).get("Versions", [])]


def test_the_hook_backs_up_the_named_environment_and_prints_the_backup_id(s3, source, signing, monkeypatch):
    monkeypatch.setenv("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required")
    code, out = hook("--before-migration", "0042_invoice_totals", "--env", "dev", "--database-url", source,
                     "--bucket", BUCKET, "--signing-key", signing.arn)
    assert code == 0, out
    (backup,) = d.list_backups(s3, BUCKET)
    assert backup.complete and backup.backup_id.endswith("-before-migration-0042-invoice-totals")
    assert f"--backup {backup.backup_id} " in out  # the ID, with the command that goes back to it
    opened = d.find_backup(s3, BUCKET, backup.backup_id, verifier=signing.verifier)
    assert opened.manifest.reason == "before-migration-0042_invoice_totals"
    assert opened.manifest.lock_mode == "GOVERNANCE"  # dev's settings: the environment named was read


@pytest.mark.parametrize("env_args", [(), ("--env", "")], ids=["no --env", "empty --env"])
def test_without_an_explicit_env_the_hook_refuses_in_one_line_and_writes_nothing(s3, source, signing, env_args):
    code, out = hook("--before-migration", "0042", *env_args, "--database-url", source, "--bucket", BUCKET,
                     "--signing-key", signing.arn)
    assert code == 2
    error_lines = [line for line in out.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1 and "--env" in error_lines[0], out
    assert "Traceback" not in out and stored_keys(s3) == []


@pytest.mark.parametrize(("args", "says"), [
    (("--env", "dev"), "--reason"),
    (("--env", "dev", "--before-migration", "0042", "--reason", "x"), "drop --reason"),
    (("--env", "dev", "--before-migration", "../0042"), "migration's name"),
    (("--env", "dev", "--before-migration", ""), "migration's name"),
])
def test_bad_hook_arguments_are_usage_errors(s3, source, signing, args, says):
    code, out = hook(*args, "--database-url", source, "--bucket", BUCKET, "--signing-key", signing.arn)
    assert code == 2 and says in out and stored_keys(s3) == []


def test_a_backup_that_fails_exits_non_zero_and_leaves_no_manifest(s3, pg, signing):
    unreachable = f"postgresql://postgres@127.0.0.1:{_free_port()}/postgres"
    code, out = hook("--before-migration", "0042", "--env", "dev", "--database-url", unreachable,
                     "--bucket", BUCKET, "--signing-key", signing.arn)
    assert code == 1, out
    assert "Traceback" not in out and not any(k.endswith("manifest.json") for k in stored_keys(s3))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def readme_premigrate() -> str:
    """The `premigrate` script of the documented package.json snippet, as an application would paste it."""
    readme = (ROOT / "docs" / "architecture" / "database-backups.md").read_text()
    block = re.search(r'```json\n(\{\n  "scripts": \{.*?\n\})\n```', readme, re.S)
    assert block, "the documented package.json snippet (a JSON object with scripts) is missing"
    scripts = json.loads(block.group(1))["scripts"]
    assert scripts["premigrate"].startswith("tavari-dr db backup ")
    return scripts["premigrate"]


def test_the_readme_snippet_names_no_environment_of_its_own():
    script = readme_premigrate()
    assert "--before-migration" in script and "--env" in script
    assert not re.search(r"--env[ =]+(dev|prod|staging)\b", script)


@pytest.fixture
def app_repo(tmp_path):
    """An application checkout: a git commit (the snippet names the migration by it) and package.json with
    the documented premigrate and a migrate that leaves a mark; tavari-dr is this project's CLI."""
    if not shutil.which("npm"):
        pytest.skip("npm is not installed")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "tavari-dr").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m tavari_dr "$@"\n')
    (bin_dir / "tavari-dr").chmod(0o755)
    app = tmp_path / "app"
    app.mkdir()
    shutil.copy(ROOT / "cdk.json", app / "cdk.json")
    (app / "package.json").write_text(json.dumps({"name": "app", "version": "1.0.0", "private": True, "scripts": {
        "premigrate": readme_premigrate(), "migrate": "touch migrated"}}))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], cwd=app, check=True)
    subprocess.run([*git, "add", "."], cwd=app, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "app"], cwd=app, check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("npm_", "TAVARI"))}
    env.update(PATH=f"{bin_dir}:{env['PATH']}", PYTHONPATH=str(ROOT), AWS_MAX_ATTEMPTS="1",
               AWS_RETRY_MODE="standard", npm_config_update_notifier="false")
    return app, env


def npm_migrate(app: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["npm", "run", "--silent", "migrate"], cwd=app, env=env, capture_output=True, text=True,
                          timeout=120)


def test_npm_never_migrates_when_no_environment_was_chosen(app_repo):
    app, env = app_repo
    result = npm_migrate(app, env)
    assert result.returncode != 0 and "TAVARI_ENV" in result.stderr
    assert not (app / "migrated").exists()


def test_npm_never_migrates_when_the_backup_fails(app_repo):
    """The environment is named, but AWS cannot be reached (a closed port on this machine): exit 1, no migration."""
    app, env = app_repo
    env.update(TAVARI_ENV="dev", TAVARI_DR_ENDPOINT_URL=f"http://127.0.0.1:{_free_port()}")
    result = npm_migrate(app, env)
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Error:" in result.stderr and "Traceback" not in result.stderr
    assert not (app / "migrated").exists()
