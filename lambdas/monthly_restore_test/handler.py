"""Scheduled verification: monthly_restore_test. Logic: tavari_dr.verification.jobs (checks: verification.checks)."""

from tavari_dr.core import metrics, observability
from tavari_dr.verification.jobs import handle


# run: the scheduler's execution id (or, in a quarterly drill, the drill's execution), in every line
# and every report of this run.
@observability.lambda_handler(metrics.MONTHLY_RESTORE_TEST, correlation=observability.from_event(run="execution"))
def handler(event, context):
    return handle(metrics.MONTHLY_RESTORE_TEST, run=observability.current("run"))
