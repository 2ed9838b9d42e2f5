"""Scheduled verification: daily_monitor. Logic: tavari_dr.verification.jobs (checks: verification.checks)."""

from tavari_dr.core import metrics, observability
from tavari_dr.verification.jobs import handle


# run: the scheduler's execution id (or, in a quarterly drill, the drill's execution), in every line
# and every report of this run.
@observability.lambda_handler(metrics.DAILY_MONITOR, correlation=observability.from_event(run="execution"))
def handler(event, context):
    return handle(metrics.DAILY_MONITOR, run=observability.current("run"))
