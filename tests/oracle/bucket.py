"""The bucket restore oracle: seeded random version and delete-marker histories with their true instants
(to the microsecond, many changes inside one second), restored to random instants by every planner the
tool has, and compared with the truth at each instant.

The truth is what a reader of the bucket saw at T: per key, the last write whose true instant is at or
before T. S3 knows less: its LastModified is a whole second (ListObjectVersions, HEAD, the inventory), so
the tool must either equal the truth on every key it decides, or leave the key alone and say why (the
CLI then exits 1 naming it: `_refuse_ambiguous`). A key it decides wrongly is SILENT-WRONG.

Three planners see the same history:
- ``listing``: the listing planner on moto, applied for real (restore.apply_plan), the bucket read back
  afterwards; moto's ListObjectVersions document lists a page's versions before its delete markers and
  pages are a random 1 to 5 entries long, so keys split across page boundaries;
- ``document``: the listing planner reading S3's own interleaved documents (tests/s3_listing), pages cut
  at random entries;
- ``inventory``: the inventory planner (ADR 0023) from a Parquet inventory taken part-way through the
  history and a change feed that begins at a random event and may miss records (a gap in the feed).
Each restore point is one of: a random instant, an instant in the very second of a write (before or
after it), or a whole second.
"""

from __future__ import annotations

import random
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from freezegun import freeze_time
from moto import mock_aws

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

BUCKET = "bkt"
NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
PLANNERS = ("listing", "document", "inventory")


@dataclass(frozen=True)
class Op:
    key: str
    delete: bool
    at: datetime  # the true instant, to the microsecond

    @property
    def second(self) -> int:
        return int((self.at - BASE).total_seconds())


def history(rng: random.Random) -> list[Op]:
    """A few keys (two folders), 4 to 30 writes; most gaps under a second, so seconds hold several."""
    keys = [f"{folder}{name}.pdf" for folder in ("", "inv/") for name in "abc"][: rng.randint(2, 6)]
    at, ops = BASE + timedelta(microseconds=rng.randrange(1_000_000)), []
    n = rng.randint(4, 30)
    pause = rng.randrange(n) if rng.random() < 0.4 else None  # hours apart: the feed's gap check applies after
    for j in range(n):
        at += timedelta(microseconds=rng.choice((rng.randrange(1, 400_000), rng.randrange(1, 400_000),
                                                 rng.randrange(1_000_000, 4_000_000),
                                                 rng.randrange(10_000_000, 60_000_000))))
        if j == pause:
            at += ip.FEED_GAP_GRACE * 2
        key = rng.choice(keys)
        ever = any(o.key == key for o in ops)
        ops.append(Op(key, ever and rng.random() < 0.35, at))
    return ops


def restore_points(rng: random.Random, ops: list[Op], n: int) -> list[datetime]:
    first, last = ops[0].at, ops[-1].at
    points = []
    for _ in range(n):
        op = rng.choice(ops)
        second = op.at.replace(microsecond=0)
        points.append(rng.choice((
            first + (last - first) * rng.random(),                         # anywhere
            second + timedelta(microseconds=rng.randrange(1_000_000)),     # in a write's second
            second, second + timedelta(seconds=1),                         # whole seconds
            op.at - timedelta(microseconds=1), op.at,                      # just before, at a write
        )))
    return points


def truth(ops: list[Op], at: datetime) -> dict[str, int]:
    """key -> index of the op whose object a reader saw at ``at`` (keys absent then are left out)."""
    seen: dict[str, int | None] = {}
    for i, op in enumerate(ops):
        if op.at <= at:
            seen[op.key] = None if op.delete else i
    return {k: i for k, i in seen.items() if i is not None}


def body(i: int) -> bytes:
    return f"version {i}".encode()  # every write its own bytes


@dataclass
class Outcome:
    seed: int = 0
    points: int = 0
    exact: int = 0
    refused_points: int = 0  # points refused whole, or with some keys left alone (the CLI exits 1)
    refused: Counter = field(default_factory=Counter)       # reason -> points (one point may give two reasons)
    silent_wrong: list[str] = field(default_factory=list)
    by_planner: Counter = field(default_factory=Counter)


class BucketHistory:
    """One seeded history through the three planners."""

    def __init__(self, seed: int, *, points: int = 6) -> None:
        self.seed, self.rng = seed, random.Random(seed)
        self.ops = history(self.rng)
        self.points = restore_points(self.rng, self.ops, points)
        self.outcome = Outcome(seed)

    # ------------------------------------------------------------------ judging

    def _judge(self, planner: str, at: datetime, decided: dict[str, int | None] | None, left: dict[str, str],
                refused: str | None = None) -> None:
        """``decided``: key -> op index the restore left visible (None: absent) for every key it decided;
        ``left``: keys left alone with the reason given. ``refused``: the whole restore refused, why."""
        o = self.outcome
        o.points += 1
        o.by_planner[planner] += 1
        if refused is not None:
            o.refused_points += 1
            o.refused[f"{planner}: {_reason(refused)}"] += 1
            return
        want = truth(self.ops, at)
        wrong = sorted(k for k, got in (decided or {}).items() if k not in left and want.get(k) != got)
        if wrong:
            o.silent_wrong.append(f"seed {self.seed} {planner} T={at.isoformat()}: {wrong} "
                                  f"got {[(decided or {}).get(k) for k in wrong]} want {[want.get(k) for k in wrong]}")
        elif left:
            o.refused_points += 1
            for why in {_reason(w) for w in left.values()}:
                o.refused[f"{planner} (keys left alone, exit 1): {why}"] += 1
        else:
            o.exact += 1

    # ------------------------------------------------------------------ planners

    def run(self) -> Outcome:
        self._listing_on_moto()
        model = self._model()
        for at in self.points:
            self._document(model, at)
            self._inventory(model, at)
        return self.outcome

    def _listing_on_moto(self) -> None:
        """Each point restored in place on a fresh moto bucket holding the history, then read back."""
        page = self.rng.randint(1, 5)
        for at in self.points:
            with mock_aws():
                s3 = boto3.client("s3", region_name="eu-west-1")
                s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
                s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
                for i, op in enumerate(self.ops):
                    with freeze_time(op.at):
                        if op.delete:
                            s3.delete_object(Bucket=BUCKET, Key=op.key)
                        else:
                            s3.put_object(Bucket=BUCKET, Key=op.key, Body=body(i))
                saved, r.LIST_PAGE_SIZE = r.LIST_PAGE_SIZE, page
                try:
                    with freeze_time(NOW):
                        plan = r.plan_restore(s3, BUCKET, at, now=NOW)
                        with tempfile.TemporaryDirectory() as work:
                            r.apply_plan(s3, plan, journal=r.Journal(Path(work) / "j.jsonl"), concurrency=1)
                except r.PlanError as err:
                    self._judge("listing", at, None, {}, refused=str(err))
                    continue
                finally:
                    r.LIST_PAGE_SIZE = saved
                left = {a["key"]: a["reason"] for a in plan.ambiguous + plan.contradicted}
                visible = {k: int(v["body"].split()[-1]) for k, v in r.visible_state(s3, BUCKET).items()}
                keys = {op.key for op in self.ops}
                self._judge("listing", at, {k: visible.get(k) for k in keys}, left)

    def _model(self) -> Model:
        m = Model()
        for op in self.ops:
            m.add(op.key, delete=op.delete, second=op.second)
        return m

    def _decided_from_plan(self, m: Model, plan: r.Plan) -> dict[str, int | None]:
        """Apply a plan to the model's current state: key -> op index visible after it."""
        index = {e.version_id: i for i, e in enumerate(m.events)}
        now: dict[str, int | None] = {}
        for i, e in enumerate(m.events):
            now[e.key] = None if e.delete else i
        for a in plan.actions:
            if a.action == r.DELETE_MARKER:
                now[a.key] = None
            elif a.action == r.COPY:
                now[a.key] = index[a.version_id]
            else:  # the history holds no archived versions and no tags
                raise AssertionError(f"unexpected action {a.action}")
        return now

    def _document(self, m: Model, at: datetime) -> None:
        entries = m.s3_order()
        cuts = sorted(self.rng.sample(range(1, len(entries)), k=min(len(entries) - 1, self.rng.randint(0, 4))))
        try:
            plan = r.plan_restore(VersionStub(m, cuts).client, BUCKET, at, now=NOW)
        except r.PlanError as err:
            self._judge("document", at, None, {}, refused=str(err))
            return
        left = {a["key"]: a["reason"] for a in plan.ambiguous + plan.contradicted}
        self._judge("document", at, self._decided_from_plan(m, plan), left)

    def _inventory(self, m: Model, at: datetime) -> None:
        n = len(m.events)
        taken_after = self.rng.randint(0, n)
        feed_since = self.rng.randint(0, taken_after)  # the feed starts no later than the inventory (contract)
        # A gap in the feed: records lost of versions the inventory lists, written when the feed had been
        # running long enough that each must have one (contract §4; ADR 0023). A record lost of a version
        # written after the inventory is invisible to any plan: the feed canary's alarm watches for that.
        first = m.events[feed_since].when if feed_since < n else None
        drop = {e.version_id for e in m.events[feed_since:taken_after]
                if first and e.when > first + ip.FEED_GAP_GRACE and self.rng.random() < 0.3}
        with tempfile.TemporaryDirectory() as work:
            inventory = write_inventory(inventory_rows(m, taken_after), Path(work) / "inv", 1, self.rng)
            records = [x for x in feed_records(m, feed_since) if x["version_id"] not in drop]
            feed = write_feed([*records, canary_record()], Path(work) / "feed", 1, duplicate=0.2, rng=self.rng)
            engine = ip.DuckDbEngine(inventory, feed, memory_limit="256MB", threads=1, temp_directory=Path(work))
            try:
                plan, _ = ip.plan_from_inventory(VersionStub(m, []).client, engine, BUCKET, at, now=NOW,
                                                 feed_first_day=BASE.replace(hour=0))
            except r.PlanError as err:
                self._judge("inventory", at, None, {}, refused=str(err))
                return
        left = {a["key"]: a["reason"] for a in plan.ambiguous + plan.contradicted}
        self._judge("inventory", at, self._decided_from_plan(m, plan), left)


def _reason(text: str) -> str:
    """A refusal's reason without its instance details (times, keys, counts), for the tally."""
    import re

    text = re.sub(r"\d{4}-\d\d-\d\dT[\d:.]+(\+00:00|Z)?", "<time>", text)
    text = re.sub(r"s3://\S+", "<bucket>", text)
    text = re.sub(r"\b(a|b|c)\.pdf|inv/\S+\.pdf|\bv\d+", "<key>", text)
    return re.sub(r"(?<![A-Za-z])\d+", "N", text)[:160]


def run(seed: int, **options: Any) -> Outcome:
    return BucketHistory(seed, **options).run()
