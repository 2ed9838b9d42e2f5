"""The restore pipeline (ADR 0014) on a real PostgreSQL with S3 on moto: every artifact downloaded and
verified before the target is touched, the free-space refusal, then pre-data, data and post-data in
that order (indexes and constraints built over the loaded rows) — for directory-format backups and
for the custom-format backups written before them."""

from __future__ import annotations

import io
import json
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from tavari_dr.cli import main
from tavari_dr.database import backup as d
from tests.backups import backup_s3
from tests.test_backup_fixtures import FIXTURES, replay

pytestmark = [pytest.mark.postgres, pytest.mark.moto]
REGION = "eu-west-1"
BUCKET = "tavari-db-backups"
_databases = iter(range(10_000))

# An event trigger in the target that records, for every index and constraint created, the query and
# how many rows its table held at that moment. It lives in `extensions`, which restores never treat
# as user data.
DDL_LOG = """
CREATE SCHEMA IF NOT EXISTS extensions;
CREATE TABLE extensions.ddl_log (seq bigserial, query text, rel text, rows bigint);
CREATE FUNCTION extensions.log_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$
DECLARE
  command record;
  rel regclass;
  n bigint;
BEGIN
  IF current_query() !~* '(ADD CONSTRAINT|CREATE (UNIQUE )?INDEX)' THEN
    RETURN;
  END IF;
  FOR command IN SELECT * FROM pg_event_trigger_ddl_commands() LOOP
    IF command.object_type = 'index' THEN
      SELECT indrelid::regclass INTO rel FROM pg_index WHERE indexrelid = command.objid;
    ELSIF command.object_type = 'table' THEN
      rel := command.objid::regclass;
    ELSE
      CONTINUE;
    END IF;
    EXECUTE format('SELECT count(*) FROM %s', rel) INTO n;
    INSERT INTO extensions.ddl_log (query, rel, rows) VALUES (current_query(), rel::text, n);
  END LOOP;
END $$;
CREATE EVENT TRIGGER log_ddl ON ddl_command_end WHEN TAG IN ('CREATE INDEX', 'ALTER TABLE')
  EXECUTE FUNCTION extensions.log_ddl();
"""


@pytest.fixture
def s3():
    with backup_s3(BUCKET, REGION) as client:
        yield client



def logged_target(pg) -> str:
    url = pg.create_database(f"pipeline_target_{next(_databases)}")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(DDL_LOG)
    return url


def ddl_log(url: str) -> list[tuple[str, str, int]]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT query, rel, rows FROM extensions.ddl_log ORDER BY seq").fetchall()


def assert_built_over_the_rows(target: str, tables: dict[str, int]) -> None:
    """Every user table's primary key, foreign keys and indexes were created when its rows were in."""
    user = [(q, rel, rows) for q, rel, rows in ddl_log(target) if rel.startswith("public.")]
    assert user, "no index or constraint of a user table was logged"
    created = {rel for _, rel, _ in user}
    assert "public.messages" in created and any("FOREIGN KEY" in q for q, rel, _ in user if rel == "public.messages")
    assert any("CREATE INDEX" in q for q, rel, _ in user if rel == "public.messages")
    for query, rel, rows in user:
        assert rows == tables[rel], f"{rel} held {rows} of its {tables[rel]} rows when this ran: {query.strip()}"


def test_indexes_and_constraints_are_created_after_the_rows(s3, source, pg, signing):
    manifest = d.run_backup(s3, BUCKET, source, signer=signing.signer, reason="nightly")
    assert manifest.data_format == "directory"
    target = logged_target(pg)
    result = d.restore(s3, BUCKET, "latest", target, verifier=signing.verifier, jobs=2)
    assert result.ok, result.checks
    assert manifest.tables["public.messages"] == 250
    assert_built_over_the_rows(target, manifest.tables)
    assert list(result.timings) == ["download", "roles", "pre-data", "data", "post-data", "row counts"]


def recorded_format(fixture: Path) -> str:
    return json.loads(json.loads((fixture / "manifest.json").read_text())["manifest"]).get("data_format", "custom")


def test_there_are_fixtures_of_both_data_formats():
    assert {recorded_format(f) for f in FIXTURES} == {"custom", "directory"}


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.name for f in FIXTURES])
def test_recorded_backups_of_either_format_restore_in_the_same_order(fixture, pg):
    """Custom-format backups (data.dump, before ADR 0014) too: their data loads before their indexes."""
    from tests.backups import Signing

    expected = json.loads((fixture / "expected.json").read_text())
    with backup_s3(BUCKET) as s3:
        signing = Signing()
        replay(s3, signing, fixture)
        opened = d.find_backup(s3, BUCKET, expected["backup_id"], verifier=signing.verifier)
        assert opened.manifest.data_format == recorded_format(fixture)
        assert ("data.dump" in opened.manifest.artifacts) == (recorded_format(fixture) == "custom")
        target = logged_target(pg)
        result = d.restore(s3, BUCKET, expected["backup_id"], target, verifier=signing.verifier, jobs=2)
    assert result.ok, result.checks
    assert_built_over_the_rows(target, {t: v["rows"] for t, v in expected["tables"].items()})


def test_the_steps_run_each_section_once_in_order_with_jobs(s3, source, signing, tmp_path):
    manifest = d.run_backup(s3, BUCKET, source, signer=signing.signer, reason="nightly")
    d.download_verified(s3, BUCKET, manifest, tmp_path)
    steps = d.restore_steps(manifest, tmp_path, jobs=3)
    assert [s.section for s in steps] == ["pre-data", "data", "data", "post-data"]
    assert [s.archive.name for s in steps] == ["schema.dump", "data", "data", "schema.dump"]
    assert [s.jobs for s in steps] == [1, 1, 3, 3]
    platform, user = (s.use_list.read_text().splitlines() for s in steps[1:3])
    assert platform and all(" TABLE DATA auth " in e or " TABLE DATA storage " in e for e in platform)
    assert any(" TABLE DATA public messages " in e for e in user) and not set(platform) & set(user)
    assert "--jobs=3" in steps[2].command("pg_restore", []) and "--section=post-data" in steps[3].command("x", [])


class Corrupting:
    """The S3 client, with one byte of one artifact flipped on the way (same size: only sha256 can tell)."""

    def __init__(self, real, name: str) -> None:
        self.real, self.name, self.artifact_gets = real, name, 0

    def __getattr__(self, attr):
        return getattr(self.real, attr)

    def get_object(self, **kwargs):
        response = self.real.get_object(**kwargs)
        if "/dumps/" in f"/{kwargs['Key']}" and not kwargs["Key"].endswith("manifest.json"):
            self.artifact_gets += 1
        if kwargs["Key"].endswith(f"/{self.name}"):
            body = bytearray(response["Body"].read())
            body[len(body) // 2] ^= 0xFF
            response["Body"] = io.BytesIO(bytes(body))
        return response


def catalog(url: str) -> dict[str, object]:
    with psycopg.connect(url) as conn:
        return {"schemas": conn.execute("SELECT array_agg(nspname ORDER BY nspname) FROM pg_namespace").fetchone()[0],
                "relations": conn.execute("SELECT count(*) FROM pg_class").fetchone()[0],
                "roles": conn.execute("SELECT array_agg(rolname ORDER BY rolname) FROM pg_roles").fetchone()[0]}


def test_a_corrupted_artifact_is_refused_before_anything_is_written_to_the_target(s3, source, pg, signing):
    manifest = d.run_backup(s3, BUCKET, source, signer=signing.signer, reason="nightly")
    data = [n for n in manifest.artifacts if n.startswith("data/")]
    largest = max(data, key=lambda n: manifest.artifacts[n]["bytes"])
    target = pg.create_database(f"pipeline_target_{next(_databases)}")
    before = catalog(target)
    with pytest.raises(d.BackupError, match=f"{largest}: sha256 .* does not match the manifest"):
        d.restore(s3=Corrupting(s3, largest), bucket=BUCKET, which="latest", target_url=target,
                  verifier=signing.verifier)
    assert catalog(target) == before  # no platform schema, no role, no table: nothing was written


def test_a_backup_larger_than_the_free_space_is_refused_up_front_in_one_line(s3, source, pg, signing, monkeypatch,
                                                                            tmp_path):
    manifest = d.run_backup(s3, BUCKET, source, signer=signing.signer, reason="nightly")
    target = pg.create_database(f"pipeline_target_{next(_databases)}")
    before = catalog(target)
    monkeypatch.setattr(d, "free_bytes", lambda path: manifest.total_bytes - 1)
    counting = Corrupting(s3, "no-such-artifact")
    with pytest.raises(d.BackupError) as raised:
        d.restore(counting, BUCKET, "latest", target, verifier=signing.verifier, work_dir=tmp_path)
    assert f"backup {manifest.backup_id} is " in str(raised.value) and f"{tmp_path} has " in str(raised.value)
    assert "--work-dir" in str(raised.value) and "\n" not in str(raised.value)
    assert counting.artifact_gets == 0 and catalog(target) == before

    # The CLI: that line, exit 1, no traceback.
    monkeypatch.setenv("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required")
    result = CliRunner().invoke(main, ["db", "restore", "--bucket", BUCKET, "--target-url", target, "--signing-key",
                                       signing.arn, "--report-bucket", "reports", "--work-dir", str(tmp_path),
                                       "--region", REGION])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "free: every artifact is downloaded and verified before the restore starts" in result.output
    assert "Traceback" not in result.output


def test_room_enough_restores_from_the_named_work_dir_and_leaves_nothing_there(s3, source, pg, signing, tmp_path):
    d.run_backup(s3, BUCKET, source, signer=signing.signer, reason="nightly", work_dir=tmp_path, jobs=2)
    target = pg.create_database(f"pipeline_target_{next(_databases)}")
    result = d.restore(s3, BUCKET, "latest", target, verifier=signing.verifier, work_dir=tmp_path, jobs=2)
    assert result.ok and all(expected == found for expected, found in result.table_counts.values())
    assert list(Path(tmp_path).iterdir()) == []


def test_the_data_compression_follows_the_client_version():
    assert d.client_major("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)") == 15
    assert d.client_major("pg_dump (PostgreSQL) 17.2") == 17
    assert d.data_compression(15) == ("gzip", "1")
    assert d.data_compression(16) == d.data_compression(17) == ("zstd", "zstd:1")
    with pytest.raises(d.BackupError, match="major version"):
        d.client_major("something else")
    assert d.default_jobs() >= 2


def test_a_backup_of_a_newer_pg_dump_is_refused_up_front_by_an_older_pg_restore(s3, source, pg, signing,
                                                                                  monkeypatch):
    manifest = d.run_backup(s3, BUCKET, source, signer=signing.signer, reason="nightly")
    newer = d.client_major(manifest.pg_dump_version) + 2  # the job image's 17 against this machine's 15
    monkeypatch.setattr(d, "find_backup", lambda *a, **k: d.OpenedBackup(None, d.Manifest(**{
        **manifest.__dict__, "pg_dump_version": f"pg_dump (PostgreSQL) {newer}.2", "data_compression": "zstd"}),
        d.SIGNED, "v"))
    counting = Corrupting(s3, "no-such-artifact")
    target = pg.create_database(f"pipeline_target_{next(_databases)}")
    with pytest.raises(d.BackupError, match=f"written by pg_dump {newer} .zstd., which pg_restore {newer - 2} "
                                            f"cannot read: use the PostgreSQL {newer} client or later"):
        d.restore(counting, BUCKET, "latest", target, verifier=signing.verifier)
    assert counting.artifact_gets == 0
