"""The bucket restore oracle (tests/oracle/bucket.py) on a bounded set of seeds: every key a restore decides
equals the bucket's state at the restore's instant (to the microsecond), whichever planner made the plan, or
the key is left alone naming why; and the oracle is shown to catch a planted bug (the old rule that an entry
written in T's own second counts as before T)."""

from __future__ import annotations

import pytest

from tavari_dr.bucket import restore as r
from tests.oracle import bucket as oracle
from tests.oracle.tally import Tally, record

pytestmark = [pytest.mark.moto, pytest.mark.oracle]

SEEDS = (1, 2, 3, 4)


@pytest.mark.parametrize("seed", SEEDS)
def test_every_bucket_restore_equals_the_truth_or_leaves_the_key_alone_saying_why(seed):
    outcome = oracle.run(seed)
    tally = Tally()
    tally.add(record("bucket", outcome))
    assert not outcome.silent_wrong, "\n".join(tally.lines("bucket"))
    assert outcome.points == 3 * 6 and outcome.exact + outcome.refused_points == outcome.points
    assert set(outcome.by_planner) == set(oracle.PLANNERS)


def test_the_oracle_catches_the_old_same_second_rule(monkeypatch):
    """Planted: an entry written in T's own second counts as at or before T (whole-second times, read as if
    they were exact). The oracle's instants inside a write's second find it within the CI seeds."""
    monkeypatch.setattr(r, "in_second_of", lambda _entries, _when: None)
    found = []
    for seed in SEEDS:
        found += oracle.run(seed).silent_wrong
        if found:
            break
    assert found, "the planted bug went unnoticed"
