"""Structured logs of every handler (tavari_dr.core.observability): JSON lines with the request id, the
job and the correlation keys, and no token, e-mail address, secret or row contents in any of them.
The export handlers' share of this is in tests/test_export_api.py (it needs PostgreSQL)."""

from __future__ import annotations

import importlib
import json
import sys
from datetime import UTC, datetime

import boto3
import pytest
from moto import mock_aws

from tavari_dr.core import metrics, observability
from tests.conftest import ROOT
from tests.lambda_logs import FakeContext, capture_json_logs
from tests.test_alerts import ALARM, Webhook, sns_event
from tests.test_verification_jobs import run_handler, world  # noqa: F401 - world is a fixture

EMAIL = "jane.doe@example.com"
TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.c2lnbmF0dXJl"


def handler_module(name, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "lambdas" / name))
    sys.modules.pop("handler", None)
    try:
        return importlib.import_module("handler")
    finally:
        sys.modules.pop("handler", None)


def assert_structured(logs, *, job, forbidden=()):
    """Every line is Powertools JSON of this invocation, one says how it finished, none holds a
    forbidden value."""
    lines = logs.lines()
    assert lines, "the handler logged nothing"
    for line in lines:
        assert line["service"] == "tavari" and line["job"] == job, line
        assert line["function_request_id"] == FakeContext.aws_request_id, line
        assert line["level"] in ("INFO", "WARNING", "ERROR"), line
    assert lines[-1]["message"] == "invocation_finished" and "seconds" in lines[-1]
    for value in forbidden:
        assert value not in logs.text, value
    return lines


# --------------------------------------------------------------------------- the decorator


def test_the_decorator_logs_keys_and_outcome_never_the_event_or_the_response(monkeypatch):
    logs = capture_json_logs(monkeypatch)

    @observability.lambda_handler("daily_monitor", correlation=observability.from_event(run="execution"))
    def handler(event, context):
        if event:
            observability.correlate(backup_id="20261125T020000Z-nightly")
        return {"rows": [EMAIL]}

    event = {"execution": "exec-1", "headers": {"authorization": f"Bearer {TOKEN}"}, "email": EMAIL}
    assert handler(event, FakeContext()) == {"rows": [EMAIL]}
    (line,) = assert_structured(logs, job="daily_monitor", forbidden=(TOKEN, EMAIL))
    assert line["run"] == "exec-1" and line["backup_id"] == "20261125T020000Z-nightly"
    assert line["outcome"] == "ok" and line["cold_start"] in (True, False)
    # A warm container's next invocation starts with no keys but its own.
    handler({}, FakeContext())
    assert "run" not in logs.lines()[-1] and "backup_id" not in logs.lines()[-1]


def test_a_failure_is_logged_by_its_type_and_raised(monkeypatch):
    logs = capture_json_logs(monkeypatch)

    @observability.lambda_handler("export_worker")
    def handler(event, context):
        raise ValueError(f"no row for {EMAIL}")

    with pytest.raises(ValueError):
        handler({}, FakeContext())
    (line,) = assert_structured(logs, job="export_worker", forbidden=(EMAIL,))
    assert line["level"] == "ERROR" and line["outcome"] == "error" and line["error"] == "ValueError"


def test_only_the_correlation_keys_are_correlation_keys():
    with pytest.raises(ValueError, match="not correlation keys: \\['email'\\]"):
        observability.correlate(email=EMAIL)


# --------------------------------------------------------------------------- every handler


@pytest.mark.moto
def test_alert_router(monkeypatch):
    hook = Webhook([(200, {}, 0)])
    try:
        with mock_aws():
            secrets = boto3.client("secretsmanager", region_name="eu-west-1")
            arn = secrets.create_secret(Name="hook", SecretString=hook.url)["ARN"]
            monkeypatch.setenv("TAVARI_ENV", "prod")
            monkeypatch.setenv("ALERT_WEBHOOK_SECRET_ARN", arn)
            monkeypatch.delenv("SENTRY_DSN_SECRET_ARN", raising=False)
            module = handler_module("alert_router", monkeypatch)
            logs = capture_json_logs(monkeypatch)
            alarm = {**ALARM, "NewStateReason": f"{ALARM['NewStateReason']} (reported by {EMAIL})"}
            assert module.handler(sns_event(json.dumps(alarm)), FakeContext()) == {"delivered": 1}
    finally:
        hook.close()
    lines = assert_structured(logs, job="alert_router", forbidden=(EMAIL, hook.url, "/services/T/B/X"))
    delivered = [line for line in lines if line["message"] == "alert_delivered"]
    assert delivered == [{**delivered[0], "kind": "alarm", "state": "ALARM", "title": ALARM["AlarmName"],
                          "sentry": False}]
    assert EMAIL in json.dumps(hook.requests[0]["body"])  # delivered to the webhook, not logged


@pytest.mark.moto
def test_batch_delete_marker(monkeypatch):
    key = f"customers/{EMAIL}/invoice-7.pdf"
    with mock_aws():
        s3 = boto3.client("s3", region_name="eu-west-1")
        s3.create_bucket(Bucket="invoices", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        s3.put_bucket_versioning(Bucket="invoices", VersioningConfiguration={"Status": "Enabled"})
        s3.put_object(Bucket="invoices", Key=key, Body=b"%PDF")
        module = handler_module("batch_delete_marker", monkeypatch)
        logs = capture_json_logs(monkeypatch)
        event = {"invocationSchemaVersion": "2.0", "invocationId": "inv-1",
                 "job": {"id": "batch-job-1",
                         "userArguments": {"bucket": "invoices", "restore_id": "0123abcd4567ef89"}},
                 "tasks": [{"taskId": "t1", "s3Bucket": "invoices", "s3Key": key}]}
        answer = module.handler(event, FakeContext())
    assert answer["results"][0]["resultCode"] == "Succeeded"
    lines = assert_structured(logs, job="batch_delete_marker", forbidden=(EMAIL, "invoice-7.pdf"))
    assert all(line["restore_id"] == "0123abcd4567ef89" for line in lines)
    (done,) = [line for line in lines if line["message"] == "delete_markers"]
    assert done["batch_job_id"] == "batch-job-1" and done["tasks"] == 1 and done["results"] == {"Succeeded": 1}


@pytest.mark.moto
def test_dr_drill(monkeypatch):
    execution = "arn:aws:states:eu-west-1:123456789012:execution:drill:quarterly-2027-01"
    with mock_aws():
        sm = boto3.client("secretsmanager", region_name="eu-west-1")
        webhook = f"https://hooks.slack.com/services/T0/B0/{TOKEN}"
        arn = sm.create_secret(Name="ALERT_WEBHOOK_URL", SecretString=webhook)["ARN"]
        monkeypatch.setenv("TAVARI_SECRETS", json.dumps([{"name": "ALERT_WEBHOOK_URL", "arn": arn}]))
        for name, value in {"TAVARI_REPORTS_BUCKET": "reports", "TAVARI_ENV": "prod", "TAVARI_OBJECTIVES": json.dumps(
                {"rto_critical_seconds": 3600, "rto_non_critical_seconds": 14400})}.items():
            monkeypatch.setenv(name, value)
        module = handler_module("dr_drill", monkeypatch)
        logs = capture_json_logs(monkeypatch)
        answer = module.handler({"step": "secrets", "execution": execution}, FakeContext())
    assert answer["results"] == {"secrets_check": "PASS"}
    lines = assert_structured(logs, job=metrics.QUARTERLY_DRILL, forbidden=(TOKEN, webhook))
    assert all(line["run"] == execution for line in lines)
    assert [line["status"] for line in lines if line["message"] == "drill_step"] == ["PASS"]


@pytest.mark.moto
@pytest.mark.parametrize("job", [metrics.DAILY_MONITOR, metrics.WEEKLY_INTEGRITY, metrics.MONTHLY_RESTORE_TEST])
def test_the_scheduled_verification_jobs(world, monkeypatch, job):  # noqa: F811 - the fixture
    logs = capture_json_logs(monkeypatch)
    summary = run_handler(job, monkeypatch, event={"execution": "sched-exec-1"})
    assert summary["job"] == job
    # The Supabase Management API token the daily job reads ("sbp_token" in this world) is never logged.
    lines = assert_structured(logs, job=job, forbidden=("sbp_token",))
    assert all(line["run"] == "sched-exec-1" for line in lines)
    written = [line for line in lines if line["message"] == "report_written"]
    assert {line["check"] for line in written} == set(summary["results"])
    report = json.loads(world.get_object(Bucket="reports", Key=written[0]["report"])["Body"].read())
    assert report["run"] == "sched-exec-1"  # the report names the run whose lines these are
    assert written[0]["report"].startswith(f"reports/{written[0]['check']}/{datetime.now(UTC):%Y}")


# --------------------------------------------------------------------------- what the templates say


def resources(synthesized, kind):
    for env in synthesized.values():
        for stack, template in env.templates.items():
            for logical_id, resource in template["Resources"].items():
                if resource["Type"] == kind:
                    yield stack, logical_id, resource, template


def test_every_function_traces_actively_and_may_write_traces_nothing_more_with_resource_star(synthesized):
    checked = 0
    for stack, logical_id, fn, template in resources(synthesized, "AWS::Lambda::Function"):
        assert fn["Properties"]["TracingConfig"] == {"Mode": "Active"}, (stack, logical_id)
        role = fn["Properties"]["Role"]["Fn::GetAtt"][0]
        policies = [r for r in template["Resources"].values() if r["Type"] == "AWS::IAM::Policy"
                    and {"Ref": role} in r["Properties"]["Roles"]]
        statements = [s for p in policies for s in p["Properties"]["PolicyDocument"]["Statement"]]
        xray = [s for s in statements if any(a.startswith("xray:") for a in s["Action"])]
        assert {a for s in xray for a in s["Action"] if a.startswith("xray:")} == {
            "xray:PutTelemetryRecords", "xray:PutTraceSegments"}, (stack, logical_id)
        # CDK merges statements of one resource: "*" holds X-Ray's two and, where a role needs it, the
        # one other action of this project without a resource-level form.
        for statement in xray:
            assert statement["Resource"] == "*" and statement["Effect"] == "Allow"
            assert set(statement["Action"]) - {"xray:PutTelemetryRecords", "xray:PutTraceSegments"} <= {
                "cloudwatch:GetMetricStatistics"}, (stack, logical_id, statement)
        checked += 1
    assert checked == 10 * len(synthesized)  # nine and the inventory canary


def test_the_drill_is_traced_and_hands_every_step_its_execution(synthesized):
    machines = list(resources(synthesized, "AWS::StepFunctions::StateMachine"))
    assert machines
    for _stack, _logical_id, machine, _template in machines:
        assert machine["Properties"]["TracingConfiguration"] == {"Enabled": True}
        definition = "".join(p for p in machine["Properties"]["DefinitionString"]["Fn::Join"][1] if isinstance(p, str))
        # Three branches' start markers, the secrets step and the report: the Lambdas log and annotate
        # it as "run", the report records it.
        assert definition.count('"execution.$":"$$.Execution.Id"') == 5


def test_scheduled_verification_jobs_are_handed_the_scheduler_s_execution_id(synthesized):
    lambdas = 0
    for _stack, _logical_id, schedule, _template in resources(synthesized, "AWS::Scheduler::Schedule"):
        target = schedule["Properties"]["Target"]
        if "Function" in target["Arn"].get("Fn::GetAtt", [""])[0]:
            assert json.loads(target["Input"]) == {"execution": "<aws.scheduler.execution-id>"}
            lambdas += 1
    # daily, weekly, monthly and the inventory canary in each environment
    assert lambdas == 4 * len(synthesized)


def test_every_scheduled_task_logs_json(synthesized):
    tasks = 0
    for _stack, _logical_id, task, _template in resources(synthesized, "AWS::ECS::TaskDefinition"):
        (job,) = [c for c in task["Properties"]["ContainerDefinitions"] if c["Name"] == "Job"]
        assert job["Command"][:2] == ["--log-format", "json"], job["Command"]
        tasks += 1
    assert tasks >= 3 * len(synthesized)


def test_traces_record_no_s3_object_key():
    """What X-Ray's botocore patch would put in an S3 call's subsegment: the bucket, never the key."""
    from aws_xray_sdk.ext import boto_utils

    key = f"customers/{EMAIL}/invoice-7.pdf"
    for operation, call in [("GetObject", {"Bucket": "invoices", "Key": key, "VersionId": "v1"}),
                            ("PutObject", {"Bucket": "invoices", "Key": key}),
                            ("CopyObject", {"Bucket": "invoices", "Key": key, "CopySource": f"invoices/{key}"})]:
        recorded = {}
        boto_utils._extract_whitelisted_params("s3", operation, recorded, (operation, call), {}, None)
        assert key not in json.dumps(recorded) and EMAIL not in json.dumps(recorded), (operation, recorded)
    recorded = {}
    boto_utils._extract_whitelisted_params("s3", "GetObject", recorded, ("GetObject", {"Bucket": "b", "Key": "k"}),
                                           {}, None)
    assert recorded == {"bucket_name": "b"}
