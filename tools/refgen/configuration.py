"""docs/reference/configuration.md from the loader's declarations (tavari_dr/core/config.py): every key's
type, default, allowed values (from its rule) and description (its ``doc``)."""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Iterator
from dataclasses import MISSING
from typing import Any

from tavari_dr.core import config as cfg
from tools.refgen.markdown import code, document, table, text

SOURCE = "tavari_dr/core/config.py"
_TYPES = {"str": "string", "int": "integer", "bool": "boolean", "float": "number"}
_LIST_RE = re.compile(r"^tuple\[(\w+), \.\.\.\]$")


def summary(cls: type) -> str:
    """The first paragraph of a class's docstring."""
    return " ".join(inspect.getdoc(cls).split("\n\n")[0].split())


def describe_type(annotation: str) -> str:
    optional = annotation.endswith(" | None")
    base = annotation.removesuffix(" | None")
    listed = _LIST_RE.match(base)
    if listed:
        item = listed.group(1)
        shown = f"list of {_TYPES[item]}s" if item in _TYPES else "list of objects"
    else:
        shown = _TYPES[base]
    return shown + (" or null" if optional else "")


def _duration(seconds: float) -> str:
    days, rest = divmod(int(seconds), 86400)
    hours = rest // 3600
    return " ".join(part for part in (f"{days} d" if days else "", f"{hours} h" if hours else "") if part) or "0 h"


def describe_rule(check: str, options: dict[str, Any]) -> str:
    """What the rule accepts, said as the loader's own error messages say it."""
    optional = options.get("optional")
    or_null = " or null" if optional is True else (" (null where the section allows it)" if callable(optional)
                                                    else "")
    if check == "integer":
        low, high = options["minimum"], options.get("maximum")
        shown = f"{low} to {high}" if high is not None else f"≥ {low}"
        return shown + (f" ({options['why']})" if options.get("why") else "") + or_null
    if check == "number":
        return "> 0" + (f" and ≤ {options['maximum']:g}" if options.get("maximum") is not None else "")
    if check == "choice":
        return ", ".join(code(c) for c in options["choices"])
    if check == "accepted":
        return f"a value {options['by']} accepts: " + ", ".join(str(v) for v in options["values"])
    if check == "boolean":
        return "true or false"
    if check == "text":
        return "a string"
    if check == "pattern":
        return options["what"] + ("" if "null" in options["what"] else or_null)
    if check == "strings":
        return f"each {options['what']}" + (" (or null: none)" if options.get("nullable") else "")
    if check == "timezone":
        return "an IANA time zone such as Europe/Warsaw or UTC"
    if check == "region":
        return "an AWS region botocore knows" + or_null
    if check == "schedule":
        cadence = options["cadence"]
        bound = (cadence.purpose.format(limit=_duration(cadence.longest)) if isinstance(cadence, cfg.Cadence)
                 else "a bound another key sets (see the description)")
        return f"an EventBridge Scheduler expression whose times exist once a day in its zone; between runs {bound}"
    if check == "github_environment":
        return "a GitHub environment name (letters, digits, '.', '_', '-')"
    if check == "cross_account_key":
        return "a KMS key ARN in the DR region and account, or null"
    if check == "secret_entries":
        return "a non-empty list of {name, description, required} objects, each name once"
    if check == "datasets":
        return "a non-empty list of {name, table, owner, column} objects, each name once"
    if check == "contacts":
        return "a list of {name, role, channel, reach} objects, first called first"
    raise KeyError(f"no description of the loader's rule {check!r}: add one to {__name__}.describe_rule")


def describe_default(f: dataclasses.Field) -> str:
    if f.default is MISSING:
        return "required"
    value = f.default
    if isinstance(value, tuple) and value and dataclasses.is_dataclass(value[0]):
        return f"{len(value)} built in (below)"
    return code(list(value) if isinstance(value, tuple) else value)


def keys(cls: type, prefix: str = "") -> Iterator[tuple[str, dataclasses.Field]]:
    """Every key a section declares (``name``, the environment's own key in cdk.json, is none)."""
    for f in dataclasses.fields(cls):
        if "rule" in f.metadata:
            yield prefix + f.name, f


def sections() -> Iterator[tuple[str, type]]:
    """(key path, class) of the environment itself, each section, then the objects of its lists."""
    yield "", cfg.EnvironmentConfig
    for name, f in keys(cfg.EnvironmentConfig):
        check, options = f.metadata["rule"]
        if check == "section":
            yield name, options["cls"]
    yield "secrets.entries[]", cfg.SecretEntry
    yield "data_export.datasets[]", cfg.Dataset
    yield "escalation.contacts[]", cfg.Contact


def rows(path: str, cls: type) -> list[list[str]]:
    out = []
    for name, f in keys(cls):
        check, options = f.metadata["rule"]
        if check == "section":
            continue
        out.append([code(f"{path}.{name}" if path else name), text(describe_type(f.type)), describe_default(f),
                    text(describe_rule(check, options)), text(f.metadata["doc"])])
    return out


def _builtin(title: str, headers: list[str], items: tuple[Any, ...]) -> str:
    return f"Built-in `{title}`:\n\n" + table(headers, [
        [code(v) if not isinstance(v, bool) else code(v) for v in dataclasses.astuple(item)] for item in items])


def render() -> str:
    count = sum(1 for path, cls in sections() for row in rows(path, cls))
    blocks = [text(
        f"Every key of an environment in `cdk.json` (`context.environments.<name>`): {count} keys. The loader "
        "refuses unknown keys and names the key, the value and what is allowed for a bad one. A section left out "
        "takes every default; `tavari-dr config show --env <name>` prints an environment with its defaults "
        "resolved. Rules that relate keys (e.g. `weekly_retention_days` at least `daily_retention_days`) are in "
        "each section's description and its keys' descriptions.")]
    headers = ["key", "type", "default", "allowed", "description"]
    for path, cls in sections():
        title = f"`{path}`" if path else "Top level"
        blocks += [f"## {title}", text(summary(cls)), table(headers, rows(path, cls))]
        if cls is cfg.SecretEntry:
            blocks.append(_builtin("secrets.entries", ["name", "description", "required"],
                                   cfg.DEFAULT_SECRET_ENTRIES))
        if cls is cfg.Dataset:
            blocks.append(_builtin("data_export.datasets", ["name", "table", "owner", "column"],
                                   cfg.DEFAULT_DATASETS))
        if cls is cfg.Contact:
            blocks.append(_builtin("escalation.contacts", ["name", "role", "channel", "reach"],
                                   cfg.DEFAULT_CONTACTS))
    return document("Configuration reference", SOURCE, blocks)
