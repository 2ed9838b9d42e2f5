"""Scheduled verification: monthly_restore_test. Logic: tavari_dr.verification.jobs (checks: verification.checks)."""

from tavari_dr.core import metrics
from tavari_dr.verification.jobs import handle


def handler(event, context):
    return handle(metrics.MONTHLY_RESTORE_TEST)
