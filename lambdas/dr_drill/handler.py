"""Quarterly DR drill steps (secrets check, report). Logic: tavari_dr.quarterly."""

from tavari_dr.quarterly import handle


def handler(event, context):
    return handle(event)
