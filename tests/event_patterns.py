"""A small EventBridge event-pattern matcher for the tests (moto's events backend does not
implement TestEventPattern, and its internal matcher cannot descend into arrays of objects such
as CloudTrail's ``resources``).

It follows EventBridge's content filtering as documented ("Event patterns" and "Content filtering"
in the EventBridge User Guide) for the operators the tamper rules use, and refuses any other:
- every field of a pattern must match (AND); the values listed for one field are alternatives (OR);
- a value matches exactly, type included ("true" is not true);
- when the event's value is an array, the field matches if any element does (for objects too);
- ``{"prefix": s}``, ``{"exists": bool}``, and ``"$or": [pattern, ...]`` beside other fields.
"""

from __future__ import annotations

from typing import Any

_MISSING = object()


def matches(pattern: dict[str, Any], event: Any) -> bool:
    if not isinstance(pattern, dict):
        raise TypeError(f"a pattern is an object, not {pattern!r}")
    for key, expected in pattern.items():
        if key == "$or":
            if not any(matches(branch, event) for branch in expected):
                return False
            continue
        value = event.get(key, _MISSING) if isinstance(event, dict) else _MISSING
        if isinstance(expected, dict):
            candidates = value if isinstance(value, list) else [value]
            if not any(isinstance(c, dict) and matches(expected, c) for c in candidates):
                return False
        elif isinstance(expected, list):
            if not _field_matches(expected, value):
                return False
        else:
            raise TypeError(f"{key!r}: a pattern field is an object or an array, not {expected!r}")
    return True


def _field_matches(alternatives: list[Any], value: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    return any(_one(alternative, v, value is _MISSING) for alternative in alternatives for v in values or [_MISSING])


def _one(alternative: Any, value: Any, missing: bool) -> bool:
    if isinstance(alternative, dict):
        (operator, operand), = alternative.items()
        if operator == "exists":
            return operand == (not missing)
        if operator == "prefix":
            return isinstance(value, str) and value.startswith(operand)
        raise NotImplementedError(f"operator {operator!r} is not implemented by this matcher")
    if missing:
        return False
    return type(alternative) is type(value) and alternative == value


def transform(input_transformer: dict[str, Any], event: dict[str, Any]) -> str:
    """EventBridge's input transformation, as documented: each InputPathsMap variable is the value at
    its path ($.a.b); in InputTemplate a placeholder inside a JSON string takes the value's text, one
    outside takes the value as JSON; a path the event lacks gives null (an empty text inside a string)."""
    import json
    import re

    values = {}
    for name, path in input_transformer.get("InputPathsMap", {}).items():
        value: Any = event
        for part in path.removeprefix("$.").split("."):
            value = value.get(part) if isinstance(value, dict) else None
        values[name] = value
    template = input_transformer["InputTemplate"]
    out, in_string, i = [], False, 0
    while i < len(template):
        char = template[i]
        if char == '"' and (i == 0 or template[i - 1] != "\\"):
            in_string = not in_string
        match = re.match(r"<([A-Za-z0-9_.-]+)>", template[i:]) if char == "<" else None
        if match and match.group(1) in values:
            value = values[match.group(1)]
            if in_string:
                out.append(json.dumps("" if value is None else str(value))[1:-1])
            else:
                out.append(json.dumps(value))
            i += len(match.group(0))
            continue
        out.append(char)
        i += 1
    return "".join(out)
