"""The Supabase project's configuration: snapshotted beside the nightly dump (no secrets), pinned by the
signed manifest, and written back with `tavari-dr supabase restore-config` through the documented
update calls — against a loopback server answering as the Management API reference documents."""

from __future__ import annotations

import copy
import io
import json
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from tavari_dr.cli import main
from tavari_dr.configbackup import supabase_config as sc
from tavari_dr.core import metrics
from tavari_dr.database import backup as d
from tavari_dr.drill import demo_data
from tests.backups import backup_s3
from tests.http_stub import RoutedServer

pytestmark = [pytest.mark.postgres, pytest.mark.moto]
REGION = "eu-west-1"
BUCKET = "tavari-db-backups"
REF = "abcdefghijklmnopqrst"
TUESDAY = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
SECRET_VALUES = ("smtp-password-1", "google-oauth-secret-2", "twilio-token-3", "jwt-secret-4", "hook-secret-5",
                 "+15550100")

# The documented answers (Management API reference, the 200 responses of each GET).
PROJECT = {
    "/config/auth": {"site_url": "https://app.tavari.example", "jwt_exp": 3600, "disable_signup": False,
                     "refresh_token_rotation_enabled": True, "smtp_host": "smtp.example", "smtp_user": "mailer",
                     "smtp_pass": "smtp-password-1", "external_google_enabled": True,
                     "external_google_client_id": "client-id", "external_google_secret": "google-oauth-secret-2",
                     "sms_twilio_auth_token": "twilio-token-3",
                     "hook_custom_access_token_secrets": "hook-secret-5", "sms_test_otp": "+15550100=123456",
                     "uri_allow_list": "https://app.tavari.example/**"},
    "/config/database/postgres": {"statement_timeout": "8s", "max_connections": 90},
    "/config/database/pooler": [{"identifier": REF, "database_type": "PRIMARY", "is_using_scram_auth": True,
                                 "db_user": "postgres", "db_host": "aws-0-eu-west-1.pooler.supabase.com",
                                 "db_port": 6543, "db_name": "postgres",
                                 "connection_string": "postgres://postgres.ref:[YOUR-PASSWORD]@host:6543/postgres",
                                 "default_pool_size": 15, "max_client_conn": 200, "pool_mode": "transaction"}],
    "/network-restrictions": {"entitlement": "allowed", "config": {"dbAllowedCidrs": ["203.0.113.0/24"],
                                                                   "dbAllowedCidrsV6": ["2001:db8::/32"]},
                              "status": "applied", "updated_at": "2026-11-01T00:00:00Z"},
    "/postgrest": {"db_schema": "public,graphql_public", "max_rows": 1000, "db_extra_search_path": "public,extensions",
                   "db_pool": None, "jwt_secret": "jwt-secret-4"},
    "/config/storage": {"fileSizeLimit": 52428800, "features": {"imageTransformation": {"enabled": True},
                                                                "s3Protocol": {"enabled": False}}},
    "/ssl-enforcement": {"currentConfig": {"database": True}, "appliedSuccessfully": True},
}


class ManagementApi(RoutedServer):
    """The project's configuration behind the documented calls: each GET answers the current state, each
    update changes it the way its reference page says (PATCH merges, apply replaces the CIDR lists, PUT
    ssl-enforcement sets currentConfig). ``refuse`` answers every request with that status."""

    def __init__(self) -> None:
        self.state = copy.deepcopy(PROJECT)
        self.refuse: int | None = None
        super().__init__(self.route)

    def route(self, method: str, path: str, body):
        if self.refuse:
            return self.refuse, {"message": "refused"}
        prefix = f"/v1/projects/{REF}"
        if not path.startswith(prefix):
            return 404, {"message": "no such project"}
        resource = path[len(prefix):]
        if method == "GET" and resource in self.state:
            return 200, self.state[resource]
        if method == "PATCH" and resource == "/config/database/pooler":
            self.state[resource][0].update(body)
            return 200, {k: self.state[resource][0][k] for k in ("default_pool_size", "pool_mode")}
        if method == "PATCH" and resource in self.state:
            self.state[resource].update(body)
            return 200, self.state[resource]
        if method == "POST" and resource == "/network-restrictions/apply":
            self.state["/network-restrictions"]["config"] = dict(body)
            return 201, self.state["/network-restrictions"]
        if method == "PUT" and resource == "/ssl-enforcement":
            self.state[resource] = {"currentConfig": body["requestedConfig"], "appliedSuccessfully": True}
            return 200, self.state[resource]
        return 405, {"message": f"{method} {resource} is not documented"}

    def writes(self) -> list[tuple[str, str]]:
        return [(r["method"], r["path"].split(REF, 1)[1]) for r in self.requests if r["method"] != "GET"]


@pytest.fixture
def api():
    server = ManagementApi()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def s3():
    with backup_s3(BUCKET, REGION) as client:
        yield client


def test_the_snapshot_keeps_every_setting_and_no_secret(api):
    document = sc.snapshot(api.url, REF, "sbp_token", now=TUESDAY)
    raw = sc.encode(document)
    for secret in SECRET_VALUES:
        assert secret.encode() not in raw, secret
    assert set(document["sections"]) == {s.name for s in sc.SECTIONS} and document["unavailable"] == {}
    auth = document["sections"]["auth"]
    assert auth["values"]["site_url"] == "https://app.tavari.example"
    assert auth["values"]["refresh_token_rotation_enabled"] is True and auth["values"]["jwt_exp"] == 3600
    assert auth["excluded"] == ["external_google_secret", "hook_custom_access_token_secrets", "sms_test_otp",
                                "sms_twilio_auth_token", "smtp_pass"]
    assert document["sections"]["postgrest"]["excluded"] == ["jwt_secret"]
    assert document["sections"]["pooler"]["values"] == {"default_pool_size": 15, "pool_mode": "transaction"}
    assert document["sections"]["network_restrictions"]["values"] == PROJECT["/network-restrictions"]["config"]
    assert document["sections"]["ssl_enforcement"]["values"] == {"database": True}
    assert {r["headers"]["Authorization"] for r in api.requests} == {"Bearer sbp_token"}
    assert sorted(r["path"] for r in api.requests) == sorted(f"/v1/projects/{REF}{p}" for p in PROJECT)


def test_nightly_backup_snapshot_then_restore_config_shows_the_diff_and_writes_it_back(
        s3, pg, api, signing, monkeypatch):
    monkeypatch.setenv("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required")
    monkeypatch.setenv("TAVARI_SUPABASE_URL", f"https://{REF}.supabase.co")
    monkeypatch.setenv("TAVARI_SUPABASE_ACCESS_TOKEN", "sbp_token")
    source = pg.create_database("config_source")
    demo_data.create_supabase_like(source)
    demo_data.seed(source, businesses=1, calls=1, messages=1)
    runner = CliRunner()

    def run(*args):
        result = runner.invoke(main, [*args, "--region", REGION, "--bucket", BUCKET, "--signing-key", signing.arn],
                               catch_exceptions=False)
        return result.exit_code, result.output

    code, out = run("db", "backup", "--reason", "nightly", "--database-url", source, "--supabase-config",
                    "--supabase-api-url", api.url)
    assert code == 0 and "Supabase configuration snapshotted beside it" in out, out
    opened = d.find_backup(s3, BUCKET, "latest", verifier=signing.verifier)
    artifact = opened.manifest.artifacts[sc.ARTIFACT]  # pinned by the signed manifest
    assert artifact["key"] == f"{opened.entry.prefix}/{sc.ARTIFACT}" and not opened.findings
    body = io.BytesIO()
    d.fetch_verified(s3, BUCKET, opened.manifest, sc.ARTIFACT, body)
    assert sc.decode(body.getvalue())["project_ref"] == REF
    code, out = run("db", "verify", "--quick", "--report-bucket", "reports")
    assert code == 0, out  # the extra artifact is the backup's own, not a stranger
    # The project drifts (or a new one starts from defaults) ...
    api.state["/config/auth"].update(site_url="http://localhost:3000", smtp_pass="rotated-since")
    api.state["/config/database/pooler"][0]["default_pool_size"] = 30
    api.state["/network-restrictions"]["config"] = {"dbAllowedCidrs": ["0.0.0.0/0"], "dbAllowedCidrsV6": ["::/0"]}
    api.state["/postgrest"]["max_rows"] = 50
    api.state["/config/storage"]["fileSizeLimit"] = 1024
    api.state["/ssl-enforcement"]["currentConfig"] = {"database": False}
    api.requests.clear()
    code, out = run("supabase", "restore-config", "--from", opened.manifest.backup_id, "--dry-run",
                    "--supabase-api-url", api.url)
    assert code == 0, out
    for line in ('auth.site_url: "http://localhost:3000" -> "https://app.tavari.example"',
                 "pooler.default_pool_size: 30 -> 15", "postgrest.max_rows: 50 -> 1000",
                 "storage.fileSizeLimit: 1024 -> 52428800", "ssl_enforcement.database: false -> true",
                 'network_restrictions.dbAllowedCidrs: ["0.0.0.0/0"] -> ["203.0.113.0/24"]',
                 "dry run: 7 setting(s) differ; nothing was changed", "auth.smtp_pass", "postgrest.jwt_secret"):
        assert line in out, line
    assert "rotated-since" not in out and api.writes() == []
    code, out = run("supabase", "restore-config", "--supabase-api-url", api.url, "--report-bucket", "reports")
    assert code == 0 and "the project now matches the snapshot" in out, out
    assert sorted(api.writes()) == sorted([
        ("PATCH", "/config/auth"), ("PATCH", "/config/database/pooler"), ("POST", "/network-restrictions/apply"),
        ("PATCH", "/postgrest"), ("PATCH", "/config/storage"), ("PUT", "/ssl-enforcement")])
    bodies = {(r["method"], r["path"].split(REF, 1)[1]): r["body"] for r in api.requests if r["method"] != "GET"}
    assert bodies[("PATCH", "/config/auth")] == {"site_url": "https://app.tavari.example"}  # changed keys only
    assert bodies[("PUT", "/ssl-enforcement")] == {"requestedConfig": {"database": True}}
    assert bodies[("POST", "/network-restrictions/apply")] == PROJECT["/network-restrictions"]["config"]
    assert api.state["/config/auth"]["smtp_pass"] == "rotated-since"  # secrets are never written
    (audit_key,) = [o["Key"] for o in s3.list_objects_v2(Bucket="reports", Prefix="audit/supabase_restore_config/")
                    ["Contents"]]
    audit = json.loads(s3.get_object(Bucket="reports", Key=audit_key)["Body"].read())
    assert audit["outcome"].startswith("restored: ") and audit["target"] == {"project_ref": REF}
    code, out = run("supabase", "restore-config", "--supabase-api-url", api.url, "--dry-run")
    assert code == 0 and "already matches the snapshot" in out


def test_a_refused_snapshot_keeps_the_dump_fails_the_job_and_alarms(s3, pg, api, signing, monkeypatch):
    monkeypatch.setenv("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required")
    monkeypatch.setenv("TAVARI_SUPABASE_URL", f"https://{REF}.supabase.co")
    monkeypatch.setenv("TAVARI_SUPABASE_ACCESS_TOKEN", "expired")
    published = []
    monkeypatch.setattr(metrics, "put", lambda _cw, values, dims=None: published.append((values, dims)))
    source = pg.create_database("config_refused")
    demo_data.create_supabase_like(source)
    api.refuse = 401
    result = CliRunner().invoke(main, ["db", "backup", "--reason", "nightly", "--database-url", source,
                                       "--supabase-config", "--supabase-api-url", api.url, "--region", REGION,
                                       "--bucket", BUCKET, "--signing-key", signing.arn, "--publish-metrics"])
    assert result.exit_code == 1 and "the dump was taken, but the Supabase configuration snapshot failed" in \
        result.output and "token was refused" in result.output and "Traceback" not in result.output
    opened = d.find_backup(s3, BUCKET, "latest", verifier=signing.verifier)
    assert sc.ARTIFACT not in opened.manifest.artifacts
    assert ({metrics.SUPABASE_CONFIG_SNAPSHOT_FAILED: 1}, None) in published
    assert ({"JobSucceeded": 1}, {"Job": metrics.DB_BACKUP}) in published  # the dump itself succeeded
    result = CliRunner().invoke(main, ["supabase", "restore-config", "--dry-run", "--supabase-api-url", api.url,
                                       "--region", REGION, "--bucket", BUCKET, "--signing-key", signing.arn])
    assert result.exit_code == 1 and "holds no Supabase configuration snapshot" in result.output


def test_only_the_optional_artifact_may_be_added_to_a_backup(s3, pg, signing):
    source = pg.create_database("config_names")
    demo_data.create_supabase_like(source)
    with pytest.raises(d.BackupError, match="not an artifact a backup may hold"):
        d.run_backup(s3, BUCKET, source, signer=signing.signer, reason="x", now=TUESDAY,
                     extra_artifacts={"notes.txt": b"hello"})


def test_the_nightly_task_snapshots_the_configuration_with_the_two_secrets(prod):
    template = prod.templates[prod.stack("DatabaseBackups")]
    (nightly,) = [r["Properties"] for k, r in template["Resources"].items()
                  if r["Type"] == "AWS::ECS::TaskDefinition" and k.startswith("NightlyBackup")]
    (container,) = nightly["ContainerDefinitions"]
    assert "--supabase-config" in container["Command"]
    assert {s["Name"] for s in container["Secrets"]} == {"TAVARI_DATABASE_URL", "TAVARI_SUPABASE_URL",
                                                          "TAVARI_SUPABASE_ACCESS_TOKEN"}
    monitoring = prod.templates[prod.stack("Monitoring")]
    (alarm,) = [r["Properties"] for r in monitoring["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm"
                and r["Properties"].get("MetricName") == metrics.SUPABASE_CONFIG_SNAPSHOT_FAILED]
    assert alarm["AlarmDescription"].endswith("#supabase-config-snapshot-failed")
