"""Everything that depends on the calendar, on fixed dates: tiers, retention, schedules, report paths, ages.

The dates are the ones that broke or could break: the 1st of a month, a Sunday, the 1st falling on a
Sunday, New Year's Eve, the last Sundays of March and October in Europe/Warsaw, and 29 February.
"""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from tavari_dr.core import reports, schedule
from tavari_dr.core.config import ConfigError, load_all, load_environment
from tavari_dr.database.backup import DEFAULT_TIERS, retain_until_for, tier_for
from tavari_dr.verification import checks as c
from tavari_dr.verification import quarterly
from tests.conftest import cdk_context

WARSAW = "Europe/Warsaw"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# --------------------------------------------------------------------------- tiers and retention

TIER_CASES = [
    # (UTC instant, zone, tier, why)
    ("2026-11-24T02:00", "UTC", "daily", "a Tuesday"),
    ("2027-02-28T12:00", "UTC", "weekly", "a Sunday"),
    ("2027-02-28T12:00", WARSAW, "weekly", "a Sunday in Warsaw too"),
    ("2027-03-01T00:40", "UTC", "monthly", "the 1st"),
    ("2027-03-01T00:40", WARSAW, "monthly", "the 1st (01:40 local)"),
    ("2026-11-01T02:00", "UTC", "monthly", "the 1st falling on a Sunday: monthly wins"),
    ("2026-11-30T23:30", "UTC", "daily", "Monday the 30th in UTC ..."),
    ("2026-11-30T23:30", WARSAW, "monthly", "... is already 00:30 on the 1st in Warsaw"),
    ("2027-02-28T23:30", "UTC", "weekly", "Sunday 28 February in UTC ..."),
    ("2027-02-28T23:30", WARSAW, "monthly", "... is the 1st of March in Warsaw"),
    ("2026-12-31T23:30", "UTC", "daily", "New Year's Eve in UTC ..."),
    ("2026-12-31T23:30", WARSAW, "monthly", "... is New Year's Day in Warsaw"),
    ("2027-03-28T00:30", WARSAW, "weekly", "last Sunday of March, 01:30 CET, before the jump"),
    ("2027-03-28T01:30", WARSAW, "weekly", "last Sunday of March, 03:30 CEST, after the jump"),
    ("2027-03-28T22:30", "UTC", "weekly", "still Sunday in UTC ..."),
    ("2027-03-28T22:30", WARSAW, "daily", "... but Monday 00:30 CEST in Warsaw"),
    ("2027-10-31T00:30", WARSAW, "weekly", "last Sunday of October, first 02:30 (CEST)"),
    ("2027-10-31T01:30", WARSAW, "weekly", "last Sunday of October, second 02:30 (CET)"),
    ("2027-10-31T23:30", WARSAW, "monthly", "1 November 00:30 CET in Warsaw"),
    ("2028-02-29T01:00", "UTC", "daily", "29 February, a Tuesday"),
]


@pytest.mark.parametrize(("instant", "zone", "tier", "why"), TIER_CASES, ids=[f"{c[0]}-{c[1]}" for c in TIER_CASES])
def test_tier_follows_the_calendar_of_the_schedule_zone(instant, zone, tier, why):
    assert tier_for(at(instant), DEFAULT_TIERS, zone).name == tier, why


def test_tier_is_refused_for_a_time_without_a_zone():
    with pytest.raises(ValueError, match="aware datetime"):
        tier_for(datetime(2027, 3, 1, 0, 40), DEFAULT_TIERS, WARSAW)  # noqa: DTZ001 - the point of the test


@pytest.mark.parametrize(("instant", "days", "until"), [
    # Retention runs in absolute time from the start of the backup: a DST switch or a leap day in
    # between moves the local wall clock, never the number of hours locked.
    ("2028-02-29T01:00", 35, "2028-04-04T01:00"),
    ("2028-03-01T00:40", 396, "2029-04-01T00:40"),
    ("2027-03-28T00:30", 91, "2027-06-27T00:30"),
    ("2026-12-31T23:30", 396, "2028-01-31T23:30"),
])
def test_retain_until_is_the_start_plus_whole_days_in_utc(instant, days, until):
    assert retain_until_for(at(instant), days) == at(until)


# --------------------------------------------------------------------------- schedules and DST


def test_warsaw_transitions_are_known():
    found = [(t.day, t.start, t.end, t.kind) for t in schedule.transitions(WARSAW, 2027, 1)]
    assert found == [(date(2027, 3, 28), time(2), time(3), "gap"), (date(2027, 10, 31), time(2), time(3), "overlap")]
    assert schedule.transitions("UTC", 2027, 1) == ()


def test_a_transition_at_midnight_is_split_at_the_day_boundary():
    # America/Santiago falls back from 24:00 to 23:00 on the first Sunday of April.
    overlaps = [t for t in schedule.transitions("America/Santiago", 2027, 1) if t.kind == "overlap"]
    assert [(t.day, t.start, t.end) for t in overlaps] == [(date(2027, 4, 3), time(23), None)]


@pytest.mark.parametrize(("expression", "zone", "problem"), [
    ("cron(0 2 * * ? *)", WARSAW, "02:00, which does not exist on 2027-03-28 (clocks jump from 02:00 to 03:00)"),
    ("cron(30 2 ? * SUN *)", WARSAW, "02:30, which does not exist on 2027-03-28"),
    ("cron(15 1 * * ? *)", "America/New_York", "01:15, which exists twice on 2027-11-07 (clocks fall back from "
                                               "02:00 to 01:00)"),
    ("cron(0 0,2 1 * ? *)", WARSAW, "02:00"),
    ("cron(0 23 * * ? *)", "America/Santiago", "23:00, which exists twice on 2027-04-03"),
])
def test_times_skipped_or_doubled_by_dst_are_found(expression, zone, problem):
    assert problem in schedule.dst_conflict(expression, zone, first_year=2027)


@pytest.mark.parametrize(("expression", "zone"), [
    ("cron(0 1 * * ? *)", WARSAW), ("cron(0 3 * * ? *)", WARSAW), ("cron(0 4 ? * SUN *)", WARSAW),
    ("cron(0 2 * * ? *)", "UTC"), ("cron(0 9 ? 1,4,7,10 MON#1 *)", WARSAW), ("rate(1 day)", WARSAW),
    ("cron(*/15 * * * ? *)", WARSAW),  # runs every hour: a skipped run is made up within the hour
])
def test_times_that_exist_once_every_day_pass(expression, zone):
    assert schedule.dst_conflict(expression, zone, first_year=2027) is None


@pytest.mark.parametrize(("section", "key"), [
    ("database_backups", "schedule"), ("database_backups", "weekly_verify_schedule"),
    ("database_backups", "monthly_verify_schedule"), ("verification", "daily_schedule"),
    ("verification", "weekly_schedule"), ("verification", "monthly_schedule"), ("drill", "quarterly_schedule"),
])
def test_config_refuses_a_schedule_in_a_dst_gap_naming_key_value_and_gap(section, key):
    context = copy.deepcopy(cdk_context())
    prod = context["environments"]["prod"]
    prod.setdefault(section, {}).update({key: "cron(30 2 ? * * *)", "timezone": WARSAW})
    with pytest.raises(ConfigError) as err:
        load_environment(context, "prod")
    assert str(err.value).startswith(f'environments.prod.{section}.{key}: "cron(30 2 ? * * *)" is not allowed in '
                                     f"{WARSAW}: it runs at 02:30, which does not exist on ")
    assert "(clocks jump from 02:00 to 03:00)" in str(err.value)


@pytest.mark.parametrize("bad", ["cron(0 2 * * ?)", "cron(0 25 * * ? *)", "cron(x 2 * * ? *)"])
def test_config_refuses_an_unreadable_cron_expression(bad):
    context = copy.deepcopy(cdk_context())
    context["environments"]["prod"]["database_backups"]["schedule"] = bad
    with pytest.raises(ConfigError, match=r'^environments\.prod\.database_backups\.schedule: .* is not allowed; '):
        load_environment(context, "prod")


def test_every_schedule_in_cdk_json_exists_once_every_day():
    for name, config in load_all(cdk_context()).items():
        zones_and_schedules = [
            (config.database_backups.timezone, config.database_backups.schedule),
            (config.database_backups.timezone, config.database_backups.weekly_verify_schedule),
            (config.database_backups.timezone, config.database_backups.monthly_verify_schedule),
            (config.verification.timezone, config.verification.daily_schedule),
            (config.verification.timezone, config.verification.weekly_schedule),
            (config.verification.timezone, config.verification.monthly_schedule),
            (config.drill.timezone, config.drill.quarterly_schedule),
        ]
        for zone, expression in zones_and_schedules:
            for year in (2027, 2028, 2031):  # rules, not the year the suite happens to run in
                assert schedule.dst_conflict(expression, zone, first_year=year) is None, (name, expression, zone)


def test_prod_nightly_dump_moved_out_of_the_warsaw_gap():
    prod = load_environment(cdk_context(), "prod")
    assert prod.database_backups.timezone == WARSAW
    # Twice a day (01:00 and 13:00): a daily dump's worst case (25 h across the autumn switch, plus the
    # dump) cannot meet the 24-hour RPO; see tests/test_drill.py.
    assert prod.database_backups.schedule == "cron(0 1,13 * * ? *)"


# --------------------------------------------------------------------------- report paths


@pytest.mark.parametrize(("instant", "key"), [
    ("2027-03-01T00:40", "reports/sizes/2027-03-01.json"),
    ("2026-12-31T23:59", "reports/sizes/2026-12-31.json"),
    ("2027-01-01T00:00", "reports/sizes/2027-01-01.json"),
    ("2028-02-29T12:00", "reports/sizes/2028-02-29.json"),
    ("2027-03-28T01:30", "reports/sizes/2027-03-28.json"),
])
def test_report_paths_are_utc_days(instant, key):
    assert reports.report_key("sizes", at(instant)) == key
    # The same instant written with another offset lands on the same key.
    assert reports.report_key("sizes", at(instant).astimezone(ZoneInfo(WARSAW))) == key


def test_quarterly_report_path_is_the_utc_day_of_the_run():
    class Recorder:
        def __init__(self):
            self.keys = []

        def put_object(self, **kwargs):
            self.keys.append(kwargs["Key"])

    s3 = Recorder()
    now = at("2026-12-31T23:30").astimezone(ZoneInfo(WARSAW))  # already 1 January in Warsaw
    result = quarterly.report({"execution": "arn:exec", "started": "2026-12-31T22:00:00Z", "branches": []},
                              objectives=quarterly.Objectives(3600, 14400), environment="prod", now=now)
    key = quarterly.record(result, s3=s3, reports_bucket="r", now=now)
    assert key == "s3://r/reports/quarterly_drill/2026-12-31.json"
    assert s3.keys == ["reports/quarterly_drill/2026-12-31.json", "reports/quarterly_drill/2026-12-31.md"]


# --------------------------------------------------------------------------- ages


@pytest.mark.parametrize(("finished", "now", "hours"), [
    ("2027-03-27T23:00", "2027-03-28T23:00", 24.0),  # the night the clocks jump: still 24 real hours
    ("2027-10-30T23:00", "2027-10-31T23:00", 24.0),  # the night they fall back
    ("2028-02-28T23:00", "2028-03-01T01:00", 26.0),  # across 29 February
    ("2026-12-31T22:00", "2027-01-01T02:00", 4.0),
])
def test_backup_ages_are_real_elapsed_hours(finished, now, hours):
    body = {"pitr_enabled": False, "backups": [{"id": 1, "status": "COMPLETED", "inserted_at": finished + "Z"}]}
    result = c.run_check("supabase_backups", lambda r: c.supabase_backups(
        r, api_url="http://unused", project_ref="ref", token="t", rpo_hours=24, expect_pitr=False,
        now=at(now), get=lambda url, token: body))
    assert result.measured["backup_age_hours"] == hours
    assert result.ok == (hours <= 24)


# --------------------------------------------------------------------------- worst-case gaps between runs


@pytest.mark.parametrize(("expression", "zone", "hours"), [
    ("cron(0 1 * * ? *)", WARSAW, 25),  # across the night the clocks fall back
    ("cron(0 1,13 * * ? *)", WARSAW, 13),  # 01:00 -> 13:00 on that day
    ("cron(0 2 * * ? *)", "UTC", 24),
    ("cron(0 2 * * ? *)", WARSAW, 47),  # 02:00 does not exist on 28 March: that run is skipped
    ("cron(0 1,13 ? * MON-SAT *)", WARSAW, 37),  # Saturday 13:00 -> Monday 01:00, plus the autumn hour
    ("cron(0 4 ? * SUN *)", "UTC", 168),
    ("cron(0 5 1 * ? *)", "UTC", 31 * 24),
    ("rate(12 hours)", WARSAW, 12),
])
def test_longest_gap_between_runs_in_absolute_time(expression, zone, hours):
    assert schedule.max_interval_seconds(expression, zone, year=2027) == hours * 3600


@pytest.mark.parametrize(("bad", "why"), [
    ("rate(banana)", "rate(N minutes|hours|days)"),
    ("cron(0 1 * * * *)", "exactly one of the day-of-month and day-of-week fields must be ?"),
    ("cron(0 1 ? * ? *)", "exactly one of the day-of-month and day-of-week fields must be ?"),
    ("cron(0 1 L * ? *)", "uses L, W or #"),
])
def test_config_refuses_a_dump_schedule_it_cannot_read_or_bound(bad, why):
    context = copy.deepcopy(cdk_context())
    context["environments"]["prod"]["database_backups"]["schedule"] = bad
    with pytest.raises(ConfigError) as err:
        load_environment(context, "prod")
    assert str(err.value).startswith(f'environments.prod.database_backups.schedule: "{bad}" is not allowed; ')
    assert why in str(err.value)
