"""The status board: rows a person reads at a glance, their levels, the exit code, and the table.

Levels: ``ok`` (green), ``warn`` (yellow: worth knowing, nothing to do now — an alarm that has no data
yet, evidence a young environment cannot have yet) and ``red`` (act). A source that could not be read
is neither: it is listed on its own, one line each, and makes the exit code 2 unless something is red.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

OK, WARN, RED = "ok", "warn", "red"
_COLOURS = {OK: "green", WARN: "yellow", RED: "red"}
_LABELS = {OK: "OK", WARN: "WARN", RED: "RED"}
SECTIONS = ("backups", "changes", "checks", "drills", "alarms", "replication", "batch jobs", "secrets",
            "restores")


@dataclass(frozen=True)
class Row:
    section: str
    item: str
    level: str
    summary: str
    age_seconds: float | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Unreadable:
    source: str
    reason: str


@dataclass
class Board:
    environment: str
    at: str
    rows: list[Row] = field(default_factory=list)
    unreadable: list[Unreadable] = field(default_factory=list)
    requests: dict[str, int] = field(default_factory=dict)  # per source: calls sent (a retry would be one more)

    @property
    def red(self) -> list[Row]:
        return [r for r in self.rows if r.level == RED]

    @property
    def exit_code(self) -> int:
        """0 all green; 1 anything red (something to act on outranks a source that could not be read);
        2 a source could not be read and nothing is red."""
        if self.red:
            return 1
        return 2 if self.unreadable else 0

    def to_json(self) -> dict[str, Any]:
        return {"environment": self.environment, "at": self.at, "exit_code": self.exit_code,
                "rows": [r.to_json() for r in self.rows],
                "unreadable": [asdict(u) for u in self.unreadable], "requests": self.requests}


def age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def lines(board: Board, *, style: Any = None, width: int = 110) -> Iterator[str]:
    """The table: section, item, state, age, summary; ``style(text, fg=...)`` colours the state
    (click.style), None for none."""
    paint = style or (lambda text, **_: text)
    item_width = min(max((len(r.item) for r in board.rows), default=4), 28)
    yield f"tavari-dr status — {board.environment} at {board.at} (from stored evidence)"
    yield f"{'SECTION':<11} {'ITEM':<{item_width}} {'STATE':<5} {'AGE':>8}  SUMMARY"
    for section in SECTIONS:
        for r in (r for r in board.rows if r.section == section):
            summary = r.summary if len(r.summary) <= width else r.summary[:width - 1] + "…"
            state = paint(f"{_LABELS[r.level]:<5}", fg=_COLOURS[r.level], bold=r.level == RED)
            yield f"{section:<11} {r.item[:item_width]:<{item_width}} {state} {age(r.age_seconds):>8}  {summary}"


def verdict(board: Board) -> str:
    counts = {level: sum(1 for r in board.rows if r.level == level) for level in (OK, WARN, RED)}
    red = [f"{r.section}/{r.item}" for r in board.red]
    head = ("RED: " + ", ".join(red[:6]) + (f" and {len(red) - 6} more" if len(red) > 6 else "")) if red else \
        ("could not read every source" if board.unreadable else "all green")
    return f"{head} ({counts[OK]} ok, {counts[WARN]} warn, {counts[RED]} red, {len(board.unreadable)} unreadable)"
