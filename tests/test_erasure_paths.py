"""The erasure ledger on every path, by the environment's own account map: a table the environment adds
to data_export.datasets (here public.profiles, with a foreign key to auth.users) loses an erased
account's row on a full restore, a --table restore and `erasure apply`, and the rows go in the
catalog's foreign-key order (or nothing goes, the constraint named). Real PostgreSQL, S3 and KMS on moto."""

from __future__ import annotations

import ast
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from tavari_dr.cli import main
from tavari_dr.core import accountmap
from tavari_dr.core.config import DEFAULT_DATASETS, Dataset
from tavari_dr.database import backup as d
from tavari_dr.database import erasure
from tests.backups import backup_s3
from tests.conftest import ROOT, owners

pytestmark = [pytest.mark.postgres, pytest.mark.moto]
REGION = "eu-west-1"
BUCKET = "tavari-db-backups"
TUESDAY = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
ERASED = TUESDAY + timedelta(hours=5)
PROFILES = Dataset("profiles", "public.profiles", "user", "user_id")
CONFIGURED = (*DEFAULT_DATASETS, PROFILES)


@pytest.fixture
def s3(monkeypatch):
    monkeypatch.setenv("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required")
    with backup_s3(BUCKET, REGION) as client:
        yield client


def add_profiles(url: str) -> None:
    """The environment's extra table: personal data keyed by the user, referencing the account."""
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE public.profiles (user_id uuid PRIMARY KEY REFERENCES auth.users (id), "
                     "phone text, home_address text)")
        conn.execute("INSERT INTO public.profiles SELECT id, '+48 600 000 00' || row_number() OVER (ORDER BY id), "
                     "'ul. Długa ' || row_number() OVER (ORDER BY id) FROM auth.users")


def cdk_json(tmp_path: Path) -> Path:
    context = json.loads((ROOT / "cdk.json").read_text())
    context["context"]["environments"]["dev"]["data_export"] = {
        "datasets": [d.__dict__ for d in CONFIGURED]}
    path = tmp_path / "cdk.json"
    path.write_text(json.dumps(context))
    return path


def profile(url: str, account: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM public.profiles WHERE user_id = %s", (account,)).fetchone()[0]


def erase_live(url: str, s3, account: str) -> None:
    """What the app does: record the erasure (with the account's businesses), delete its rows by the map."""
    with psycopg.connect(url) as conn:
        businesses = [str(b) for b in accountmap.business_ids(conn, [account])]
        erasure.apply_erasures(conn, [erasure.LedgerEntry(account, ERASED)], datasets=CONFIGURED)
    erasure.record(s3, BUCKET, account, business_ids=businesses, erased_at=ERASED)


@pytest.fixture
def backed_up(s3, source, signing, tmp_path):
    """The live database with profiles, its nightly backup, then one account erased (rows and ledger)."""
    add_profiles(source)
    d.run_backup(s3, BUCKET, source, signer=signing.signer, reason="nightly", now=TUESDAY)
    erased, kept = owners(source)[:2]
    erase_live(source, s3, erased)
    assert profile(source, erased) == 0 and profile(source, kept) == 1
    return source, erased, kept, cdk_json(tmp_path)


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, [*args, "--region", REGION], catch_exceptions=False)
    return result.exit_code, result.output


def test_a_full_restore_keeps_the_configured_tables_erased_rows_out(backed_up, empty_db, signing):
    _live, erased, kept, config = backed_up
    target = empty_db()
    code, out = cli("db", "restore", "--env", "dev", "--cdk-json", str(config), "--bucket", BUCKET,
                    "--target-url", target, "--signing-key", signing.arn, "--report-bucket", "reports")
    assert code == 0, out
    assert profile(target, erased) == 0 and profile(target, kept) == 1
    with psycopg.connect(target) as conn:
        assert conn.execute("SELECT count(*) FROM auth.users WHERE id = %s", (erased,)).fetchone()[0] == 0


def test_a_table_restore_copies_no_erased_row_of_a_configured_table(backed_up, empty_db, signing):
    live, erased, kept, config = backed_up
    code, out = cli("db", "restore", "--env", "dev", "--cdk-json", str(config), "--bucket", BUCKET,
                    "--target-url", live, "--table", "public.profiles", "--scratch-url", empty_db(),
                    "--signing-key", signing.arn, "--report-bucket", "reports")
    assert code == 0, out
    with psycopg.connect(live) as conn:
        (schema,) = [r[0] for r in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'restored_%'")]
        copied = {str(r[0]) for r in conn.execute(f"SELECT user_id FROM {schema}.profiles")}  # noqa: S608
    assert erased not in copied and kept in copied and len(copied) == len(owners(live))


def test_erasure_apply_reads_the_environments_map(backed_up, empty_db, signing, s3):
    _live, erased, kept, config = backed_up
    # A restore the CLI did not run (Supabase's own): the erased account is back, profile and all.
    restored = empty_db()
    d.restore(s3, BUCKET, "latest", restored, verifier=signing.verifier, datasets=CONFIGURED)
    with psycopg.connect(restored) as conn:  # put the pre-erasure state back, as a foreign restore would
        conn.execute("INSERT INTO auth.users (id, email) VALUES (%s, 'back@example.com')", (erased,))
        conn.execute("INSERT INTO public.profiles VALUES (%s, '+48 1', 'back')", (erased,))
    code, out = cli("erasure", "apply", "--env", "dev", "--cdk-json", str(config), "--bucket", BUCKET,
                    "--target-url", restored, "--report-bucket", "reports")
    assert code == 0, out
    assert profile(restored, erased) == 0 and profile(restored, kept) == 1


# --------------------------------------------------------------------------- foreign-key order


def make_chain(url: str) -> None:
    """profile_notes references profiles: the map lists profiles first, the catalog says notes first."""
    add_profiles(url)
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE public.profile_notes (id serial PRIMARY KEY, "
                     "user_id uuid NOT NULL REFERENCES public.profiles (user_id), note text)")
        conn.execute("INSERT INTO public.profile_notes (user_id, note) SELECT user_id, 'n' FROM public.profiles")


NOTES = Dataset("profile_notes", "public.profile_notes", "user", "user_id")


def test_the_ledger_deletes_child_tables_first_whatever_the_maps_order(source):
    make_chain(source)
    account = owners(source)[0]
    with psycopg.connect(source) as conn:
        removed = erasure.apply_erasures(conn, [erasure.LedgerEntry(account, ERASED)],
                                         datasets=(*DEFAULT_DATASETS, PROFILES, NOTES))
    assert removed["public.profiles"] == 1 and removed["public.profile_notes"] == 1
    assert removed["auth.users"] == 1 and profile(source, account) == 0


def test_a_foreign_key_from_outside_the_map_fails_naming_it_and_removes_nothing(source):
    make_chain(source)
    account = owners(source)[0]
    before = profile(source, account)
    with psycopg.connect(source) as conn, pytest.raises(accountmap.AccountMapError,
                                                        match="profile_notes_user_id_fkey of public.profile_notes"):
        erasure.apply_erasures(conn, [erasure.LedgerEntry(account, ERASED)], datasets=CONFIGURED)
    assert before == 1 and profile(source, account) == 1
    with psycopg.connect(source) as conn:
        assert conn.execute("SELECT count(*) FROM auth.users WHERE id = %s", (account,)).fetchone()[0] == 1


def test_a_cycle_of_foreign_keys_fails_before_any_delete_naming_them(source):
    make_chain(source)
    with psycopg.connect(source) as conn:
        conn.execute("ALTER TABLE public.profiles ADD COLUMN pinned int REFERENCES public.profile_notes (id)")
    account = owners(source)[0]
    cycle = "profile_notes_user_id_fkey, profiles_pinned_fkey form a cycle"
    with psycopg.connect(source) as conn, pytest.raises(accountmap.AccountMapError, match=cycle):
        erasure.apply_erasures(conn, [erasure.LedgerEntry(account, ERASED)],
                               datasets=(*DEFAULT_DATASETS, PROFILES, NOTES))
    assert profile(source, account) == 1


# --------------------------------------------------------------------------- every caller passes the map


CALLS = {"restore", "restore_tables", "restore_over", "restore_to", "restore_before", "reapply", "apply_erasures"}


def test_every_runtime_restore_call_passes_the_environments_datasets():
    """The built-in map is a default for tests and scripts; no path of the runtime may fall back to it."""
    missing = []
    for path in sorted((ROOT / "tavari_dr").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            owner = node.func.value
            if node.func.attr not in CALLS or not isinstance(owner, ast.Name) or owner.id not in {
                    "db", "db_lib", "erasure", "partial", "overwrite", "pitr", "scope_lib"}:
                continue
            names = {k.arg for k in node.keywords}
            if "datasets" not in names and None not in names:  # **restore_options passes what it was given
                missing.append(f"{path.relative_to(ROOT)}:{node.lineno} {owner.id}.{node.func.attr}")
    assert missing == []
