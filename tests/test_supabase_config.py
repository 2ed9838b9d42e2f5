"""The Supabase project's configuration: snapshotted beside the nightly dump (no secrets), pinned by the
signed manifest, and written back with `tavari-dr supabase restore-config` through the specified update
calls — against a loopback server that enforces the Management API's OpenAPI document
(tests/supabase_fake.py; tests/data/supabase_management_api/SOURCE.md)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from tavari_dr.cli import main
from tavari_dr.configbackup import supabase_config as sc
from tavari_dr.core import metrics
from tavari_dr.core.supabase_api import supabase_request
from tavari_dr.database import backup as d
from tavari_dr.drill import demo_data
from tests.backups import backup_s3
from tests.supabase_fake import REF, TOKEN, ManagementApiFake, load_document, project, request_schema, response_schema

pytestmark = [pytest.mark.postgres, pytest.mark.moto]
REGION = "eu-west-1"
BUCKET = "tavari-db-backups"
TUESDAY = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
SECRET_VALUES = ("smtp-password-1", "google-oauth-secret-2", "twilio-token-3", "jwt-secret-4", "hook-secret-5",
                 "+15550100")

PROJECT = project()


@pytest.fixture
def api():
    """The fake Management API (tests/supabase_fake.py): a call or body its OpenAPI document does not allow
    fails the test, whatever the test asserted."""
    server = ManagementApiFake()
    try:
        yield server
    finally:
        server.close()
    assert server.violations == [], server.violations


@pytest.fixture
def s3():
    with backup_s3(BUCKET, REGION) as client:
        yield client


def test_the_snapshot_keeps_every_setting_and_no_secret(api):
    document = sc.snapshot(api.url, REF, TOKEN, now=TUESDAY)
    raw = sc.encode(document)
    for secret in SECRET_VALUES:
        assert secret.encode() not in raw, secret
    assert set(document["sections"]) == {s.name for s in sc.SECTIONS} and document["unavailable"] == {}
    auth = document["sections"]["auth"]
    assert auth["values"]["site_url"] == "https://app.tavari.example"
    assert auth["values"]["refresh_token_rotation_enabled"] is True and auth["values"]["jwt_exp"] == 3600
    assert {"external_google_secret", "hook_custom_access_token_secrets", "sms_test_otp", "sms_twilio_auth_token",
            "smtp_pass"} <= set(auth["excluded"])
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
    monkeypatch.setenv("TAVARI_SUPABASE_ACCESS_TOKEN", TOKEN)
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
    api.state["/config/database/postgres"] = {"statement_timeout": "8s", "max_connections": 120, "work_mem": "64MB"}
    api.requests.clear()
    code, out = run("supabase", "restore-config", "--from", opened.manifest.backup_id, "--dry-run",
                    "--supabase-api-url", api.url)
    assert code == 0, out
    for line in ('auth.site_url: "http://localhost:3000" -> "https://app.tavari.example"',
                 "postgres.max_connections: 120 -> 90", 'postgres.work_mem: "64MB" -> (not set: back to the default)',
                 "postgres: PUT replaces every override with the snapshot's 2 (the full set is sent); "
                 "restart_database=false: no restart",
                 "pooler.default_pool_size: 30 -> 15", "postgrest.max_rows: 50 -> 1000",
                 "storage.fileSizeLimit: 1024 -> 52428800", "ssl_enforcement.database: false -> true",
                 'network_restrictions.dbAllowedCidrs: ["0.0.0.0/0"] -> ["203.0.113.0/24"]',
                 "dry run: 9 setting(s) differ; nothing was changed", "auth.smtp_pass", "postgrest.jwt_secret"):
        assert line in out, line
    assert "rotated-since" not in out and api.writes() == []
    code, out = run("supabase", "restore-config", "--supabase-api-url", api.url, "--report-bucket", "reports")
    assert code == 0 and "the project now matches the snapshot" in out, out
    # Every update the tool can make, each as the specification has it (the fixture fails on any other).
    assert sorted(api.writes()) == sorted((s.method, s.write_path or s.path) for s in sc.SECTIONS) == sorted([
        ("PATCH", "/config/auth"), ("PUT", "/config/database/postgres"), ("PATCH", "/config/database/pooler"),
        ("POST", "/network-restrictions/apply"), ("PATCH", "/postgrest"), ("PATCH", "/config/storage"),
        ("PUT", "/ssl-enforcement")])
    bodies = api.bodies()
    assert bodies[("PATCH", "/config/auth")] == {"site_url": "https://app.tavari.example"}  # changed keys only
    # The full set, and no restart unless asked for; the override added since is gone.
    assert bodies[("PUT", "/config/database/postgres")] == {"statement_timeout": "8s", "max_connections": 90,
                                                            "restart_database": False}
    assert api.state["/config/database/postgres"] == PROJECT["/config/database/postgres"] and api.restarts == 0
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


# --------------------------------------------------------------------------- the contract with the specification


def _drifted(api, **postgres):
    document = sc.snapshot(api.url, REF, TOKEN, now=TUESDAY)
    api.state["/config/database/postgres"] = postgres
    changes, _ = sc.diff(document, api.url, REF, TOKEN)
    return document, changes


def test_the_old_partial_patch_of_the_postgres_settings_is_refused_by_the_specification(api):
    document, changes = _drifted(api, statement_timeout="8s", max_connections=120)
    # The call restore-config used to make: PATCH with the changed keys. The specification has no PATCH there.
    with pytest.raises(sc.SupabaseApiError, match="HTTP 405"):
        supabase_request("PATCH", f"{api.url}/v1/projects/{REF}/config/database/postgres", TOKEN,
                         {"max_connections": 90})
    assert api.violations == [f"PATCH /v1/projects/{REF}/config/database/postgres: PATCH /v1/projects/{REF}"
                              "/config/database/postgres is not in the specification"]
    api.violations.clear()
    sc.apply(document, changes, api.url, REF, TOKEN)
    assert api.writes()[-1] == ("PUT", "/config/database/postgres")
    assert api.bodies()[("PUT", "/config/database/postgres")] == {"statement_timeout": "8s", "max_connections": 90,
                                                                  "restart_database": False}


def test_the_postgres_settings_restart_the_database_only_with_the_operators_flag(api):
    document, changes = _drifted(api, max_connections=120)  # statement_timeout was unset since
    sc.apply(document, changes, api.url, REF, TOKEN)
    assert api.restarts == 0 and api.state["/config/database/postgres"] == PROJECT["/config/database/postgres"]
    document, changes = _drifted(api, max_connections=120)
    lines = []
    sc.apply(document, changes, api.url, REF, TOKEN, restart_database=True, log=lines.append)
    assert api.restarts == 1 and api.bodies()[("PUT", "/config/database/postgres")]["restart_database"] is True
    assert lines == ["postgres: PUT /config/database/postgres (2 setting(s); the database restarts now)"]


def test_the_restart_flag_is_said_in_the_dry_run(s3, pg, api, signing, monkeypatch):
    monkeypatch.setenv("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required")
    monkeypatch.setenv("TAVARI_SUPABASE_URL", f"https://{REF}.supabase.co")
    monkeypatch.setenv("TAVARI_SUPABASE_ACCESS_TOKEN", TOKEN)
    source = pg.create_database("config_restart")
    demo_data.create_supabase_like(source)
    common = ["--region", REGION, "--bucket", BUCKET, "--signing-key", signing.arn, "--supabase-api-url", api.url]
    result = CliRunner().invoke(main, ["db", "backup", "--reason", "nightly", "--database-url", source,
                                       "--supabase-config", *common])
    assert result.exit_code == 0, result.output
    api.state["/config/database/postgres"]["max_connections"] = 120
    result = CliRunner().invoke(main, ["supabase", "restore-config", "--dry-run", "--restart-database", *common])
    assert result.exit_code == 0 and "the database WILL RESTART (--restart-database)" in result.output, result.output
    assert api.restarts == 0 and api.writes() == []
    result = CliRunner().invoke(main, ["supabase", "restore-config", "--restart-database", "--report-bucket", "reports",
                                       *common])
    assert result.exit_code == 0 and api.restarts == 1, result.output


def test_an_update_sends_no_key_its_request_schema_does_not_take(api):
    # An older snapshot kept everything the read gave, the auth config's read-only fields with it.
    document = sc.snapshot(api.url, REF, TOKEN, now=TUESDAY)
    assert "custom_oauth_max_providers" not in document["sections"]["auth"]["values"]
    document["sections"]["auth"]["values"].update(custom_oauth_max_providers=3, site_url="https://old.example")
    changes, _ = sc.diff(document, api.url, REF, TOKEN)
    assert [c.line() for c in changes] == ['auth.site_url: "https://app.tavari.example" -> "https://old.example"']
    sc.apply(document, changes, api.url, REF, TOKEN)
    assert api.bodies()[("PATCH", "/config/auth")] == {"site_url": "https://old.example"}


def test_a_null_the_update_cannot_take_is_left_for_the_operator_and_the_restore_fails(api):
    document = sc.snapshot(api.url, REF, TOKEN, now=TUESDAY)  # db_pool null: sized by the compute
    api.state["/postgrest"]["db_pool"] = 20
    changes, _ = sc.diff(document, api.url, REF, TOKEN)
    assert [c.line() for c in sc.unwritable(changes)] == ["postgrest.db_pool: 20 -> null"]
    assert sc.apply(document, changes, api.url, REF, TOKEN) == [] and api.writes() == []  # no null sent
    left, _ = sc.diff(document, api.url, REF, TOKEN)
    assert [c.line() for c in left] == ["postgrest.db_pool: 20 -> null"]  # so restore-config exits 1 naming it


def test_every_section_reads_and_writes_as_the_specification_says():
    document = load_document()
    operations = {(method.upper(), path[len("/v1/projects/{ref}"):]) for path, item in document["paths"].items()
                  for method in item}
    for section in sc.SECTIONS:
        write_path = section.write_path or section.path
        assert ("GET", section.path) in operations and (section.method, write_path) in operations, section.name
        request = request_schema(section.method, write_path)
        read = response_schema("GET", section.path)
        if section.name == "network_restrictions":
            read = read["properties"]["config"]
        if section.name == "ssl_enforcement":
            read, request = read["properties"]["currentConfig"], request["properties"]["requestedConfig"]
        takes, gives = set(request["properties"]) - {section.restart_key}, set(read["properties"])
        if section.writable is not None:
            assert set(section.writable) == takes & gives, section.name
        else:
            assert set(section.read_only) == gives - takes and takes <= gives, section.name
        assert set(section.not_nullable) == {k for k in takes & gives if read["properties"][k].get("nullable")
                                             and not request["properties"][k].get("nullable")}, section.name
        if section.restart_key:
            assert request["properties"][section.restart_key] == {"type": "boolean"}
    assert [s.name for s in sc.SECTIONS if s.restart_key] == ["postgres"]


def test_the_fake_refuses_what_the_specification_does_not_allow(api):
    base = f"{api.url}/v1/projects/{REF}"
    with pytest.raises(sc.SupabaseApiError, match="HTTP 400"):
        supabase_request("PATCH", f"{base}/config/auth", TOKEN, {"custom_oauth_max_providers": 5})
    with pytest.raises(sc.SupabaseApiError, match="HTTP 400"):
        supabase_request("PATCH", f"{base}/postgrest", TOKEN, {"db_pool": None})
    with pytest.raises(sc.SupabaseApiError, match="HTTP 400"):
        supabase_request("GET", f"{api.url}/v1/projects/abcd/config/auth", TOKEN)  # a ref is 20 letters
    with pytest.raises(sc.SupabaseApiError, match="HTTP 404"):
        supabase_request("GET", f"{base}/config/everything", TOKEN)
    assert len(api.violations) == 4
    api.violations.clear()
