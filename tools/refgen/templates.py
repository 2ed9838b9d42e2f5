"""Reading synthesized CloudFormation templates: names without CDK's hash suffix, values made readable."""

from __future__ import annotations

import json
import re
from typing import Any

_HASH_RE = re.compile(r"[0-9A-F]{8}$")

Templates = dict[str, dict[str, Any]]  # stack name -> template


def short_id(logical_id: str) -> str:
    """A logical ID without the 8-hex-digit hash CDK appends (stable names for the reference)."""
    return _HASH_RE.sub("", logical_id)


def purpose(stack: str, env: str) -> str:
    """Tavari-<Env>-<Purpose> -> <Purpose> (the stack-name pattern of tavari_dr.core.config.stack_name)."""
    prefix = f"Tavari-{env.capitalize()}-"
    return stack.removeprefix(prefix)


def readable(value: Any, template: dict[str, Any]) -> str:
    """A property value as people read it: a reference names its resource (type and short ID)."""
    resources = template.get("Resources", {})
    if isinstance(value, dict) and len(value) == 1:
        (fn, arg), = value.items()
        if fn == "Ref":
            kind = resources.get(arg, {}).get("Type")
            return f"{short_id(arg)} ({kind})" if kind else arg
        if fn == "Fn::GetAtt":
            return f"{short_id(arg[0])}.{arg[1]}"
        if fn == "Fn::GetStackOutput":
            return f"output of {arg['StackName']}"
        if fn == "Fn::ImportValue":
            return f"import {readable(arg, template)}"
        if fn == "Fn::Join":
            return "".join(readable(v, template) for v in arg[1])
        if fn == "Fn::Sub":
            return arg if isinstance(arg, str) else arg[0]
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)
