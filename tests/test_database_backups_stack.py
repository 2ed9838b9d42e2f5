"""The DatabaseBackups stack: the Object-Lock bucket, the scheduled Fargate jobs and their alarms."""

from __future__ import annotations

import json

from tavari_dr.core import outputs

BACKUPS = outputs.DATABASE_BACKUPS


def resources(env, kind, stack=BACKUPS):
    template = env.templates[env.stack(stack)]["Resources"]
    return {k: v for k, v in template.items() if v["Type"] == kind}


def backup_bucket(env, stack=BACKUPS):
    buckets = resources(env, "AWS::S3::Bucket", stack)
    (bucket,) = [b for b in buckets.values() if b["Properties"].get("ObjectLockEnabled")]
    return bucket


def test_backup_bucket_is_separate_locked_encrypted_private_and_logged(dev, prod):
    for env in (dev, prod):
        bucket = backup_bucket(env)["Properties"]
        assert bucket["ObjectLockEnabled"] is True and bucket["VersioningConfiguration"] == {"Status": "Enabled"}
        assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
            "ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
        assert bucket["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"] is True
        assert "LoggingConfiguration" in bucket
        assert backup_bucket(env)["DeletionPolicy"] == ("Retain" if env is prod else "Delete")


def test_each_tier_expires_the_day_after_its_lock(dev, prod):
    for env, days in ((prod, {"daily": 35, "weekly": 91, "monthly": 396}),
                      (dev, {"daily": 7, "weekly": 14, "monthly": 31})):
        rules = {r["Id"]: r for r in backup_bucket(env)["Properties"]["LifecycleConfiguration"]["Rules"]}
        for tier, retention in days.items():
            rule = rules[f"Expire{tier.capitalize()}"]
            assert rule["Prefix"] == f"dumps/{tier}/" and rule["ExpirationInDays"] == retention + 1


def test_backups_replicate_to_a_locked_replica_with_retention_permissions(dev, prod):
    assert "ReplicationConfiguration" not in backup_bucket(dev)["Properties"]
    replica = backup_bucket(prod, "DatabaseBackupsReplica")
    assert replica["Properties"]["ObjectLockEnabled"] is True
    (rule,) = backup_bucket(prod)["Properties"]["ReplicationConfiguration"]["Rules"]
    assert rule["Destination"]["Bucket"] == f"arn:aws:s3:::{replica['Properties']['BucketName']}"
    assert rule["DeleteMarkerReplication"] == {"Status": "Enabled"}
    policies = json.dumps([p["Properties"]["PolicyDocument"] for p in resources(prod, "AWS::IAM::Policy").values()])
    assert "s3:GetObjectRetention" in policies and "s3:GetObjectLegalHold" in policies


def test_jobs_run_on_fargate_in_public_subnets_without_nat(prod):
    assert not resources(prod, "AWS::EC2::NatGateway")
    schedules = {k: v for k, v in resources(prod, "AWS::Scheduler::Schedule").items()
                 if "EcsParameters" in v["Properties"]["Target"]}
    assert len(schedules) == 3
    by_expression = {s["Properties"]["ScheduleExpression"]: s["Properties"] for s in schedules.values()}
    # 01:00 and 13:00, not 02:00: 02:00 does not exist in Warsaw on the last Sunday of March
    # (tests/test_calendar.py), and one dump a day cannot meet a 24-hour RPO (tests/test_drill.py).
    assert set(by_expression) == {"cron(0 1,13 * * ? *)", "cron(0 4 ? * SUN *)", "cron(0 5 1 * ? *)"}
    for props in by_expression.values():
        assert props["ScheduleExpressionTimezone"] == "Europe/Warsaw"
        target = props["Target"]
        network = target["EcsParameters"]["NetworkConfiguration"]["AwsvpcConfiguration"]
        assert network["AssignPublicIp"] == "ENABLED" and target["EcsParameters"]["LaunchType"] == "FARGATE"
        assert "DeadLetterConfig" in target and target["RetryPolicy"]["MaximumRetryAttempts"] == 3
    (group,) = resources(prod, "AWS::EC2::SecurityGroup").values()
    assert "SecurityGroupIngress" not in group["Properties"]
    assert resources(prod, "AWS::EC2::FlowLog")


def container(env, command_word):
    for task in resources(env, "AWS::ECS::TaskDefinition").values():
        for c in task["Properties"]["ContainerDefinitions"]:
            if command_word in (c.get("Command") or []):
                return task, c
    raise AssertionError(command_word)


def containers(env, command_word):
    return [(t, c) for t in resources(env, "AWS::ECS::TaskDefinition").values()
            for c in t["Properties"]["ContainerDefinitions"] if command_word in (c.get("Command") or [])]


def test_nightly_job_command_secret_and_grants(prod):
    task, job = container(prod, "backup")
    assert job["Command"][:4] == ["--log-format", "json", "db", "backup"] and "--reason" not in job["Command"]
    # The reason is the one variable: a base reset's run of this task overrides it (tavari_dr.database.dump_task).
    assert job["Environment"] == [{"Name": outputs.BACKUP_REASON_ENV, "Value": "nightly"}]
    assert "--publish-metrics" in job["Command"] and "--env" in job["Command"]
    assert [s["Name"] for s in job["Secrets"]] == ["TAVARI_DATABASE_URL", "TAVARI_SUPABASE_URL",
                                                  "TAVARI_SUPABASE_ACCESS_TOKEN"]
    assert "--supabase-config" in job["Command"]
    # The expired copies of partial restores are dropped before the dump, audited in the reports bucket.
    assert "--cleanup-restored" in job["Command"] and "--report-bucket" in job["Command"]
    assert job["LogConfiguration"]["LogDriver"] == "awslogs"
    role_id = task["Properties"]["TaskRoleArn"]["Fn::GetAtt"][0]
    (policy,) = [p for p in resources(prod, "AWS::IAM::Policy").values()
                 if {"Ref": role_id} in p["Properties"]["Roles"]]
    actions = {a for s in policy["Properties"]["PolicyDocument"]["Statement"]
               for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}
    assert {"s3:PutObject", "s3:PutObjectRetention", "cloudwatch:PutMetricData"} <= actions
    assert not any("Delete" in a or "BypassGovernance" in a for a in actions)


def test_monthly_restore_test_waits_for_a_healthy_scratch_database(prod):
    task, job = container(prod, "verify")
    if "--quick" in job["Command"]:  # the weekly one: find the other
        tasks = [t for t in resources(prod, "AWS::ECS::TaskDefinition").values()
                 if len(t["Properties"]["ContainerDefinitions"]) == 2]
        (task,) = tasks
        job = next(c for c in task["Properties"]["ContainerDefinitions"] if c.get("Command"))
    scratch = next(c for c in task["Properties"]["ContainerDefinitions"] if not c.get("Command"))
    assert scratch["Image"] == "supabase/postgres:15.8.1.085" and scratch["Essential"] is False
    assert "pg_isready" in scratch["HealthCheck"]["Command"][1]
    assert job["DependsOn"] == [{"Condition": "HEALTHY", "ContainerName": scratch["Name"]}]
    assert "--scratch-url" in job["Command"] and "--quick" not in job["Command"]
    assert "--report-bucket" in job["Command"]


def test_every_job_has_failure_and_missing_run_alarms(prod):
    alarms = [a["Properties"] for a in prod.templates[prod.stack(outputs.MONITORING)]["Resources"].values()
              if a["Type"] == "AWS::CloudWatch::Alarm"]
    for job in ("db_backup", "db_verify_quick", "db_restore_test"):
        mine = [a for a in alarms if a.get("Dimensions") == [{"Name": "Job", "Value": job}]]
        assert {a["MetricName"] for a in mine} == {"JobFailed", "JobSucceeded"}, job
        missing = next(a for a in mine if a["MetricName"] == "JobSucceeded")
        assert missing["TreatMissingData"] == "breaching"


def test_cross_account_backup_replica_gets_owner_override_and_its_policies(synthesized):
    from tests.conftest import XACCT, XACCT_BACKUP_KEY_ARN

    env = synthesized["prod-xacct"]
    (rule,) = backup_bucket(env)["Properties"]["ReplicationConfiguration"]["Rules"]
    assert rule["Destination"]["Account"] == XACCT
    assert rule["Destination"]["AccessControlTranslation"] == {"Owner": "Destination"}
    assert rule["Destination"]["EncryptionConfiguration"] == {"ReplicaKmsKeyID": XACCT_BACKUP_KEY_ARN}
    replica = env.templates[env.stack("DatabaseBackupsReplica")]["Resources"]
    policy = json.dumps([r["Properties"] for r in replica.values() if r["Type"] == "AWS::S3::BucketPolicy"])
    assert "s3:ReplicateObject" in policy and "s3:ObjectOwnerOverrideToBucketOwner" in policy
    key_policy = json.dumps([r["Properties"]["KeyPolicy"] for r in replica.values() if r["Type"] == "AWS::KMS::Key"])
    assert "kms:GenerateDataKey" in key_policy and ":role/tavari-prod-databaseback" in key_policy


def test_cross_account_backups_wait_for_the_key_arn_and_say_so(synthesized):
    env = synthesized["prod-xacct-pending"]
    assert "ReplicationConfiguration" not in backup_bucket(env)["Properties"]
    assert any("backup_replica_key_arn" in w for w in env.warnings), env.warnings


def test_verification_lambdas_run_on_schedules_with_dlqs_and_least_privilege(prod):
    functions = {k: v for k, v in resources(prod, "AWS::Lambda::Function").items() if k.startswith("Verify")}
    assert len(functions) == 3
    for fn in functions.values():
        props = fn["Properties"]
        assert props["Runtime"] == "python3.14" and "DeadLetterConfig" in props
        env = props["Environment"]["Variables"]
        assert {"TAVARI_VERIFICATION", "TAVARI_TARGETS", "TAVARI_RPO_HOURS"} <= set(env)
        assert json.loads(env["TAVARI_VERIFICATION"])["rto_minutes"] == 60
    lambda_schedules = [s["Properties"] for k, s in resources(prod, "AWS::Scheduler::Schedule").items()
                        if "EcsParameters" not in s["Properties"]["Target"] and not k.startswith("QuarterlyDrill")]
    assert sorted(s["ScheduleExpression"] for s in lambda_schedules) == [
        "cron(0 6 * * ? *)", "cron(0 7 ? * MON *)", "cron(0 8 2 * ? *)"]
    assert all(s["ScheduleExpressionTimezone"] == "UTC" and "DeadLetterConfig" in s["Target"] for s in lambda_schedules)
    roles = resources(prod, "AWS::IAM::Role")
    for fn in functions.values():
        role = roles[fn["Properties"]["Role"]["Fn::GetAtt"][0]]["Properties"]
        assert len(role["ManagedPolicyArns"]) == 1  # the invoice stack's read-only VerifierAccess
    role_ids = {fn["Properties"]["Role"]["Fn::GetAtt"][0] for fn in functions.values()}
    for policy in resources(prod, "AWS::IAM::Policy").values():
        if {r["Ref"] for r in policy["Properties"]["Roles"]} & role_ids:
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                if any(a.startswith("s3:Delete") for a in actions):  # only the restore test's scratch bucket
                    assert "RestoreTest" in json.dumps(statement["Resource"]), statement
    policies = json.dumps([p["Properties"] for p in resources(prod, "AWS::IAM::Policy").values()])
    assert "cloudwatch:GetMetricStatistics" in policies


def test_invoice_verifier_access_is_read_only(prod):
    template = prod.templates[prod.stack(outputs.INVOICE_STORAGE)]["Resources"]
    (policy,) = [v for v in template.values() if v["Type"] == "AWS::IAM::ManagedPolicy"
                 and v["Properties"]["Description"] == "Read access for the backup verification jobs"]
    actions = {a for s in policy["Properties"]["PolicyDocument"]["Statement"]
               for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}
    assert "s3:GetObjectVersion" in actions and "kms:Decrypt" in actions
    assert not [a for a in actions if a.startswith(("s3:Put", "s3:Delete", "kms:Encrypt"))]


def test_verification_jobs_have_the_standard_job_alarms(prod):
    alarms = [a["Properties"] for a in prod.templates[prod.stack(outputs.MONITORING)]["Resources"].values()
              if a["Type"] == "AWS::CloudWatch::Alarm"]
    for job in ("daily_monitor", "weekly_integrity", "monthly_restore_test"):
        missing = [a for a in alarms if a.get("MetricName") == "JobSucceeded"
                   and a.get("Dimensions") == [{"Name": "Job", "Value": job}]]
        assert len(missing) == 1 and missing[0]["TreatMissingData"] == "breaching", job
    # router, three jobs, export API, worker, authorizer and the inventory canary
    assert len([a for a in alarms if a.get("MetricName") == "Errors"]) == 8


def _role_actions(env, role_id):
    """Every (action, resource) the role's inline policies grant."""
    granted = set()
    for policy in resources(env, "AWS::IAM::Policy").values():
        if {"Ref": role_id} not in policy["Properties"]["Roles"]:
            continue
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            targets = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            granted |= {(a, json.dumps(r, sort_keys=True)) for a in actions for r in targets}
    return granted


def test_only_the_nightly_job_may_sign_manifests_and_every_reader_verifies(prod, dev):
    for env in (prod, dev):
        (key_id,) = [k for k, v in resources(env, "AWS::KMS::Key").items()
                     if v["Properties"].get("KeySpec") == "ECC_NIST_P256" and k.startswith("ManifestSigningKey")]
        key = resources(env, "AWS::KMS::Key")[key_id]["Properties"]
        assert key["KeyUsage"] == "SIGN_VERIFY"
        key_ref = json.dumps({"Fn::GetAtt": [key_id, "Arn"]}, sort_keys=True)
        signers, verifiers = set(), set()
        for role_id in resources(env, "AWS::IAM::Role"):
            granted = _role_actions(env, role_id)
            if ("kms:Sign", key_ref) in granted:
                signers.add(role_id)
            if {("kms:Verify", key_ref), ("kms:DescribeKey", key_ref)} <= granted:
                verifiers.add(role_id)
            assert not any(a in ("kms:*", "kms:Sign") and r == '"*"' for a, r in granted), role_id
        nightly, _ = container(env, "backup")
        # The continuous capture signs its change records with its own key, never this one (issue 27;
        # tests/test_signing_roles.py reads every role's grants).
        assert signers == {nightly["Properties"]["TaskRoleArn"]["Fn::GetAtt"][0]}
        # The weekly and monthly tasks, the daily monitor and the weekly integrity Lambda.
        assert len(verifiers) == 4 and not signers & verifiers
        for command in ("backup", "verify"):
            for _, job in containers(env, command):
                assert job["Command"][job["Command"].index("--signing-key") + 1] == {"Fn::GetAtt": [key_id, "Arn"]}
        outputs_ = env.templates[env.stack(BACKUPS)]["Outputs"]
        assert outputs_[outputs.MANIFEST_SIGNING_KEY_ARN]["Value"] == {"Fn::GetAtt": [key_id, "Arn"]}


def test_the_daily_monitor_may_read_the_dr_guardrails_and_nothing_more(prod, dev):
    (fn,) = [r for r in resources(prod, "AWS::Lambda::Function").values()
             if r["Properties"].get("Description") == "Backup verification: daily_monitor"]
    role_id = fn["Properties"]["Role"]["Fn::GetAtt"][0]
    policies = [p["Properties"] for p in resources(prod, "AWS::IAM::Policy").values()]
    statements = [s for p in policies if {"Ref": role_id} in p["Roles"] for s in p["PolicyDocument"]["Statement"]]
    (keys,) = [s for s in statements if s.get("Condition", {}).get("ForAnyValue:StringEquals")]
    assert sorted(keys["Action"]) == ["kms:DescribeKey", "kms:GetKeyPolicy"]
    assert keys["Resource"] == "arn:aws:kms:eu-central-1:123456789012:key/*"  # only keys with these aliases:
    assert sorted(keys["Condition"]["ForAnyValue:StringEquals"]["kms:ResourceAliases"]) == [
        "alias/tavari-prod-backups-replica", "alias/tavari-prod-invoice-replica", "alias/tavari-prod-secrets-replica"]
    (bucket,) = [s for s in statements if "s3:GetBucketPolicy" in s["Action"]]
    assert sorted(bucket["Action"]) == ["s3:GetBucketObjectLockConfiguration", "s3:GetBucketPolicy"]
    replica = prod.templates[prod.stack("DatabaseBackupsReplica")]["Resources"]
    (name,) = [r["Properties"]["BucketName"] for r in replica.values()
               if r["Type"] == "AWS::S3::Bucket" and r["Properties"].get("ObjectLockEnabled")]
    assert bucket["Resource"] == f"arn:aws:s3:::{name}"
    dev_actions = json.dumps([p["Properties"]["PolicyDocument"] for p in resources(dev, "AWS::IAM::Policy").values()])
    assert "kms:ResourceAliases" not in dev_actions  # no DR side in dev
