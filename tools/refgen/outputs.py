"""docs/reference/outputs.md from the synthesized templates: every stack output of every environment (the
contract `tavari-dr` reads deployed resources through; keys in tavari_dr/core/outputs.py)."""

from __future__ import annotations

from tavari_dr.core import outputs as contract
from tools.refgen.markdown import code, document, table, text
from tools.refgen.templates import Templates, purpose, readable

SOURCE = "the synthesized templates (stacks/, tavari_dr/core/outputs.py)"
# CDK's own outputs for weak cross-stack references (Fn::GetStackOutput): plumbing, not a contract.
_CDK_INTERNAL = "PublishOutput"


def constants() -> dict[str, str]:
    """Output key -> the tavari_dr.core.outputs constant naming it (the CLI and the drill read those)."""
    return {value: name for name, value in vars(contract).items() if name.isupper() and isinstance(value, str)}


def render(by_env: dict[str, Templates]) -> str:
    named = constants()
    rows: dict[tuple[str, str], dict] = {}
    for env, templates in by_env.items():
        for stack, template in templates.items():
            for key, output in template.get("Outputs", {}).items():
                if key.startswith(_CDK_INTERNAL):
                    continue
                row = rows.setdefault((purpose(stack, env), key), {"envs": [], "output": output, "template": template})
                row["envs"].append(env)
    envs = list(by_env)
    blocks = [text("Every CloudFormation output of the stacks (`Tavari-<Env>-<stack>`), per environment, as "
                   "synthesized. `tavari-dr` finds deployed resources through them; the constant column names the "
                   "key in `tavari_dr/core/outputs.py` where the CLI reads it by name. CDK's own `PublishOutput…` "
                   "outputs (weak cross-stack references) are left out.")]
    stacks = sorted({stack for stack, _ in rows})
    for stack in stacks:
        body = []
        for (s, key), row in sorted(rows.items()):
            if s != stack:
                continue
            body.append([code(key), text(row["output"].get("Description", "")),
                         text(readable(row["output"]["Value"], row["template"])),
                         code(named[key]) if key in named else "",
                         *["yes" if env in row["envs"] else "no" for env in envs]])
        blocks += [f"## `{stack}`", table(["output", "description", "value", "constant", *envs], body)]
    return document("Stack outputs reference", SOURCE, blocks)
