"""Scheduled verification: daily_monitor. Logic: tavari_dr.verification (checks in tavari_dr.checks)."""

from tavari_dr.verification import handle


def handler(event, context):
    return handle("daily_monitor")
