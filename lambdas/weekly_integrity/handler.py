"""Scheduled verification: weekly_integrity. Logic: tavari_dr.verification.jobs (checks: verification.checks)."""

from tavari_dr.core import metrics, observability
from tavari_dr.verification.jobs import handle


# run: the scheduler's execution id (or, in a quarterly drill, the drill's execution), in every line
# and every report of this run.
@observability.lambda_handler(metrics.WEEKLY_INTEGRITY, correlation=observability.from_event(run="execution"))
def handler(event, context):
    return handle(metrics.WEEKLY_INTEGRITY, run=observability.current("run"))
