"""Judging a drill: every recovery step's counts priced at the production sizes (tavari_dr.core.costmodel),
then the verdicts — RTO per scenario (critical, and all services), the RPO the drill achieved and the
worst case the schedule allows — and what failed. Rendering the report is tavari_dr.drill.report's."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tavari_dr.core import costmodel, metrics, schedule
from tavari_dr.core.config import EnvironmentConfig
from tavari_dr.drill.context import CRITICAL, NON_CRITICAL, Sizes, Step

SCENARIOS = ("1 database corruption", "2 complete system failure", "3 data breach", "4 region outage")


@dataclass
class Verdict:
    passed: bool
    objectives: dict[str, int]  # CRITICAL / NON_CRITICAL -> seconds
    scenarios: dict[str, dict[str, Any]]  # name -> its steps, rto_critical, rto_non-critical, rpo
    rpo_worst_case: dict[str, Any]
    failures: list[str]
    calibration: costmodel.Calibration


def production(config: EnvironmentConfig, sizes: Sizes, versions_per_key: float = 0.0) -> costmodel.Production:
    """Production sizes; a bucket's history is as deep per key as the toy bucket the step listed
    (the drill writes several versions of every invoice, so this errs on the long side)."""
    d = config.drill
    # With the capture on, a database restore goes to a second (restore --to): the newest dump, then up to a
    # day of the change log, in segments of changes.segment_seconds (fewer where fewer changes come).
    replay = d.changes_per_day if config.changes.enabled else 0
    return costmodel.Production(
        dump_bytes=d.database_gb * 1e9, invoice_count=d.invoice_count, invoice_bytes=d.invoice_gb * 1e9,
        breach_changed_share=d.breach_changed_percent / 100,
        versions_per_key=versions_per_key or float(sizes.invoice_versions), replay_changes=replay,
        replay_segments=min(replay, 86_400 / config.changes.segment_seconds))


def price(steps: list[Step], config: EnvironmentConfig, sizes: Sizes, calibration: costmodel.Calibration) -> None:
    """Price every recovery step's counts at the production sizes (tavari_dr.core.costmodel)."""
    archived = config.invoice_bucket.archive_storage_class
    inventory = costmodel.load_inventory_plan_rate() if config.inventory.enabled else None
    for step in steps:
        if step.recovery is None or step.kind is None:
            continue
        estimate = _estimate(step, config, production(config, sizes, step.versions_per_key), calibration,
                             inventory)
        step.model = {**estimate.to_json(), "archive_storage_class": archived}
        step.projected_seconds = round(estimate.seconds, 1)


def _estimate(step: Step, config: EnvironmentConfig, at_scale: costmodel.Production,
              calibration: costmodel.Calibration,
              inventory: costmodel.InventoryPlanRate | None = None) -> costmodel.Estimate:
    """The cost model's formula for the step's kind."""
    match step.kind:
        case "cli":
            return costmodel.cli_steps(step.counts, calibration)
        case "provision":
            return costmodel.provision(step.counts, calibration)
        case "db_restore":
            return costmodel.database_restore(step.counts, at_scale, calibration)
        case "db_scan":
            return costmodel.database_scan(at_scale, calibration)
        case "bucket_restore" | "bucket_restore_new":
            # The state at T of a breach or a loss is recent: its versions are current, never archived
            # (noncurrent versions move to the archive class only after archive_after_days).
            # In place, the faster of listing and `--from-inventory` (ADR 0023) at production size.
            return costmodel.bucket_restore(step.counts, step.toy_actions, at_scale, calibration,
                                            into_new_bucket=step.kind == "bucket_restore_new", inventory=inventory)
        case "bucket_verify":
            return costmodel.bucket_verify(step.counts, at_scale)
        case "health":
            return costmodel.health(len(config.drill.health_endpoints))
    raise ValueError(f"no cost model for step kind {step.kind!r}")


def rpo_worst_case(config: EnvironmentConfig, started: datetime, production: costmodel.Production,
                   calibration: costmodel.Calibration) -> dict[str, Any]:
    """The most data the deployed configuration can lose: the longest gap between two scheduled
    dumps (DST included), plus a dump's duration (a dump that is under way when disaster strikes
    is not usable yet), plus the replication lag objective where the backup may come from the
    DR replica."""
    db = config.database_backups
    year = started.year
    # The loader refuses a dump schedule whose gaps cannot be computed, so this does not raise.
    interval = schedule.max_interval_seconds(db.schedule, db.timezone, year=year)
    duration = costmodel.database_backup(production, calibration)
    lag = config.monitoring.replication_latency_seconds if config.replication.enabled else 0
    dumps_only = interval + duration.seconds + lag
    objective = config.monitoring.rpo_hours * 3600
    answer = {"schedule": db.schedule, "timezone": db.timezone, "year": year,
              "longest_interval_seconds": interval, "backup_duration_seconds": round(duration.seconds, 1),
              "backup_duration_model": duration.to_json(), "replication_lag_objective_seconds": lag,
              "dumps_only_seconds": round(dumps_only, 1), "objective_seconds": objective}
    changes = config.changes
    if not changes.enabled:
        return {**answer, "worst_case_seconds": answer["dumps_only_seconds"], "met": dumps_only <= objective}
    # With the capture, what a disaster loses is what the capture had not yet written off-site: at most the lag
    # its alarm allows (changes.max_lag_seconds, alarmed past it) plus the replication lag where the restore
    # reads the DR replica. A capture that dies is noticed within the stall alarm's bound and period (missing
    # data breaches); until someone acts, the dumps' worst case is what remains, and the report says so.
    capture = changes.max_lag_seconds + lag
    noticed = (metrics.capture_stalled_after_seconds(changes.segment_seconds)
               + metrics.capture_stall_period_seconds(changes.segment_seconds))
    return {**answer, "capture_max_lag_seconds": changes.max_lag_seconds,
            "dead_capture_noticed_within_seconds": noticed, "worst_case_seconds": float(capture),
            "met": capture <= objective and dumps_only <= objective}


def judge(*, config: EnvironmentConfig, sizes: Sizes, steps: list[Step], facts: dict[str, Any], started: datetime,
          error: str | None) -> Verdict:
    calibration = costmodel.load_calibration()
    at_scale = production(config, sizes)
    price(steps, config, sizes, calibration)
    d = config.drill
    objectives = {CRITICAL: d.rto_critical_minutes * 60, NON_CRITICAL: d.rto_non_critical_minutes * 60}
    scenarios: dict[str, Any] = {}
    for step in steps:
        if step.scenario[0].isdigit():
            scenarios.setdefault(step.scenario, {"steps": []})["steps"].append(step)
    scenarios = dict(sorted(scenarios.items()))  # the plan's order, whatever order they were played in
    worst = rpo_worst_case(config, started, at_scale, calibration)
    verdicts: list[bool] = [worst["met"]]
    missed: list[str] = [] if worst["met"] else [
        f"RPO: the configuration allows {max(worst['worst_case_seconds'], worst['dumps_only_seconds']) / 3600:.1f} h "
        f"of data loss (longest gap between dumps {worst['longest_interval_seconds'] / 3600:.1f} h + a dump + "
        "replication lag" + (", what remains once the capture is dead" if "capture_max_lag_seconds" in worst else "")
        + f"), over the objective of {worst['objective_seconds'] / 3600:.0f} h"]
    for name, data in scenarios.items():
        # A scenario whose step failed recovered nothing: the steps that ran before it are no RTO, and
        # its RPO is not met either (what it restored, if anything, was never verified).
        failed = next((s for s in data["steps"] if not s.ok), None)
        for kind, limit in objectives.items():
            # Critical services must be back within the critical RTO; everything within the non-critical one.
            counted = [s for s in data["steps"] if s.recovery == kind or (kind == NON_CRITICAL and s.recovery)]
            measured = sum(s.seconds for s in counted)
            projected = sum(s.projected_seconds or 0 for s in counted)
            data[f"rto_{kind}"] = {"measured_seconds": round(measured, 1), "projected_seconds": round(projected, 1),
                                   "objective_seconds": limit, "met": failed is None and projected <= limit}
            if failed is not None:
                data[f"rto_{kind}"]["failed_at"] = failed.name
            verdicts.append(data[f"rto_{kind}"]["met"])
            if failed is None and not data[f"rto_{kind}"]["met"]:  # (a failed step is listed once, below)
                missed.append(f"{name}: projected RTO ({kind}) {projected / 60:.1f} min is over the "
                              f"objective of {limit / 60:.0f} min")
        achieved = facts.get("rpo", {}).get(name)
        if achieved:
            objective = config.monitoring.rpo_hours * 3600
            data["rpo"] = {**achieved, "objective_seconds": objective,
                           "worst_case_seconds": worst["worst_case_seconds"],
                           "met": failed is None and achieved["data_loss_window_seconds"] <= objective
                           and worst["met"]}
            if failed is not None:
                data["rpo"]["failed_at"] = failed.name
            verdicts.append(data["rpo"]["met"])
    failed_steps = [f"{s.scenario}: {s.name}: {s.detail}" for s in steps if not s.ok]
    missing = sorted(set(SCENARIOS) - set(scenarios)) if not failed_steps else []
    return Verdict(passed=error is None and not failed_steps and all(verdicts) and not missing,
                   objectives=objectives, scenarios=scenarios, rpo_worst_case=worst, calibration=calibration,
                   failures=failed_steps + ([error] if error and not failed_steps else []) + missed)
