"""Bad input is one short line and a non-zero exit, never a traceback: every command of `tavari-dr`
(the click tree, walked) with malformed values of every option type it takes (URLs, ports, times,
numbers, choices, paths) and a profile that does not exist. Nothing here reaches AWS or a database:
the endpoint and every database URL point at a closed local port."""

from __future__ import annotations

import os
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from tavari_dr.cli import main
from tests.conftest import ROOT

CLOSED = "127.0.0.1:9"  # the discard port: nothing listens there, a connection is refused at once
ENV = {"AWS_ACCESS_KEY_ID": "fuzz", "AWS_SECRET_ACCESS_KEY": "fuzz", "AWS_SESSION_TOKEN": "",
       "AWS_MAX_ATTEMPTS": "1", "AWS_RETRY_MODE": "standard", "AWS_EC2_METADATA_DISABLED": "true",
       "TAVARI_DR_ENDPOINT_URL": f"http://{CLOSED}", "PGCONNECT_TIMEOUT": "2", "AWS_PROFILE": None,
       "BACKUP_DATABASE_URL": f"postgresql://u@{CLOSED}/db"}
SHARED = {"--env", "--cdk-json", "--region", "--dr-region", "--format", "--help", "--log-format"}
TIMES = {"--since", "--to", "--aware-at", "--erased-at"}


def commands(group: click.Group = main, path: tuple[str, ...] = ()):
    ctx = click.Context(group)  # the top group loads its commands lazily: walked as click's help walks it
    for name, command in sorted((name, group.get_command(ctx, name)) for name in group.list_commands(ctx)):
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))
        else:
            yield (*path, name), command


def options(command: click.Command) -> dict[str, click.Option]:
    return {p.opts[0]: p for p in command.params if isinstance(p, click.Option)}


def base_args(path: tuple[str, ...], command: click.Command, tmp) -> list[str]:
    """The command with its required options filled in with sensible values (the case then breaks one)."""
    args = list(path)
    given = options(command)
    if "--env" in given:
        args += ["--env", "prod", "--cdk-json", str(ROOT / "cdk.json")]
    env_file = tmp / "in.env"
    env_file.write_text("A=1\n")
    fillers = {"--env-file": str(env_file), "--out": str(tmp / "out"), "--target-url": f"postgresql://u@{CLOSED}/db",
               "--database-url": f"postgresql://u@{CLOSED}/db", "--since": "2026-11-30T12:00:00Z",
               "--account": "0b5d2a8e-0000-4000-8000-000000000001", "--user-id": "0b5d2a8e-0000-4000-8000-000000000001"}
    for name, option in given.items():
        if option.required and name != "--env":
            args += [name, fillers[name]]
    if path == ("drill",):  # never the real drill: its --cdk-out holds no synthesized app
        (tmp / "empty").mkdir(exist_ok=True)
        args += ["--local", "--cdk-out", str(tmp / "empty")]
    args += ["x" for p in command.params if isinstance(p, click.Argument) and p.required]
    return args


def bad_values(name: str, option: click.Option, tmp) -> list[str]:
    """Malformed values for one option, by its type and what it names."""
    kind = option.type
    if option.is_flag or option.count:
        return []
    if name == "--endpoint-url":
        return ["not a url", "http://127.0.0.1:99999", "ftp://127.0.0.1/"]
    if name.endswith("-url") and "supabase" in name:
        return ["not a url", "http://127.0.0.1:99999"]
    if name.endswith("-url"):
        return ["not a url", "postgresql://u@127.0.0.1:99999/db", "postgresql://u@127.0.0.1:port/db"]
    if name in TIMES:
        return ["yesterday", "2026-02-30T00:00:00Z"]
    if isinstance(kind, click.IntRange | click.FloatRange):
        return ["-5", "many"]
    if isinstance(kind, click.Choice):
        return ["bogus"]
    if isinstance(kind, click.Path):
        a_file = tmp / "a-file"
        a_file.write_text("x")
        return [str(a_file / "under-a-file")]
    return []


def cases(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    for path, command in commands():
        for name, option in options(command).items():
            if name in SHARED - {"--endpoint-url"}:
                continue
            for value in bad_values(name, option, tmp):
                yield path, name, value


def _run(args: list[str], env: dict[str, str | None]):
    return CliRunner().invoke(main, args, env=env)


def _assert_one_short_line(result, case) -> None:
    output = result.stdout + result.stderr
    assert result.exit_code != 0, (case, output)
    # An exception click did not turn into a message is a traceback to whoever typed the command.
    assert result.exception is None or isinstance(result.exception, SystemExit), (case, result.exc_info)
    assert "Traceback" not in output, (case, output)
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert errors and len(errors[0]) <= 400, (case, output)
    assert len(output.strip().splitlines()) <= 8, (case, output)


def test_every_command_refuses_every_malformed_value_in_one_short_line(tmp_path, tmp_path_factory):
    walked = list(commands())
    assert len(walked) >= 28  # the tree was walked, not one group
    tried = 0
    for path, name, value in cases(tmp_path_factory):
        command = dict(walked)[path]
        case_dir = tmp_path / f"case-{tried}"
        case_dir.mkdir()
        args = base_args(path, command, case_dir)
        if name in args:  # a required option: its filler replaced by the bad value
            at = args.index(name)
            args = [*args[:at], *args[at + 2:]]
        result = _run([*args, name, value], ENV)
        _assert_one_short_line(result, (" ".join(path), name, value))
        tried += 1
    assert tried > 150, tried


@pytest.mark.parametrize("path", [p for p, _ in commands()], ids=" ".join)
def test_a_profile_that_does_not_exist_is_one_line(path, tmp_path):
    command = dict(commands())[path]
    if "--endpoint-url" not in options(command) or path == ("drill",):  # e.g. config show: --env, never AWS
        pytest.skip("talks to no AWS account")
    result = _run(base_args(path, command, tmp_path), {**ENV, "AWS_PROFILE": "no-such-profile",
                                                        "AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None})
    if path == ("status",):  # its answer is a board that names each source it could not read, exit 1
        output = result.stdout + result.stderr
        assert result.exit_code == 1 and result.exception is None or isinstance(result.exception, SystemExit)
        assert "The config profile (no-such-profile) could not be found" in output and "Traceback" not in output
        return
    _assert_one_short_line(result, (" ".join(path), "AWS_PROFILE=no-such-profile"))


def test_a_mistyped_profile_does_not_break_help_or_the_import():
    """The X-Ray SDK built a client at import, reading AWS_PROFILE: a typo there was a 56-line traceback
    even for --help (tavari_dr.core.observability)."""
    env = {**os.environ, "AWS_PROFILE": "no-such-profile"}
    done = subprocess.run([sys.executable, "-m", "tavari_dr", "--help"], env=env, capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0 and "Traceback" not in done.stderr and "Usage: " in done.stdout, done.stderr
    done = subprocess.run([sys.executable, "-m", "tavari_dr", "db", "list", "--env", "prod"], env=env,
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "The config profile (no-such-profile) could not be found" in done.stderr


def test_export_tables_refuses_a_directory_that_holds_files(tmp_path):
    out = tmp_path / "export"
    out.mkdir()
    (out / "public.messages.csv").write_text("kept")
    result = _run(["export", "tables", "--database-url", f"postgresql://u@{CLOSED}/db", "--out", str(out)], ENV)
    assert result.exit_code == 2 and "is not empty; pass --force" in result.stderr, result.stderr
    assert (out / "public.messages.csv").read_text() == "kept"
    # With --force it goes on (and here fails to connect: the refusal above was about the directory).
    result = _run(["export", "tables", "--database-url", f"postgresql://u@{CLOSED}/db", "--out", str(out),
                   "--force"], ENV)
    assert result.exit_code == 1 and "is not empty" not in result.stderr and "Traceback" not in result.stderr


def test_bucket_restore_journals_go_to_the_users_state_dir_not_the_checkout(tmp_path, monkeypatch):
    command = dict(commands())[("bucket", "restore")]
    option = options(command)["--state-dir"]
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    with click.Context(command) as ctx:
        assert option.get_default(ctx, call=True) == tmp_path / "state" / "tavari-dr" / "bucket-restore"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with click.Context(command) as ctx:
        assert option.get_default(ctx, call=True) == tmp_path / "home" / ".local" / "state" / "tavari-dr" / \
            "bucket-restore"
    assert ".tavari-restore/" in (ROOT / ".gitignore").read_text().splitlines()  # the old journals stay untracked
