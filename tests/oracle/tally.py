"""The figures of a run of the restore oracles, one way for both (tests/oracle/pitr.py, tests/oracle/bucket.py):
each history's outcome as a record (JSON, what a worker process prints), added up into the run's tally."""

from __future__ import annotations

from collections import Counter
from typing import Any


def record(probe: str, outcome: Any, error: str = "") -> dict[str, Any]:
    return {"probe": probe, "seed": outcome.seed, "points": outcome.points, "exact": outcome.exact,
            "refused_points": getattr(outcome, "refused_points", sum(outcome.refused.values())),
            "refused": dict(outcome.refused), "silent_wrong": list(outcome.silent_wrong),
            "skipped": getattr(outcome, "skipped", 0), "events": dict(Counter(getattr(outcome, "events", []))),
            "by_planner": dict(getattr(outcome, "by_planner", {})), "error": error}


class Tally:
    def __init__(self) -> None:
        self.histories = self.points = self.exact = self.refused_points = self.skipped = 0
        self.refused: Counter = Counter()
        self.events: Counter = Counter()
        self.by_planner: Counter = Counter()
        self.silent_wrong: list[str] = []
        self.errors: list[str] = []

    def add(self, r: dict[str, Any]) -> None:
        self.histories += 1
        for name in ("points", "exact", "refused_points", "skipped"):
            setattr(self, name, getattr(self, name) + r[name])
        self.refused.update(r["refused"])
        self.events.update(r["events"])
        self.by_planner.update(r["by_planner"])
        self.silent_wrong += r["silent_wrong"]
        if r["error"]:
            self.errors.append(f"seed {r['seed']}: {r['error']}")

    def lines(self, probe: str) -> list[str]:
        planners = f" ({', '.join(f'{p} {n}' for p, n in sorted(self.by_planner.items()))})" if self.by_planner else ""
        out = [f"{probe}: histories {self.histories}, restore points {self.points}{planners}: exact {self.exact}, "
               f"refused {self.refused_points}, silent-wrong {len(self.silent_wrong)}"
               + (f", no single truth {self.skipped}" if probe == "pitr" else "")
               + (f", oracle errors {len(self.errors)}" if self.errors else "")]
        out += [f"  refused {n}: {reason}" for reason, n in self.refused.most_common()]
        out += [f"  SILENT-WRONG {line}" for line in self.silent_wrong]
        out += [f"  ORACLE ERROR {line}" for line in self.errors]
        if self.events:
            out.append("  events: " + ", ".join(f"{k} {n}" for k, n in sorted(self.events.items())))
        return out
