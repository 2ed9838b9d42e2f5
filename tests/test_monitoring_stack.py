"""Monitoring: the alert topic, every alarm's wiring, the router, the dashboard."""

from __future__ import annotations

import json

import pytest
from aws_cdk import App, Duration, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Template

from backup_constructs.monitoring import Monitoring
from tavari_dr.core import metrics, outputs
from tests.conftest import alarm_runbook_sections, cdk_context

MONITORING = outputs.MONITORING
RUNBOOK = "https://tavari.github.io/backup-recovery/runbooks/alarms/#"


def resources(env, kind):
    template = env.templates[env.stack(MONITORING)]["Resources"]
    return {k: v for k, v in template.items() if v["Type"] == kind}


def topic_ref(env):
    (topic_id,) = resources(env, "AWS::SNS::Topic")
    return {"Ref": topic_id}


@pytest.mark.parametrize("env_name", ["dev", "prod"])
def test_every_alarm_notifies_the_topic_says_what_to_do_and_treats_missing_data(synthesized, env_name):
    env = synthesized[env_name]
    alarms = resources(env, "AWS::CloudWatch::Alarm")
    assert len(alarms) >= 11
    for logical_id, alarm in alarms.items():
        props = alarm["Properties"]
        assert props["AlarmActions"] == [topic_ref(env)], logical_id
        assert props["TreatMissingData"] in ("breaching", "notBreaching"), logical_id
        assert f"[{env_name}]" in props["AlarmDescription"] and " Do: " in props["AlarmDescription"]
        assert RUNBOOK in props["AlarmDescription"], logical_id


def test_runbook_sections_exist_for_every_alarm(prod):
    anchors = alarm_runbook_sections()
    for alarm in resources(prod, "AWS::CloudWatch::Alarm").values():
        section = alarm["Properties"]["AlarmDescription"].split("#")[-1]
        assert section in anchors, section


def test_alarm_inventory_prod(prod):
    by_metric = {}
    for alarm in resources(prod, "AWS::CloudWatch::Alarm").values():
        props = alarm["Properties"]
        name = props.get("MetricName") or next(
            m["MetricStat"]["Metric"]["MetricName"] for m in props["Metrics"] if "MetricStat" in m)
        by_metric.setdefault(name, []).append(props)
    ages = by_metric[metrics.BACKUP_AGE_HOURS]
    assert {tuple(d["Value"] for d in a["Dimensions"]) for a in ages} == {("supabase",), ("offsite",)}
    assert all(a["Threshold"] == 24 and a["TreatMissingData"] == "breaching" for a in ages)
    # The monitor reports daily: a one-day period, or every hour without a report would breach.
    assert all(a["Period"] == 86400 and a["EvaluationPeriods"] == 1 for a in ages)
    sizes = by_metric[metrics.BACKUP_SIZE_BYTES]
    assert {a.get("Threshold") for a in sizes} == {10485760, 50}  # floor, and drop % (math)
    assert by_metric[metrics.CHECK_FAILED][0]["Threshold"] == 0
    assert "Dimensions" not in by_metric[metrics.CHECK_FAILED][0]  # the aggregate over every check
    (tampered,) = by_metric[metrics.BACKUP_TAMPERED]  # any reader's finding, within five minutes
    assert tampered["Threshold"] == 0 and tampered["Period"] == 300 and "Dimensions" not in tampered
    assert tampered["ComparisonOperator"] == "GreaterThanThreshold" and tampered["TreatMissingData"] == "notBreaching"
    assert {a["Threshold"] for a in by_metric["BucketSizeBytes"] + by_metric["NumberOfObjects"]} == {25}
    assert by_metric["OperationsFailedReplication"][0]["Threshold"] == 0
    latency = by_metric["ReplicationLatency"][0]
    assert latency["Threshold"] == 900
    assert {d["Name"] for d in latency["Dimensions"]} == {"SourceBucket", "DestinationBucket", "RuleId"}
    assert {"Errors", "Throttles", "Duration", "ApproximateNumberOfMessagesVisible"} <= set(by_metric)


def test_dev_has_no_replication_alarms(dev):
    names = json.dumps(resources(dev, "AWS::CloudWatch::Alarm"))
    assert "ReplicationLatency" not in names and "OperationsFailedReplication" not in names


def test_topic_uses_a_cmk_that_cloudwatch_and_eventbridge_may_use(prod):
    (topic,) = resources(prod, "AWS::SNS::Topic").values()
    key_ref = topic["Properties"]["KmsMasterKeyId"]
    assert key_ref != "alias/aws/sns" and "Fn::GetAtt" in key_ref
    key = resources(prod, "AWS::KMS::Key")[key_ref["Fn::GetAtt"][0]]
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    (statement,) = [s for s in statements if "Service" in s.get("Principal", {})]
    assert sorted(statement["Principal"]["Service"]) == ["cloudwatch.amazonaws.com", "events.amazonaws.com"]
    assert set(statement["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}


def test_email_subscriptions_come_from_config(dev, prod):
    emails = [s["Properties"]["Endpoint"] for s in resources(prod, "AWS::SNS::Subscription").values()
              if s["Properties"]["Protocol"] == "email"]
    assert emails == ["oncall@tavari.example"]
    assert not [s for s in resources(dev, "AWS::SNS::Subscription").values()
                if s["Properties"]["Protocol"] == "email"]


def test_router_is_subscribed_packaged_retained_and_has_a_dead_letter_queue(prod):
    (fn_id, fn), = resources(prod, "AWS::Lambda::Function").items()
    props = fn["Properties"]
    assert props["Runtime"] == "python3.14" and props["Handler"] == "handler.handler"
    (dlq_id,) = resources(prod, "AWS::SQS::Queue")
    assert props["DeadLetterConfig"] == {"TargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]}}
    assert props["Environment"]["Variables"]["TAVARI_ENV"] == "prod"
    (sub,) = [s for s in resources(prod, "AWS::SNS::Subscription").values() if s["Properties"]["Protocol"] == "lambda"]
    assert sub["Properties"]["Endpoint"] == {"Fn::GetAtt": [fn_id, "Arn"]}
    (log_group,) = resources(prod, "AWS::Logs::LogGroup").values()
    assert log_group["Properties"]["RetentionInDays"] == 365 and "KmsKeyId" in log_group["Properties"]
    assert props["LoggingConfig"]["LogGroup"] == {"Ref": next(iter(resources(prod, "AWS::Logs::LogGroup")))}


def test_router_role_is_least_privilege(prod):
    (role,) = resources(prod, "AWS::IAM::Role").values()
    assert "ManagedPolicyArns" not in role["Properties"]  # no AWSLambdaBasicExecutionRole
    (policy,) = resources(prod, "AWS::IAM::Policy").values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    # Resource "*" only for X-Ray's two trace writes (active tracing), which have no resource form.
    assert [s["Action"] for s in statements if s["Resource"] == "*"] == [
        ["xray:PutTelemetryRecords", "xray:PutTraceSegments"]]
    actions = {a for s in statements for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}
    assert {"secretsmanager:GetSecretValue", "kms:Decrypt", "logs:PutLogEvents", "sqs:SendMessage"} <= actions
    assert not any(a.startswith(("s3:", "secretsmanager:Put")) for a in actions)


def test_dashboard_shows_every_signal(dev, prod):
    for env, expect_replication in ((dev, False), (prod, True)):
        (dashboard,) = resources(env, "AWS::CloudWatch::Dashboard").values()
        body = json.dumps(dashboard["Properties"]["DashboardBody"])
        for needle in ("Backup age", "Off-site backup size", "Checks passed", "Restore test duration",
                       "Alert router", "Invoice bucket size", "Invoice bucket objects", "Every alarm"):
            assert needle in body, (env.name, needle)
        assert ("Replication latency" in body) == expect_replication


def test_scheduled_job_helper_adds_a_missing_run_alarm_that_treats_missing_data_as_breaching():
    stack = Stack(App(context=cdk_context()), "T")
    monitoring = Monitoring(stack, "M", environment="dev", runbook_url="https://example.org/runbook")
    fn = lambda_.Function(stack, "Job", runtime=lambda_.Runtime.PYTHON_3_14, handler="h.h",
                          code=lambda_.Code.from_inline("def h(e, c): pass"))
    alarms = monitoring.watch_scheduled_job("Daily", fn, job="daily_monitor", every=Duration.days(1),
                                            grace=Duration.hours(2), timeout=Duration.minutes(5))
    assert len(alarms) == 4
    template = Template.from_stack(stack)
    missing = [a for a in template.find_resources("AWS::CloudWatch::Alarm").values()
               if a["Properties"].get("MetricName") == metrics.JOB_SUCCEEDED]
    (alarm,) = missing
    props = alarm["Properties"]
    assert props["TreatMissingData"] == "breaching"
    assert props["Period"] == 26 * 3600 and props["Threshold"] == 1
    assert props["ComparisonOperator"] == "LessThanThreshold"
    assert props["Dimensions"] == [{"Name": "Job", "Value": "daily_monitor"}]
    near_timeout = [a for a in template.find_resources("AWS::CloudWatch::Alarm").values()
                    if a["Properties"].get("MetricName") == "Duration"]
    assert near_timeout[0]["Properties"]["Threshold"] == 240000
