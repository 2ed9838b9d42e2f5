"""Quarterly DR drill steps (secrets check, report). Logic: tavari_dr.verification.quarterly."""

from tavari_dr.core import observability
from tavari_dr.verification.quarterly import JOB, handle


# run: the drill's Step Functions execution, which every step of it is handed.
@observability.lambda_handler(JOB, correlation=observability.from_event(run="execution"))
def handler(event, context):
    return handle(event)
