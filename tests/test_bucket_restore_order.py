"""Each key's history in S3's listing order, read from the ListObjectVersions document itself.

moto does not interleave versions and delete markers, so the ordering is checked against
documents in S3's response format (tests/s3_listing.py) served to a real botocore client, and
against a model of S3's semantics, with same-second changes and page boundaries anywhere.
"""

from __future__ import annotations

import itertools
import os
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from tavari_dr.bucket import restore as r
from tests.s3_listing import BASE, Model, stub_for

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


def plan(model, cuts, when, *, interleave=True, wrong_is_latest=False):
    stub = stub_for(model.s3_order(), cuts, interleave=interleave, wrong_is_latest=wrong_is_latest)
    return r.plan_restore(stub.client, "bkt", when, now=NOW)


def actions(p):
    return {a.key: (a.action, a.version_id) for a in p.actions}


def ambiguous_keys(p):
    return [a["key"] for a in getattr(p, "ambiguous", [])]  # getattr: the same tests ran against the old planner


def same_second_history():
    """Put and delete within one second before T; re-created after T."""
    m = Model()
    m.add("a.pdf", second=0)
    m.add("a.pdf", delete=True, second=0)
    m.add("a.pdf", second=20)
    return m, BASE + timedelta(seconds=10)


def test_same_second_put_then_delete_before_t_gets_a_delete_marker_from_an_interleaved_listing():
    m, when = same_second_history()
    p = plan(m, [], when)
    assert actions(p) == {"a.pdf": ("delete-marker", None)} and ambiguous_keys(p) == []


def test_same_second_put_then_delete_in_a_listing_that_does_not_interleave_is_ambiguous():
    m, when = same_second_history()
    p = plan(m, [], when, interleave=False)
    assert p.actions == [] and ambiguous_keys(p) == ["a.pdf"]
    assert "does not interleave" in p.ambiguous[0]["reason"]


def test_delete_then_put_in_one_second_restores_the_version():
    m = Model()
    m.add("a.pdf", second=0)
    m.add("a.pdf", delete=True, second=5)
    v = m.add("a.pdf", second=5)  # re-created in the same second as the delete
    m.add("a.pdf", delete=True, second=20)
    p = plan(m, [2], BASE + timedelta(seconds=10))
    assert actions(p) == {"a.pdf": ("copy", v.version_id)}


def test_is_latest_is_not_trusted_across_pages():
    m = Model()
    for key in ("k0", "k1", "k2"):
        m.add(key, second=0)
        m.add(key, second=10)
        m.add(key, second=30)
    at_t = {e.key: e.version_id for e in m.events if e.second == 10}
    for cuts in ([4], [5], [2, 4, 7]):
        p = plan(m, cuts, BASE + timedelta(seconds=20), wrong_is_latest=True)
        assert actions(p) == {k: ("copy", v) for k, v in at_t.items()}, cuts


def test_a_marker_newer_by_time_than_a_multipart_version_is_ambiguous_without_interleaving():
    m = Model()
    m.add("big.bin", second=0)
    m.add("big.bin", delete=True, second=8)
    m.add("big.bin", second=5, multipart=True)  # began before the delete, completed after it
    # S3 lists the multipart version first (it is the newest); a non-interleaving document can't say.
    stub = stub_for(m.s3_order(), [], interleave=False)
    p = r.plan_restore(stub.client, "bkt", BASE + timedelta(seconds=9), now=NOW)
    assert p.actions == [] and ambiguous_keys(p) == ["big.bin"] and "multipart" in p.ambiguous[0]["reason"]
    interleaved = stub_for(m.s3_order(), [], interleave=True).client
    assert ambiguous_keys(r.plan_restore(interleaved, "bkt", BASE + timedelta(seconds=9), now=NOW)) == []


def test_a_same_second_pair_across_a_page_boundary_is_ambiguous_without_interleaving():
    m = Model()
    m.add("a.pdf", second=0)
    m.add("a.pdf", delete=True, second=3)
    m.add("a.pdf", second=3)
    m.add("a.pdf", second=9)
    # Page 1: v4, v3 (versions only); page 2: the marker v2 and v1, versions listed first.
    stub = stub_for(m.s3_order(), [2], interleave=False)
    p = r.plan_restore(stub.client, "bkt", BASE + timedelta(seconds=5), now=NOW)
    assert p.actions == [] and ambiguous_keys(p) == ["a.pdf"]


def test_without_the_document_the_order_is_unknown_and_never_guessed():
    """A client whose responses carry no body (botocore's Stubber): boto3's two lists only."""
    import boto3
    from botocore.stub import Stubber

    client = boto3.client("s3", region_name="eu-west-1", aws_access_key_id="t", aws_secret_access_key="t")  # noqa: S106
    at = [BASE, BASE + timedelta(seconds=20)]
    stub = Stubber(client)
    stub.add_response("get_bucket_versioning", {"Status": "Enabled"})
    stub.add_response("list_object_versions", {
        "Versions": [{"Key": "a", "VersionId": "v3", "IsLatest": True, "LastModified": at[1], "Size": 3},
                     {"Key": "a", "VersionId": "v1", "IsLatest": False, "LastModified": at[0], "Size": 1}],
        "DeleteMarkers": [{"Key": "a", "VersionId": "v2", "IsLatest": False, "LastModified": at[0]}],
        "IsTruncated": False})
    with stub:
        p = r.plan_restore(client, "bkt", BASE + timedelta(seconds=10), now=NOW)
    assert p.actions == [] and ambiguous_keys(p) == ["a"]


# --------------------------------------------------------------------------- property


event = st.tuples(st.sampled_from(["a", "b", "c/d"]), st.booleans(), st.sampled_from([0, 0, 1, 2]))


@st.composite
def histories(draw):
    m, second = Model(), 0
    for key, delete, gap in draw(st.lists(event, min_size=1, max_size=14)):
        second += gap
        m.add(key, delete=delete, second=second)
    first = m.events[0].second
    when = BASE + timedelta(seconds=draw(st.integers(min_value=first, max_value=second + 1)))
    cuts = draw(st.lists(st.integers(min_value=1, max_value=len(m.events)), max_size=4))
    return m, when, cuts


def _ambiguous_in_model(m, key, when):
    """A version and a delete marker of ``key`` share a second, and that second decides the state
    at T or now (the only thing a non-interleaving listing cannot tell)."""
    events = m.of(key)
    deciding = {e.second for e in (m.state_at(key, when), events[-1]) if e is not None}
    return any(len({e.delete for e in events if e.second == s}) > 1 for s in deciding) and not m.in_t_second(key, when)


def _provably_interleaved(order, cuts, key):
    """Does every page that lists ``key`` show a delete marker before a version? Only then can a
    reader tell S3's document from one that lists all versions first (a page whose versions all
    come first reads the same either way)."""
    bounds = [0, *sorted({c for c in cuts if 0 < c < len(order)}), len(order)]
    pages = [order[a:b] for a, b in itertools.pairwise(bounds)]
    return all(any(e.delete and not later.delete for i, e in enumerate(page) for later in page[i + 1:])
               for page in pages if any(e.key == key for e in page))


@settings(max_examples=int(os.environ.get("TAVARI_HYPOTHESIS_EXAMPLES", "100")), deadline=None)
@given(histories(), st.booleans())
def test_an_interleaved_listing_gives_exactly_the_state_at_t(history, wrong_is_latest):
    m, when, cuts = history
    p = plan(m, cuts, when, wrong_is_latest=wrong_is_latest)
    ambiguous = set(ambiguous_keys(p))
    expected = m.expected_actions(when)
    assert actions(p) == {k: v for k, v in expected.items() if k not in ambiguous}
    # A key written in T's own second is ambiguous whatever the document (whole-second times);
    assert {k for k in m.keys() if m.in_t_second(k, when)} <= ambiguous  # noqa: SIM118 (Model.keys)
    for key in ambiguous - {k for k in m.keys() if m.in_t_second(k, when)}:  # noqa: SIM118
        # otherwise only where the document cannot show it interleaves, and a tie decides
        assert _ambiguous_in_model(m, key, when) and not _provably_interleaved(m.s3_order(), cuts, key)


@settings(max_examples=int(os.environ.get("TAVARI_HYPOTHESIS_EXAMPLES", "100")), deadline=None)
@given(histories())
def test_a_listing_that_does_not_interleave_is_right_or_says_ambiguous(history):
    m, when, cuts = history
    p = plan(m, cuts, when, interleave=False, wrong_is_latest=True)
    ambiguous = set(ambiguous_keys(p))
    expected = m.expected_actions(when)
    assert actions(p) == {k: v for k, v in expected.items() if k not in ambiguous}
    assert {k for k in m.keys() if m.in_t_second(k, when)} <= ambiguous  # noqa: SIM118 (Model.keys)
    for key in ambiguous:
        assert _ambiguous_in_model(m, key, when) or m.in_t_second(key, when), (key, p.ambiguous)
    for key in m.keys():  # noqa: SIM118 (Model.keys, not a dict)
        if _ambiguous_in_model(m, key, when) and key not in ambiguous:
            # Not flagged although a pair shares a deciding second: only right if both orders agree.
            assert expected.get(key) == actions(p).get(key)
