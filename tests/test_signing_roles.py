"""Who may sign what and write where in the backup bucket, read from the synthesized policies of every
role (issue 27; docs/security/index.md): the nightly job signs with the manifest key and
writes under dumps/ only; the always-on capture signs with the change key and writes under changes/
only, and may only ask ECS to run the nightly job's task; the application writes erasure/ only; no
other role signs or writes there at all."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

from tavari_dr.core import guardrails, outputs
from tests.policy_eval import _glob, _list

BACKUPS = outputs.DATABASE_BACKUPS


def _template(env) -> dict[str, Any]:
    return env.templates[env.stack(BACKUPS)]


def _of_type(template: dict[str, Any], kind: str) -> dict[str, dict]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def _allowed(template: dict[str, Any]) -> dict[str, list[dict]]:
    """Role (logical ID, or the name of an imported one) -> every Allow statement of its inline policies."""
    found: dict[str, list[dict]] = defaultdict(list)
    for policy in _of_type(template, "AWS::IAM::Policy").values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert all(s["Effect"] == "Allow" for s in statements)
        for role in policy["Properties"].get("Roles", []):
            found[role["Ref"] if isinstance(role, dict) else role] += statements
    return found


def _grants(statement: dict, action: str) -> bool:
    return any(_glob(pattern, action, ignore_case=True) for pattern in _list(statement["Action"]))


def _keys(template: dict[str, Any], statement: dict) -> set[str]:
    """The signing keys a statement names, by logical-ID prefix; "*" for any key."""
    named = set()
    for resource in _list(statement["Resource"]):
        if resource == "*" or not isinstance(resource, dict) or "Fn::GetAtt" not in resource:
            named.add("*")
            continue
        logical = resource["Fn::GetAtt"][0]
        assert template["Resources"][logical]["Type"] == "AWS::KMS::Key", resource
        named.add(logical[:-8])  # without CDK's hash
    return named


def _prefixes(statement: dict, bucket: str) -> set[str]:
    """The object patterns of the backup bucket a statement names ("*" for any bucket's objects)."""
    named = set()
    for resource in _list(statement["Resource"]):
        if isinstance(resource, str):
            if resource == "*" or resource.startswith("arn:aws:s3:::*"):
                named.add("*")
            continue
        parts = resource.get("Fn::Join", ["", []])[1]
        if parts and parts[0] == {"Fn::GetAtt": [bucket, "Arn"]} and len(parts) == 2:
            named.add(parts[1].lstrip("/"))
    return named


def _task_role(template: dict[str, Any], definition: str) -> str:
    return template["Resources"][definition]["Properties"]["TaskRoleArn"]["Fn::GetAtt"][0]


def _roles(template: dict[str, Any]) -> tuple[str, str, str]:
    """(the nightly job's task role, the capture's task role, the nightly task definition)."""
    (nightly,) = [k for k, v in _of_type(template, "AWS::ECS::TaskDefinition").items()
                  if "backup" in v["Properties"]["ContainerDefinitions"][0]["Command"]]
    (service,) = _of_type(template, "AWS::ECS::Service").values()
    return _task_role(template, nightly), _task_role(template, service["Properties"]["TaskDefinition"]["Ref"]), nightly


@pytest.mark.parametrize("env_name", ["prod", "dev", "prod-app"])
def test_each_role_signs_with_exactly_its_key_and_writes_exactly_its_prefix(synthesized, env_name):
    template = _template(synthesized[env_name])
    (bucket,) = [k for k, v in _of_type(template, "AWS::S3::Bucket").items()
                 if v["Properties"].get("ObjectLockEnabled")]
    nightly, capture, _ = _roles(template)
    signs: dict[str, set[str]] = {}
    puts: dict[str, set[str]] = {}
    for role, statements in _allowed(template).items():
        signs[role] = set().union(*(_keys(template, s) for s in statements if _grants(s, "kms:Sign")))
        puts[role] = set().union(*(_prefixes(s, bucket) for s in statements if _grants(s, "s3:PutObject")))
    signers = {role: keys for role, keys in signs.items() if keys}
    assert signers == {nightly: {"ManifestSigningKey"}, capture: {"ChangeSigningKey"}}
    writers = {role: prefixes for role, prefixes in puts.items() if prefixes}
    expected = {nightly: {f"{guardrails.BACKUP_PREFIX}*"}, capture: {f"{guardrails.CHANGES_PREFIX}*"}}
    if env_name == "prod-app":  # the application's role (imported by name): the erasure ledger only
        (app,) = [role for role in writers if role not in (nightly, capture)]
        expected[app] = {"erasure/*"}
    assert writers == expected


@pytest.mark.parametrize("env_name", ["prod", "dev"])
def test_the_capture_may_run_only_the_nightly_task_with_only_its_roles(synthesized, env_name):
    template = _template(synthesized[env_name])
    nightly_role, capture, nightly = _roles(template)
    statements = _allowed(template)[capture]
    (run,) = [s for s in statements if _grants(s, "ecs:RunTask")]
    assert run["Resource"] == {"Ref": nightly}
    assert list(run["Condition"]["ArnEquals"]) == ["ecs:cluster"]
    (passing,) = [s for s in statements if _grants(s, "iam:PassRole")]
    execution = template["Resources"][nightly]["Properties"]["ExecutionRoleArn"]
    assert sorted(map(str, passing["Resource"])) == sorted(map(str, [{"Fn::GetAtt": [nightly_role, "Arn"]},
                                                                     execution]))
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}
    # Nothing a dump needs: no backup connection secret, no read or write outside changes/.
    (definition,) = [v for k, v in _of_type(template, "AWS::ECS::TaskDefinition").items()
                     if _task_role(template, k) == capture]
    (container,) = definition["Properties"]["ContainerDefinitions"]
    assert [s["Name"] for s in container["Secrets"]] == ["TAVARI_STREAM_DATABASE_URL"]
    assert "--signing-key" not in container["Command"] and "--change-signing-key" in container["Command"]
    assert "--dump-task" in container["Command"] and "--dump-in-process" not in container["Command"]
    (bucket,) = [k for k, v in _of_type(template, "AWS::S3::Bucket").items()
                 if v["Properties"].get("ObjectLockEnabled")]
    reads = set().union(*(_prefixes(s, bucket) for s in statements if _grants(s, "s3:GetObject")))
    assert reads == {f"{guardrails.CHANGES_PREFIX}*"}
    # The nightly task's reason is the variable a base reset's run overrides.
    (job,) = template["Resources"][nightly]["Properties"]["ContainerDefinitions"]
    assert {"Name": outputs.BACKUP_REASON_ENV, "Value": "nightly"} in job["Environment"]
    assert "--reason" not in job["Command"]


def test_the_change_key_is_an_output_and_protected_like_the_manifest_key(synthesized):
    template = _template(synthesized["prod"])
    keys = {k[:-8]: v for k, v in _of_type(template, "AWS::KMS::Key").items()}
    change = keys["ChangeSigningKey"]["Properties"]
    assert (change["KeySpec"], change["KeyUsage"]) == ("ECC_NIST_P256", "SIGN_VERIFY")
    (logical,) = [k for k in _of_type(template, "AWS::KMS::Key") if k.startswith("ChangeSigningKey")]
    assert template["Outputs"][outputs.CHANGE_SIGNING_KEY_ARN]["Value"] == {"Fn::GetAtt": [logical, "Arn"]}
    manifest_denies = [s["Sid"] for s in keys["ManifestSigningKey"]["Properties"]["KeyPolicy"]["Statement"]
                       if s["Effect"] == "Deny"]
    assert manifest_denies and [s["Sid"] for s in change["KeyPolicy"]["Statement"] if s["Effect"] == "Deny"] == \
        manifest_denies
