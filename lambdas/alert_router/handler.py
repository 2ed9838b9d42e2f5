"""SNS alert topic -> webhook (and Sentry when its DSN is set, PagerDuty when its routing key is).
Logic: tavari_dr.alerts.router."""

import os

from tavari_dr.alerts import router as alerts
from tavari_dr.alerts.escalation import alert_lines
from tavari_dr.core import aws, metrics, observability
from tavari_dr.core.aws import SecretCache
from tavari_dr.core.config import parse_escalation

ENVIRONMENT = os.environ["TAVARI_ENV"]
WEBHOOK_SECRET = os.environ["ALERT_WEBHOOK_SECRET_ARN"]
SENTRY_SECRET = os.environ.get("SENTRY_DSN_SECRET_ARN") or None
PAGERDUTY_SECRET = os.environ.get("PAGERDUTY_ROUTING_KEY_SECRET_ARN") or None
# The escalation chain of cdk.json, set by the Monitoring stack; read once, validated by the config's own rules.
ESCALATION = alert_lines(parse_escalation(os.environ["ESCALATION"]))
SECRETS = SecretCache(aws.client("secretsmanager"))


@observability.lambda_handler("alert_router")
def handler(event, context):
    delivered = alerts.route(event, environment=ENVIRONMENT, secrets=SECRETS, webhook_secret=WEBHOOK_SECRET,
                             sentry_secret=SENTRY_SECRET, pagerduty_secret=PAGERDUTY_SECRET,
                             escalation=ESCALATION)
    metrics.publish({metrics.ALERTS_DELIVERED: delivered})
    return {"delivered": delivered}
