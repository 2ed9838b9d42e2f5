"""ADR 0011 in the synthesized templates: the default lock, the deny statements (where they are, who
they stop, whom they leave able to act), parliament's lint over every bucket and key policy of prod,
the drill's ECS scope and the same-account warning. The policies are judged by tests/policy_eval.py:
moto ignores the conditions of a bucket policy's Deny, so nothing here is left to it."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from tavari_dr.core import guardrails as g
from tests.policy_eval import Request, bucket_arn, bucket_policies, decide, key_policies

ACCOUNT, PRIMARY, DR = "123456789012", "eu-west-1", "eu-central-1"
DEV_ACCOUNT = "111111111111"  # dev is environment-agnostic: its templates name the account by AWS::AccountId


def role(name: str, account: str = ACCOUNT) -> str:
    return f"arn:aws:iam::{account}:role/{name}"


DEPLOY = role(f"cdk-hnb659fds-cfn-exec-role-{ACCOUNT}-{PRIMARY}")
DR_DEPLOY = role(f"cdk-hnb659fds-cfn-exec-role-{ACCOUNT}-{DR}")
BREAK_GLASS = role("tavari-break-glass")
ADMIN = role("Administrator")  # any other principal of the account, however privileged its IAM policies
JOB = role("Tavari-Prod-DatabaseBackups-NightlyBackupTaskTaskRole")
REPLICATION = role("tavari-prod-backupsreplicationrole")

# Stack purpose -> (region, the logical-ID prefixes of its protected keys)
PROTECTED_KEYS = {
    "DatabaseBackups": (PRIMARY, ("BackupsKey", "ChangeSigningKey", "ManifestSigningKey", "ReportsKey")),
    "DatabaseBackupsReplica": (DR, ("BackupsKey",)),
    "InvoiceStorage": (PRIMARY, ("InvoicesKey",)),
    "InvoiceReplica": (DR, ("ReplicaKey",)),
    "Secrets": (PRIMARY, ("ConfigKey",)),
    "SecretsReplicaKey": (DR, ("Key",)),
}


def logical(template: dict, prefix: str, resource_type: str) -> str:
    (found,) = [k for k, r in template["Resources"].items()
                if r["Type"] == resource_type and re.fullmatch(rf"{prefix}[0-9A-F]{{8}}", k)]
    return found


def backup_bucket(env, purpose: str = "DatabaseBackups") -> tuple[dict, str]:
    template = env.templates[env.stack(purpose)]
    return template, logical(template, "BackupsBucket", "AWS::S3::Bucket")


def policy_of(env, purpose: str, bucket_prefix: str, *, account: str = ACCOUNT) -> tuple[dict, str]:
    template = env.templates[env.stack(purpose)]
    bucket = logical(template, bucket_prefix, "AWS::S3::Bucket")
    region = PROTECTED_KEYS[purpose][0]
    return bucket_policies(template, account=account, region=region)[bucket], bucket_arn(bucket)


def by_sid(policy: dict) -> dict[str, dict]:
    return {s["Sid"]: s for s in policy["Statement"] if "Sid" in s}


# --------------------------------------------------------------------------- the default lock


@pytest.mark.parametrize(("env_name", "mode", "days"), [("dev", "GOVERNANCE", 7), ("prod", "COMPLIANCE", 35)])
def test_nothing_in_a_backup_bucket_is_ever_unlocked(synthesized, env_name, mode, days):
    """The shortest tier's retention, in the environment's lock mode, on the bucket and its replica."""
    env = synthesized[env_name]
    purposes = ["DatabaseBackups"] + (["DatabaseBackupsReplica"] if env_name == "prod" else [])
    for purpose in purposes:
        template, bucket = backup_bucket(env, purpose)
        assert template["Resources"][bucket]["Properties"]["ObjectLockConfiguration"] == {
            "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": mode, "Days": days}}}


# --------------------------------------------------------------------------- the statements


@pytest.mark.parametrize("env_name", ["dev", "prod"])
def test_no_write_overwrites_and_no_delete_marker_hides_a_backup_anywhere(synthesized, env_name):
    env = synthesized[env_name]
    account = DEV_ACCOUNT if env_name == "dev" else ACCOUNT
    purposes = ["DatabaseBackups"] + (["DatabaseBackupsReplica"] if env_name == "prod" else [])
    for purpose in purposes:
        policy, arn = policy_of(env, purpose, "BackupsBucket", account=account)
        statements = by_sid(policy)
        # S3's documented statement (User Guide, "Enforce conditional writes"), on the backup prefix.
        assert statements[g.UNCONDITIONAL_WRITE_SID] == {
            "Sid": g.UNCONDITIONAL_WRITE_SID, "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "s3:PutObject",
            "Resource": f"{arn}/dumps/*",
            "Condition": {"Null": {"s3:if-none-match": "true"}, "Bool": {"s3:ObjectCreationOperation": "true"}}}
        assert statements[g.DELETE_MARKER_SID] == {
            "Sid": g.DELETE_MARKER_SID, "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "s3:DeleteObject",
            "Resource": f"{arn}/dumps/*"}
        retain_only = {g.VERSION_DESTRUCTION_SID, g.BUCKET_TAMPERING_SID}
        assert (retain_only <= set(statements)) is (env_name == "prod"), purpose


def test_prod_refuses_destruction_to_all_but_the_custodians(prod):
    for purpose, deploy in (("DatabaseBackups", DEPLOY), ("DatabaseBackupsReplica", DR_DEPLOY)):
        policy, arn = policy_of(prod, purpose, "BackupsBucket")
        statements = by_sid(policy)
        exempt = {"ArnNotLike": {"aws:PrincipalArn": [deploy, BREAK_GLASS]}}
        assert statements[g.VERSION_DESTRUCTION_SID]["Resource"] == f"{arn}/*"
        assert sorted(statements[g.VERSION_DESTRUCTION_SID]["Action"]) == sorted(g.VERSION_DESTRUCTION)
        assert statements[g.BUCKET_TAMPERING_SID]["Resource"] == arn
        assert sorted(statements[g.BUCKET_TAMPERING_SID]["Action"]) == sorted(g.BUCKET_TAMPERING)
        assert statements[g.VERSION_DESTRUCTION_SID]["Condition"] == statements[g.BUCKET_TAMPERING_SID]["Condition"] \
            == exempt


def test_every_protected_key_and_only_those_refuse_destruction(prod, dev):
    for purpose, (region, prefixes) in PROTECTED_KEYS.items():
        template = prod.templates[prod.stack(purpose)]
        deploy = DEPLOY if region == PRIMARY else DR_DEPLOY
        protected = {logical(template, p, "AWS::KMS::Key") for p in prefixes}
        for key, policy in key_policies(template, account=ACCOUNT, region=region).items():
            denies = [s for s in policy["Statement"] if s.get("Sid") == g.KEY_DESTRUCTION_SID]
            if key in protected:
                assert denies == [{"Sid": g.KEY_DESTRUCTION_SID, "Effect": "Deny", "Principal": {"AWS": "*"},
                                   "Action": sorted(g.KEY_DESTRUCTION), "Resource": "*",
                                   "Condition": {"ArnNotLike": {"aws:PrincipalArn": [deploy, BREAK_GLASS]}}}], key
            else:  # working keys (logs, scratch copies, exports) stay deletable with their data
                assert denies == [], key
    for template in dev.templates.values():
        assert g.KEY_DESTRUCTION_SID not in json.dumps(template)


@pytest.mark.parametrize(("env_name", "deletes"), [("dev", "s3:DeleteObject"),
                                                   ("prod", ["s3:DeleteObject", "s3:DeleteObjectVersion"])])
def test_audit_records_are_written_once_and_never_deleted(synthesized, env_name, deletes):
    account = DEV_ACCOUNT if env_name == "dev" else ACCOUNT
    policy, arn = policy_of(synthesized[env_name], "DatabaseBackups", "ReportsBucket", account=account)
    statements = by_sid(policy)
    assert statements[g.AUDIT_WRITE_SID]["Condition"] == g.CONDITIONAL_WRITE
    assert statements[g.AUDIT_WRITE_SID]["Resource"] == statements[g.AUDIT_DELETE_SID]["Resource"] == f"{arn}/audit/*"
    assert statements[g.AUDIT_DELETE_SID]["Action"] == deletes
    assert "Condition" not in statements[g.AUDIT_DELETE_SID]  # every principal, break-glass included


# --------------------------------------------------------------------------- who they stop, whom they leave


def test_the_deploy_and_break_glass_roles_keep_what_they_need_and_an_admin_does_not(prod):
    """KMS refuses a key policy that would lock out its caller: CloudFormation's execution role must stay
    able to PutKeyPolicy (and the account root's delegation must still reach it); the break-glass role
    too. An administrator of the same account, or a deploy role of another region, is denied."""
    for purpose, (region, prefixes) in PROTECTED_KEYS.items():
        template = prod.templates[prod.stack(purpose)]
        deploy, other_region = (DEPLOY, DR_DEPLOY) if region == PRIMARY else (DR_DEPLOY, DEPLOY)
        policies = key_policies(template, account=ACCOUNT, region=region)
        for prefix in prefixes:
            key_arn = f"arn:aws:kms:{region}:{ACCOUNT}:key/{prefix}"
            policy = policies[logical(template, prefix, "AWS::KMS::Key")]
            for action in g.KEY_DESTRUCTION:
                assert decide(policy, Request(deploy, action, key_arn)) == "allow", (purpose, prefix, action)
                assert decide(policy, Request(BREAK_GLASS, action, key_arn)) == "allow"
                assert decide(policy, Request(ADMIN, action, key_arn)) == "deny"
                assert decide(policy, Request(other_region, action, key_arn)) == "deny"
                assert decide(policy, Request(f"arn:aws:iam::{ACCOUNT}:root", action, key_arn)) == "deny"
            # The keys still work for everyone the account's IAM policies allow.
            assert decide(policy, Request(ADMIN, "kms:Decrypt", key_arn)) == "allow"
    for purpose, deploy in (("DatabaseBackups", DEPLOY), ("DatabaseBackupsReplica", DR_DEPLOY)):
        policy, arn = policy_of(prod, purpose, "BackupsBucket")
        asked = [(a, f"{arn}/dumps/daily/x/data.dump") for a in g.VERSION_DESTRUCTION] + \
                [(a, arn) for a in g.BUCKET_TAMPERING]
        for action, resource in asked:
            assert decide(policy, Request(deploy, action, resource, {"aws:SecureTransport": "true"})) != "deny"
            assert decide(policy, Request(BREAK_GLASS, action, resource, {"aws:SecureTransport": "true"})) != "deny"
            assert decide(policy, Request(ADMIN, action, resource, {"aws:SecureTransport": "true"})) == "deny"


def _tls(**context: str) -> dict[str, str]:
    return {"aws:SecureTransport": "true", "s3:TlsVersion": "1.3", **context}


@pytest.mark.parametrize("env_name", ["dev", "prod"])
def test_writes_must_be_conditional_but_multipart_parts_and_replication_pass(synthesized, env_name):
    account = DEV_ACCOUNT if env_name == "dev" else ACCOUNT
    policy, arn = policy_of(synthesized[env_name], "DatabaseBackups", "BackupsBucket", account=account)
    dump = f"{arn}/dumps/daily/20261201T010000Z-nightly/data.dump"
    job = role("Tavari-Prod-DatabaseBackups-NightlyBackupTaskTaskRole", account)
    for who in (job, role("Administrator", account), role(f"cdk-hnb659fds-cfn-exec-role-{account}-{PRIMARY}", account)):
        # PutObject and CompleteMultipartUpload (ObjectCreationOperation true) without If-None-Match: refused.
        assert decide(policy, Request(who, "s3:PutObject", dump, _tls(**{"s3:ObjectCreationOperation": "true"}))) \
            == "deny"
        assert decide(policy, Request(who, "s3:PutObject", dump, _tls(**{
            "s3:ObjectCreationOperation": "true", "s3:if-none-match": "*"}))) != "deny"
        # CreateMultipartUpload and UploadPart are s3:PutObject too, and cannot carry the header.
        assert decide(policy, Request(who, "s3:PutObject", dump, _tls(**{"s3:ObjectCreationOperation": "false"}))) \
            != "deny"
        assert decide(policy, Request(who, "s3:DeleteObject", dump, _tls())) == "deny"
        assert decide(policy, Request(who, "s3:PutObject", f"{arn}/elsewhere", _tls(**{
            "s3:ObjectCreationOperation": "true"}))) != "deny"
    if env_name == "prod":
        replica, replica_arn = policy_of(synthesized["prod"], "DatabaseBackupsReplica", "BackupsBucket")
        replicated = f"{replica_arn}/dumps/daily/20261201T010000Z-nightly/data.dump"
        for action in ("s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"):
            assert decide(replica, Request(REPLICATION, action, replicated, _tls())) != "deny", action


def test_dev_stays_destroyable(dev):
    """No auto-delete function: a dev bucket is emptied version by version, then cdk destroy removes it."""
    admin, deploy = role("Administrator", DEV_ACCOUNT), role(f"cdk-hnb659fds-cfn-exec-role-{DEV_ACCOUNT}-{PRIMARY}",
                                                             DEV_ACCOUNT)
    for bucket_prefix, key in (("BackupsBucket", "dumps/daily/x/data.dump"), ("ReportsBucket", "audit/x.json")):
        policy, arn = policy_of(dev, "DatabaseBackups", bucket_prefix, account=DEV_ACCOUNT)
        assert decide(policy, Request(admin, "s3:DeleteObjectVersion", f"{arn}/{key}", _tls())) != "deny"
        assert decide(policy, Request(admin, "s3:BypassGovernanceRetention", f"{arn}/{key}", _tls())) != "deny"
        assert decide(policy, Request(deploy, "s3:DeleteBucket", arn, _tls())) != "deny"


def test_prod_audit_records_outlive_everyone(prod):
    policy, arn = policy_of(prod, "DatabaseBackups", "ReportsBucket")
    for who in (ADMIN, DEPLOY, BREAK_GLASS):
        assert decide(policy, Request(who, "s3:DeleteObjectVersion", f"{arn}/audit/r.json", _tls())) == "deny"
        assert decide(policy, Request(who, "s3:PutObject", f"{arn}/reports/daily/x.json", _tls(**{
            "s3:ObjectCreationOperation": "true"}))) != "deny"  # reports/ is rewritten daily, by design


# --------------------------------------------------------------------------- parliament


def _is_logs_key_statement(statement: dict) -> bool:
    return "kms:EncryptionContext:aws:logs:arn" in json.dumps(statement.get("Condition", {})) and \
        str(statement.get("Principal", {}).get("Service", "")).startswith("logs.")


# What parliament reports on statements CDK or AWS's own documentation write, each filtered by the
# statement and the issue it is about (never by policy or resource): everything else must be clean.
EXPLAINED = (
    # In a key policy "Resource": "*" means this key; it is the only form KMS accepts there.
    lambda finding, kind, statement: kind == "key" and finding.issue == "RESOURCE_STAR",
    # CDK's minimum_tls_version=1.2: parliament's Numeric format rejects a decimal, and s3:* expands to
    # two actions its IAM data lists without s3:TlsVersion.
    lambda finding, kind, statement: kind == "bucket" and "s3:TlsVersion" in str(finding.detail)
    and "s3:TlsVersion" in json.dumps(statement.get("Condition", {})),
    # The CloudWatch Logs statement of AWS's "Encrypt log data in CloudWatch Logs" guide: ArnLike on
    # kms:EncryptionContext:aws:logs:arn (a String in parliament's data), and kms:Describe* under it.
    lambda finding, kind, statement: kind == "key" and _is_logs_key_statement(statement)
    and finding.issue in ("MISMATCHED_TYPE", "UNKNOWN_CONDITION_FOR_ACTION"),
)


# parliament runs in its own venv (requirements-parliament.txt), through tests/parliament_lint.py.
PARLIAMENT_PYTHON = Path(__file__).resolve().parents[1] / "build" / "parliament" / "bin" / "python"


def parliament(command: str, stdin: object = None) -> object:
    if not PARLIAMENT_PYTHON.exists():
        reason = f"{PARLIAMENT_PYTHON} missing: `make install` creates parliament's venv"
        pytest.fail(reason) if os.environ.get("CI") else pytest.skip(reason)
    done = subprocess.run([str(PARLIAMENT_PYTHON), str(Path(__file__).with_name("parliament_lint.py")), command],
                          input=json.dumps(stdin), capture_output=True, text=True, timeout=300, check=True)
    return json.loads(done.stdout)


def lint_all(policies: list[dict]) -> list[list]:
    """Each policy's findings (``.issue``, ``.detail``), in one run of parliament for all of them."""
    return [[SimpleNamespace(**f) for f in found] for found in parliament("lint", policies)]


def lint(policy: dict) -> list:
    return lint_all([policy])[0]


def test_parliament_finds_nothing_unexplained_in_prods_bucket_and_key_policies(prod):
    analyzed, statements = 0, []
    for purpose, (region, _) in PROTECTED_KEYS.items() | {"Monitoring": (PRIMARY, ()),
                                                          "DataExport": (PRIMARY, ())}.items():
        template = prod.templates[prod.stack(purpose)]
        for kind, policies in (("bucket", bucket_policies(template, account=ACCOUNT, region=region)),
                               ("key", key_policies(template, account=ACCOUNT, region=region))):
            for name, policy in policies.items():
                analyzed += 1
                statements += [(purpose, name, kind, policy["Version"], statement) for statement in policy["Statement"]]
    # One statement a policy, so each finding names its statement.
    findings = lint_all([{"Version": version, "Statement": [statement]} for *_, version, statement in statements])
    unexplained = [(purpose, name, statement.get("Sid"), f.issue, f.detail)
                   for (purpose, name, kind, _, statement), found in zip(statements, findings, strict=True)
                   for f in found if not any(explained(f, kind, statement) for explained in EXPLAINED)]
    assert analyzed >= 30
    assert unexplained == []


def test_parliament_is_live():
    typo = {"Sid": "Typo", "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": ["s3:DeleteObjectVersions"],
            "Resource": "arn:aws:s3:::b/*"}
    mismatch = {"Sid": "Mismatch", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": ["s3:DeleteBucket"],
                "Resource": "arn:aws:s3:::b/*"}
    assert {f.issue for f in lint({"Version": "2012-10-17", "Statement": [typo]})} == {"UNKNOWN_ACTION"}
    assert {f.issue for f in lint({"Version": "2012-10-17", "Statement": [mismatch]})} == {"RESOURCE_MISMATCH"}


def test_every_deny_names_a_resource_its_actions_act_on(prod):
    """parliament checks resource types on Allow statements only; a Deny whose resource is of the wrong
    type (DeleteBucket on bucket/*) would deny nothing, so the same check runs here on every Sid'd deny."""
    services = {s["prefix"]: s for s in parliament("iam-definition")}

    def forms(action: str) -> list[tuple[str, str]]:
        """(resource type, ARN format) of each resource the action takes."""
        prefix, name = action.split(":")
        service = services[prefix]
        types = {r["resource_type"].rstrip("*") for p in service["privileges"] if p["privilege"] == name
                 for r in p["resource_types"] if r["resource_type"]}
        return [(r["resource"], re.sub(r"\$\{.*?\}", "*", r["arn"]))  # as parliament matches them
                for r in service["resources"] if r["resource"] in types]

    denied = []  # (Sid, action, resources, [(resource type, ARN format, resource), ...])
    for purpose, (region, _) in PROTECTED_KEYS.items():
        template = prod.templates[prod.stack(purpose)]
        policies = {**bucket_policies(template, account=ACCOUNT, region=region),
                    **key_policies(template, account=ACCOUNT, region=region)}
        for policy in policies.values():
            for statement in policy["Statement"]:
                if statement["Effect"] != "Deny" or "Sid" not in statement:
                    continue
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                resources = statement["Resource"] if isinstance(statement["Resource"], list) \
                    else [statement["Resource"]]
                for action in actions:
                    assert forms(action), action
                    denied.append((statement["Sid"], action, resources,
                                   [(kind, arn, r) for kind, arn in forms(action) for r in resources]))
    matches = iter(parliament("arn-match", [triple for *_, triples in denied for triple in triples]))
    for sid, action, resources, triples in denied:
        assert any([next(matches) for _ in triples]), (sid, action, resources)
    assert len(denied) >= 40


# --------------------------------------------------------------------------- least privilege, warnings


def test_star_resources_only_where_the_action_has_no_resource_form(synthesized):
    """The convention, checked against the Service Authorization Reference data parliament ships."""
    services = {s["prefix"]: s for s in parliament("iam-definition")}

    def resource_forms(action: str) -> set[str]:
        prefix, name = action.split(":")
        return {r["resource_type"] for p in services[prefix]["privileges"]
                if re.fullmatch(name.replace("*", ".*"), p["privilege"], re.IGNORECASE)
                for r in p["resource_types"] if r["resource_type"]}

    offenders = set()
    for env in synthesized.values():
        for stack, template in env.templates.items():
            for logical_id, resource in template["Resources"].items():
                if resource["Type"] not in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
                    continue
                for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
                    resources = statement["Resource"] if isinstance(statement["Resource"], list) \
                        else [statement["Resource"]]
                    actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                    if statement["Effect"] == "Allow" and "*" in resources:
                        offenders |= {(stack, logical_id, a) for a in actions if resource_forms(a)}
    assert offenders == set()


def test_the_drill_watches_and_stops_only_its_clusters_tasks(prod):
    template = prod.templates[prod.stack("DatabaseBackups")]
    cluster = logical(template, "Cluster", "AWS::ECS::Cluster")
    statements = [s for k, r in template["Resources"].items() if k.startswith("QuarterlyDrillStateMachineRole")
                  and r["Type"] == "AWS::IAM::Policy" for s in r["Properties"]["PolicyDocument"]["Statement"]]
    ecs = [s for s in statements if any(str(a).startswith("ecs:") for a in
                                        (s["Action"] if isinstance(s["Action"], list) else [s["Action"]]))]
    assert {"Action": ["ecs:DescribeTasks", "ecs:StopTask"], "Effect": "Allow",
            "Resource": {"Fn::Join": ["", [f"arn:aws:ecs:{PRIMARY}:{ACCOUNT}:task/", {"Ref": cluster}, "/*"]]},
            "Condition": {"ArnEquals": {"ecs:cluster": {"Fn::GetAtt": [cluster, "Arn"]}}}} in ecs
    assert all(s["Resource"] != "*" for s in ecs)


def test_prod_warns_while_its_backup_replica_shares_the_primarys_account(synthesized):
    def warned(name):
        return any("tavari:backup-replica-same-account" in w for w in synthesized[name].warnings)

    assert warned("prod")
    assert not warned("prod-xacct")  # the replica in a backup account: nothing to warn about
    assert not warned("dev")  # destroyable, no replica


def test_a_replica_in_a_backup_account_exempts_that_accounts_roles(synthesized):
    from tests.conftest import XACCT

    env = synthesized["prod-xacct"]
    policy, _ = policy_of(env, "DatabaseBackupsReplica", "BackupsBucket", account=XACCT)
    exempt = {"ArnNotLike": {"aws:PrincipalArn": [role(f"cdk-hnb659fds-cfn-exec-role-{XACCT}-{DR}", XACCT),
                                                  role("tavari-break-glass", XACCT)]}}
    assert by_sid(policy)[g.BUCKET_TAMPERING_SID]["Condition"] == exempt
    template = env.templates[env.stack("DatabaseBackupsReplica")]
    (key,) = [p for k, p in key_policies(template, account=XACCT, region=DR).items() if k.startswith("BackupsKey")]
    assert by_sid(key)[g.KEY_DESTRUCTION_SID]["Condition"] == exempt
    # Secret replicas stay in the primary account (Secrets Manager replicates within one): so does their key.
    template = env.templates[env.stack("SecretsReplicaKey")]
    (key,) = key_policies(template, account=ACCOUNT, region=DR).values()
    assert by_sid(key)[g.KEY_DESTRUCTION_SID]["Condition"] == {"ArnNotLike": {"aws:PrincipalArn": [DR_DEPLOY,
                                                                                                     BREAK_GLASS]}}
