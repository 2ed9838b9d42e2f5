"""cdk-nag 3.x wiring: packs on the whole app, acknowledgments on one construct each."""

from __future__ import annotations

import json
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


def grant_policy(role: iam.Role) -> iam.Policy:
    """The DefaultPolicy that grant_* attached to ``role``, acknowledged as the inline policy it is."""
    policy = role.node.find_child("DefaultPolicy")
    acknowledge(policy, "CDK's grant_* methods attach the role's DefaultPolicy; it is scoped to this role alone.",
                "NIST.800.53.R5-IAMNoInlinePolicy")
    return policy  # type: ignore[return-value]


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


def acknowledge_object_wildcards(policy: iam.Policy, reason: str) -> None:
    """Acknowledge IAM5 for exactly the ``<bucket>/*`` resources the policy holds now.

    Object keys are data, unknown at deploy time; every other wildcard (actions,
    ``Resource: *``, statements added later) still fails synthesis.
    """
    cfn = policy.node.default_child
    document = Stack.of(policy).resolve(cfn.policy_document)  # type: ignore[union-attr]
    wildcards = set()
    for statement in document["Statement"]:
        resources = statement.get("Resource", [])
        for resource in resources if isinstance(resources, list) else [resources]:
            flat = _flatten(resource)
            if flat.endswith("/*") and flat != "*":
                wildcards.add(flat)
    acknowledge(policy, reason, *(f"AwsSolutions-IAM5[Resource::{w}]" for w in sorted(wildcards)))
