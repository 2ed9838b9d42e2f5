"""Alert routing: SNS messages -> one readable message -> a Slack-compatible webhook (Block Kit, with the
plain text Slack shows in notifications), Sentry when its DSN is set, PagerDuty when its routing key is.

Three kinds of message reach the alert topic: CloudWatch alarm state changes, the project's
own events (``{"source": "tavari", ...}``: failures published by jobs, and the tamper rules'
``"kind": "tampering"`` alerts), and anything else.
Nothing is dropped: an unknown or malformed message is forwarded raw (truncated) to the webhook.
PagerDuty (Events API v2) pages for what a person must act on — an alarm entering ALARM, a failed job,
a tamper alert — and resolves an alarm's incident when it returns to OK, one incident per alarm (its ARN
is the dedup_key); INSUFFICIENT_DATA and unrecognised messages go to the webhook only.
Delivery failures raise, so the Lambda runtime retries and finally parks the event in the
dead-letter queue, which has its own alarm.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# urllib3 ships with botocore (the Lambda runtime's and the CLI's): its Retry is the webhook's policy.
import urllib3
from urllib3.util import Retry

from tavari_dr.core.aws import SecretCache
from tavari_dr.core.outputs import is_placeholder

log = logging.getLogger("tavari.alerts")

RAW_LIMIT = 1500
MAX_RETRY_AFTER_SECONDS = 30.0

_OPERATORS = {
    "GreaterThanThreshold": ">",
    "GreaterThanOrEqualToThreshold": ">=",
    "LessThanThreshold": "<",
    "LessThanOrEqualToThreshold": "<=",
    "LessThanLowerOrGreaterThanUpperThreshold": "outside band",
}
_ICONS = {"ALARM": ":red_circle:", "OK": ":large_green_circle:", "INSUFFICIENT_DATA": ":grey_question:",
          "FAILURE": ":red_circle:", "UNKNOWN": ":warning:"}


PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
HEADER_LIMIT = 150    # Block Kit: a header's plain text
SECTION_LIMIT = 3000  # a section's text
SUMMARY_LIMIT = 1024  # PagerDuty: payload.summary
DEDUP_LIMIT = 255     # PagerDuty: dedup_key


@dataclass(frozen=True)
class Alert:
    kind: str            # alarm | failure | tampering | unknown
    title: str
    state: str           # ALARM | OK | INSUFFICIENT_DATA | FAILURE | UNKNOWN
    environment: str
    lines: tuple[str, ...]
    runbook: str | None = None
    reason: str | None = None     # what happened, in one paragraph (an alarm's NewStateReason, a job's detail)
    account: str | None = None
    region: str | None = None
    since: str | None = None      # an alarm's StateChangeTime; a job's time
    key: str | None = None        # one incident per alarm (its ARN) or per failing job and check
    escalation: tuple[str, ...] = ()  # who to call, in order (cdk.json escalation; tavari_dr.alerts.escalation)

    def text(self) -> str:
        head = f"{_ICONS.get(self.state, ':warning:')} *[{self.environment}] {self.title}* — {self.state}"
        body = list(self.lines) + ([f"Runbook: {self.runbook}"] if self.runbook else []) + list(self.escalation)
        return "\n".join([head, *body])


def _truncate(text: str, limit: int = RAW_LIMIT) -> str:
    return text if len(text) <= limit else text[:limit] + f"… ({len(text) - limit} more characters)"


def _cut(text: str, limit: int) -> str:
    """At most ``limit`` characters (the API's bound on the field, which refuses longer ones)."""
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _runbook(description: str | None) -> str | None:
    for word in (description or "").split():
        if word.startswith(("https://", "http://")):
            return word.rstrip(").,")
    return None


def parse_message(message: str, *, environment: str, subject: str | None = None) -> Alert:
    """Turn one SNS message body into an Alert; never raises."""
    try:
        data = json.loads(message)
    except (TypeError, ValueError):
        data = None
    if isinstance(data, dict) and "AlarmName" in data and "NewStateValue" in data:
        return _alarm(data, environment)
    if isinstance(data, dict) and data.get("source") == "tavari":
        return _failure(data, environment)
    raw = message if isinstance(message, str) else repr(message)
    return Alert("unknown", subject or "Unrecognised message on the alert topic", "UNKNOWN", environment,
                 (f"```{_truncate(raw)}```",))


def _alarm(data: dict[str, Any], environment: str) -> Alert:
    trigger = data.get("Trigger") or {}
    lines = []
    reason = data.get("NewStateReason")
    if reason:
        lines.append(_truncate(str(reason), 500))
    metric = trigger.get("MetricName")
    if metric:
        dims = ", ".join(f"{d.get('name')}={d.get('value')}" for d in trigger.get("Dimensions") or [])
        op = _OPERATORS.get(trigger.get("ComparisonOperator", ""), trigger.get("ComparisonOperator", "?"))
        lines.append(f"Metric: {trigger.get('Namespace', '')}/{metric}" + (f" ({dims})" if dims else "")
                     + f"; threshold {op} {trigger.get('Threshold')}")
    since = data.get("StateChangeTime")
    old = data.get("OldStateValue")
    if since:
        lines.append(f"Since: {since}" + (f" (was {old})" if old else ""))
    description = data.get("AlarmDescription")
    if description:
        lines.append(_truncate(str(description).split("Runbook:")[0].strip(), 500))
    if data.get("Region"):
        lines.append(f"Region: {data['Region']}")
    arn = str(data.get("AlarmArn") or "")
    return Alert("alarm", str(data["AlarmName"]), str(data["NewStateValue"]), environment, tuple(lines),
                 _runbook(description), reason=_truncate(str(reason), 500) if reason else None,
                 account=str(data.get("AWSAccountId") or "") or None,
                 # The ARN names the region's code (eu-west-1); the message's Region is its long name.
                 region=(arn.split(":")[3] if arn.count(":") >= 5 else None) or data.get("Region"),
                 since=str(since) if since else None, key=arn or f"{environment}:alarm:{data['AlarmName']}")


def _failure(data: dict[str, Any], environment: str) -> Alert:
    what = data.get("check") or data.get("job") or "job"
    tampering = data.get("kind") == "tampering"
    lines = [f"{'Tamper rule' if tampering else 'What failed'}: {what}"]
    for key in ("detail", "value", "threshold", "time"):
        if data.get(key) is not None:
            lines.append(f"{key.capitalize()}: {_truncate(str(data[key]), 500)}")
    env = str(data.get("environment") or environment)
    reason = _truncate(str(data["detail"]), 500) if data.get("detail") is not None else None
    since = str(data["time"]) if data.get("time") is not None else None
    key = f"{env}:{'tampering' if tampering else 'failure'}:{data.get('job') or ''}:{what}"
    if tampering:  # a tamper rule's alert (backup_constructs.tamper_watch) carries its own title
        kind, title, state = "tampering", str(data.get("title") or "Tampering"), "ALARM"
    else:
        kind, title, state = "failure", f"{data.get('job', 'Tavari job')} failed", "FAILURE"
    return Alert(kind, title, state, env, tuple(lines), data.get("runbook"), reason=reason,
                 account=data.get("account"), region=data.get("region"), since=since, key=key)


# --------------------------------------------------------------------------- delivery


class WebhookError(RuntimeError):
    """Delivery failed; ``permanent`` when retrying cannot help (a 4xx other than 429)."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class _WebhookRetry(Retry):
    """urllib3's Retry with Retry-After capped, so a receiver asking for minutes cannot hold the Lambda
    past its timeout (the runtime's own retry and the dead-letter queue take it from there)."""

    def parse_retry_after(self, retry_after: str) -> float:
        return min(super().parse_retry_after(retry_after), MAX_RETRY_AFTER_SECONDS)


# One pool per container: a warm Lambda reuses the TLS connection to the webhook.
_HTTP = urllib3.PoolManager()


def webhook_retry(attempts: int = 4, backoff: float = 1.0) -> Retry:
    """Up to ``attempts`` tries of a POST: timeouts, connection errors, 429 and 5xx are retried with
    exponential backoff (urllib3: none before the first retry, then ``backoff`` * 2, * 4 ...),
    honouring Retry-After; any other status is the caller's to judge."""
    return _WebhookRetry(total=attempts - 1, backoff_factor=backoff, backoff_max=MAX_RETRY_AFTER_SECONDS,
                         status_forcelist=(429, *range(500, 600)), allowed_methods=frozenset({"POST"}),
                         respect_retry_after_header=True, raise_on_status=False, redirect=0)


def post_json(url: str, payload: dict[str, Any], *, headers: dict[str, str] | None = None,
              timeout: float = 5.0, attempts: int = 4, backoff: float = 1.0) -> int:
    """POST JSON; retry timeouts, 429 and 5xx (honouring Retry-After); return the status."""
    where = urllib.parse.urlsplit(url).netloc
    try:
        response = _HTTP.request("POST", url, body=json.dumps(payload).encode(), timeout=timeout,
                                 headers={"Content-Type": "application/json", **(headers or {})},
                                 retries=webhook_retry(attempts, backoff), preload_content=True)
    except urllib3.exceptions.MaxRetryError as err:
        raise WebhookError(f"gave up after {attempts} attempts: {type(err.reason).__name__} from {where}",
                           permanent=False) from None
    except urllib3.exceptions.HTTPError as err:
        raise WebhookError(f"{type(err).__name__} from {where}", permanent=False) from None
    if response.status < 300:
        return response.status
    last = f"HTTP {response.status} from {where}"
    if response.status == 429 or response.status >= 500:
        raise WebhookError(f"gave up after {attempts} attempts: {last}", permanent=False)
    raise WebhookError(f"{last}: {response.data[:300].decode(errors='replace')}", permanent=True)


def _where(alert: Alert) -> str:
    return " / ".join(p for p in (f"account {alert.account}" if alert.account else None, alert.region,
                                  f"env {alert.environment}") if p)


def slack_payload(alert: Alert) -> dict[str, Any]:
    """Block Kit: a header (what), a section (why, with where and since as fields), the details, and the
    runbook as context; ``text`` stays the whole message, which Slack shows in notifications and where
    blocks cannot be drawn."""
    icon = _ICONS.get(alert.state, ":warning:")
    fields = [{"type": "mrkdwn", "text": f"*State*\n{icon} {alert.state}"},
              {"type": "mrkdwn", "text": f"*Where*\n{_where(alert)}"}]
    if alert.since:
        fields.append({"type": "mrkdwn", "text": f"*Since*\n{alert.since}"})
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "emoji": True,
                                    "text": _cut(f"[{alert.environment}] {alert.title}", HEADER_LIMIT)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _cut(alert.reason or alert.title, SECTION_LIMIT)},
         "fields": fields}]
    details = [line for line in alert.lines if not line.startswith(("Since:", "Region:"))]
    if details:
        blocks.append({"type": "section", "text": {"type": "mrkdwn",
                                                   "text": _cut("\n".join(details), SECTION_LIMIT)}})
    if alert.runbook:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"Runbook: <{alert.runbook}>"}]})
    if alert.escalation:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(line, SECTION_LIMIT)}
                                                       for line in alert.escalation]})
    return {"text": alert.text(), "blocks": blocks}


# --------------------------------------------------------------------------- PagerDuty


def pagerduty_event(alert: Alert, routing_key: str) -> dict[str, Any] | None:
    """The Events API v2 event for ``alert``: trigger on ALARM, a failure or a tamper alert; resolve when
    an alarm returns to OK; None (not paged) for INSUFFICIENT_DATA and unrecognised messages."""
    key = (alert.key or f"{alert.environment}:{alert.kind}:{alert.title}")[:DEDUP_LIMIT]
    if alert.kind == "alarm" and alert.state == "OK":
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": key}
    if alert.state not in ("ALARM", "FAILURE"):
        return None
    details = {"environment": alert.environment, "state": alert.state, "kind": alert.kind,
               **({"account": alert.account} if alert.account else {}),
               **({"since": alert.since} if alert.since else {}), "details": list(alert.lines),
               **({"escalation": list(alert.escalation)} if alert.escalation else {})}
    event: dict[str, Any] = {
        "routing_key": routing_key, "event_action": "trigger", "dedup_key": key,
        "payload": {"summary": _cut(f"[{alert.environment}] {alert.title}: {alert.reason or alert.state}",
                                    SUMMARY_LIMIT),
                    "source": _where(alert), "severity": "critical" if alert.kind == "tampering" else "error",
                    "component": "backup-recovery", "group": alert.environment, "class": alert.kind,
                    "custom_details": details},
        "client": "tavari-dr alert router"}
    if alert.runbook:
        event["links"] = [{"href": alert.runbook, "text": "Runbook"}]
    return event


# --------------------------------------------------------------------------- Sentry


def sentry_store_request(dsn: str, alert: Alert) -> tuple[str, dict[str, Any], dict[str, str]]:
    """URL, event and auth header of Sentry's store endpoint for one alert."""
    parts = urllib.parse.urlsplit(dsn)
    if not parts.username or not parts.hostname or not parts.path.strip("/"):  # no host: was a TypeError
        raise ValueError("SENTRY_DSN is not a DSN (https://<key>@<host>/<project>)")
    project = parts.path.rstrip("/").rsplit("/", 1)[-1]
    prefix = parts.path.rstrip("/").rsplit("/", 1)[0]
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    url = f"{parts.scheme}://{host}{prefix}/api/{project}/store/"
    event = {
        "message": alert.text(),
        "level": "error" if alert.state in ("ALARM", "FAILURE") else "info",
        "environment": alert.environment,
        "tags": {"kind": alert.kind, "state": alert.state},
        "logger": "tavari.alert-router",
        "platform": "python",
    }
    auth = f"Sentry sentry_version=7, sentry_client=tavari-dr/0.1, sentry_key={parts.username}"
    return url, event, {"X-Sentry-Auth": auth}


def route(event: dict[str, Any], *, environment: str, secrets: SecretCache, webhook_secret: str,
          sentry_secret: str | None = None, pagerduty_secret: str | None = None,
          pagerduty_url: str = PAGERDUTY_EVENTS_URL, post: Callable[..., int] = post_json,
          escalation: tuple[str, ...] = ()) -> int:
    """Deliver every SNS record of one invocation; return how many were delivered. A placeholder in an
    optional secret (Sentry, PagerDuty) means "not configured"; in the webhook's, a failure. ``escalation``: the
    lines every alert ends with (who to call, in order)."""
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list) or not records:
        alerts = [parse_message(json.dumps(event, default=str), environment=environment,
                                subject="Unexpected event shape at the alert router")]
    else:
        alerts = []
        for record in records:
            sns = record.get("Sns", {}) if isinstance(record, dict) else {}
            alerts.append(parse_message(sns.get("Message", json.dumps(record, default=str)),
                                        environment=environment, subject=sns.get("Subject")))
    url = secrets.get(webhook_secret)
    if is_placeholder(url):
        raise WebhookError("ALERT_WEBHOOK_URL is still a placeholder: run tavari-dr secrets push", permanent=True)
    dsn = secrets.get(sentry_secret) if sentry_secret else None
    routing_key = secrets.get(pagerduty_secret) if pagerduty_secret else None
    if routing_key is not None and is_placeholder(routing_key):
        routing_key = None
    for alert in (dataclasses.replace(a, escalation=escalation) for a in alerts):
        post(url, slack_payload(alert))
        sentry = bool(dsn) and not is_placeholder(dsn)
        if dsn and sentry:
            sentry_url, sentry_event, headers = sentry_store_request(dsn, alert)
            post(sentry_url, sentry_event, headers=headers)
        paged = pagerduty_event(alert, routing_key.strip()) if routing_key else None
        if paged is not None:
            post(pagerduty_url, paged)  # 202 accepted; 400 permanent; 429 and 5xx retried (post_json)
        # What was delivered, never where: the webhook's URL, the DSN and the routing key are secrets.
        log.info("alert_delivered", extra={"kind": alert.kind, "state": alert.state, "title": alert.title,
                                           "sentry": sentry, "pagerduty": paged["event_action"] if paged else None})
    return len(alerts)
