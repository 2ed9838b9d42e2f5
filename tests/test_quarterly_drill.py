"""The quarterly drill in AWS: the state machine's template, and its Lambda steps on moto."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from datetime import UTC, datetime

import boto3
import pytest
from moto import mock_aws

from tavari_dr.core import outputs
from tavari_dr.verification import quarterly

BACKUPS = outputs.DATABASE_BACKUPS


def resources(env, kind):
    return {k: v for k, v in env.templates[env.stack(BACKUPS)]["Resources"].items() if v["Type"] == kind}


def definition(env):
    (machine,) = resources(env, "AWS::StepFunctions::StateMachine").values()
    parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    return machine, json.loads("".join(p if isinstance(p, str) else "REF" for p in parts))


@pytest.mark.parametrize("env_name", ["dev", "prod"])
def test_state_machine_runs_three_timed_restore_tests_then_a_report_and_a_verdict(synthesized, env_name):
    machine, states = definition(synthesized[env_name])
    assert states["StartAt"] == "RestoreTests"
    parallel = states["States"]["RestoreTests"]
    assert parallel["Type"] == "Parallel" and parallel["Next"] == "WriteReport"
    starts = [b["States"][b["StartAt"]] for b in parallel["Branches"]]
    assert sorted(s["Parameters"]["step"] for s in starts) == ["bucket_restore", "database_restore", "secrets_check"]
    for branch, start in zip(parallel["Branches"], starts, strict=True):
        assert start["Parameters"]["started.$"] == "$$.State.EnteredTime"
        tasks = [s for s in branch["States"].values() if s["Type"] == "Task"]
        assert len(tasks) == 1 and tasks[0]["Catch"][0]["ResultPath"] == "$.error"  # a failure ends the branch
        ends = [s for s in branch["States"].values() if s.get("End")]
        assert all(e["Parameters"]["finished.$"] == "$$.State.EnteredTime" for e in ends)
    ecs_task = next(s for b in parallel["Branches"] for s in b["States"].values()
                    if s.get("Resource", "").endswith("ecs:runTask.sync"))
    assert "ExitCode" in ecs_task["ResultSelector"]["codes.$"]  # .sync succeeds on any exit; the code decides
    report = states["States"]["WriteReport"]
    assert report["Parameters"]["step"] == "report" and report["Parameters"]["branches.$"] == "$"
    assert report["Next"] == "ObjectivesMet"
    choice = states["States"]["ObjectivesMet"]
    assert choice["Choices"][0]["Variable"] == "$.passed" and states["States"][choice["Default"]]["Type"] == "Fail"
    props = machine["Properties"]
    assert props["LoggingConfiguration"]["Level"] == "ALL" and props["TracingConfiguration"] == {"Enabled": True}
    assert states["TimeoutSeconds"] == 4 * 3600


def test_it_runs_quarterly_on_a_schedule_and_alarms_when_it_fails(prod):
    (schedule,) = [r["Properties"] for k, r in resources(prod, "AWS::Scheduler::Schedule").items()
                   if k.startswith("QuarterlyDrill")]
    assert schedule["ScheduleExpression"] == "cron(0 9 ? 1,4,7,10 MON#1 *)"
    assert schedule["ScheduleExpressionTimezone"] == "UTC" and "DeadLetterConfig" in schedule["Target"]
    assert outputs.DRILL_STATE_MACHINE_ARN in prod.templates[prod.stack(BACKUPS)]["Outputs"]
    alarms = [a["Properties"] for a in prod.templates[prod.stack(outputs.MONITORING)]["Resources"].values()
              if a["Type"] == "AWS::CloudWatch::Alarm"]
    drill = [a for a in alarms if "#drill-failed" in a["AlarmDescription"]]
    assert {a.get("MetricName") for a in drill} == {"ExecutionsFailed", "ExecutionsTimedOut", "DrillObjectiveMissed"}


def test_drill_function_reads_every_secret_and_writes_only_reports(prod):
    (fn,) = [r["Properties"] for r in resources(prod, "AWS::Lambda::Function").values()
             if r["Properties"]["Description"].startswith("Quarterly DR drill")]
    variables = fn["Environment"]["Variables"]
    assert json.loads(variables["TAVARI_OBJECTIVES"]) == {"rto_critical_seconds": 3600,
                                                         "rto_non_critical_seconds": 14400}
    policy = next(p["Properties"]["PolicyDocument"]["Statement"] for k, p in resources(prod, "AWS::IAM::Policy").items()
                  if k.startswith("DrillStepsRole"))
    actions = {a for s in policy for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert "secretsmanager:GetSecretValue" in actions and "s3:PutObject" in actions
    assert not [a for a in actions if a.startswith(("s3:Delete", "secretsmanager:Put", "secretsmanager:Update"))]


# --------------------------------------------------------------------------- the Lambda steps


OBJECTIVES = quarterly.Objectives(rto_critical_seconds=3600, rto_non_critical_seconds=14400)


def branch(step, critical, seconds, ok=True, result=None, error=None):
    return {"step": step, "critical": critical, "ok": ok, "started": "2027-01-04T09:00:00.000Z",
            "finished": f"2027-01-04T09:{seconds // 60:02d}:{seconds % 60:02d}.000Z", "result": result,
            **({"error": error} if error else {})}


def test_report_sums_critical_and_all_steps_against_the_objectives():
    event = {"branches": [branch("database_restore", True, 1500, result={"results": {"database_restore": "PASS"}}),
                          branch("bucket_restore", False, 600, result={"results": {"s3_restore_test": "PASS"}}),
                          branch("secrets_check", True, 5, result={"results": {"secrets_check": "PASS"}})],
             "execution": "arn:exec", "started": "2027-01-04T09:00:00Z"}
    result = quarterly.report(event, objectives=OBJECTIVES, environment="prod")
    assert result["passed"] and result["rto_critical"]["achieved_seconds"] == 1505
    assert result["rto_non_critical"]["achieved_seconds"] == 2105
    slow = quarterly.report({**event, "branches": [branch("database_restore", True, 3599), branch("secrets_check",
                                                                                                  True, 5)]},
                            objectives=OBJECTIVES, environment="prod")
    assert not slow["passed"] and not slow["rto_critical_met"] and slow["steps_ok"]


def test_the_aws_report_has_the_local_drills_schema_and_the_models_error_per_step():
    import jsonschema

    from tavari_dr.core import evidence

    counts = {"requests": {"list": 2, "get": 10, "put": 10, "delete": 10}, "bytes_read": 10_000_000,
              "bytes_written": 10_000_000, "rows": 0, "processes": 0}
    event = {"branches": [branch("database_restore", True, 1500, result={"results": {"database_restore": "PASS"}}),
                          branch("bucket_restore", False, 20, result={"results": {"s3_restore_test": "PASS"},
                                                                      "counts": counts}),
                          branch("secrets_check", True, 5, result={"results": {"secrets_check": "PASS"}})],
             "execution": "arn:exec", "started": "2027-01-04T09:00:00.000Z"}
    result = quarterly.report(event, objectives=OBJECTIVES, environment="prod")
    jsonschema.validate(result, evidence.report_schema())
    assert result["kind"] == "aws" and not result["emulated"] and result["evidence"]["commit"] is None
    bucket = next(s for s in result["steps"] if s["step"] == "bucket_restore")
    # 32 requests x 0.2 s + 20 MB at 85 MB/s on one connection = 6.6 s predicted; 20 s measured: +203 %.
    assert bucket["projected_seconds"] == 6.6 and bucket["model_error"] == 2.03
    database = next(s for s in result["steps"] if s["step"] == "database_restore")
    assert database["model"] is None and database["model_error"] is None  # the Fargate task reports no counts
    failed = quarterly.report({"branches": [branch("secrets_check", True, 5, ok=False, error="boom")]},
                              objectives=OBJECTIVES, environment="prod")
    jsonschema.validate(failed, evidence.report_schema())
    assert failed["failures"] == ["secrets_check: boom"]


def test_a_failed_or_failing_step_fails_the_drill():
    failed = quarterly.report({"branches": [branch("database_restore", True, 60, ok=False,
                                                   error="States.TaskFailed: no scratch database")]},
                              objectives=OBJECTIVES, environment="prod")
    assert not failed["passed"] and "no scratch database" in quarterly.markdown(failed)
    check_failed = quarterly.report({"branches": [branch("bucket_restore", False, 60, result={
        "results": {"s3_restore_test": "FAIL"}})]}, objectives=OBJECTIVES, environment="prod")
    assert not check_failed["passed"] and not check_failed["steps_ok"]
    nonzero = quarterly.report({"branches": [branch("database_restore", True, 60, result={
        "results": {"database_restore": "FAIL"}, "exit_code": 1})]}, objectives=OBJECTIVES, environment="prod")
    assert not nonzero["passed"]


@pytest.mark.moto
def test_handler_checks_secrets_and_records_the_report(monkeypatch):
    with mock_aws():
        sm = boto3.client("secretsmanager", region_name="eu-west-1")
        good = sm.create_secret(Name="SUPABASE_URL", SecretString="https://x.supabase.co")["ARN"]
        placeholder = sm.create_secret(Name="ALERT_WEBHOOK_URL",
                                       SecretString=json.dumps({"tavari:unset": "set me"}))["ARN"]
        s3 = boto3.client("s3", region_name="eu-west-1")
        s3.create_bucket(Bucket="reports", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        environ = {"TAVARI_SECRETS": json.dumps([{"name": "SUPABASE_URL", "arn": good, "required": True},
                                                 {"name": "ALERT_WEBHOOK_URL", "arn": placeholder, "required": True}]),
                   "TAVARI_REPORTS_BUCKET": "reports", "TAVARI_ENV": "prod",
                   "TAVARI_OBJECTIVES": json.dumps({"rto_critical_seconds": 3600, "rto_non_critical_seconds": 14400})}
        secrets = quarterly.handle({"step": "secrets"}, environ)
        assert secrets["results"] == {"secrets_check": "FAIL"} and secrets["details"] == [
            "ALERT_WEBHOOK_URL: placeholder"]
        lines = io.StringIO()
        with redirect_stdout(lines):
            answer = quarterly.handle({"step": "report", "execution": "arn:exec", "started": "2027-01-04T09:00:00Z",
                                       "branches": [branch("secrets_check", True, 3, result=secrets)]}, environ)
        assert answer["passed"] is False
        key = f"reports/quarterly_drill/{datetime.now(UTC):%Y-%m-%d}"
        stored = json.loads(s3.get_object(Bucket="reports", Key=f"{key}.json")["Body"].read())
        assert stored["steps"][0]["step"] == "secrets_check" and not stored["passed"]
        assert b"FAILED" in s3.get_object(Bucket="reports", Key=f"{key}.md")["Body"].read()
        emitted = [json.loads(line) for line in lines.getvalue().splitlines()]
        assert {"DrillObjectiveMissed": 1} .items() <= emitted[-1].items()
        with pytest.raises(ValueError, match="unknown drill step"):
            quarterly.handle({"step": "nope"}, environ)
