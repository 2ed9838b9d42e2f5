"""Calendars and schedules: which local day a backup belongs to, and which schedule times DST breaks.

EventBridge Scheduler evaluates a cron expression in the schedule's time zone. When clocks spring
forward it *skips* an invocation whose time does not exist that day; when they fall back it runs a
time that exists twice only once (AWS re:Post, "eventbridge-scheduler-adjust-dst"). A nightly dump at
02:00 Europe/Warsaw is therefore silently skipped on the last Sunday of March: a 48-hour gap against a
24-hour RPO, and no weekly backup that week. Config validation refuses such times with
``dst_conflict``.

A job that runs in every hour of the day is left alone: DST costs it one run, made up within the hour.
Only the minute and hour fields are read here (the rest is EventBridge's to validate): a time of day
is refused if it falls into a gap or an overlap on *any* transition day, whatever the day-of-week and
day-of-month fields say, because governments move the transition day by decree more often than they
move the hour, and a schedule that happens to avoid today's transition weekday would break silently.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# How many years ahead the zone's transitions are read: long enough for any rule the tz database
# already knows to show up, short enough to stay a few milliseconds per zone.
YEARS_AHEAD = 10

_CRON_RE = re.compile(r"^cron\((?P<fields>[^()]+)\)$")
_RATE_RE = re.compile(r"^rate\((?P<n>[1-9]\d*) (?P<unit>minutes?|hours?|days?)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
_MONTHS = {m: i for i, m in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV",
                                       "DEC"), start=1)}
_WEEKDAYS = {d: i for i, d in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"), start=1)}
_STEP_RE = re.compile(r"^(?P<range>\*|\d{1,4}(?:-\d{1,4})?)(?:/(?P<step>\d{1,4}))?$")  # 4 digits: years


class ScheduleError(ValueError):
    """A schedule expression this module cannot read; the message says what is wrong with it."""


def local_date(when: datetime, timezone: str) -> date:
    """The calendar day ``when`` falls on in ``timezone`` (00:30 in Warsaw on the 1st is the 1st,
    although it is still the last day of the previous month in UTC)."""
    if when.tzinfo is None:
        raise ValueError("an aware datetime is needed: a naive one has no calendar day")
    return when.astimezone(ZoneInfo(timezone)).date()


def _field_values(field: str, low: int, high: int, name: str) -> set[int]:
    values: set[int] = set()
    for part in field.split(","):
        match = _STEP_RE.match(part)
        if not match:
            raise ScheduleError(f"the {name} field {field!r} is not a number, range, list or step")
        start, end = low, high
        if match["range"] != "*":
            bounds = [int(b) for b in match["range"].split("-")]
            start, end = bounds[0], bounds[-1]
            if match["step"] and len(bounds) == 1:
                end = high  # "5/15": from 5 to the end of the range, every 15
        step = int(match["step"] or 1)
        if not (low <= start <= end <= high) or step < 1:
            raise ScheduleError(f"the {name} field {field!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return values


def times_of_day(expression: str) -> list[time] | None:
    """The local times of day a cron expression fires at; None for a rate expression (a fixed
    interval in absolute time, which DST cannot break)."""
    if expression.startswith("rate("):
        if not _RATE_RE.match(expression):
            raise ScheduleError("a rate expression is rate(N minutes|hours|days), N a whole number")
        return None
    match = _CRON_RE.match(expression)
    fields = match["fields"].split() if match else []
    if len(fields) != 6:
        raise ScheduleError("a cron expression has six fields: minutes hours day-of-month month day-of-week year")
    if (fields[2] == "?") == (fields[4] == "?"):
        # EventBridge: a value or * in one of the two day fields needs ? in the other.
        raise ScheduleError("exactly one of the day-of-month and day-of-week fields must be ?")
    minutes = _field_values(fields[0], 0, 59, "minutes")
    hours = _field_values(fields[1], 0, 23, "hours")
    return [time(h, m) for h in sorted(hours) for m in sorted(minutes)]


@dataclass(frozen=True)
class Transition:
    """One change of a zone's UTC offset, as local wall-clock times."""

    day: date          # the local day the affected wall times fall on
    start: time        # first affected wall time
    end: time | None   # first unaffected wall time (None: the interval runs to midnight)
    kind: str          # "gap" (those times do not exist) or "overlap" (they exist twice)
    before: str        # wall clock just before the switch, e.g. "02:00"
    after: str         # wall clock just after it, e.g. "03:00"

    def contains(self, t: time) -> bool:
        return self.start <= t and (self.end is None or t < self.end)

    def describe(self) -> str:
        if self.kind == "gap":
            return f"does not exist on {self.day} (clocks jump from {self.before} to {self.after})"
        return f"exists twice on {self.day} (clocks fall back from {self.before} to {self.after})"


def _offset(zone: ZoneInfo, instant: datetime) -> timedelta:
    offset = instant.astimezone(zone).utcoffset()
    assert offset is not None  # a ZoneInfo always has one
    return offset


def _switch_instant(zone: ZoneInfo, low: datetime, high: datetime) -> datetime:
    """The first second in (low, high] whose offset differs from low's (bisection; one switch inside)."""
    before = _offset(zone, low)
    while high - low > timedelta(seconds=1):
        mid = low + (high - low) / 2
        mid = mid.replace(microsecond=0)
        if _offset(zone, mid) == before:
            low = mid
        else:
            high = mid
    return high


def _wall_intervals(day_start: datetime, day_end: datetime) -> list[tuple[date, time, time | None]]:
    """[day_start, day_end) as per-day time ranges (an interval may cross local midnight)."""
    pieces = []
    cursor = day_start
    while cursor < day_end:
        midnight = datetime.combine(cursor.date() + timedelta(days=1), time(0))
        stop = min(midnight, day_end)
        pieces.append((cursor.date(), cursor.time(), None if stop == midnight else stop.time()))
        cursor = stop
    return pieces


@functools.lru_cache(maxsize=64)
def transitions(timezone: str, first_year: int, years: int = YEARS_AHEAD) -> tuple[Transition, ...]:
    """Every gap and overlap of ``timezone`` from 1 January ``first_year`` for ``years`` years."""
    zone = ZoneInfo(timezone)
    found: list[Transition] = []
    instant = datetime(first_year, 1, 1, tzinfo=UTC)
    stop = datetime(first_year + years, 1, 1, tzinfo=UTC)
    step = timedelta(hours=12)  # no zone changes its offset twice within 12 hours
    while instant < stop:
        following = instant + step
        old, new = _offset(zone, instant), _offset(zone, following)
        if old != new:
            switch = _switch_instant(zone, instant, following)
            wall_before = (switch + old).replace(tzinfo=None)  # the wall clock as the switch arrives
            wall_after = (switch + new).replace(tzinfo=None)
            kind = "gap" if new > old else "overlap"
            low, high = (wall_before, wall_after) if kind == "gap" else (wall_after, wall_before)
            for day, start, end in _wall_intervals(low, high):
                found.append(Transition(day, start, end, kind, f"{wall_before:%H:%M}", f"{wall_after:%H:%M}"))
        instant = following
    return tuple(found)


def dst_conflict(expression: str, timezone: str, *, first_year: int | None = None) -> str | None:
    """Why ``expression`` is unsafe in ``timezone`` (a time that is skipped or doubled on some day),
    or None when every time it names exists exactly once on every day."""
    fire_times = times_of_day(expression)
    if not fire_times or len({t.hour for t in fire_times}) == 24:
        # A rate, or a job that runs every hour: a skipped run is made up within the hour.
        return None
    year = first_year if first_year is not None else datetime.now(UTC).year
    for transition in transitions(timezone, year):
        for t in fire_times:
            if transition.contains(t):
                return (f"it runs at {t:%H:%M}, which {transition.describe()} in {timezone}; "
                        "choose a time that exists exactly once on every day")
    return None


_NTH_RE = re.compile(r"^(?P<day>[1-7])#(?P<nth>[1-5])$")


def _day_values(field: str, low: int, high: int, name: str, names: dict[str, int]) -> set[int] | None:
    """A day field's values (None for ? or *: no restriction); names such as MON or JAN allowed."""
    if field in ("?", "*"):
        return None
    for word, number in names.items():
        field = field.replace(word, str(number))
    if any(c in field for c in "LW#"):
        raise ScheduleError(f"the {name} field {field!r} uses L, W or #; only the nth weekday (MON#1) is read, "
                            "with numbers, names, ranges, lists and steps")
    return _field_values(field, low, high, name)


def _run_days(expression: str) -> Callable[[date], bool]:
    """Whether a (valid) cron expression runs on a calendar day: its day-of-month, month, day-of-week
    (a weekday, or the nth weekday of the month: MON#1) and year fields."""
    times_of_day(expression)  # the expression's shape, said as a ScheduleError
    match = _CRON_RE.match(expression)
    assert match is not None
    day_field, month_field, weekday_field, year_field = match["fields"].split()[2:]
    days = _day_values(day_field, 1, 31, "day-of-month", {})
    months = _day_values(month_field, 1, 12, "month", _MONTHS)
    for word, number in _WEEKDAYS.items():
        weekday_field = weekday_field.replace(word, str(number))
    nth = _NTH_RE.match(weekday_field)
    wrong_nth = re.match(r"^[1-7]#(\d+)$", weekday_field)
    if wrong_nth and not nth:  # MON#6: EventBridge takes it, and no month ever has a sixth Monday
        raise ScheduleRefused(f"the day-of-week field asks for weekday number {wrong_nth[1]} of a month; a month has "
                            "at most 5 of any weekday (#1 to #5), so it never fires")
    weekdays = None if nth else _day_values(weekday_field, 1, 7, "day-of-week", {})
    years = _day_values(year_field, 1970, 2199, "year", {})

    def runs_on(day: date) -> bool:
        weekday = day.isoweekday() % 7 + 1  # cron: SUN=1 ... SAT=7
        if nth and (weekday != int(nth["day"]) or (day.day - 1) // 7 + 1 != int(nth["nth"])):
            return False
        return not ((days is not None and day.day not in days) or (months is not None and day.month not in months)
                    or (weekdays is not None and weekday not in weekdays)
                    or (years is not None and day.year not in years))

    return runs_on


def runs_in_year(expression: str, year: int) -> float:
    """How many times an EventBridge Scheduler expression fires in calendar ``year`` (a rate: the year's
    seconds over its interval)."""
    rate = _RATE_RE.match(expression)
    if rate:
        days = (date(year + 1, 1, 1) - date(year, 1, 1)).days
        return days * 86400 / (int(rate["n"]) * _UNIT_SECONDS[rate["unit"].rstrip("s")])
    fire_times = times_of_day(expression)
    assert fire_times is not None
    runs_on = _run_days(expression)
    first = date(year, 1, 1)
    days = sum(runs_on(first + timedelta(days=n)) for n in range((date(year + 1, 1, 1) - first).days))
    return float(days * len(fire_times))


def max_interval_seconds(expression: str, timezone: str, *, year: int) -> float:
    """The longest time between two consecutive runs around ``year`` (in absolute time, so a daily
    schedule's interval is 25 hours across the night the clocks fall back, and a time the clocks skip
    is no run at): the schedule's share of the worst-case RPO."""
    rate = _RATE_RE.match(expression)
    if rate:
        return float(int(rate["n"]) * _UNIT_SECONDS[rate["unit"].rstrip("s")])
    fire_times = times_of_day(expression)
    assert fire_times is not None  # a valid cron expression
    runs_on = _run_days(expression)
    zone = ZoneInfo(timezone)
    runs = []
    first = date(year - 1, 1, 1)
    for offset in range((date(year + 2, 1, 1) - first).days):  # three years: gaps across New Year too
        day = first + timedelta(days=offset)
        if not runs_on(day):
            continue
        for t in fire_times:
            local = datetime.combine(day, t, tzinfo=zone)
            instant = local.astimezone(UTC)
            if instant.astimezone(zone).replace(tzinfo=None) != local.replace(tzinfo=None):
                continue  # in the spring-forward gap: EventBridge Scheduler skips it
            runs.append(instant)
    if len(runs) < 2:
        raise ScheduleError(f"{expression} runs fewer than twice in {year - 1}-{year + 1}")
    runs.sort()
    return max((b - a).total_seconds() for a, b in zip(runs, runs[1:], strict=False))


# The years EventBridge Scheduler's cron year field accepts: a field that stops before the last of them ends.
LAST_CRON_YEAR = 2199
# The weekdays of the calendar repeat every 28 years (within a century): a day-of-month/month/weekday
# combination that matches no day in 28 years matches none ever (30 February, 31 April).
_CALENDAR_CYCLE_YEARS = 28


def _years(expression: str) -> set[int] | None:
    match = _CRON_RE.match(expression)
    return None if match is None else _day_values(match["fields"].split()[5], 1970, LAST_CRON_YEAR, "year", {})


def _duration(seconds: float) -> str:
    days, rest = divmod(round(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    if days < 3:
        return f"{days * 24 + hours + rest / 3600:g} h"
    return f"{days} d" + (f" {hours + rest / 3600:g} h" if rest or hours else "")


class ScheduleRefused(ScheduleError):
    """A schedule that reads well but cannot do its job (never fires, stops, too rare, broken by DST)."""


class DstConflict(ScheduleRefused):
    """A time of day the schedule names is skipped or doubled by a clock change in its zone."""


@functools.lru_cache(maxsize=256)
def check(expression: str, timezone: str, *, today: date, longest: float | None = None, strictly: bool = False,
          purpose: str = "") -> None:
    """Refuse (ScheduleError, its message the reason) a schedule that cannot do its job: one this module
    cannot read, one that never fires (no matching day, a sixth weekday, only past years) or stops firing
    (a year field that ends), one whose time is skipped or doubled by DST (DstConflict), and one whose
    longest gap between runs exceeds ``longest`` seconds (``strictly``: reaches it); ``purpose`` says whose
    bound that is ("a daily check allows at most {limit}"). The one check every schedule of the
    configuration passes through.

    ``today`` is passed in, never read: it dates only "a year entirely in the past" and the years whose
    DST rules and gaps are examined (those around it), so a fixed date gives a fixed answer."""
    fire_times = times_of_day(expression)
    if fire_times is not None:  # a cron expression: rates always fire
        runs_on = _run_days(expression)
        years = _years(expression)
        if years is not None and max(years) < today.year:
            raise ScheduleRefused(f"it never fires again: every year it names is before {today.year}")
        if years is not None and max(years) < LAST_CRON_YEAR:
            raise ScheduleRefused(f"it stops firing after {max(years)}; a recurring job needs * as its year "
                                "(or a range to 2199), or it ends silently")
        first = date(today.year, 1, 1)
        days = (date(today.year + _CALENDAR_CYCLE_YEARS, 1, 1) - first).days
        if not any(runs_on(first + timedelta(days=n)) for n in range(days)):
            last = today.year + _CALENDAR_CYCLE_YEARS - 1
            raise ScheduleRefused(f"it never fires: no day from {today.year} to {last} "
                                  "matches its day-of-month, month, day-of-week and year fields")
    conflict = dst_conflict(expression, timezone, first_year=today.year)
    if conflict:
        raise DstConflict(conflict)
    try:
        gap = max_interval_seconds(expression, timezone, year=today.year)
    except ScheduleError as err:  # fires, but fewer than twice in three years
        raise ScheduleRefused(str(err)) from None
    if longest is not None and (gap >= longest if strictly else gap > longest):
        raise ScheduleRefused(f"its longest gap between runs is {_duration(gap)} ({today.year - 1} to "
                            f"{today.year + 1} in {timezone}); " + purpose.format(limit=_duration(longest)))
