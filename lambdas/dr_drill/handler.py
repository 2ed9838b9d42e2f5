"""Quarterly DR drill steps (secrets check, report). Logic: tavari_dr.verification.quarterly."""

from tavari_dr.verification.quarterly import handle


def handler(event, context):
    return handle(event)
