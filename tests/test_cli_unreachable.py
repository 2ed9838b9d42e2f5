"""Every tavari-dr command against a database and an AWS endpoint that refuse connections: one line
naming the host that failed, exit code 1 or 2, never a Python traceback.

The command list is the click tree itself, so a new command is covered the day it is added."""

from __future__ import annotations

import itertools
import socket
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from tavari_dr.cli import main
from tests.conftest import ROOT


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released: connecting is refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


DB_PORT, AWS_PORT = closed_port(), closed_port()
PASSWORD = "hunter2-not-shown"
DATABASE_URL = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{DB_PORT}/postgres"
ENDPOINT = f"http://127.0.0.1:{AWS_PORT}"
HOSTS = (f"127.0.0.1:{DB_PORT}", f'"127.0.0.1", port {DB_PORT}', f"127.0.0.1:{AWS_PORT}")


def commands(group: click.Group = main, path: tuple[str, ...] = ()):
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))
        else:
            yield (*path, name), command


_fresh = itertools.count()
ARGUMENT = "00000000-0000-0000-0000-000000000001"  # a well-formed ID (a job's): the command gets as far as AWS


def value_for(param: click.Parameter, tmp_path: Path) -> list[str]:
    name = param.name or ""
    if name == "scratch_url":
        return []  # only with --table (below)
    if name.endswith("url") and name != "endpoint_url":
        return [param.opts[0], DATABASE_URL]
    if name == "env_name":
        return [param.opts[0], "dev"] if param.required else []
    if name == "cdk_json":
        return [param.opts[0], str(ROOT / "cdk.json")]
    if name == "env_file":
        env_file = tmp_path / "prod.env"
        env_file.write_text("SUPABASE_URL=https://abc.supabase.co\n")
        return [param.opts[0], str(env_file)]
    if name == "out":
        return [param.opts[0], str(tmp_path / f"out-{next(_fresh)}")]  # a path nothing is at yet
    if param.required:
        return [param.opts[0], "00000000-0000-0000-0000-000000000001" if "id" in name or name == "account" else "x"]
    return []


# What a command needs beyond its required options to get as far as a connection, one list per run.
VARIANTS = {("bucket", "restore"): [["--to", "2026-11-30T12:00:00Z", "--backup-bucket", "x"]],
            ("db", "backup"): [["--reason", "nightly"]],
            ("db", "stream"): [["--dump-in-process"]],  # how a base reset's dump is taken is always named
            ("db", "verify"): [["--quick"], ["--scratch-url", DATABASE_URL]],
            ("breach", "scope"): [["--since", "2026-11-30T12:00:00Z"]],
            # dev keeps no DR region (and says so before any connection): prod's is what fails over.
            ("failover", "plan"): [["--env", "prod"]],
            ("failover", "apply"): [["--env", "prod"]],
            ("db", "restore"): [[], ["--table", "public.invoices", "--scratch-url", DATABASE_URL],
                                ["--force", "--yes", "--dry-run"], ["--force", "--yes"]]}


# Commands that talk to no AWS and no database (nothing to be unreachable): tests/test_cli_layout.OFFLINE.
OFFLINE = {("config", "show")}


def invocations(tmp_path: Path):
    """Each command with its required options and every database URL it takes: where --env is
    optional, once with --env dev (resources found through CloudFormation) and once with the
    resources named (--bucket, --signing-key, ...)."""
    for path, command in commands():
        if path in OFFLINE:
            continue
        names = {p.name for p in command.params}

        def base(command=command):
            # Positional arguments (a job ID) last, after the options.
            return ([x for p in command.params if isinstance(p, click.Option) for x in value_for(p, tmp_path)]
                    + [ARGUMENT for p in command.params if isinstance(p, click.Argument)])

        named = [x for option, value in (("bucket", "b"), ("signing_key", "arn:aws:kms:eu-west-1:1:key/k"),
                                        ("change_signing_key", "arn:aws:kms:eu-west-1:1:key/c"),
                                        ("report_bucket", "r"))
                 if option in names for x in (f"--{option.replace('_', '-')}", value)]
        for extra in VARIANTS.get(path, [[]]):
            if "env_name" in names and "--env" not in base():
                yield path, [*base(), *extra, "--env", "dev"]
            yield path, [*base(), *named, *extra]


@pytest.fixture
def refused(monkeypatch):
    """Clients that find no AWS: the endpoint refuses, one attempt, short timeouts."""
    for key, value in {"AWS_ENDPOINT_URL": ENDPOINT, "AWS_MAX_ATTEMPTS": "1", "AWS_RETRY_MODE": "standard",
                       "AWS_METADATA_SERVICE_NUM_ATTEMPTS": "1", "AWS_METADATA_SERVICE_TIMEOUT": "1",
                       "PGCONNECT_TIMEOUT": "3"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("TAVARI_DATABASE_URL", raising=False)
    monkeypatch.delenv("TAVARI_DR_ENDPOINT_URL", raising=False)


def test_the_command_tree_is_walked():
    names = {" ".join(path) for path, _ in commands()}
    assert {"db backup", "db restore", "db cleanup-restored", "export account", "secrets push", "drill"} <= names


def test_every_command_fails_in_one_line_naming_the_host(refused, tmp_path):
    runner = CliRunner()
    failures = []
    for path, args in invocations(tmp_path):
        result = runner.invoke(main, [*path, *args])
        out = result.output
        problem = None
        if result.exit_code == 0 or "Traceback" in out or (
                result.exception is not None and not isinstance(result.exception, SystemExit)):
            problem = f"exit {result.exit_code}, {type(result.exception).__name__}: {result.exception}"
        elif path != ("drill",) and not any(host in out for host in HOSTS):
            problem = "the output names neither host"
        elif PASSWORD in out:
            problem = "the output shows the database password"
        if problem:
            failures.append(f"tavari-dr {' '.join(path)} {' '.join(args)}: {problem}\n{out}")
    assert not failures, "\n\n".join(failures)


def test_drill_is_usage_error_without_local(refused):
    """The one command that talks to neither: it says what it needs instead (the local drill starts its own)."""
    result = CliRunner().invoke(main, ["drill"])
    assert result.exit_code == 2 and "--local" in result.output
