"""The dead man's switch: the daily monitor pings the heartbeat URL only when every check passed, against a
local server speaking a healthchecks-style ping API (GET /<uuid> -> 200 "OK")."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from tavari_dr.core import metrics
from tavari_dr.core.outputs import PLACEHOLDER_TEMPLATE
from tavari_dr.verification import checks
from tavari_dr.verification import jobs as verification
from tests.http_stub import ScriptedServer, server_factory
from tests.throttling import record_sleeps

CHECK_UUID = "5bf66975-d4c7-4bf5-bcc8-b8d8a82ea278"


@pytest.fixture
def pings():
    yield from server_factory(lambda *script: ScriptedServer(
        [(status, {}, b"OK" if status == 200 else b"error", 0) for status in script], path=f"/{CHECK_UUID}"))


@pytest.fixture
def backoffs(monkeypatch):
    import urllib3.util.retry

    return record_sleeps(monkeypatch, urllib3.util.retry)


@pytest.fixture
def secretsmanager():
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="eu-west-1")


def run(secretsmanager, url, statuses, emitted):
    arn = secretsmanager.create_secret(Name=f"hb-{len(emitted)}-{len(statuses)}", SecretString=url)["ARN"]
    targets = verification.Targets("inv", None, 30, "GLACIER", "bk", "rp", "sc", heartbeat_url_secret=arn)
    clients = verification.Clients(s3=None, replica_s3=None, cloudwatch=None, secretsmanager=secretsmanager)
    results = [checks.CheckResult(f"check{i}", status) for i, status in enumerate(statuses)]
    return verification.heartbeat(results, clients=clients, targets=targets,
                                  emit=lambda values, dims=None, **_: emitted.append(values))


def test_all_green_pings_the_heartbeat_once(pings, secretsmanager):
    server, emitted = pings(200), []
    assert run(secretsmanager, server.url, [checks.PASS] * 6, emitted) == "sent (HTTP 200)"
    assert [(r["method"], r["path"]) for r in server.requests] == [("GET", f"/{CHECK_UUID}")]
    assert emitted == []


@pytest.mark.parametrize("bad", [checks.FAIL, checks.ERROR])
def test_any_check_that_did_not_pass_withholds_the_ping(pings, secretsmanager, bad):
    server, emitted = pings(200), []
    answer = run(secretsmanager, server.url, [checks.PASS, bad, checks.PASS], emitted)
    assert answer == "withheld: check1 did not pass"
    assert server.requests == [] and emitted == []


def test_an_unset_heartbeat_pings_no_one(pings, secretsmanager):
    server, emitted = pings(200), []
    answer = run(secretsmanager, PLACEHOLDER_TEMPLATE, [checks.PASS], emitted)
    assert answer == "not configured (HEARTBEAT_URL is unset)"
    assert server.requests == []
    targets = verification.Targets("inv", None, 30, "GLACIER", "bk", "rp", "sc")
    assert verification.heartbeat([], clients=None, targets=targets) == "not configured"


def test_a_ping_that_cannot_be_delivered_is_a_metric_after_retries(pings, secretsmanager, backoffs):
    server, emitted = pings(503, 503, 503), []
    answer = run(secretsmanager, server.url, [checks.PASS], emitted)
    assert answer.startswith("failed: heartbeat to 127.0.0.1:")
    assert CHECK_UUID not in answer  # the path carries the check's token: never in a log line
    assert len(server.requests) == 3 and emitted == [{metrics.HEARTBEAT_PING_FAILED: 1}]
