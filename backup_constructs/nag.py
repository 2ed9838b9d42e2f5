"""cdk-nag 3.x wiring: packs on the whole app, acknowledgments on one construct each."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aws_cdk import Acknowledgment, App, Stack, Validations
from aws_cdk import aws_iam as iam
from cdk_nag import AwsSolutionsChecks, NIST80053R5Checks
from constructs import IConstruct


def add_nag_packs(app: App) -> None:
    """AwsSolutions and NIST 800-53 R5 on every stack; a finding stops synthesis."""
    Validations.of(app).add_plugins(AwsSolutionsChecks(app), NIST80053R5Checks(app))


def acknowledge(construct: IConstruct, reason: str, *rule_ids: str) -> None:
    """Acknowledge findings on one construct; the reason says why it is safe here."""
    # cdk-nag 3 reports findings as "<pack>::<rule>", e.g. "AwsSolutions::AwsSolutions-S1".
    Validations.of(construct).acknowledge(
        *(Acknowledgment(id=f"{rule.split('-', 1)[0]}::{rule}", reason=reason) for rule in rule_ids)
    )


def acknowledge_inline_policy(policy: iam.Policy) -> iam.Policy:
    """The policy CDK's grant_* methods attach: inline by design, scoped to one role."""
    acknowledge(policy, "CDK's grant_* methods attach this policy; it is scoped to this one role.",
                "NIST.800.53.R5-IAMNoInlinePolicy")
    return policy


def grant_policy(role: iam.Role) -> iam.Policy:
    """The DefaultPolicy that grant_* attached to ``role``, acknowledged as the inline policy it is."""
    return acknowledge_inline_policy(role.node.find_child("DefaultPolicy"))  # type: ignore[arg-type]


def _flatten(reference: Any) -> str:
    """The string cdk-nag prints for a policy resource (its flattenCfnReference)."""
    if isinstance(reference, str):
        return reference.replace("${", "<").replace("}", ">")
    if isinstance(reference, dict):
        if "Fn::Join" in reference:
            delimiter, items = reference["Fn::Join"]
            return delimiter.join(_flatten(i) for i in items)
        if "Fn::Sub" in reference:
            return _flatten(reference["Fn::Sub"])
        if "Fn::GetAtt" in reference:
            resource, attribute = reference["Fn::GetAtt"]
            return f"<{_flatten(resource)}.{_flatten(attribute)}>"
        if "Fn::ImportValue" in reference:
            return _flatten(reference["Fn::ImportValue"])
        if "Ref" in reference:
            return f"<{_flatten(reference['Ref'])}>"
    return json.dumps(reference, separators=(",", ":"))


# The wildcard actions CDK's bucket grant_read/grant_put emit (with the bucket key's grants).
BUCKET_READ_PUT_ACTIONS = ("s3:GetObject*", "s3:GetBucket*", "s3:List*", "s3:Abort*", "kms:GenerateDataKey*",
                           "kms:ReEncrypt*")


def acknowledge_wildcards(policy: iam.Policy, reason: str, *, actions: tuple[str, ...] = (),
                          select: Callable[[str], bool] = lambda _resource: True) -> None:
    """Acknowledge IAM5 for exactly the wildcards this policy holds now and that are data-shaped:
    ``<bucket>/*`` object resources, ``<function>:*`` version resources (``select`` keeps only
    the resources, as cdk-nag prints them, this ``reason`` is about, when one policy holds
    wildcards of several kinds), and the wildcard ``actions`` named here (only those present).
    ``Resource: *``, other wildcard actions and statements added later still fail synthesis; a
    call that matches nothing is refused, so no acknowledgment outlives what it acknowledged."""
    cfn = policy.node.default_child
    document = Stack.of(policy).resolve(cfn.policy_document)  # type: ignore[union-attr]
    findings = set()
    for statement in document["Statement"]:
        resources = statement.get("Resource", [])
        for resource in resources if isinstance(resources, list) else [resources]:
            flat = _flatten(resource)
            if flat != "*" and (flat.endswith("/*") or flat.endswith(">:*")) and select(flat):
                findings.add(f"Resource::{flat}")
        granted = statement.get("Action", [])
        for action in granted if isinstance(granted, list) else [granted]:
            if action in actions:
                findings.add(f"Action::{action}")
    if not findings:
        raise ValueError(f"{policy.node.path}: no wildcard to acknowledge for {reason!r}")
    acknowledge(policy, reason, *(f"AwsSolutions-IAM5[{f}]" for f in sorted(findings)))
