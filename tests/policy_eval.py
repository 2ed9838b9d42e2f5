"""A small, strict evaluator of resource policies: which statement decides one request.

Enough to prove who the project's deny statements stop and whom they leave able to act, on the
synthesized policies themselves (moto ignores the conditions of a bucket policy's Deny). It follows
IAM's rules for what it supports and refuses everything else, so a policy that grows a construct
it does not model fails the test instead of being judged wrongly:

- Principal ``*`` / ``{"AWS": "*"}``, an ARN, or an account root (which in a key policy delegates to
  the IAM policies of that account's principals: the request counts as allowed here and IAM decides).
- Action and Resource with ``*`` and ``?`` wildcards (actions case-insensitive); no NotAction,
  NotResource or NotPrincipal.
- Condition operators ArnEquals/ArnLike/ArnNotEquals/ArnNotLike, String(Not)Equals/String(Not)Like,
  Bool, Null and NumericLessThan, with or without IfExists. A key absent from the request makes a
  negated operator true and any other false (``...IfExists``: true), as IAM documents.
- Explicit Deny wins; otherwise an Allow allows; otherwise the answer is "implicit" (no statement).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Request:
    principal_arn: str
    action: str
    resource: str
    context: dict[str, str] = field(default_factory=dict)  # condition keys other than aws:PrincipalArn

    def value(self, key: str) -> str | None:
        if key.lower() == "aws:principalarn":
            return self.principal_arn
        return next((v for k, v in self.context.items() if k.lower() == key.lower()), None)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _glob(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE if ignore_case else 0) is not None


def _account(arn: str) -> str:
    return arn.split(":")[4]


def _principal_matches(principal: Any, request: Request) -> bool:
    if principal == "*":
        return True
    if not isinstance(principal, dict) or set(principal) - {"AWS", "Service"}:
        raise ValueError(f"unsupported Principal {principal!r}")
    for arn in _list(principal.get("AWS", [])):
        if arn == "*" or arn == request.principal_arn:
            return True
        if arn.endswith(":root") and _account(arn) == _account(request.principal_arn):
            return True
    return request.principal_arn in _list(principal.get("Service", []))


_OPERATORS = {
    "ArnEquals": lambda have, want: have == want,
    "ArnLike": lambda have, want: _glob(want, have),
    "StringEquals": lambda have, want: have == want,
    "StringLike": lambda have, want: _glob(want, have),
    "Bool": lambda have, want: have.lower() == want.lower(),
    "NumericLessThan": lambda have, want: float(have) < float(want),
}
_NEGATED = {"ArnNotEquals": "ArnEquals", "ArnNotLike": "ArnLike", "StringNotEquals": "StringEquals",
            "StringNotLike": "StringLike"}


def _condition_holds(operator: str, key: str, wanted: list[str], request: Request) -> bool:
    if_exists = operator.endswith("IfExists")
    base = operator.removesuffix("IfExists")
    have = request.value(key)
    if base == "Null":
        (want,) = wanted
        return (have is None) == (want.lower() == "true")
    if base not in _OPERATORS and base not in _NEGATED:
        raise ValueError(f"unsupported condition operator {operator}")
    if have is None:
        return if_exists or base in _NEGATED
    if base in _NEGATED:
        return not any(_OPERATORS[_NEGATED[base]](have, w) for w in wanted)
    return any(_OPERATORS[base](have, w) for w in wanted)


def matches(statement: dict[str, Any], request: Request) -> bool:
    unsupported = {"NotAction", "NotResource", "NotPrincipal"} & set(statement)
    if unsupported:
        raise ValueError(f"unsupported element(s) {sorted(unsupported)} in {statement.get('Sid')}")
    return (_principal_matches(statement.get("Principal"), request)
            and any(_glob(a, request.action, ignore_case=True) for a in _list(statement["Action"]))
            and any(_glob(r, request.resource) for r in _list(statement["Resource"]))
            and all(_condition_holds(op, key, [str(v) for v in _list(values)], request)
                    for op, block in statement.get("Condition", {}).items() for key, values in block.items()))


def decide(policy: dict[str, Any], request: Request) -> str:
    """"deny", "allow" or "implicit": what this one policy says about the request."""
    statements = _list(policy.get("Statement", []))
    if any(s["Effect"] == "Deny" and matches(s, request) for s in statements):
        return "deny"
    if any(s["Effect"] == "Allow" and matches(s, request) for s in statements):
        return "allow"
    return "implicit"


# --------------------------------------------------------------------------- policies of a synthesized template


def bucket_arn(logical_id: str) -> str:
    """The ARN ``resolve`` gives a bucket of the template (named by its logical ID, lower-cased)."""
    return f"arn:aws:s3:::{logical_id.lower()}"


def resolve(value: Any, template: dict[str, Any], *, account: str, region: str) -> Any:
    """A policy from a template with its intrinsics replaced by literals: a bucket's GetAtt Arn or Ref
    by ``bucket_arn``/its name, a role's Arn by one named after its logical ID, pseudo parameters by
    ``account``/``region``; numbers as IAM's strings. Anything else is refused."""
    if isinstance(value, list):
        return [resolve(v, template, account=account, region=region) for v in value]
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    if not isinstance(value, dict):
        return value
    if "Fn::Join" in value:
        delimiter, items = value["Fn::Join"]
        return delimiter.join(resolve(i, template, account=account, region=region) for i in items)
    if "Fn::GetAtt" in value:
        logical_id, attribute = value["Fn::GetAtt"]
        kind = template["Resources"][logical_id]["Type"]
        if kind == "AWS::S3::Bucket" and attribute == "Arn":
            return bucket_arn(logical_id)
        if kind == "AWS::IAM::Role" and attribute == "Arn":
            return f"arn:aws:iam::{account}:role/{logical_id}"
        raise ValueError(f"unsupported Fn::GetAtt {value}")
    if "Ref" in value:
        pseudo = {"AWS::AccountId": account, "AWS::Region": region, "AWS::Partition": "aws",
                  "AWS::URLSuffix": "amazonaws.com"}
        if value["Ref"] in pseudo:
            return pseudo[value["Ref"]]
        if template["Resources"][value["Ref"]]["Type"] == "AWS::S3::Bucket":
            return value["Ref"].lower()
        raise ValueError(f"unsupported Ref {value}")
    if any(k.startswith("Fn::") for k in value):
        raise ValueError(f"unsupported intrinsic {value}")
    return {k: resolve(v, template, account=account, region=region) for k, v in value.items()}


def bucket_policies(template: dict[str, Any], **where: str) -> dict[str, dict[str, Any]]:
    """Bucket logical ID -> its resolved policy document."""
    return {r["Properties"]["Bucket"]["Ref"]: resolve(r["Properties"]["PolicyDocument"], template, **where)
            for r in template["Resources"].values() if r["Type"] == "AWS::S3::BucketPolicy"}


def key_policies(template: dict[str, Any], **where: str) -> dict[str, dict[str, Any]]:
    """Key logical ID -> its resolved key policy."""
    return {logical_id: resolve(r["Properties"]["KeyPolicy"], template, **where)
            for logical_id, r in template["Resources"].items() if r["Type"] == "AWS::KMS::Key"}
