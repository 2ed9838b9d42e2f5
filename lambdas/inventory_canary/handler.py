"""Scheduled: the inventory canary (ADR 0022). Logic: tavari_dr.bucket.canary."""

import os
from dataclasses import asdict
from datetime import UTC, datetime

from tavari_dr.bucket.canary import run_canary
from tavari_dr.core import aws, metrics, observability

S3 = aws.client("s3")


@observability.lambda_handler(metrics.INVENTORY_CANARY, correlation=observability.from_event(run="execution"))
def handler(event, context):
    run = run_canary(S3, invoice_bucket=os.environ["TAVARI_INVOICE_BUCKET"],
                     ops_bucket=os.environ["TAVARI_RESTORE_OPS_BUCKET"],
                     inventory_prefix=os.environ["TAVARI_INVENTORY_PREFIX"],
                     feed_prefix=os.environ["TAVARI_FEED_PREFIX"], now=datetime.now(UTC))
    return asdict(run)
