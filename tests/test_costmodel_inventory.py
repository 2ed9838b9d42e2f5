"""The cost model's inventory planning path (ADR 0023): priced at benches/plan_scale.py's measured rate,
chosen over listing for an in-place restore only where it is faster, never for a new bucket."""

from __future__ import annotations

import math

from tavari_dr.core import costmodel as m
from tavari_dr.core.costmodel import Calibration, Counts, InventoryPlanRate, Linear, Production

CAL = Calibration(dump=Linear(1.0, 1e-8), restore=Linear(2.0, 1e-7), scan=Linear(0.5, 5e-8), cli_start_seconds=0.3,
                  source={"written_by": "test"})
RATE = InventoryPlanRate(fixed_seconds=2.0, seconds_per_version=5e-6, bytes_per_version=60.0)
COUNTS = Counts(requests={"api": 4, "list": 1, "head": 20, "copy": 15, "delete": 5}, processes=1)


def production(invoices: int) -> Production:
    return Production(dump_bytes=2e9, invoice_count=invoices, invoice_bytes=invoices * 2e5, breach_changed_share=0.01,
                      versions_per_key=2.0)


def test_at_a_hundred_million_versions_the_inventory_path_replaces_the_listing():
    big = production(50_000_000)  # 100 M versions: 100,000 pages x 0.2 s, twice
    listing = m.bucket_restore(COUNTS, 20, big, CAL, into_new_bucket=False)
    inventory = m.bucket_restore(COUNTS, 20, big, CAL, into_new_bucket=False, inventory=RATE)
    assert math.isclose(listing.parts["list versions"], 2 * 100_000 * m.S3_REQUEST_SECONDS)
    assert "list versions" not in inventory.parts
    plan = 2 * (RATE.fixed_seconds + 5e-6 * 1e8)
    fetch = 2 * 1e8 * 60 / m.S3_CONNECTION_BYTES_PER_SECOND
    assert math.isclose(inventory.parts["plan in DuckDB (x2: plan, check after)"], plan)
    assert math.isclose(inventory.parts["fetch inventory and feed (x2: plan, check after)"], fetch)
    assert math.isclose(inventory.seconds, listing.seconds - listing.parts["list versions"] + plan + fetch)
    assert inventory.inputs["planning_seconds"] == {"listing": 40000.0, "inventory": round(plan + fetch, 1)}
    # the per-object part is the same work either way
    assert inventory.parts["per-object requests"] == listing.parts["per-object requests"]


def test_a_small_bucket_keeps_the_listing_and_a_new_bucket_always_does():
    small = production(1_000)  # 2,000 versions: two pages beat DuckDB's start
    estimate = m.bucket_restore(COUNTS, 20, small, CAL, into_new_bucket=False, inventory=RATE)
    assert "list versions" in estimate.parts
    assert estimate.inputs["planning_seconds"]["listing"] < estimate.inputs["planning_seconds"]["inventory"]
    new = m.bucket_restore(COUNTS, 20, production(50_000_000), CAL, into_new_bucket=True, inventory=RATE)
    assert "list versions" in new.parts and "planning_seconds" not in new.inputs


def test_the_committed_rate_names_the_bench_that_measured_it():
    rate = m.load_inventory_plan_rate()
    assert rate is not None and rate.seconds_per_version > 0 and rate.bytes_per_version > 0
    assert rate.source["written_by"] == "benches/plan_scale.py" and rate.source["host"] and rate.source["date"]
