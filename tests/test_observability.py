"""Structured logs of every handler (tavari_dr.core.observability): JSON lines with the request id, the
job and the correlation keys, and no token, e-mail address, secret or row contents in any of them.
The export handlers' share of this is in tests/test_export_api.py (it needs PostgreSQL)."""

from __future__ import annotations

import importlib
import json
import re
import sys
from datetime import UTC, datetime

import boto3
import pytest
from moto import mock_aws

from tavari_dr.core import metrics, observability
from tavari_dr.core.config import EscalationConfig
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
            monkeypatch.setenv("ESCALATION", EscalationConfig().to_json())  # what the Monitoring stack sets
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


def layer_arn(value, template) -> str:
    """A layer ARN as the template holds it: a string, or CDK's Fn::FindInMap into its region table."""
    if isinstance(value, str):
        return value
    mapping, region, key = value["Fn::FindInMap"]
    region = "eu-west-1" if isinstance(region, dict) else region  # {"Ref": "AWS::Region"}
    return template["Mappings"][mapping][region][key]


def test_every_function_traces_actively_and_may_write_traces_nothing_more_with_resource_star(synthesized):
    checked = 0
    for stack, logical_id, fn, template in resources(synthesized, "AWS::Lambda::Function"):
        assert fn["Properties"]["TracingConfig"] == {"Mode": "Active"}, (stack, logical_id)
        # Its spans leave by OTLP/HTTP to AWS's ADOT collector layer, of the function's architecture.
        assert fn["Properties"]["Environment"]["Variables"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://localhost:4318"
        (layer,) = fn["Properties"]["Layers"]
        arch = {"x86_64": "amd64", "arm64": "arm64"}[fn["Properties"].get("Architectures", ["x86_64"])[0]]
        assert re.fullmatch(rf"arn:aws:lambda:[a-z0-9-]+:901920570463:layer:aws-otel-collector-{arch}-ver-0-115-0:\d+",
                            layer_arn(layer, template)), (stack, logical_id, layer)
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


# --------------------------------------------------------------------------- traces (OpenTelemetry)

LAMBDA_TRACE_HEADER = "Root=1-6750a1b2-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=1"
_EXPORTER = []  # one in-memory exporter on the process's one tracer provider, emptied by each test


@pytest.fixture
def spans():
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    if not _EXPORTER:
        _EXPORTER.append(InMemorySpanExporter())
        observability._tracer().provider.add_span_processor(SimpleSpanProcessor(_EXPORTER[0]))
    _EXPORTER[0].clear()
    yield _EXPORTER[0]
    _EXPORTER[0].clear()


def xray_trace_id(span) -> str:
    """A span's trace ID written as X-Ray writes it: 1-<8 hex digits, epoch seconds>-<24 hex digits>."""
    hex_id = f"{span.context.trace_id:032x}"
    return f"1-{hex_id[:8]}-{hex_id[8:]}"


@pytest.mark.moto
def test_an_invocation_is_a_span_of_lambda_s_trace_annotated_its_aws_calls_children(monkeypatch, spans):
    """Under Lambda's trace header the handler's span continues the invocation's X-Ray trace (same trace
    ID, Lambda's segment its parent), carries job, run and backup_id as X-Ray annotations, and an S3 call
    made in it is its child span, with the bucket and without the object key."""
    capture_json_logs(monkeypatch)
    monkeypatch.setenv("_X_AMZN_TRACE_ID", LAMBDA_TRACE_HEADER)
    key = f"customers/{EMAIL}/invoice-7.pdf"

    @observability.lambda_handler("daily_monitor", correlation=observability.from_event(run="execution"))
    def handler(event, context):
        observability.correlate(backup_id="20261125T020000Z-nightly")
        boto3.client("s3", region_name="eu-west-1").put_object(Bucket="invoices", Key=key, Body=b"x")
        return {"ok": True}

    with mock_aws():
        boto3.client("s3", region_name="eu-west-1").create_bucket(
            Bucket="invoices", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        spans.clear()
        handler({"execution": "exec-1"}, FakeContext())
    finished = spans.get_finished_spans()
    (invocation,) = [s for s in finished if s.name == "daily_monitor"]
    assert xray_trace_id(invocation) == "1-6750a1b2-0123456789abcdef01234567"
    assert invocation.parent.span_id == 0x53995C3F42CD8AD8 and invocation.kind.name == "SERVER"
    assert invocation.attributes["job"] == "daily_monitor" and invocation.attributes["run"] == "exec-1"
    assert invocation.attributes["backup_id"] == "20261125T020000Z-nightly"
    assert set(invocation.attributes["aws.xray.annotations"]) == {"job", "run", "backup_id"}
    assert invocation.attributes["faas.invocation_id"] == FakeContext.aws_request_id
    (call,) = [s for s in finished if s.name == "S3.PutObject"]
    assert call.parent.span_id == invocation.context.span_id and call.context.trace_id == invocation.context.trace_id
    assert call.attributes["rpc.service"] == "S3" and call.attributes["rpc.method"] == "PutObject"
    recorded = json.dumps([dict(s.attributes) for s in finished] + [s.name for s in finished])
    assert key not in recorded and EMAIL not in recorded


def test_a_failed_invocation_is_a_failed_span_that_names_the_error_s_type_only(monkeypatch, spans):
    capture_json_logs(monkeypatch)
    monkeypatch.setenv("_X_AMZN_TRACE_ID", LAMBDA_TRACE_HEADER)

    @observability.lambda_handler("export_worker")
    def handler(event, context):
        raise ValueError(f"no row for {EMAIL}")

    with pytest.raises(ValueError):
        handler({}, FakeContext())
    (span,) = spans.get_finished_spans()
    assert span.status.status_code.name == "ERROR" and span.status.description == "ValueError"
    assert not span.events  # no exception event: its message and stack stay out of the trace
    assert EMAIL not in json.dumps([dict(span.attributes), span.status.description])


@pytest.mark.moto
def test_a_command_where_a_collector_listens_is_one_trace_with_its_aws_calls(monkeypatch, spans):
    """The scheduled tasks run beside an ADOT sidecar (OTEL_EXPORTER_OTLP_ENDPOINT set): the command is a
    root span with X-Ray's trace-ID form, its correlation keys annotations, its AWS calls children.
    Without the variable no span is made and OpenTelemetry is not needed (test_cli_contract)."""
    import contextlib

    assert isinstance(observability.command_span("tavari-dr db"), contextlib.nullcontext)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")  # never reached: see below
    with mock_aws(), observability.command_span("tavari-dr db"):
        observability.correlate(job="db_backup", backup_id="20261125T020000Z-nightly")
        boto3.client("sts", region_name="eu-west-1").get_caller_identity()
    (command,) = [s for s in spans.get_finished_spans() if s.name == "tavari-dr db"]
    (call,) = [s for s in spans.get_finished_spans() if s.name == "STS.GetCallerIdentity"]
    assert command.parent is None and call.parent.span_id == command.context.span_id
    assert set(command.attributes["aws.xray.annotations"]) == {"job", "backup_id"}
    # X-Ray's ID generator: the first 32 bits are epoch seconds, read just before the span's start time was.
    assert 0 <= command.start_time // 1_000_000_000 - int(xray_trace_id(command).split("-")[1], 16) <= 1
