"""docs/reference/capabilities.md from the capability map (tools/refgen/capabilities.toml): capability ->
runtime -> Lambda handlers -> constructs -> stacks -> CLI commands -> runbooks -> ADRs -> tests."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tools.refgen.markdown import anchors, document, table, text

ROOT = Path(__file__).resolve().parents[2]
MAP = Path(__file__).with_name("capabilities.toml")
SOURCE = "tools/refgen/capabilities.toml"
HOPS = (("runtime", "runtime (tavari_dr/)"), ("lambdas", "Lambda handlers"), ("constructs", "constructs"),
        ("stacks", "stacks"), ("cli", "CLI commands"), ("runbooks", "runbooks"), ("adrs", "decision records"),
        ("tests", "tests"))
# Pages under docs/ are linked relatively (they resolve on GitHub and on the docs site alike); code and tests
# outside docs/ are not part of the site, so they are linked where both readers can open them: the repository.
REPOSITORY = "https://github.com/tavari/backup-recovery"


def _href(path: str, section: str = "") -> str:
    anchor = f"#{section}" if section else ""
    if path.startswith("docs/"):
        return "../" + path.removeprefix("docs/") + anchor
    kind = "tree" if path.endswith("/") else "blob"
    return f"{REPOSITORY}/{kind}/main/{path}{anchor}"


def load() -> list[dict[str, Any]]:
    return tomllib.loads(MAP.read_text())["capability"]


def _link(entry: str, hop: str) -> str:
    if hop == "cli":
        return f"[`tavari-dr {entry}`](cli.md#tavari-dr-{entry.replace(' ', '-')})"
    if hop == "constructs":
        path, name = entry.split("::")
        return f"[`{name}`]({_href(path)})"
    path, _, section = entry.partition("#")
    return f"[`{entry}`]({_href(path, section)})"


def render() -> str:
    capabilities = load()
    blocks = [text("Where each capability lives, one hop each way: its runtime code, the Lambda handlers that carry "
                   "it, the constructs and stacks that deploy it, the commands that operate it, the runbooks and "
                   "decision records that explain it and the tests that prove it. Edit "
                   f"`{SOURCE}`, then `make refs`.")]
    for capability in capabilities:
        rows = [[hop_title, ", ".join(_link(e, hop) for e in capability[hop])] for hop, hop_title in HOPS]
        blocks += [f"## {text(capability['name'])}", table(["hop", "where"], rows)]
    return document("Capability map", SOURCE, blocks)


def problems(commands: set[str]) -> Iterator[str]:
    """What in the map names nothing that exists; ``commands``: every command and group path of `tavari-dr`."""
    capabilities = load()
    for capability in capabilities:
        missing = [hop for hop, _ in HOPS if hop not in capability]
        if missing:
            yield f"{capability['name']}: no {', '.join(missing)} (an empty list says none)"
            continue
        for hop, _ in HOPS:
            for entry in capability[hop]:
                if hop == "cli":
                    if entry not in commands:
                        yield f"{capability['name']}: no command `tavari-dr {entry}`"
                    continue
                path, sep, name = entry.partition("::" if hop == "constructs" else "#")
                if not (ROOT / path).exists():
                    yield f"{capability['name']}: {path} does not exist"
                elif hop == "constructs" and not re.search(rf"^(class|def) {re.escape(name)}\b",
                                                           (ROOT / path).read_text(), re.M):
                    yield f"{capability['name']}: {path} defines no {name}"
                elif hop == "runbooks" and sep and name not in anchors((ROOT / path).read_text()):
                    yield f"{capability['name']}: {path} has no section #{name}"
    named = {Path(e.rstrip("/")).parts[1] for c in capabilities for e in c["runtime"] if e.startswith("tavari_dr/")}
    for folder in sorted(p.name for p in (ROOT / "tavari_dr").iterdir() if (p / "__init__.py").exists()):
        if folder not in named:
            yield f"tavari_dr/{folder}/ is in no capability's runtime"
