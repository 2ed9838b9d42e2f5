"""`tavari-dr secrets push|pull|check` against moto, resources found through stack outputs."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from click.testing import CliRunner
from moto import mock_aws

from tavari_dr.cli import main
from tavari_dr.configbackup import secrets as secrets_lib
from tavari_dr.core import outputs
from tavari_dr.core.config import load_environment
from tavari_dr.core.envfile import parse
from tests.conftest import ROOT, cdk_context

pytestmark = pytest.mark.moto  # AWS emulated in-process: its own budget (benches/synth.sh)

REGION = "eu-west-1"
CONFIG = load_environment(cdk_context(), "dev")
NAMES = [e.name for e in CONFIG.secrets.all_entries]
FULL_ENV = {
    "SUPABASE_URL": "https://abcd.supabase.co",
    "SUPABASE_ANON_KEY": "eyJhbGciOiJIUzI1NiJ9.anon",
    "SUPABASE_SERVICE_ROLE_KEY": "eyJhbGciOiJIUzI1NiJ9.service \"role\"",
    "SUPABASE_ACCESS_TOKEN": "sbp_0123456789",
    "BACKUP_DATABASE_URL": "postgresql://postgres.abcd:p%40ss@aws-0-eu-west-1.pooler.supabase.com:5432/postgres",
    "ALERT_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/X",
    "STRIPE_SECRET_KEY": "sk_test_ 'quoted' # not a comment",
    "TWILIO_AUTH_TOKEN": "multi\nline\ttoken $HOME",
    "SENTRY_DSN": "https://public@o1.ingest.sentry.io/42",
    "SUPABASE_JWT_SECRET": "super-secret-jwt-token-with-at-least-32-characters-long",
    "PAGERDUTY_ROUTING_KEY": "R0123456789abcdef0123456789abcdef",
    "HEARTBEAT_URL": "https://hc-ping.com/5bf66975-d4c7-4bf5-bcc8-b8d8a82ea278",
    "STREAM_DATABASE_URL": "postgresql://postgres:p%40ss@db.abcd.supabase.co:5432/postgres",
}


@pytest.fixture
def deployed(monkeypatch, tmp_path):
    """What `cdk deploy` leaves: placeholder secrets and a Secrets stack with one output each."""
    monkeypatch.chdir(ROOT)
    with mock_aws():
        sm = boto3.client("secretsmanager", region_name=REGION)
        arns = {}
        for name in NAMES:
            placeholder = json.loads(outputs.PLACEHOLDER_TEMPLATE) | {"nonce": "AbCdEf0123456789"}
            arns[name] = sm.create_secret(Name=f"Config{name}-x1", SecretString=json.dumps(placeholder))["ARN"]
        template = {
            "Resources": {"Anchor": {"Type": "AWS::SNS::Topic"}},
            "Outputs": {outputs.secret_output_key(n): {"Value": arn} for n, arn in arns.items()},
        }
        boto3.client("cloudformation", region_name=REGION).create_stack(
            StackName=CONFIG.stack_name(outputs.SECRETS), TemplateBody=json.dumps(template))
        yield arns


def run(*args):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def env_file(tmp_path, values, name=".env.production"):
    from tavari_dr.core.envfile import dump

    path = tmp_path / name
    path.write_text(dump(values))
    return path


def test_push_is_a_dry_run_by_default_and_shows_names_only(deployed, tmp_path):
    code, out = run("secrets", "push", "--env", "dev", "--env-file", str(env_file(tmp_path, FULL_ENV)))
    assert code == 0, out
    assert "13 added, 0 changed, 0 unchanged, 0 unknown, 0 not in file" in out
    assert "dry run: nothing written" in out
    assert "abcd.supabase.co" not in out and "sk_test" not in out  # never values
    sm = boto3.client("secretsmanager", region_name=REGION)
    assert secrets_lib.is_placeholder(sm.get_secret_value(SecretId=deployed["SUPABASE_URL"])["SecretString"])


def test_push_apply_then_pull_reproduces_the_file_exactly(deployed, tmp_path):
    source = tmp_path / "source.env"
    source.write_text(
        "# production settings\r\n"
        + "".join(f"export {k}={json.dumps(v)}\r\n" for k, v in FULL_ENV.items()))
    code, out = run("secrets", "push", "--env", "dev", "--env-file", str(source), "--apply")
    assert code == 0, out
    assert "wrote 13 secret(s)" in out
    code, out = run("secrets", "push", "--env", "dev", "--env-file", str(source))
    assert "0 added, 0 changed, 13 unchanged" in out

    restored = tmp_path / ".env.restored"
    code, out = run("secrets", "pull", "--env", "dev", "--out", str(restored))
    assert code == 0, out
    assert stat.S_IMODE(restored.stat().st_mode) == 0o600
    assert parse(restored.read_text()) == parse(source.read_text()) == FULL_ENV


def test_push_reports_changed_and_missing_entries(deployed, tmp_path):
    run("secrets", "push", "--env", "dev", "--env-file", str(env_file(tmp_path, FULL_ENV)), "--apply")
    partial = {"SUPABASE_URL": "https://new.supabase.co", "SUPABASE_ANON_KEY": FULL_ENV["SUPABASE_ANON_KEY"]}
    code, out = run("secrets", "push", "--env", "dev", "--env-file", str(env_file(tmp_path, partial, "p.env")),
                    "--apply")
    assert code == 0
    assert "changed     SUPABASE_URL" in out and "unchanged   SUPABASE_ANON_KEY" in out
    assert "1 added" not in out and "11 not in file" in out
    sm = boto3.client("secretsmanager", region_name=REGION)
    assert sm.get_secret_value(SecretId=deployed["SUPABASE_URL"])["SecretString"] == "https://new.supabase.co"


def test_unknown_keys_are_refused_unless_skipped(deployed, tmp_path):
    path = env_file(tmp_path, {**FULL_ENV, "NOT_DECLARED": "x"})
    code, out = run("secrets", "push", "--env", "dev", "--env-file", str(path), "--apply")
    assert code == 1
    assert "NOT_DECLARED" in out and "--skip-unknown" in out
    sm = boto3.client("secretsmanager", region_name=REGION)
    assert secrets_lib.is_placeholder(sm.get_secret_value(SecretId=deployed["SUPABASE_URL"])["SecretString"])
    code, out = run("secrets", "push", "--env", "dev", "--env-file", str(path), "--apply", "--skip-unknown")
    assert code == 0 and "wrote 13 secret(s)" in out


@pytest.mark.parametrize("content", ["A=1\nA=2\n", "NO_EQUALS_SIGN\n", 'A="unterminated\n'])
def test_malformed_env_file_is_a_usage_error(deployed, tmp_path, content):
    path = tmp_path / "bad.env"
    path.write_text(content)
    code, out = run("secrets", "push", "--env", "dev", "--env-file", str(path))
    assert code == 2
    assert "bad.env:" in out and "Traceback" not in out


def test_pull_refuses_to_overwrite_without_force(deployed, tmp_path):
    run("secrets", "push", "--env", "dev", "--env-file", str(env_file(tmp_path, FULL_ENV)), "--apply")
    existing = tmp_path / "existing.env"
    existing.write_text("KEEP=me\n")
    code, out = run("secrets", "pull", "--env", "dev", "--out", str(existing))
    assert code == 2 and "exists; pass --force" in out
    assert existing.read_text() == "KEEP=me\n"
    existing.chmod(0o644)
    code, out = run("secrets", "pull", "--env", "dev", "--out", str(existing), "--force")
    assert code == 0
    assert parse(existing.read_text()) == FULL_ENV
    assert stat.S_IMODE(existing.stat().st_mode) == 0o600


def test_pull_with_unset_required_entries_writes_the_rest_and_fails(deployed, tmp_path):
    run("secrets", "push", "--env", "dev", "--env-file",
        str(env_file(tmp_path, {"SUPABASE_URL": FULL_ENV["SUPABASE_URL"]})), "--apply")
    out_file = tmp_path / "partial.env"
    code, out = run("secrets", "pull", "--env", "dev", "--out", str(out_file))
    assert code == 1
    assert "required entries without a value: SUPABASE_ANON_KEY" in out
    assert parse(out_file.read_text()) == {"SUPABASE_URL": FULL_ENV["SUPABASE_URL"]}


def test_check_fails_on_placeholders_and_passes_once_pushed(deployed, tmp_path):
    code, out = run("secrets", "check", "--env", "dev")
    assert code == 1
    assert "placeholder" in out and "8 entries failed" in out  # the 8 required ones
    assert "SENTRY_DSN" in out and "unset (optional)" in out
    run("secrets", "push", "--env", "dev", "--env-file", str(env_file(tmp_path, FULL_ENV)), "--apply")
    code, out = run("secrets", "check", "--env", "dev", "--max-age-days", "30")
    assert code == 0, out
    assert "all 13 entries ok" in out


def test_check_reports_a_missing_secret(deployed, tmp_path):
    run("secrets", "push", "--env", "dev", "--env-file", str(env_file(tmp_path, FULL_ENV)), "--apply")
    boto3.client("secretsmanager", region_name=REGION).delete_secret(
        SecretId=deployed["ALERT_WEBHOOK_URL"], ForceDeleteWithoutRecovery=True)
    code, out = run("secrets", "check", "--env", "dev")
    assert code == 1
    assert "ALERT_WEBHOOK_URL" in out and "missing" in out


def test_check_flags_stale_entries():
    entry = CONFIG.secrets.all_entries[0]
    old = datetime(2026, 1, 1, tzinfo=UTC)
    state = secrets_lib.SecretState(entry, "arn", exists=True, value="v", last_changed=old)
    (row,) = secrets_lib.check([state], max_age_days=90, now=old + timedelta(days=91))
    assert row.status == "stale" and row.failed
    (row,) = secrets_lib.check([state], max_age_days=90, now=old + timedelta(days=89))
    assert row.status == "ok"


def test_missing_stack_says_what_to_do(monkeypatch):
    monkeypatch.chdir(ROOT)
    with mock_aws():
        code, out = run("secrets", "check", "--env", "dev")
    assert code == 1
    assert "stack Tavari-Dev-Secrets is not deployed in eu-west-1" in out


def test_explicit_arns_need_no_stack(deployed, tmp_path):
    boto3.client("cloudformation", region_name=REGION).delete_stack(StackName="Tavari-Dev-Secrets")
    args = [f"--secret-arn={n}={a}" for n, a in deployed.items()]
    code, out = run("secrets", "push", "--env", "dev", "--env-file", str(env_file(tmp_path, FULL_ENV)),
                    "--apply", *args)
    assert code == 0, out
    code, out = run("secrets", "check", "--env", "dev", *args)
    assert code == 0, out


def test_usage_errors_exit_2(deployed, tmp_path):
    assert run("secrets", "check", "--env", "staging")[0] == 2
    assert run("secrets", "check", "--env", "dev", "--secret-arn", "NOPE")[0] == 2
    assert run("secrets", "check")[0] == 2


def test_module_entry_point_runs():
    result = subprocess.run([sys.executable, "-m", "tavari_dr", "secrets", "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "push" in result.stdout and "pull" in result.stdout and "check" in result.stdout


def test_pull_from_the_dr_replica_when_the_primary_region_is_down(monkeypatch, tmp_path):
    """Replicas keep the primary's name; --from-replica reads them in --dr-region."""
    monkeypatch.chdir(ROOT)
    with mock_aws():
        dr = boto3.client("secretsmanager", region_name="eu-central-1")
        arns = {n: dr.create_secret(Name=f"Config{n}-x1", SecretString=FULL_ENV[n])["ARN"] for n in NAMES}
        primary_arns = [f"--secret-arn={n}={secrets_lib.replica_arn(a, REGION)}" for n, a in arns.items()]
        out_file = tmp_path / "from-dr.env"
        code, out = run("secrets", "pull", "--env", "dev", "--out", str(out_file), "--from-replica",
                        "--dr-region", "eu-central-1", *primary_arns)
        assert code == 0, out
        assert parse(out_file.read_text()) == FULL_ENV
        code, out = run("secrets", "pull", "--env", "dev", "--out", str(tmp_path / "x.env"), "--from-replica",
                        *primary_arns)
        assert code == 2 and "has no DR region" in out
