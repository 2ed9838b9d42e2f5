"""Fine-grained assertions on the invoice bucket, its logs, lifecycle, replica and outputs."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match

from tavari_dr.core import outputs
from tests.conftest import XACCT, XACCT_KEY_ARN

STORAGE, REPLICA = outputs.INVOICE_STORAGE, outputs.INVOICE_REPLICA

# Stateful resources: a changed logical ID means CloudFormation replaces (and loses) data.
PINNED = {
    STORAGE: {
        "InvoicesBucketB61C805D": "AWS::S3::Bucket",
        "InvoicesKeyD1C0D9EA": "AWS::KMS::Key",
        "InvoicesAccessLogsBucket5E5701C3": "AWS::S3::Bucket",
    },
    REPLICA: {
        "ReplicaBucket80C984FB": "AWS::S3::Bucket",
        "ReplicaKey29E01B67": "AWS::KMS::Key",
        "ReplicaAccessLogsBucket1A0ED3FA": "AWS::S3::Bucket",
    },
}


def resources(template, kind):
    return template.find_resources(kind)


def invoice_bucket(env, purpose=STORAGE):
    logical = "InvoicesBucketB61C805D" if purpose == STORAGE else "ReplicaBucket80C984FB"
    return env.templates[env.stack(purpose)]["Resources"][logical]


@pytest.mark.parametrize("env_name", ["dev", "prod"])
def test_stateful_logical_ids_are_pinned(synthesized, env_name):
    env = synthesized[env_name]
    purposes = [STORAGE, REPLICA] if env_name == "prod" else [STORAGE]
    for purpose in purposes:
        found = env.templates[env.stack(purpose)]["Resources"]
        for logical_id, kind in PINNED[purpose].items():
            assert found.get(logical_id, {}).get("Type") == kind, f"{purpose}: {logical_id} moved or changed type"


def test_stack_names(dev, prod):
    assert set(dev.templates) == {"Tavari-Dev-InvoiceStorage", "Tavari-Dev-Secrets", "Tavari-Dev-Monitoring",
                                  "Tavari-Dev-DatabaseBackups", "Tavari-Dev-DataExport", "Tavari-Dev-TamperWatch",
                                  "Tavari-Dev-TamperWatchGlobal", "Tavari-Dev-DeployRoles"}
    assert set(prod.templates) == {"Tavari-Prod-InvoiceStorage", "Tavari-Prod-InvoiceReplica",
                                   "Tavari-Prod-Secrets", "Tavari-Prod-SecretsReplicaKey", "Tavari-Prod-Monitoring",
                                   "Tavari-Prod-DatabaseBackups", "Tavari-Prod-DatabaseBackupsReplica",
                                   "Tavari-Prod-DataExport", "Tavari-Prod-TamperWatch", "Tavari-Prod-TamperWatchDr",
                                   "Tavari-Prod-TamperWatchGlobal", "Tavari-Prod-DeployRoles"}


@pytest.mark.parametrize("env_name", ["dev", "prod"])
def test_invoice_bucket_is_versioned_kms_encrypted_private_and_logged(synthesized, env_name):
    template = synthesized[env_name].template(STORAGE)
    template.has_resource_properties("AWS::S3::Bucket", {
        "VersioningConfiguration": {"Status": "Enabled"},
        "BucketEncryption": {"ServerSideEncryptionConfiguration": [{
            "BucketKeyEnabled": True,
            "ServerSideEncryptionByDefault": {
                "SSEAlgorithm": "aws:kms",
                "KMSMasterKeyID": {"Fn::GetAtt": ["InvoicesKeyD1C0D9EA", "Arn"]},
            },
        }]},
        "PublicAccessBlockConfiguration": {
            "BlockPublicAcls": True, "BlockPublicPolicy": True,
            "IgnorePublicAcls": True, "RestrictPublicBuckets": True,
        },
        "LoggingConfiguration": {
            "DestinationBucketName": {"Ref": "InvoicesAccessLogsBucket5E5701C3"},
            "LogFilePrefix": "invoice-bucket/",
        },
        "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
    })
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})


@pytest.mark.parametrize("env_name", ["dev", "prod"])
def test_bucket_policy_denies_plain_http_and_old_tls(synthesized, env_name):
    template = synthesized[env_name].template(STORAGE)
    template.has_resource_properties("AWS::S3::BucketPolicy", {
        "Bucket": {"Ref": "InvoicesBucketB61C805D"},
        "PolicyDocument": {"Statement": Match.array_with([
            Match.object_like({"Effect": "Deny", "Action": "s3:*",
                               "Condition": {"Bool": {"aws:SecureTransport": "false"}}}),
            Match.object_like({"Effect": "Deny", "Action": "s3:*",
                               "Condition": {"NumericLessThan": {"s3:TlsVersion": 1.2}}}),
        ])},
    })


@pytest.mark.parametrize(("env_name", "days"), [("dev", 30), ("prod", 365)])
def test_access_log_bucket_is_locked_down_with_its_own_retention(synthesized, env_name, days):
    log_bucket = synthesized[env_name].templates[synthesized[env_name].stack(STORAGE)]["Resources"][
        "InvoicesAccessLogsBucket5E5701C3"]["Properties"]
    assert log_bucket["PublicAccessBlockConfiguration"]["BlockPublicPolicy"] is True
    assert log_bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
        "ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    rule = log_bucket["LifecycleConfiguration"]["Rules"][0]
    assert rule["ExpirationInDays"] == days
    synthesized[env_name].template(STORAGE).has_resource_properties("AWS::S3::BucketPolicy", {
        "Bucket": {"Ref": "InvoicesAccessLogsBucket5E5701C3"},
        "PolicyDocument": {"Statement": Match.array_with([
            Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}),
            Match.object_like({"Effect": "Allow", "Principal": {"Service": "logging.s3.amazonaws.com"},
                               "Action": "s3:PutObject"}),
        ])},
    })


def test_lifecycle_archives_noncurrent_versions_to_glacier_ir_after_90_days_never_small_ones(prod):
    lifecycle = invoice_bucket(prod)["Properties"]["LifecycleConfiguration"]
    archive, housekeeping, *canary = lifecycle["Rules"]
    # The inventory canary's objects expire (tests/test_inventory_feed.py); nothing else does.
    assert {r.get("Prefix") for r in canary} == {outputs.CANARY_KEY_PREFIX}
    assert archive == {
        "Id": "ArchiveNoncurrentVersions",
        "NoncurrentVersionTransitions": [{"StorageClass": "GLACIER_IR", "TransitionInDays": 90}],
        "ObjectSizeGreaterThan": "131071",
        "Status": "Enabled",
    }
    assert lifecycle["TransitionDefaultMinimumObjectSize"] == "all_storage_classes_128K"
    assert housekeeping == {"Id": "Housekeeping", "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
                            "Status": "Enabled"}


def test_noncurrent_expiration_is_off_in_prod_and_explicit_in_dev(dev, prod):
    prod_rules = invoice_bucket(prod)["Properties"]["LifecycleConfiguration"]["Rules"]
    assert not any("NoncurrentVersionExpiration" in r for r in prod_rules
                   if r.get("Prefix") != outputs.CANARY_KEY_PREFIX)
    dev_rules = invoice_bucket(dev)["Properties"]["LifecycleConfiguration"]["Rules"]
    assert dev_rules[1]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 180}


def test_replica_has_the_same_lifecycle(prod):
    assert invoice_bucket(prod, REPLICA)["Properties"]["LifecycleConfiguration"] == \
        invoice_bucket(prod)["Properties"]["LifecycleConfiguration"]


def test_prod_retains_data_and_keys_dev_may_destroy(dev, prod):
    for env, policy in ((prod, "Retain"), (dev, "Delete")):
        for purpose in ([STORAGE, REPLICA] if env is prod else [STORAGE]):
            for logical_id, resource in env.templates[env.stack(purpose)]["Resources"].items():
                if resource["Type"] in ("AWS::S3::Bucket", "AWS::KMS::Key"):
                    assert resource.get("DeletionPolicy") == policy, (env.name, logical_id)
                    assert resource.get("UpdateReplacePolicy") == policy, (env.name, logical_id)


def test_termination_protection_in_prod_only(dev, prod):
    import json

    def protected(env, purpose):
        manifest = json.loads((env.outdir / "manifest.json").read_text())
        return manifest["artifacts"][env.stack(purpose)]["properties"].get("terminationProtection", False)

    assert protected(prod, STORAGE) and protected(prod, REPLICA)
    assert not protected(dev, STORAGE)


def test_outputs_name_everything_the_cli_needs(dev, prod):
    for env in (dev, prod):
        found = set(env.templates[env.stack(STORAGE)]["Outputs"])
        assert {outputs.INVOICE_BUCKET_NAME, outputs.INVOICE_BUCKET_ARN, outputs.INVOICE_KEY_ARN,
                outputs.INVOICE_ACCESS_LOG_BUCKET_NAME} <= found
    assert outputs.REPLICATION_ROLE_ARN in prod.templates[prod.stack(STORAGE)]["Outputs"]
    assert {outputs.REPLICA_BUCKET_NAME, outputs.REPLICA_BUCKET_ARN, outputs.REPLICA_KEY_ARN} <= set(
        prod.templates[prod.stack(REPLICA)]["Outputs"])


def test_dev_does_not_replicate(dev):
    assert "ReplicationConfiguration" not in invoice_bucket(dev)["Properties"]
    roles = dev.templates[dev.stack(STORAGE)]["Resources"].values()
    principals = [s["Principal"] for r in roles if r["Type"] == "AWS::IAM::Role"
                  for s in r["Properties"]["AssumeRolePolicyDocument"]["Statement"]]
    assert {"Service": "s3.amazonaws.com"} not in principals  # no replication role


def test_prod_replicates_everything_with_delete_markers_rtc_and_replica_key(prod):
    replication = invoice_bucket(prod)["Properties"]["ReplicationConfiguration"]
    (rule,) = replication["Rules"]
    assert rule["Status"] == "Enabled" and rule["Filter"] == {"Prefix": ""}
    assert rule["DeleteMarkerReplication"] == {"Status": "Enabled"}
    assert rule["SourceSelectionCriteria"] == {"SseKmsEncryptedObjects": {"Status": "Enabled"}}
    destination = rule["Destination"]
    replica_name = prod.templates[prod.stack(REPLICA)]["Resources"]["ReplicaBucket80C984FB"]["Properties"][
        "BucketName"]
    assert destination["Bucket"] == f"arn:aws:s3:::{replica_name}"
    assert destination["EncryptionConfiguration"] == {
        "ReplicaKmsKeyID": "arn:aws:kms:eu-central-1:123456789012:alias/tavari-prod-invoice-replica"}
    assert destination["ReplicationTime"] == {"Status": "Enabled", "Time": {"Minutes": 15}}
    assert destination["Metrics"] == {"Status": "Enabled", "EventThreshold": {"Minutes": 15}}
    assert "AccessControlTranslation" not in destination  # same account: no owner override


def test_replica_key_alias_is_what_the_source_names(prod):
    prod.template(REPLICA).has_resource_properties("AWS::KMS::Alias", {
        "AliasName": "alias/tavari-prod-invoice-replica",
        "TargetKeyId": {"Fn::GetAtt": ["ReplicaKey29E01B67", "Arn"]},
    })


def test_replication_role_is_least_privilege(prod):
    (policy,) = [p for p in resources(prod.template(STORAGE), "AWS::IAM::Policy").values()
                 if p["Properties"]["Roles"] == [{"Ref": "InvoicesReplicationRoleE8F9BF09"}]]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert all(s["Resource"] != "*" for s in statements), "no statement may reach every resource"
    kms = [s for s in statements if s["Action"] == ["kms:Encrypt", "kms:GenerateDataKey"]]
    assert kms == [{
        "Action": ["kms:Encrypt", "kms:GenerateDataKey"],
        "Condition": {"ForAnyValue:StringEquals": {"kms:ResourceAliases": "alias/tavari-prod-invoice-replica"}},
        "Effect": "Allow",
        "Resource": "arn:aws:kms:eu-central-1:123456789012:key/*",
    }]
    actions = {a for s in statements for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}
    assert {"s3:ReplicateObject", "s3:ReplicateDelete", "s3:GetObjectVersionForReplication",
            "kms:Decrypt"} <= actions
    assert not any(a.endswith(":*") for a in actions)


def test_cross_account_uses_owner_override_key_arn_and_destination_policies(synthesized):
    env = synthesized["prod-xacct"]
    rule = invoice_bucket(env)["Properties"]["ReplicationConfiguration"]["Rules"][0]
    assert rule["Destination"]["Account"] == XACCT
    assert rule["Destination"]["AccessControlTranslation"] == {"Owner": "Destination"}
    assert rule["Destination"]["EncryptionConfiguration"] == {"ReplicaKmsKeyID": XACCT_KEY_ARN}
    storage = env.templates[env.stack(STORAGE)]["Resources"]
    role = next(r for r in storage.values() if r["Type"] == "AWS::IAM::Role")
    role_name = role["Properties"]["RoleName"]
    assert role_name.startswith("tavari-prod-invoicestorag")  # generated, so the other account can name it
    role_arn = f"arn:aws:iam::123456789012:role/{role_name}"
    replica = env.template(REPLICA)
    replica.has_resource_properties("AWS::S3::BucketPolicy", {"PolicyDocument": {"Statement": Match.array_with([
        Match.object_like({"Effect": "Allow", "Principal": {"AWS": role_arn},
                           "Action": ["s3:ReplicateDelete", "s3:ReplicateObject", "s3:ReplicateTags"]}),
        Match.object_like({"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
                           "Action": "s3:ObjectOwnerOverrideToBucketOwner"}),
    ])}})
    replica.has_resource_properties("AWS::KMS::Key", {"KeyPolicy": {"Statement": Match.array_with([
        Match.object_like({"Principal": {"AWS": role_arn}, "Action": ["kms:Encrypt", "kms:GenerateDataKey"]}),
    ])}})


def test_cross_account_without_key_arn_waits_and_says_so(synthesized):
    env = synthesized["prod-xacct-pending"]
    assert "ReplicationConfiguration" not in invoice_bucket(env)["Properties"]
    assert any("replica_key_arn" in w for w in env.warnings), env.warnings
    # prod replicates at once; its one warning is about where the backup replica lives (test_guardrails).
    assert [w for w in synthesized["prod"].warnings if "tavari:backup-replica-same-account" not in w] == []


def test_no_physical_names_except_cross_environment_ones(dev, prod):
    for env in (dev, prod):
        for stack, template in env.templates.items():
            for logical_id, resource in template["Resources"].items():
                named = {k for k in resource.get("Properties", {}) if k in ("BucketName", "RoleName", "KeyName")}
                if named:
                    assert (stack, logical_id) in {
                        ("Tavari-Prod-InvoiceReplica", "ReplicaBucket80C984FB"),
                        ("Tavari-Prod-DatabaseBackupsReplica", "BackupsBucket2936A3AA"),
                    }, (stack, logical_id)


def test_tags_mark_environment(prod):
    bucket = invoice_bucket(prod)["Properties"]
    assert {"Key": "tavari:environment", "Value": "prod"} in bucket["Tags"]


def test_app_principal_gets_upload_read_presign_but_no_delete(synthesized):
    env = synthesized["prod-app"]
    policies = [p for p in env.templates[env.stack(STORAGE)]["Resources"].values()
                if p["Type"] == "AWS::IAM::Policy" and p["Properties"].get("Roles") == ["tavari-app"]]
    (policy,) = policies
    actions = {a for s in policy["Properties"]["PolicyDocument"]["Statement"]
               for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}
    assert {"s3:PutObject", "s3:GetObject*", "kms:GenerateDataKey*", "kms:Decrypt"} <= actions
    assert not any("Delete" in a for a in actions)


def test_restore_ops_batch_role_and_delete_marker_function_are_least_privilege(prod):
    resources_ = prod.templates[prod.stack(STORAGE)]["Resources"]
    roles = {k: v for k, v in resources_.items() if v["Type"] == "AWS::IAM::Role"}
    (batch_role_id,) = [k for k, v in roles.items() if {"Service": "batchoperations.s3.amazonaws.com"} in
                        [s["Principal"] for s in v["Properties"]["AssumeRolePolicyDocument"]["Statement"]]]
    policies = {p["Properties"]["Roles"][0]["Ref"]: p["Properties"]["PolicyDocument"]["Statement"]
                for p in resources_.values() if p["Type"] == "AWS::IAM::Policy"}
    batch_actions = {a for s in policies[batch_role_id] for a in (s["Action"] if isinstance(s["Action"], list)
                                                                  else [s["Action"]])}
    assert {"s3:PutObject", "s3:GetObject*", "lambda:InvokeFunction"} <= batch_actions
    assert not any("Delete" in a for a in batch_actions)
    (function,) = [v for v in resources_.values() if v["Type"] == "AWS::Lambda::Function"
                   and v["Properties"]["Description"].startswith("S3 Batch Operations")]
    fn_role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    fn_actions = {a for s in policies[fn_role] for a in (s["Action"] if isinstance(s["Action"], list)
                                                         else [s["Action"]])}
    assert "s3:DeleteObject" in fn_actions and "s3:DeleteObjectVersion" not in fn_actions
    assert not any(a.startswith("s3:DeleteObject") and a != "s3:DeleteObject" for a in fn_actions)
    assert {outputs.RESTORE_OPS_BUCKET_NAME, outputs.BATCH_OPERATIONS_ROLE_ARN,
            outputs.DELETE_MARKER_FUNCTION_ARN} <= set(prod.templates[prod.stack(STORAGE)]["Outputs"])


def test_optional_aws_backup_layer(synthesized, prod):
    env = synthesized["prod-app"]
    resources_ = env.templates[env.stack(STORAGE)]["Resources"]
    (vault,) = [v for v in resources_.values() if v["Type"] == "AWS::Backup::BackupVault"]
    assert vault["Properties"]["LockConfiguration"] == {"MinRetentionDays": 35}
    assert vault["DeletionPolicy"] == "Retain"
    (plan,) = [v for v in resources_.values() if v["Type"] == "AWS::Backup::BackupPlan"]
    (rule,) = plan["Properties"]["BackupPlan"]["BackupPlanRule"]
    assert rule["EnableContinuousBackup"] is True and rule["Lifecycle"] == {"DeleteAfterDays": 35}
    assert rule["CopyActions"][0]["DestinationBackupVaultArn"].endswith(":210987654321:backup-vault:tavari-invoices")
    (selection,) = [v for v in resources_.values() if v["Type"] == "AWS::Backup::BackupSelection"]
    assert selection["Properties"]["BackupSelection"]["Resources"] == [
        {"Fn::GetAtt": ["InvoicesBucketB61C805D", "Arn"]}]
    bucket = resources_["InvoicesBucketB61C805D"]["Properties"]
    assert bucket["NotificationConfiguration"] == {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}
    # Off by default: plain prod has none of it.
    assert not [v for v in prod.templates[prod.stack(STORAGE)]["Resources"].values()
                if v["Type"].startswith("AWS::Backup::")]
