"""One CLI contract (issue 29 item 5): every leaf command of `tavari-dr` takes --format text|json and, in
json, answers with one envelope on stdout, on success and on failure alike; the shared environment and AWS
options come after the command's own in its help; help and usage errors import no AWS SDK, tracer or
database driver."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime

import boto3
import click
import pytest
from click.testing import CliRunner
from moto import mock_aws

from tavari_dr.cli import main
from tests.conftest import ROOT

ENVELOPE = {"command", "env", "ok", "result", "errors"}


def leaves(group: click.Group = main, path: tuple[str, ...] = ()):
    """Every leaf command of the tree, walked as click's own help does (list_commands, get_command)."""
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            yield from leaves(command, (*path, name))
        else:
            yield " ".join((*path, name)), command


LEAVES = dict(leaves())


def test_the_tree_is_walked_whole():
    assert len(LEAVES) >= 28 and {"status", "db restore", "bucket jobs retry", "drill"} <= set(LEAVES)


@pytest.mark.parametrize("path", sorted(LEAVES))
def test_every_leaf_command_answers_in_text_or_json(path):
    (option,) = [p for p in LEAVES[path].params if isinstance(p, click.Option) and "--format" in p.opts]
    assert list(option.type.choices) == ["text", "json"] and option.default == "text"


def run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, list(args), env=env)


def envelope(result, command: str, *, ok: bool, env: str | None = None) -> dict:
    """The one JSON document on stdout, with the envelope's keys and the given outcome."""
    document = json.loads(result.stdout)
    assert set(document) == ENVELOPE, document
    assert document["command"] == command and document["env"] == env and document["ok"] is ok
    assert isinstance(document["result"], dict | None)
    if ok:
        assert document["errors"] == []
    else:
        assert document["errors"] and all(set(e) == {"code", "message"} and e["message"] for e in document["errors"])
    return document


def test_a_usage_error_is_one_envelope_in_json_and_one_line_in_text():
    # Parsing fails (a required option missing): exit 2 as click gives it, in both formats.
    as_json = run("db", "restore", "--format", "json")
    assert as_json.exit_code == 2 and as_json.stderr == ""
    document = envelope(as_json, "db restore", ok=False)
    assert document["errors"][0]["code"] == "missing_parameter" and "--target-url" in document["errors"][0]["message"]
    as_text = run("db", "restore")
    assert as_text.exit_code == 2 and as_text.stdout == "" and "Missing option '--target-url'" in as_text.stderr
    assert "Traceback" not in as_text.stderr


def test_a_refusal_of_db_restore_is_one_envelope_in_json_and_one_line_in_text():
    # The command's own refusal of bad input (raised after parsing): exit 2, the same line both ways.
    args = ("db", "restore", "--target-url", "postgresql://u@127.0.0.1:9/db", "--dump-only", "public.a")
    as_json = run(*args, "--format=json")
    assert as_json.exit_code == 2 and as_json.stderr == ""
    document = envelope(as_json, "db restore", ok=False)
    assert document["errors"] == [{"code": "usage_error", "message": "--dump-only goes with --to"}]
    as_text = run(*args)
    assert as_text.exit_code == 2 and as_text.stdout == ""
    assert as_text.stderr.strip().splitlines()[-1] == "Error: --dump-only goes with --to"


def test_a_bad_environment_names_the_env_in_the_envelope():
    result = run("status", "--env", "nowhere", "--cdk-json", str(ROOT / "cdk.json"), "--format", "json")
    assert result.exit_code == 2
    document = envelope(result, "status", ok=False, env="nowhere")
    assert "nowhere" in document["errors"][0]["message"]


@pytest.mark.moto
def test_bucket_restore_dry_run_is_the_envelope_around_the_old_answer(tmp_path):
    with mock_aws():
        s3 = boto3.client("s3", region_name="eu-west-1")
        s3.create_bucket(Bucket="invoices", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        s3.put_bucket_versioning(Bucket="invoices", VersioningConfiguration={"Status": "Enabled"})
        s3.put_object(Bucket="invoices", Key="a.pdf", Body=b"1")
        time.sleep(1.1)  # S3 times have a resolution of one second
        to = datetime.now(UTC).isoformat(timespec="seconds")
        s3.create_bucket(Bucket="backups", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        args = ["bucket", "restore", "--bucket", "invoices", "--region", "eu-west-1", "--to", to,
                "--state-dir", str(tmp_path), "--backup-bucket", "backups"]
        dry = run(*args, "--format", "json")
        assert dry.exit_code == 0, dry.output
        result = envelope(dry, "bucket restore", ok=True)["result"]
        assert result["applied"] is False and result["keys_in_scope"] == 1
        # The same command failing (a bucket that is not there) is still one envelope, exit 1.
        missing = run(*[a if a != "invoices" else "no-such-bucket" for a in args], "--format", "json")
        assert missing.exit_code == 1 and missing.stderr == ""
        document = envelope(missing, "bucket restore", ok=False)
        assert document["errors"][0]["code"] == "failed" and "NoSuchBucket" in document["errors"][0]["message"]
        text = run(*[a if a != "invoices" else "no-such-bucket" for a in args])
        assert text.exit_code == 1 and text.stdout == "" and text.stderr.startswith("Error: ")
        assert "NoSuchBucket" in text.stderr and "Traceback" not in text.stderr


@pytest.mark.moto
def test_verify_fails_inside_the_envelope(tmp_path):
    """verify against buckets that are not there: every check FAILs; the table is the result, ok is false."""
    with mock_aws():
        boto3.client("s3", region_name="eu-west-1")
        result = run("db", "verify", "--quick", "--bucket", "no-such-bucket", "--signing-key",
                     "arn:aws:kms:eu-west-1:123456789012:key/none", "--format", "json")
        assert result.exit_code == 1, result.output
        document = envelope(result, "db verify", ok=False)
        assert document["errors"][0]["code"] == "failed"


@pytest.mark.moto
def test_verify_of_an_environment_not_deployed_fails_inside_the_envelope():
    with mock_aws():
        result = run("verify", "--env", "dev", "--cdk-json", str(ROOT / "cdk.json"), "--format", "json")
        assert result.exit_code == 1 and result.stderr == "", result.output
        document = envelope(result, "verify", ok=False, env="dev")
        assert "is not deployed" in document["errors"][0]["message"]


def test_status_that_cannot_read_its_sources_is_an_envelope_with_the_board():
    """exit 2 (status's own: a source could not be read), the board as the result, each source an error."""
    result = run("status", "--env", "prod", "--cdk-json", str(ROOT / "cdk.json"), "--endpoint-url",
                 "http://127.0.0.1:9", "--no-drill-report", "--format", "json",
                 env={"AWS_MAX_ATTEMPTS": "1", "AWS_EC2_METADATA_DISABLED": "true"})
    assert result.exit_code == 2, result.output
    document = envelope(result, "status", ok=False, env="prod")
    assert document["result"]["environment"] == "prod" and document["result"]["exit_code"] == 2
    assert {e["code"] for e in document["errors"]} == {"unreadable"}
    assert document["errors"][0]["message"].startswith("could not read stacks: Could not connect")


def test_a_text_only_command_puts_what_it_printed_in_the_result(tmp_path):
    (tmp_path / "empty").mkdir()
    # `drill` without --local refuses (usage): the envelope; `secrets pull`-like text commands put their
    # lines under result.output (here: the drill's refusal has none).
    result = run("drill", "--cdk-out", str(tmp_path / "empty"), "--format", "json")
    assert result.exit_code == 2
    assert "only --local runs here" in envelope(result, "drill", ok=False, env="prod")["errors"][0]["message"]


def test_the_shared_options_come_after_the_commands_own_in_help():
    result = run("db", "restore", "--help")
    assert result.exit_code == 0
    text = result.stdout[result.stdout.index("\nOptions:"):]  # the examples above name options too
    own, shared = text.index("--target-url"), text.index("Environment and AWS options:")
    assert own < shared < text.index("--endpoint-url") and text.index("--region") > shared
    assert text.index("--env ") > shared


def test_help_keeps_unwrapped_blocks_and_the_epilog():
    from tavari_dr.cli.common import TavariCommand

    help_text = "Do it.\n\n\b\nexample:\n  tavari-dr x --env prod   # exactly as written\n  second line"
    kwargs = {"help": help_text, "epilog": "\b\nSee also:\n  tavari-dr y"}
    ours = TavariCommand("x", **kwargs).get_help(click.Context(TavariCommand("x", **kwargs), info_name="x"))
    plain = click.Command("x", **kwargs).get_help(click.Context(click.Command("x", **kwargs), info_name="x"))
    assert "\n    tavari-dr x --env prod   # exactly as written\n    second line\n" in ours  # not rewrapped
    assert ours.split("Options:")[0] == plain.split("Options:")[0]  # help text rendered as click renders it
    epilog = "See also:\n    tavari-dr y"
    assert ours.rstrip().endswith(epilog) and plain.rstrip().endswith(epilog)


HEAVY = ("boto3", "botocore", "aws_xray_sdk", "opentelemetry", "psycopg", "psycopg2")


@pytest.mark.parametrize("args", [["--help"], ["db", "restore", "--help"], ["db", "restore"],
                                  ["bucket", "jobs", "--help"], ["status", "--bogus"]])
def test_help_and_usage_errors_import_no_sdk_tracer_or_driver(args):
    """Deterministic: which modules were loaded, never how long it took."""
    probe = ("import sys, runpy\n"
             f"sys.argv = ['tavari-dr', *{args!r}]\n"
             "try:\n    runpy.run_module('tavari_dr', run_name='__main__')\n"
             "except SystemExit as done:\n    code = done.code\n"
             f"print('\\nLOADED', sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})), code)\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120)
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("LOADED"), done.stdout + done.stderr
    assert last.split(" ", 1)[1].rsplit(" ", 1)[0] == "[]", (args, last)
