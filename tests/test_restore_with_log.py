"""The monthly restore test of the newest dump PLUS its change log (tavari_dr.verification.restore_with_log), on
real PostgreSQL with Supabase's role layout and moto: to the newest segment's last commit, then the checks that
need no ground truth (row counts, sequences past the highest ids, no foreign-key orphans)."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from tavari_dr.changes.capture import setup
from tavari_dr.changes.segment import list_segments
from tavari_dr.verification import restore_with_log as rwl
from tests import changes_harness as h
from tests.test_changes_edges import (  # noqa: F401 - fixtures' helpers  # noqa: F401 - the same cluster and moto
    PUB,
    SLOT,
    admin,
    aws,
    commit,
    dump,
    no_slots_left,
    pg,
)

pytestmark = pytest.mark.postgres


def test_the_newest_dump_and_its_log_are_restored_to_the_newest_segment_and_checked(pg, aws):  # noqa: F811
    source = h.database(pg)
    setup(source, PUB, SLOT)
    running = h.Running(h.capture(source, aws)).started()
    commit(source, "INSERT INTO auth.users VALUES ('00000000-0000-0000-0000-000000000001', 'a@example.com')")
    dump(pg, aws, source)
    for n in range(5):  # after the dump: only the log holds these (bigserial ids past the dump's sequence)
        commit(source, "INSERT INTO public.accounts (owner, name) VALUES "
                       "('00000000-0000-0000-0000-000000000001', %s)", f"after {n}")
    x, _ = commit(source, "INSERT INTO public.notes VALUES (1, 'last', 'after the dump')")
    running.wait_for(x)
    running.stop()
    expected = h.rows(source)
    now = h.server_now(source) + timedelta(minutes=1)
    point = rwl.newest_point(aws.s3, aws.bucket, verifier=aws.signing.verifier, change_verifier=aws.changes.verifier,
                             now=now)
    assert point.why_not is None and point.to is not None
    scratch = admin(h.database(pg, "SELECT 1"))
    result = rwl.restore_test(aws.s3, aws.bucket, scratch, point, verifier=aws.signing.verifier,
                              change_verifier=aws.changes.verifier, pg_bin=pg.client_bin, jobs=1)
    assert result.ok, result.checks
    names = {name: passed for name, passed, _ in result.checks}
    assert names["change log replayed to the second"] and names["sequences past the highest ids"]
    assert names["foreign keys hold"]
    assert h.rows(scratch) == expected  # the log's rows, not the dump's alone

    # The checks fail, naming what, on a restored database that is not consistent.
    with psycopg.connect(scratch, autocommit=True) as conn:
        conn.execute("SELECT setval('public.accounts_id_seq', 1)")
        conn.execute("SET session_replication_role = replica")  # what a restore's data load runs under
        conn.execute("INSERT INTO public.accounts (id, owner, name) VALUES "
                     "(100, '00000000-0000-0000-0000-0000000000ff', 'orphan')")
        behind, orphans = rwl.sequences_behind(conn), rwl.foreign_key_orphans(conn)
    assert behind == ["public.accounts.id: sequence public.accounts_id_seq is at 1, the rows reach 100"]
    assert orphans == ["public.accounts accounts_owner_fkey: 1 row(s) reference no auth.users row"]

    # The newest segment gone (hidden by a delete marker): the test fails naming why, it never restores the
    # dump alone, or to an earlier point, as a pass.
    keys = list_segments(aws.s3, aws.bucket, point.to - timedelta(hours=2), now)
    aws.s3.delete_object(Bucket=aws.bucket, Key=keys[-1].key)
    broken = rwl.restore_test(aws.s3, aws.bucket, admin(h.database(pg, "SELECT 1")), point,
                              verifier=aws.signing.verifier, change_verifier=aws.changes.verifier,
                              pg_bin=pg.client_bin, jobs=1)
    assert not broken.ok and broken.checks[0][0] == "change log to the newest segment"
    assert f"cannot show what the database held at {point.to.isoformat()}" in broken.checks[0][2], broken.checks


def test_without_a_change_log_the_test_restores_the_dump_alone_and_says_so(pg, aws):  # noqa: F811
    source = h.database(pg)
    dump(pg, aws, source)
    point = rwl.newest_point(aws.s3, aws.bucket, verifier=aws.signing.verifier, change_verifier=aws.changes.verifier,
                             now=h.server_now(source))
    assert point.to is None and "no change log covers the newest backup" in point.why_not
