"""The continuous capture in AWS (`tavari-dr db stream`, ADR 0021): one always-on Fargate task that never
runs twice, dual-stack networking to Supabase's IPv6-only direct connection, a role that can write only
new objects under changes/, its alarms and dashboard, and changes/ guarded like the dumps."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
from aws_cdk.assertions import Match, Template

from stacks.monitoring import segment_age_bound
from tavari_dr.core import guardrails as g
from tavari_dr.core import metrics, outputs
from tavari_dr.core.config import DEFAULT_SECRET_ENTRIES, load_environment
from tests.conftest import ROOT, _synth, alarm_runbook_sections, cdk_context

ENVIRONMENTS = list(cdk_context()["environments"])
STREAM = "STREAM_DATABASE_URL"


def _with_stream_secret(name: str) -> dict:
    """cdk.json's context with the direct-connection secret entry declared (where the core entries do not
    declare it yet, the capture is not deployed: the stack needs the secret to hand the task)."""
    context = copy.deepcopy(cdk_context())
    context["env"] = name
    if STREAM not in {e.name for e in DEFAULT_SECRET_ENTRIES}:
        entries = [{"name": e.name, "description": e.description, "required": e.required}
                   for e in DEFAULT_SECRET_ENTRIES]
        entries.append({"name": STREAM, "description": "Direct connection (db.<ref>.supabase.co:5432)",
                        "required": False})
        context["environments"][name].setdefault("secrets", {})["entries"] = entries
    return context


@pytest.fixture(scope="module")
def captured(synthesized, tmp_path_factory):
    """Every environment with the capture deployed (the session's synth where the entry is a core one)."""
    if STREAM in {e.name for e in DEFAULT_SECRET_ENTRIES}:
        return {name: synthesized[name] for name in ENVIRONMENTS}
    return {name: _synth(name, _with_stream_secret(name), tmp_path_factory.mktemp(f"capture-{name}"))
            for name in ENVIRONMENTS}


def _config(name):
    return load_environment(_with_stream_secret(name), name)


def _backups(env) -> Template:
    return env.template(outputs.DATABASE_BACKUPS)


def _only(template: Template, kind: str, **props) -> dict:
    found = template.find_resources(kind, {"Properties": props} if props else None)
    assert len(found) == 1, list(found)
    return next(iter(found.values()))


@pytest.mark.parametrize("env_name", ENVIRONMENTS)
def test_one_always_on_task_and_a_deployment_that_never_runs_two(captured, env_name):
    service = _only(_backups(captured[env_name]), "AWS::ECS::Service")["Properties"]
    assert service["DesiredCount"] == 1 and service["LaunchType"] == "FARGATE"
    # A slot takes one consumer: stop the old task before the new one starts, roll back a failing deployment.
    assert service["DeploymentConfiguration"] == {"MaximumPercent": 100, "MinimumHealthyPercent": 0,
                                                  "DeploymentCircuitBreaker": {"Enable": True, "Rollback": True}}
    assert service["LoadBalancers"] == [] and service["EnableExecuteCommand"] is False
    assert service["NetworkConfiguration"]["AwsvpcConfiguration"]["AssignPublicIp"] == "ENABLED"


@pytest.mark.parametrize("env_name", ENVIRONMENTS)
def test_the_task_runs_db_stream_sized_by_the_changes_section(captured, env_name):
    config = _config(env_name)
    template = _backups(captured[env_name])
    service = _only(template, "AWS::ECS::Service")["Properties"]
    task = template.to_json()["Resources"][service["TaskDefinition"]["Ref"]]["Properties"]
    assert (int(task["Cpu"]), int(task["Memory"])) == (config.changes.cpu, config.changes.memory_mib)
    (container,) = task["ContainerDefinitions"]
    assert container["Command"][:6] == ["--log-format", "json", "db", "stream", "--env", env_name]
    assert "--bucket" in container["Command"] and "--change-signing-key" in container["Command"]
    assert "--signing-key" not in container["Command"]  # the manifests' key is the nightly job's alone
    # What the stalled, lag and WAL alarms watch is only published with this flag.
    assert "--publish-metrics" in container["Command"]
    assert container["StopTimeout"] == 120  # time to close the open segment on SIGTERM
    # The name `db stream` reads: the direct connection it replicates over, nothing else (a base reset's
    # dump is the nightly job's task: --dump-task, never the backup connection here).
    secrets = {s["Name"]: json.dumps(s["ValueFrom"]) for s in container["Secrets"]}
    assert set(secrets) == {"TAVARI_STREAM_DATABASE_URL"}
    assert "StreamDatabaseUrl" in secrets["TAVARI_STREAM_DATABASE_URL"]
    assert "--dump-task" in container["Command"]
    group = container["LogConfiguration"]["Options"]["awslogs-group"]["Ref"]
    logs = template.to_json()["Resources"][group]["Properties"]
    assert logs["RetentionInDays"] == config.monitoring.log_retention_days and "KmsKeyId" in logs
    # RunningTaskCount (the not-running alarm) is Container Insights' metric.
    cluster = _only(template, "AWS::ECS::Cluster")["Properties"]
    assert {"Name": "containerInsights", "Value": "enabled"} in cluster["ClusterSettings"]


@pytest.mark.parametrize("env_name", ENVIRONMENTS)
def test_dual_stack_through_the_internet_gateway_without_nat(captured, env_name):
    template = _backups(captured[env_name])
    template.has_resource_properties("AWS::EC2::VPCCidrBlock", {"AmazonProvidedIpv6CidrBlock": True})
    subnets = template.find_resources("AWS::EC2::Subnet")
    assert len(subnets) == 2 and all(s["Properties"]["AssignIpv6AddressOnCreation"] is True
                                     and "Ipv6CidrBlock" in s["Properties"] for s in subnets.values())
    routes = template.find_resources("AWS::EC2::Route", {"Properties": {"DestinationIpv6CidrBlock": "::/0"}})
    assert len(routes) == 2 and all("GatewayId" in r["Properties"] for r in routes.values())
    for kind in ("AWS::EC2::NatGateway", "AWS::EC2::EgressOnlyInternetGateway"):
        assert template.find_resources(kind) == {}
    template.has_resource_properties("AWS::EC2::SecurityGroup", {
        "SecurityGroupEgress": Match.array_with([Match.object_like({"CidrIpv6": "::/0"})])})
    assert "SecurityGroupIngress" not in _only(template, "AWS::EC2::SecurityGroup")["Properties"]


def _task_statements(template: Template) -> list[dict]:
    policies = template.find_resources("AWS::IAM::Policy")
    (policy,) = [p for logical, p in policies.items() if logical.startswith("ChangeCaptureTaskTaskRole")]
    return policy["Properties"]["PolicyDocument"]["Statement"]


@pytest.mark.parametrize("env_name", ENVIRONMENTS)
def test_the_role_writes_changes_runs_the_nightly_task_and_deletes_nothing(captured, env_name):
    statements = _task_statements(_backups(captured[env_name]))
    actions = {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    # Segments and bases under changes/; signing with the change key, and verifying the base records it
    # resumes from; running the nightly job's task for a base reset's dump (issue 27); its metrics.
    assert actions == {"s3:PutObject", "s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket", "s3:ListBucketVersions",
                       "kms:Decrypt", "kms:GenerateDataKey", "kms:Sign", "kms:Verify", "kms:DescribeKey",
                       "ecs:RunTask", "iam:PassRole", "cloudwatch:PutMetricData"}
    assert not {a for a in actions if a.startswith(("s3:Delete", "s3:PutBucket", "s3:PutLifecycle", "kms:Schedule",
                                                    "kms:Disable", "kms:PutKeyPolicy"))}
    assert all(s["Effect"] == "Allow" for s in statements)
    for statement in statements:
        text = json.dumps(statement["Resource"])
        if statement["Action"] == "cloudwatch:PutMetricData":
            assert statement["Condition"] == {"StringEquals": {"cloudwatch:namespace": metrics.NAMESPACE}}
        if "kms:Sign" in statement["Action"]:
            assert "ChangeSigningKey" in text and "ManifestSigningKey" not in text
    listing = [s for s in statements if "s3:ListBucketVersions" in s["Action"] and "Condition" in s]
    assert listing and listing[0]["Condition"] == {"StringLike": {"s3:prefix": ["changes/*"]}}


def _alarms(env) -> dict[str, dict]:
    found = env.template(outputs.MONITORING).find_resources("AWS::CloudWatch::Alarm")
    return {logical: a["Properties"] for logical, a in found.items() if "ChangeCapture" in logical}


def _by(alarms, prefix):
    (props,) = [p for logical, p in alarms.items() if logical.startswith(f"Monitoring{prefix}")]
    return props


@pytest.mark.parametrize("env_name", ENVIRONMENTS)
def test_alarms_follow_the_changes_section_and_a_dead_service_breaches(captured, env_name):
    changes = _config(env_name).changes
    alarms = _alarms(captured[env_name])
    assert len(alarms) == 8
    gap, headroom = _by(alarms, "ChangeCaptureCoverageGap"), _by(alarms, "ChangeCaptureSlotHeadroom")
    assert (gap["MetricName"], gap["Threshold"], gap["ComparisonOperator"]) == (
        metrics.CHANGE_COVERAGE_GAP, 1, "GreaterThanOrEqualToThreshold")
    assert (headroom["MetricName"], headroom["Threshold"], headroom["ComparisonOperator"]) == (
        metrics.RETAINED_WAL_FRACTION, 0.5, "GreaterThanThreshold")
    lag, wal = _by(alarms, "ChangeCaptureLag"), _by(alarms, "ChangeCaptureRetainedWal")
    assert (lag["MetricName"], lag["Threshold"]) == (metrics.REPLICATION_LAG_SECONDS, changes.max_lag_seconds)
    assert (wal["MetricName"], wal["Threshold"]) == (metrics.RETAINED_WAL_BYTES, changes.retained_wal_alarm_bytes)
    stalled = _by(alarms, "ChangeCaptureStalled")
    bound, period = segment_age_bound(changes.segment_seconds)
    assert (stalled["MetricName"], stalled["Threshold"]) == (metrics.CHANGE_SEGMENT_AGE_SECONDS, bound)
    assert stalled["Period"] == period.to_seconds() >= bound and stalled["TreatMissingData"] == "breaching"
    for name in ("ChangeCaptureLag", "ChangeCaptureRetainedWal", "ChangeCaptureStalled", "ChangeCaptureBaseReset"):
        assert _by(alarms, name)["Dimensions"] == [{"Name": "Source", "Value": "changes"}], name
    reset, failed = _by(alarms, "ChangeCaptureBaseReset"), _by(alarms, "ChangeCaptureFailed")
    for alarm in (reset, failed):
        assert alarm["Threshold"] == 1 and alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert failed["Dimensions"] == [{"Name": "Job", "Value": metrics.DB_STREAM}]
    running = _by(alarms, "ChangeCaptureNotRunning")
    assert (running["Namespace"], running["MetricName"], running["Threshold"]) == (
        "ECS/ContainerInsights", "RunningTaskCount", 1)
    assert running["ComparisonOperator"] == "LessThanThreshold" and running["TreatMissingData"] == "breaching"
    assert {d["Name"] for d in running["Dimensions"]} == {"ClusterName", "ServiceName"}
    assert all(len(a["AlarmActions"]) == 1 for a in alarms.values())


def test_every_capture_alarm_links_a_runbook_section(captured):
    anchors = alarm_runbook_sections()
    for alarm in _alarms(captured["prod"]).values():
        assert alarm["AlarmDescription"].split("#")[-1] in anchors, alarm["AlarmDescription"]


@pytest.mark.parametrize("env_name", ENVIRONMENTS)
def test_the_dashboard_shows_the_capture(captured, env_name):
    (dashboard,) = captured[env_name].template(outputs.MONITORING).find_resources("AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for name in (metrics.REPLICATION_LAG_SECONDS, metrics.RETAINED_WAL_BYTES, metrics.CHANGE_SEGMENT_AGE_SECONDS,
                 metrics.CHANGE_SEGMENTS_WRITTEN, metrics.CHANGE_BASE_RESET, "RunningTaskCount"):
        assert name in body, name
    assert "Continuous capture" in body


def _bucket_policy_statements(template: Template) -> list[dict]:
    (policy,) = [p for logical, p in template.find_resources("AWS::S3::BucketPolicy").items()
                 if logical.startswith("BackupsBucket")]
    return policy["Properties"]["PolicyDocument"]["Statement"]


def _locked_bucket(template: Template) -> dict:
    (bucket,) = [b["Properties"] for b in template.find_resources("AWS::S3::Bucket").values()
                 if "ObjectLockConfiguration" in b["Properties"]]
    return bucket


@pytest.mark.parametrize("env_name", ENVIRONMENTS)
def test_changes_are_guarded_expired_and_locked_like_the_dumps(synthesized, env_name):
    """In the stacks as deployed today (with or without the service): the primary and, where there is
    one, the DR replica."""
    config = load_environment(cdk_context(), env_name)
    stacks = [outputs.DATABASE_BACKUPS] + ([outputs.DATABASE_BACKUPS + "Replica"]
                                           if config.replication.enabled else [])
    for purpose in stacks:
        template = synthesized[env_name].template(purpose)
        by_sid = {s.get("Sid"): s for s in _bucket_policy_statements(template)}
        write, delete = by_sid[g.CHANGES_WRITE_SID], by_sid[g.CHANGES_DELETE_SID]
        assert write["Effect"] == delete["Effect"] == "Deny" and write["Principal"] == {"AWS": "*"}
        assert write["Action"] == "s3:PutObject" and write["Condition"] == g.CONDITIONAL_WRITE
        assert delete["Action"] == "s3:DeleteObject" and "Condition" not in delete
        for statement in (write, delete):
            assert json.dumps(statement["Resource"]).endswith('"/changes/*"]]}')
        bucket = _locked_bucket(template)
        # Segments expire; the base records (changes/bases/) every replay starts from never do.
        assert not [r for r in bucket["LifecycleConfiguration"]["Rules"]
                    if r.get("Prefix") in ("changes/", "changes/bases/") and "ExpirationInDays" in r]
        (rule,) = [r for r in bucket["LifecycleConfiguration"]["Rules"] if r.get("Prefix") == "changes/segments/"]
        assert rule == {"Id": "ExpireChanges", "Prefix": "changes/segments/", "Status": "Enabled",
                        "ExpirationInDays": config.changes.retention_days,
                        "NoncurrentVersionExpiration": {"NoncurrentDays": 1}}
        # Object Lock's default retention is bucket-wide: segments are locked as a dump without its own is.
        lock = bucket["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]
        assert lock == {"Mode": config.database_backups.lock_mode,
                        "Days": config.database_backups.default_retention_days}


@pytest.mark.parametrize("env_name", ENVIRONMENTS)
def test_an_administrator_cannot_overwrite_or_hide_a_segment(synthesized, env_name):
    """The synthesized bucket policies, evaluated: under changes/ only a new object may be written, and no
    delete (a delete marker would hide a segment from a replay) is allowed to anyone."""
    from tests.policy_eval import Request, decide
    from tests.test_guardrails import ACCOUNT, ADMIN, DEV_ACCOUNT, policy_of

    env = synthesized[env_name]
    account = DEV_ACCOUNT if env_name == "dev" else ACCOUNT
    for purpose in [outputs.DATABASE_BACKUPS] + ([outputs.DATABASE_BACKUPS + "Replica"] if env_name == "prod" else []):
        policy, arn = policy_of(env, purpose, "BackupsBucket", account=account)
        key = f"{arn}/changes/segments/2027/03/01/00/20270301T000000Z-0000000001000000-0000000001000100.seg"
        create = {"s3:ObjectCreationOperation": "true"}
        assert decide(policy, Request(ADMIN, "s3:PutObject", key, create)) == "deny"
        assert decide(policy, Request(ADMIN, "s3:PutObject", key, {**create, "s3:if-none-match": "*"})) != "deny"
        assert decide(policy, Request(ADMIN, "s3:DeleteObject", key)) == "deny"


def test_the_tamper_trail_and_rules_cover_the_whole_backup_bucket(synthesized):
    """Every object of a backup bucket is watched (changes/ too): the trail logs writes under the bucket's
    ARN and "/", and the objects rule names buckets, never a key prefix."""
    templates = synthesized["prod"].templates
    trails = [r["Properties"] for t in templates.values() for r in t["Resources"].values()
              if r["Type"] == "AWS::CloudTrail::Trail"]
    selectors = json.dumps([t.get("AdvancedEventSelectors") for t in trails])
    assert "StartsWith" in selectors and "dumps/" not in selectors
    rules = [r["Properties"] for t in templates.values() for r in t["Resources"].values()
             if r["Type"] == "AWS::Events::Rule" and str(r["Properties"].get("Name", "")).endswith("objects")]
    assert rules and all('"key"' not in json.dumps(r["EventPattern"]) for r in rules)


def test_the_guardrails_deny_unconditional_writes_and_delete_markers_under_changes():
    statements = {s["Sid"]: s for s in g.backup_bucket_statements("arn:aws:s3:::b", None)}
    assert statements[g.CHANGES_WRITE_SID]["Resource"] == ["arn:aws:s3:::b/changes/*"]
    assert statements[g.CHANGES_WRITE_SID]["Condition"] == g.CONDITIONAL_WRITE
    assert statements[g.CHANGES_DELETE_SID]["Action"] == ["s3:DeleteObject"]


def test_the_drift_check_misses_a_removed_changes_guard():
    statements = g.backup_bucket_statements("arn:aws:s3:::b", None)
    kept = [s for s in statements if s["Sid"] not in (g.CHANGES_WRITE_SID, g.CHANGES_DELETE_SID)]
    assert g.missing_statements({"Statement": kept}, statements) == [
        f"{g.CHANGES_WRITE_SID}: missing", f"{g.CHANGES_DELETE_SID}: missing"]


@pytest.mark.parametrize("env_name", ENVIRONMENTS)
def test_the_daily_monitor_checks_the_newest_segment(captured, env_name):
    template = _backups(captured[env_name])
    (daily,) = [f["Properties"] for f in template.find_resources("AWS::Lambda::Function").values()
                if f["Properties"].get("Description") == "Backup verification: daily_monitor"]
    targets = json.dumps(daily["Environment"]["Variables"]["TAVARI_TARGETS"])
    assert '\\"changes_enabled\\":true' in targets
    assert f'\\"changes_max_lag_seconds\\":{_config(env_name).changes.max_lag_seconds}' in targets
    # Its role lists the backup bucket (ListObjectsV2 of the hour prefixes needs s3:ListBucket on it).
    role = daily["Role"]["Fn::GetAtt"][0]
    bucket = {"Fn::GetAtt": [next(k for k in template.to_json()["Resources"] if k.startswith("BackupsBucket")
                                  and template.to_json()["Resources"][k]["Type"] == "AWS::S3::Bucket"), "Arn"]}
    statements = [s for p in template.find_resources("AWS::IAM::Policy").values()
                  if {"Ref": role} in p["Properties"]["Roles"] for s in p["Properties"]["PolicyDocument"]["Statement"]]
    assert any("s3:List*" in s["Action"] and bucket in s["Resource"] for s in statements)


def test_nag_clean_and_cfn_lint_clean_with_the_capture(captured):
    for env in captured.values():
        report_path = env.outdir / "validation-report.json"
        if report_path.exists():
            report = json.loads(report_path.read_text())
            assert [v["ruleName"] for p in report["pluginReports"] for v in p["violations"]
                    if v["severity"] == "error"] == []
    templates = [str(p) for env in captured.values() for p in env.outdir.glob("*DatabaseBackups*.template.json")]
    templates += [str(p) for env in captured.values() for p in env.outdir.glob("*Monitoring.template.json")]
    result = subprocess.run([str(Path(sys.executable).parent / "cfn-lint"), "--format", "parseable",
                             "--ignore-checks", "W", "I", "--", *templates], capture_output=True, text=True,
                            timeout=300)
    assert [line for line in result.stdout.splitlines() if ":E" in line] == [], result.stdout


def _cost():
    import importlib.util

    spec = importlib.util.spec_from_file_location("benches_cost_capture", ROOT / "benches" / "cost.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("env_name", ENVIRONMENTS)
def test_the_cost_estimate_prices_the_always_on_service_from_its_template(captured, env_name):
    cost = _cost()
    config, prices = _config(env_name), cost.Prices()
    estimate = cost.estimate(config, captured[env_name].templates, prices)
    lines = {line.item: line for line in estimate.lines if line.group == "Continuous capture"}
    vcpu, memory_gb = config.changes.cpu / 1024, config.changes.memory_mib / 1024
    (task,) = [line for item, line in lines.items() if item.startswith("db stream (Fargate, always on)")]
    assert task.quantity == pytest.approx(365 / 12 * 24)  # one task, every hour of the month
    assert task.price == pytest.approx(vcpu * prices("fargate_vcpu_hour", config.region)
                                       + memory_gb * prices("fargate_gb_hour", config.region))
    (address,) = [line for item, line in lines.items() if item.startswith("its public IPv4")]
    assert address.monthly == pytest.approx(365 / 12 * 24 * 0.005)
    segments = 365 / 12 * 86400 / config.changes.segment_seconds
    assert lines["segment signatures (KMS Sign, ECC)"].quantity == pytest.approx(segments / 10000)
    # Without the service (no STREAM_DATABASE_URL secret yet, or changes.enabled false) nothing is priced.
    bare = {stack: {**t, "Resources": {k: r for k, r in t["Resources"].items() if r["Type"] != "AWS::ECS::Service"}}
            for stack, t in captured[env_name].templates.items()}
    assert not [line for line in cost.estimate(config, bare, prices).lines if line.group == "Continuous capture"]


def test_the_chain_and_the_restore_test_with_the_log_alarm_with_a_runbook_section(captured):
    """The weekly change_chain check and the monthly restore test with the log each publish one metric, alarmed."""
    anchors = alarm_runbook_sections()
    found = captured["prod"].template(outputs.MONITORING).find_resources("AWS::CloudWatch::Alarm")
    for prefix, metric, source, anchor in (
            ("ChangeChainBroken", metrics.CHANGE_CHAIN_BROKEN, "changes", "change-chain-broken"),
            ("RestoreTestWithLogFailed", metrics.RESTORE_TEST_WITH_LOG_FAILED, "database",
             "restore-test-with-log-failed")):
        (alarm,) = [a["Properties"] for logical, a in found.items() if logical.startswith(f"Monitoring{prefix}")]
        assert (alarm["MetricName"], alarm["Threshold"], alarm["ComparisonOperator"]) == (
            metric, 0, "GreaterThanThreshold")
        assert alarm["Dimensions"] == [{"Name": "Source", "Value": source}]
        assert alarm["AlarmDescription"].endswith(f"#{anchor}") and anchor in anchors
