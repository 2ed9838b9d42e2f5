"""Alert router: formatting of every message kind, and delivery against a local webhook."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from tavari_dr.alerts import router as alerts
from tavari_dr.core import metrics
from tavari_dr.core.config import Contact, EscalationConfig
from tavari_dr.core.outputs import PLACEHOLDER_TEMPLATE
from tests.http_stub import ScriptedServer, server_factory
from tests.lambda_logs import FakeContext
from tests.throttling import record_sleeps

pytestmark = pytest.mark.moto  # AWS emulated in-process: its own budget (benches/synth.sh)

ALARM = {
    "AlarmName": "Tavari-Prod-Monitoring-BackupAgeOffsite-1A2B",
    "AlarmDescription": "[prod] The newest offsite backup is older than the 24 h RPO. Do: take a manual backup. "
                        "Runbook: https://example.org/alarms.md#backup-age",
    "NewStateValue": "ALARM", "OldStateValue": "OK",
    "NewStateReason": "Threshold Crossed: 2 datapoints [30.5, 29.5] were greater than the threshold (24.0).",
    "StateChangeTime": "2026-11-25T06:00:00.000+0000", "Region": "EU (Ireland)",
    "Trigger": {"MetricName": "BackupAgeHours", "Namespace": "Tavari/Backup", "Threshold": 24.0,
                "ComparisonOperator": "GreaterThanThreshold", "Dimensions": [{"name": "Source", "value": "offsite"}]},
}


def sns_event(*messages, subject=None):
    return {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": m, "Subject": subject}} for m in messages]}


def test_alarm_message_says_what_where_value_since_and_runbook():
    alert = alerts.parse_message(json.dumps(ALARM), environment="prod")
    text = alert.text()
    assert alert.kind == "alarm" and alert.state == "ALARM"
    assert "[prod] Tavari-Prod-Monitoring-BackupAgeOffsite-1A2B" in text
    assert "Metric: Tavari/Backup/BackupAgeHours (Source=offsite); threshold > 24.0" in text
    assert "[30.5, 29.5]" in text and "Since: 2026-11-25T06:00:00.000+0000 (was OK)" in text
    assert "Runbook: https://example.org/alarms.md#backup-age" in text
    assert ":red_circle:" in text


def test_ok_transition_is_recovery_news():
    alert = alerts.parse_message(json.dumps({**ALARM, "NewStateValue": "OK", "OldStateValue": "ALARM"}),
                                 environment="prod")
    assert alert.state == "OK" and ":large_green_circle:" in alert.text()


def test_project_failure_event():
    event = {"source": "tavari", "job": "daily_monitor", "check": "supabase_backups", "environment": "prod",
             "detail": "newest COMPLETED backup is 30.1 h old", "value": 30.1, "threshold": 24,
             "runbook": "https://example.org/alarms.md#check-failed"}
    text = alerts.parse_message(json.dumps(event), environment="dev").text()
    assert "[prod] daily_monitor failed" in text and "What failed: supabase_backups" in text
    assert "Value: 30.1" in text and "Threshold: 24" in text and "#check-failed" in text


@pytest.mark.parametrize("garbage", ["not json at all", "", "[1, 2, 3]", '{"AlarmName": "no state"}', "x" * 5000])
def test_garbage_is_forwarded_raw_and_truncated(garbage):
    alert = alerts.parse_message(garbage, environment="dev", subject="odd")
    assert alert.kind == "unknown" and alert.state == "UNKNOWN"
    assert garbage[:100] in alert.text()
    assert len(alert.text()) < 1700


def Webhook(script):  # noqa: N802 - reads like the class it stands for
    """A Slack-compatible webhook: (status, headers, delay) per request, "ok" or an error text."""
    return ScriptedServer([(status, headers, b"ok" if status < 400 else b"error text", delay)
                           for status, headers, delay in script], path="/services/T/B/X")


@pytest.fixture
def webhook_factory():
    yield from server_factory(lambda *script: Webhook(script))


def test_200_delivers_once(webhook_factory):
    hook = webhook_factory((200, {}, 0))
    assert alerts.post_json(hook.url, {"text": "hi"}) == 200
    assert [r["body"] for r in hook.requests] == [{"text": "hi"}]


@pytest.fixture
def backoffs(monkeypatch):
    """The waits urllib3's Retry asks for (backoff and Retry-After), recorded instead of slept."""
    import urllib3.util.retry

    return record_sleeps(monkeypatch, urllib3.util.retry)


def test_429_honours_retry_after(webhook_factory, backoffs):
    hook = webhook_factory((429, {"Retry-After": "1"}, 0), (200, {}, 0))
    assert alerts.post_json(hook.url, {"text": "x"}, backoff=5.0) == 200
    assert backoffs == [1.0] and len(hook.requests) == 2


def test_a_retry_after_of_minutes_is_capped(webhook_factory, backoffs):
    hook = webhook_factory((503, {"Retry-After": "3600"}, 0), (200, {}, 0))
    assert alerts.post_json(hook.url, {"text": "x"}) == 200
    assert backoffs == [alerts.MAX_RETRY_AFTER_SECONDS]


def test_5xx_is_retried_with_exponential_backoff(webhook_factory, backoffs):
    hook = webhook_factory((500, {}, 0), (503, {}, 0), (502, {}, 0), (200, {}, 0))
    assert alerts.post_json(hook.url, {"text": "x"}, backoff=0.5) == 200
    # urllib3: the first retry at once, then backoff * 2, * 4.
    assert backoffs == [1.0, 2.0] and len(hook.requests) == 4
    assert all(r["body"] == {"text": "x"} for r in hook.requests)


def test_5xx_that_never_ends_gives_up_after_the_attempts(webhook_factory, backoffs):
    hook = webhook_factory(*[(503, {}, 0)] * 5)
    with pytest.raises(alerts.WebhookError) as err:
        alerts.post_json(hook.url, {"text": "x"}, attempts=3)
    assert not err.value.permanent and "gave up after 3 attempts: HTTP 503" in str(err.value)
    assert len(hook.requests) == 3


def test_timeout_is_retried_then_gives_up(webhook_factory, backoffs):
    hook = webhook_factory((200, {}, 1.0), (200, {}, 1.0))
    with pytest.raises(alerts.WebhookError) as err:
        alerts.post_json(hook.url, {"text": "x"}, timeout=0.2, attempts=2)
    assert not err.value.permanent and "gave up after 2 attempts" in str(err.value)
    assert len(hook.requests) == 2


def test_permanent_4xx_raises_at_once_for_the_dead_letter_queue(webhook_factory, backoffs):
    hook = webhook_factory((404, {}, 0), (200, {}, 0))
    with pytest.raises(alerts.WebhookError) as err:
        alerts.post_json(hook.url, {"text": "x"})
    assert err.value.permanent and "HTTP 404" in str(err.value) and "error text" in str(err.value)
    assert len(hook.requests) == 1 and backoffs == []


def test_connection_refused_is_not_permanent(backoffs):
    with pytest.raises(alerts.WebhookError) as err:
        alerts.post_json("http://127.0.0.1:9/x", {"text": "x"}, attempts=2, timeout=0.5)
    assert not err.value.permanent and "gave up after 2 attempts" in str(err.value)


def test_sentry_store_request_from_dsn():
    alert = alerts.parse_message(json.dumps(ALARM), environment="prod")
    url, event, headers = alerts.sentry_store_request("https://pubkey@o1.ingest.sentry.io/42", alert)
    assert url == "https://o1.ingest.sentry.io/api/42/store/"
    assert event["level"] == "error" and event["environment"] == "prod"
    assert "sentry_key=pubkey" in headers["X-Sentry-Auth"]
    with pytest.raises(ValueError, match="not a DSN"):
        alerts.sentry_store_request("https://o1.ingest.sentry.io/42", alert)


def test_secret_cache_reads_once_per_ttl():
    calls = []

    class Client:
        def get_secret_value(self, SecretId):  # noqa: N803
            calls.append(SecretId)
            return {"SecretString": f"value-{len(calls)}"}

    now = [0.0]
    cache = alerts.SecretCache(Client(), ttl=300, clock=lambda: now[0])
    assert cache.get("a") == "value-1" and cache.get("a") == "value-1"
    now[0] = 301
    assert cache.get("a") == "value-2"
    assert calls == ["a", "a"]


@pytest.fixture
def secrets_client():
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="eu-west-1")


def test_route_posts_every_record_to_the_webhook_and_sentry(webhook_factory, secrets_client):
    hook, sentry = webhook_factory(), webhook_factory()
    webhook_arn = secrets_client.create_secret(Name="hook", SecretString=hook.url)["ARN"]
    dsn = f"http://key@127.0.0.1:{sentry.port}/7"
    sentry_arn = secrets_client.create_secret(Name="dsn", SecretString=dsn)["ARN"]
    event = sns_event(json.dumps(ALARM), "garbage")
    delivered = alerts.route(event, environment="prod", secrets=alerts.SecretCache(secrets_client),
                             webhook_secret=webhook_arn, sentry_secret=sentry_arn)
    assert delivered == 2
    assert [r["body"]["text"].splitlines()[0] for r in hook.requests] == [
        ":red_circle: *[prod] Tavari-Prod-Monitoring-BackupAgeOffsite-1A2B* — ALARM",
        ":warning: *[prod] Unrecognised message on the alert topic* — UNKNOWN",
    ]
    assert len(sentry.requests) == 2 and "sentry_key=key" in sentry.requests[0]["headers"]["X-Sentry-Auth"]


def test_route_without_sentry_dsn_set_skips_sentry(webhook_factory, secrets_client):
    hook = webhook_factory()
    webhook_arn = secrets_client.create_secret(Name="hook", SecretString=hook.url)["ARN"]
    placeholder = secrets_client.create_secret(Name="dsn", SecretString=PLACEHOLDER_TEMPLATE)["ARN"]
    assert alerts.route(sns_event(json.dumps(ALARM)), environment="prod", secrets=alerts.SecretCache(secrets_client),
                        webhook_secret=webhook_arn, sentry_secret=placeholder) == 1


def test_route_refuses_a_placeholder_webhook(secrets_client):
    arn = secrets_client.create_secret(Name="hook", SecretString=PLACEHOLDER_TEMPLATE)["ARN"]
    with pytest.raises(alerts.WebhookError, match="placeholder"):
        alerts.route(sns_event("x"), environment="dev", secrets=alerts.SecretCache(secrets_client),
                     webhook_secret=arn)


def test_route_forwards_an_event_of_unexpected_shape(webhook_factory, secrets_client):
    hook = webhook_factory()
    arn = secrets_client.create_secret(Name="hook", SecretString=hook.url)["ARN"]
    assert alerts.route({"weird": True}, environment="dev", secrets=alerts.SecretCache(secrets_client),
                        webhook_secret=arn) == 1
    assert "Unexpected event shape" in hook.requests[0]["body"]["text"]


def test_handler_delivers_and_publishes_an_emf_metric(webhook_factory, secrets_client, monkeypatch, capsys):
    import importlib
    import sys

    hook = webhook_factory()
    arn = secrets_client.create_secret(Name="hook", SecretString=hook.url)["ARN"]
    monkeypatch.setenv("TAVARI_ENV", "dev")
    monkeypatch.setenv("ALERT_WEBHOOK_SECRET_ARN", arn)
    monkeypatch.delenv("SENTRY_DSN_SECRET_ARN", raising=False)
    chain = EscalationConfig(contacts=(Contact("Ana Duty", "On-call engineer", "PagerDuty", "+44 20 7946 0000"),))
    monkeypatch.setenv("ESCALATION", chain.to_json())
    monkeypatch.syspath_prepend(str(__import__("tests.conftest").conftest.ROOT / "lambdas" / "alert_router"))
    sys.modules.pop("handler", None)
    handler = importlib.import_module("handler")
    assert handler.handler(sns_event(json.dumps(ALARM)), FakeContext()) == {"delivered": 1}
    # Every alert ends with who to call (cdk.json escalation, through the stack's ESCALATION variable).
    text = hook.requests[0]["body"]["text"].splitlines()
    assert text[-2] == "Escalate: 1. On-call engineer: Ana Duty (PagerDuty, +44 20 7946 0000)"
    assert text[-1].startswith("Support: Supabase https://")
    assert hook.requests[0]["body"]["blocks"][-1]["elements"][0]["text"] == text[-2]
    emf = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert emf[metrics.ALERTS_DELIVERED] == 1
    assert emf["_aws"]["CloudWatchMetrics"][0]["Namespace"] == metrics.NAMESPACE
    sys.modules.pop("handler", None)


# --------------------------------------------------------------------------- Block Kit and PagerDuty

ALARM_ARN = "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:Tavari-Prod-Monitoring-BackupAgeOffsite-1A2B"
FULL_ALARM = {**ALARM, "AWSAccountId": "123456789012", "AlarmArn": ALARM_ARN}


def test_slack_blocks_say_what_where_since_and_the_runbook_with_the_text_fallback():
    payload = alerts.slack_payload(alerts.parse_message(json.dumps(FULL_ALARM), environment="prod"))
    assert payload["text"].startswith(":red_circle: *[prod] Tavari-Prod-Monitoring-BackupAgeOffsite-1A2B*")
    header, section, details, context = payload["blocks"]
    assert header == {"type": "header", "text": {"type": "plain_text", "emoji": True,
                                                 "text": "[prod] Tavari-Prod-Monitoring-BackupAgeOffsite-1A2B"}}
    assert section["text"]["text"].startswith("Threshold Crossed: 2 datapoints")
    fields = [f["text"] for f in section["fields"]]
    assert fields == ["*State*\n:red_circle: ALARM", "*Where*\naccount 123456789012 / eu-west-1 / env prod",
                      "*Since*\n2026-11-25T06:00:00.000+0000"]
    assert "Metric: Tavari/Backup/BackupAgeHours (Source=offsite); threshold > 24.0" in details["text"]["text"]
    assert context == {"type": "context", "elements": [
        {"type": "mrkdwn", "text": "Runbook: <https://example.org/alarms.md#backup-age>"}]}


def test_slack_blocks_stay_within_block_kit_limits():
    long = {**FULL_ALARM, "AlarmName": "A" * 400, "NewStateReason": "r" * 5000}
    blocks = alerts.slack_payload(alerts.parse_message(json.dumps(long), environment="prod"))["blocks"]
    assert len(blocks[0]["text"]["text"]) <= 150
    assert all(len(b["text"]["text"]) <= 3000 for b in blocks if b["type"] == "section")


def PagerDuty(*script):  # noqa: N802 - reads like the class it stands for
    """Events API v2 as documented: 202 {status, message, dedup_key}; 400 {status, message, errors}; 429."""
    answers = {202: {"status": "success", "message": "Event processed", "dedup_key": "k"},
               400: {"status": "invalid event", "message": "Event object is invalid",
                     "errors": ["'payload.summary' is missing"]},
               429: {"status": "throttle event", "message": "Requests for this service are arriving too quickly."}}
    return ScriptedServer([(status, {"Content-Type": "application/json"}, answers[status], 0) for status in script],
                          path="/v2/enqueue")


def test_pagerduty_triggers_on_alarm_and_resolves_on_ok_with_the_alarms_arn_as_dedup_key():
    alarm = alerts.parse_message(json.dumps(FULL_ALARM), environment="prod")
    event = alerts.pagerduty_event(alarm, "R0UTINGKEY")
    assert event["event_action"] == "trigger" and event["dedup_key"] == ALARM_ARN
    assert event["routing_key"] == "R0UTINGKEY" and event["payload"]["severity"] == "error"
    assert event["payload"]["summary"].startswith("[prod] Tavari-Prod-Monitoring-BackupAgeOffsite-1A2B: Threshold")
    assert event["payload"]["source"] == "account 123456789012 / eu-west-1 / env prod"
    assert event["links"] == [{"href": "https://example.org/alarms.md#backup-age", "text": "Runbook"}]
    ok = alerts.parse_message(json.dumps({**FULL_ALARM, "NewStateValue": "OK"}), environment="prod")
    assert alerts.pagerduty_event(ok, "R0UTINGKEY") == {"routing_key": "R0UTINGKEY", "event_action": "resolve",
                                                       "dedup_key": ALARM_ARN}
    waiting = alerts.parse_message(json.dumps({**FULL_ALARM, "NewStateValue": "INSUFFICIENT_DATA"}),
                                   environment="prod")
    assert alerts.pagerduty_event(waiting, "R0UTINGKEY") is None
    assert alerts.pagerduty_event(alerts.parse_message("garbage", environment="prod"), "R0UTINGKEY") is None
    failure = alerts.parse_message(json.dumps({"source": "tavari", "job": "db_backup", "detail": "pg_dump exited 1"}),
                                   environment="prod")
    paged = alerts.pagerduty_event(failure, "R0UTINGKEY")
    assert paged["event_action"] == "trigger" and paged["dedup_key"] == "prod:failure:db_backup:db_backup"


def test_route_pages_pagerduty_and_retries_its_429(webhook_factory, secrets_client, backoffs):
    hook = webhook_factory()
    pagerduty = PagerDuty(429, 202, 202)
    try:
        arns = {name: secrets_client.create_secret(Name=name, SecretString=value)["ARN"]
                for name, value in (("hook", hook.url), ("pd", "R0UTINGKEY\n"))}
        ok = {**FULL_ALARM, "NewStateValue": "OK"}
        event = sns_event(json.dumps(FULL_ALARM), json.dumps(ok), "garbage")
        assert alerts.route(event, environment="prod", secrets=alerts.SecretCache(secrets_client),
                            webhook_secret=arns["hook"], pagerduty_secret=arns["pd"],
                            pagerduty_url=pagerduty.url) == 3
        assert len(hook.requests) == 3 and all("blocks" in r["body"] for r in hook.requests)
        sent = [r["body"] for r in pagerduty.requests]
        assert [e["event_action"] for e in sent] == ["trigger", "trigger", "resolve"]  # the 429, then its retry
        assert all(e["routing_key"] == "R0UTINGKEY" and e["dedup_key"] == ALARM_ARN for e in sent)
        assert backoffs == []  # urllib3 retries once at once; later retries back off (test_5xx_... above)
    finally:
        pagerduty.close()


def test_pagerduty_400_is_permanent(webhook_factory, secrets_client, backoffs):
    hook = webhook_factory()
    pagerduty = PagerDuty(400)
    try:
        arns = {name: secrets_client.create_secret(Name=name, SecretString=value)["ARN"]
                for name, value in (("hook", hook.url), ("pd", "R0UTINGKEY"))}
        with pytest.raises(alerts.WebhookError) as err:
            alerts.route(sns_event(json.dumps(FULL_ALARM)), environment="prod",
                         secrets=alerts.SecretCache(secrets_client), webhook_secret=arns["hook"],
                         pagerduty_secret=arns["pd"], pagerduty_url=pagerduty.url)
        assert err.value.permanent and "HTTP 400" in str(err.value) and "Event object is invalid" in str(err.value)
        assert len(pagerduty.requests) == 1 and backoffs == []
    finally:
        pagerduty.close()


def test_a_placeholder_routing_key_pages_no_one(webhook_factory, secrets_client):
    hook = webhook_factory()
    pagerduty = PagerDuty()
    try:
        hook_arn = secrets_client.create_secret(Name="hook", SecretString=hook.url)["ARN"]
        pd_arn = secrets_client.create_secret(Name="pd", SecretString=PLACEHOLDER_TEMPLATE)["ARN"]
        assert alerts.route(sns_event(json.dumps(FULL_ALARM)), environment="prod",
                            secrets=alerts.SecretCache(secrets_client), webhook_secret=hook_arn,
                            pagerduty_secret=pd_arn, pagerduty_url=pagerduty.url) == 1
        assert pagerduty.requests == [] and len(hook.requests) == 1
    finally:
        pagerduty.close()
