"""Planning from S3 Inventory + the change feed makes the listing planner's plan (ADR 0023).

Each history (tests/s3_listing.Model: same-second changes, page boundaries anywhere) is given to
both planners: the listing planner reads S3's ListObjectVersions documents for it; the inventory
planner reads a Parquet inventory taken part-way through it and the feed's JSON lines (duplicated,
out of order, keys form-encoded) in DuckDB. Their plans must be the same object, and where the
inventory planner cannot order a key (versions older than the feed, in one second) it must say so
for exactly the keys where that decides the outcome.
"""

from __future__ import annotations

import dataclasses
import os
import random
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tavari_dr.bucket import inventory_plan as ip
from tavari_dr.bucket import restore as r
from tests.inventory_files import (
    BASE,
    Model,
    VersionStub,
    canary_record,
    feed_records,
    inventory_rows,
    write_feed,
    write_inventory,
)

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
EXAMPLES = int(os.environ.get("TAVARI_HYPOTHESIS_EXAMPLES", "100"))


def listing_plan(m, cuts, when, *, interleave=True):
    return r.plan_restore(VersionStub(m, cuts, interleave=interleave).client, "bkt", when, now=NOW)


def inventory_plan(m, when, *, taken_after, feed_since=0, parts=(1, 1), duplicate=0.0, seed=0, encode=True,
                   drop=(), extra=(), stub=None, partition_count=None, parts_used=None):
    """The inventory planner's plan: inventory after ``taken_after`` events, feed from ``feed_since``."""
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as work:
        inventory = write_inventory(inventory_rows(m, taken_after), Path(work) / "inv", parts[0], rng)
        records = [x for x in feed_records(m, feed_since, encode=encode) if x["version_id"] not in drop]
        feed = write_feed([*records, canary_record(encode=encode), *extra], Path(work) / "feed", parts[1],
                          duplicate=duplicate, rng=rng)
        engine = ip.DuckDbEngine(inventory, feed, memory_limit="256MB", threads=1, temp_directory=Path(work),
                                 partition_count=partition_count)
        stub = stub or VersionStub(m, [])
        plan, _ = ip.plan_from_inventory(stub.client, engine, "bkt", when, now=NOW,
                                         feed_first_day=BASE.replace(hour=0))
        if parts_used is not None:
            parts_used.extend(p for staged in engine._staged.values() for p in staged)
        return plan


def actions(p):
    return {a.key: (a.action, a.version_id) for a in p.actions}


def ambiguous_keys(p):
    return sorted(a["key"] for a in p.ambiguous)


def same_plan(a, b):
    """Everything but the reasons' wording (the two planners explain ambiguity in their own terms)."""
    strip = [{"key": x["key"]} for x in a.ambiguous], [{"key": x["key"]} for x in b.ambiguous]
    return dataclasses.replace(a, ambiguous=strip[0]) == dataclasses.replace(b, ambiguous=strip[1])


# --------------------------------------------------------------------------- examples


def same_second_history():
    """Put and delete within one second before T; re-created after T (ADR 0013's first case)."""
    m = Model()
    m.add("a.pdf", second=0)
    m.add("a.pdf", delete=True, second=0)
    m.add("a.pdf", second=20)
    return m, BASE + timedelta(seconds=10)


def test_the_feed_orders_a_same_second_put_and_delete_as_the_listing_does():
    m, when = same_second_history()
    listing = listing_plan(m, [], when)
    assert actions(listing) == {"a.pdf": ("delete-marker", None)}
    for taken_after in range(len(m.events) + 1):  # the inventory before, during and after the history
        assert same_plan(inventory_plan(m, when, taken_after=taken_after), listing), taken_after


def test_a_same_second_pair_older_than_the_feed_is_ambiguous_for_both_planners_that_cannot_see_the_order():
    m, when = same_second_history()
    plan = inventory_plan(m, when, taken_after=3, feed_since=2)  # the feed began after the pair
    assert plan.actions == [] and ambiguous_keys(plan) == ["a.pdf"]
    assert "cannot be known" in plan.ambiguous[0]["reason"]
    # The listing planner, reading a document that does not interleave (moto), cannot see it either.
    assert ambiguous_keys(listing_plan(m, [], when, interleave=False)) == ["a.pdf"]


def test_is_latest_orders_the_newest_entry_older_than_the_feed():
    m = Model()
    m.add("a.pdf", second=0)
    m.add("a.pdf", delete=True, second=0)  # the newest, in the same second: is_latest says which
    p = inventory_plan(m, BASE + timedelta(seconds=5), taken_after=2, feed_since=2)
    assert p.ambiguous == [] and p.actions == [] and p.absent == 1


def test_sequencers_are_compared_right_padded_as_s3_documents():
    """Sequencers 0x...18 and 0x...2 (0x...20 without its trailing zero): left-padding would put the
    second before the first."""
    m = Model()
    for second in range(4):
        m.add("k", second=0, delete=second % 2 == 1)  # four entries in one second, order only by sequencer
    assert ip.SEQUENCER_WIDTH >= 12
    p = inventory_plan(m, BASE + timedelta(seconds=1), taken_after=4)
    assert same_plan(p, listing_plan(m, [], BASE + timedelta(seconds=1)))
    assert p.absent == 1  # the last (a delete marker) is current at T and now


def test_duplicated_and_out_of_order_records_change_nothing():
    m, when = same_second_history()
    listing = listing_plan(m, [], when)
    for seed in range(5):
        assert same_plan(inventory_plan(m, when, taken_after=1, duplicate=0.7, parts=(2, 3), seed=seed), listing)


def test_keys_that_url_encoding_changes_are_decoded_as_the_canary_shows():
    m = Model()
    for key in ("a b+c.pdf", "ü/ä%20x.pdf", "plain.pdf"):
        m.add(key, second=0)
        m.add(key, second=10)
    when = BASE + timedelta(seconds=5)
    listing = listing_plan(m, [], when)
    assert len(listing.actions) == 3
    for encode in (True, False):  # form-encoded lines, or raw ones, told apart by the canary's key
        assert same_plan(inventory_plan(m, when, taken_after=1, encode=encode), listing), encode


def test_no_canary_means_the_key_encoding_is_unknown_and_nothing_is_planned(tmp_path):
    m, when = same_second_history()
    inventory = write_inventory(inventory_rows(m, 3), tmp_path / "inv")
    feed = write_feed(feed_records(m, 0), tmp_path / "feed")
    engine = ip.DuckDbEngine(inventory, feed, memory_limit="256MB", threads=1)
    with pytest.raises(r.PlanError, match="canary"):
        ip.plan_from_inventory(VersionStub(m, []).client, engine, "bkt", when, now=NOW)


def test_a_version_the_feed_never_recorded_makes_its_key_ambiguous():
    m = Model()
    m.add("a.pdf", second=0)
    m.add("b.pdf", second=0)
    m.add("a.pdf", second=4000)      # listed by the inventory, long after the feed began, but no record
    m.add("b.pdf", second=4000)
    plan = inventory_plan(m, BASE + timedelta(seconds=10), taken_after=4, drop={m.events[2].version_id})
    assert ambiguous_keys(plan) == ["a.pdf"] and "gap" in plan.ambiguous[0]["reason"]
    assert actions(plan) == {"b.pdf": ("copy", m.events[1].version_id)}


def test_a_permanent_delete_removes_the_version():
    m = Model()
    m.add("a.pdf", second=0)
    m.add("a.pdf", second=3)
    m.add("a.pdf", second=10)
    gone = {"event_id": "x", "event_time": "2026-11-01T09:00:30Z", "bucket": "bkt", "key": "a.pdf",
            "version_id": m.events[1].version_id, "sequencer": "FFFF", "kind": "permanent_delete", "size": None,
            "etag": None}
    when = BASE + timedelta(seconds=5)
    assert actions(inventory_plan(m, when, taken_after=3)) == {"a.pdf": ("copy", m.events[1].version_id)}
    # v2 (the version at T) no longer exists, whether the inventory still lists it or not: v1 is copied back
    # once S3's listing of the key confirms it.
    truth = VersionStub(Model(events=[m.events[0], m.events[2]]), [])
    for taken_after in (1, 3):
        plan = inventory_plan(m, when, taken_after=taken_after, extra=[gone], stub=truth)
        assert actions(plan) == {"a.pdf": ("copy", m.events[0].version_id)}, taken_after
        assert plan.contradicted == []
    # A forged record: S3 still has v2. The key is reported and left alone, never rolled back to v1.
    for taken_after in (1, 3):
        plan = inventory_plan(m, when, taken_after=taken_after, extra=[gone])
        assert actions(plan) == {} and [c["key"] for c in plan.contradicted] == ["a.pdf"], taken_after
        assert f"S3 lists version {m.events[1].version_id} as current at T" in plan.contradicted[0]["reason"]


def test_a_feed_only_version_near_t_is_asked_for_its_last_modified():
    m = Model()
    m.add("a.pdf", second=0)
    m.add("a.pdf", second=5)
    m.add("a.pdf", second=7)
    when = BASE + timedelta(seconds=5)
    stub = VersionStub(m, [])
    plan = inventory_plan(m, when, taken_after=1, stub=stub)  # both later versions only in the feed
    assert same_plan(plan, listing_plan(m, [], when))
    assert any("versionId=v002" in url for url in stub.heads)


def test_a_multipart_upload_older_than_the_feed_is_ambiguous_where_it_decides():
    m = Model()
    m.add("big.bin", second=0)
    m.add("big.bin", delete=True, second=8)
    m.add("big.bin", second=5, multipart=True)  # began before the delete, completed after it
    when = BASE + timedelta(seconds=9)
    assert ambiguous_keys(inventory_plan(m, when, taken_after=3, feed_since=3)) == []  # is_latest: the upload
    m.add("big.bin", delete=True, second=20)      # now the upload is no longer the newest
    assert ambiguous_keys(inventory_plan(m, when, taken_after=4, feed_since=4)) == ["big.bin"]
    assert same_plan(inventory_plan(m, when, taken_after=4, feed_since=0), listing_plan(m, [], when))


# --------------------------------------------------------------------------- property

KEYS = ["a", "b c+d.pdf", "c/d", "é/%41"]
event = st.tuples(st.sampled_from(KEYS), st.booleans(), st.sampled_from([0, 0, 1, 2]))


@st.composite
def histories(draw):
    m, second = Model(), 0
    for key, delete, gap in draw(st.lists(event, min_size=1, max_size=14)):
        second += gap
        m.add(key, delete=delete, second=second)
    first = m.events[0].second
    when = BASE + timedelta(seconds=draw(st.integers(min_value=first, max_value=second + 1)))
    cuts = draw(st.lists(st.integers(min_value=1, max_value=len(m.events)), max_size=4))
    taken_after = draw(st.integers(min_value=0, max_value=len(m.events)))
    return m, when, cuts, taken_after


def _unknowable(m, key, when, feed_since, taken_after):
    """The model's answer: is the entry current at T or now, for ``key``, one the inventory and feed
    cannot tell? Only entries older than the feed lack an order, and only where no feed entry, and
    not the inventory's latest entry, is at or before the moment, and two of them share its newest second; and
    any key written in T's own second."""
    if m.in_t_second(key, when):
        return True  # written in T's own second: before or after T, whole-second times cannot say
    events = [(i, e) for i, e in enumerate(m.events) if e.key == key]
    latest = [i for i, e in events if i < taken_after][-1:] or [None]
    for cut in (when, None):
        eligible = [(i, e) for i, e in events if cut is None or e.when <= cut]
        if not eligible or any(i >= feed_since for i, _ in eligible):
            continue
        if latest[0] is not None and latest[0] < feed_since and any(i == latest[0] for i, _ in eligible):
            continue
        top = max(e.second for _, e in eligible)
        if sum(1 for _, e in eligible if e.second == top) > 1:
            return True
    return False


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), st.integers(0, 3), st.floats(0, 0.8), st.integers(1, 3), st.integers(1, 3))
def test_with_the_feed_from_the_start_the_plan_is_right_and_the_listing_planners_where_it_decides(
        history, seed, duplicate, inv_parts, feed_parts):
    m, when, cuts, taken_after = history
    listing = listing_plan(m, cuts, when)
    plan = inventory_plan(m, when, taken_after=taken_after, duplicate=duplicate, parts=(inv_parts, feed_parts),
                          seed=seed)
    # The feed orders every key; the listing planner leaves alone a key whose page shows no delete marker
    # before a version (ADR 0013: such a page reads the same as moto's), so it may decide fewer.
    in_t_second = {k for k in m.keys() if m.in_t_second(k, when)}  # noqa: SIM118 (Model.keys)
    assert set(ambiguous_keys(plan)) == in_t_second  # whole-second times: written before or after T is unknown
    assert actions(plan) == {k: v for k, v in m.expected_actions(when).items() if k not in in_t_second}
    undecided = set(ambiguous_keys(listing))
    assert {k: v for k, v in actions(plan).items() if k not in undecided} == actions(listing)
    if not undecided:
        assert same_plan(plan, listing), (plan, listing)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), st.data())
def test_with_the_feed_begun_mid_history_the_plan_is_right_or_says_ambiguous_exactly_where_unknowable(history,
                                                                                                        data):
    m, when, cuts, taken_after = history
    feed_since = data.draw(st.integers(min_value=0, max_value=taken_after))  # the feed starts before the inventory
    listing = listing_plan(m, cuts, when)
    plan = inventory_plan(m, when, taken_after=taken_after, feed_since=feed_since)
    expected = {k for k in m.keys() if  # noqa: SIM118 (Model.keys)
                 _unknowable(m, k, when, feed_since, taken_after)}
    assert set(ambiguous_keys(plan)) == expected
    truth = m.expected_actions(when)
    assert actions(plan) == {k: v for k, v in truth.items() if k not in expected}
    both = expected | set(ambiguous_keys(listing))  # keys either planner leaves alone
    assert {k: v for k, v in actions(plan).items() if k not in both} == {
        k: v for k, v in actions(listing).items() if k not in both}
    decided = len(m.keys()) - len(expected)
    assert plan.keys_in_scope == listing.keys_in_scope and plan.unchanged + plan.absent + len(plan.actions) == decided


# --------------------------------------------------------------------------- partitioned by key range


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), st.data(), st.integers(2, 5), st.booleans())
def test_a_plan_by_key_range_is_the_plan_of_one_query(history, data, partitions, encode):
    """What a large report is planned as (one query per key range) must be the one-query plan, reasons
    and counts included, whatever the feed's start and key encoding."""
    m, when, _, taken_after = history
    feed_since = data.draw(st.integers(min_value=0, max_value=taken_after))
    whole = inventory_plan(m, when, taken_after=taken_after, feed_since=feed_since, encode=encode)
    split = inventory_plan(m, when, taken_after=taken_after, feed_since=feed_since, encode=encode,
                           partition_count=partitions)
    assert split == whole, (split, whole)


def test_many_keys_planned_by_key_range_make_the_same_plan_in_key_order():
    m = Model()
    keys = [f"k{i:03d}/{chr(0x61 + i % 26)} +%2B.pdf" for i in range(60)]
    for i, key in enumerate(keys):  # before the feed: one version a key, two in one second for some
        m.add(key, second=i % 7)
        if i % 5 == 0:
            m.add(key, delete=i % 2 == 0, second=i % 7)
    feed_since = len(m.events)
    for i, key in enumerate(keys):  # in the feed, after T: rewritten or deleted
        if i % 3:
            m.add(key, delete=i % 2 == 0, second=30 + i % 5)
    when = BASE + timedelta(seconds=20)
    whole = inventory_plan(m, when, taken_after=feed_since + 10, feed_since=feed_since)
    used = []
    split = inventory_plan(m, when, taken_after=feed_since + 10, feed_since=feed_since, partition_count=7,
                           parts_used=used)
    assert len(used) == 7 and whole.actions and whole.ambiguous
    assert split == whole
    assert [a.key for a in split.actions] == sorted(a.key for a in split.actions)


def test_the_partition_count_follows_the_report_size_and_memory_limit(monkeypatch):
    assert ip.memory_bytes("3GB") == 3 * 10**9 and ip.memory_bytes("512MiB") == 512 * 2**20
    with pytest.raises(r.PlanError, match="not a size"):
        ip.memory_bytes("lots")
    assert ip.partition_expr("key", []) == "0"
    bounds = ["b", "d", "f"]
    expr = ip.partition_expr("k", bounds)
    import duckdb

    con = duckdb.connect()
    got = {k: con.execute(f"SELECT {expr} AS p FROM (SELECT ? AS k)", [k]).fetchone()[0]  # noqa: S608 (ours)
           for k in ["a", "b", "c", "d", "e", "f", "g"]}
    assert got == {"a": 0, "b": 1, "c": 1, "d": 2, "e": 2, "f": 3, "g": 3}
    m = Model()
    for i in range(40):
        m.add(f"key{i:02d}", second=i)
    monkeypatch.setattr(ip, "BYTES_PER_VERSION", 10_000_000)  # 40 versions x 10 MB over 256 MB: 2 ranges
    used = []
    assert inventory_plan(m, BASE + timedelta(seconds=30), taken_after=40, parts_used=used) == inventory_plan(
        m, BASE + timedelta(seconds=30), taken_after=40, partition_count=1)
    assert len(used) == 2
