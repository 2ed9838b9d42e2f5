"""The escalation chain of cdk.json (``escalation``, tavari_dr.core.config.EscalationConfig), said two ways: one
line per contact for every alert (the alert router's ESCALATION variable, set by the Monitoring stack), and the
contacts block of docs/runbooks/escalation.md (generated; tests/test_escalation.py fails when it is stale):

    .venv/bin/python -m tavari_dr.alerts.escalation            # print the block
    .venv/bin/python -m tavari_dr.alerts.escalation --write    # rewrite it in docs/runbooks/escalation.md
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path

from tavari_dr.core.config import UNSET_CONTACT, EnvironmentConfig, EscalationConfig, load_all, read_cdk_context

PAGE = Path(__file__).resolve().parents[2] / "docs" / "runbooks" / "escalation.md"
BEGIN = "<!-- escalation:begin (python -m tavari_dr.alerts.escalation --write) -->"
END = "<!-- escalation:end -->"


def alert_lines(escalation: EscalationConfig) -> tuple[str, ...]:
    """What every alert ends with: the chain in order, and where support cases are opened."""
    chain = "; ".join(f"{i}. {c.role}: {c.name} ({c.channel}, {c.reach})" for i, c in enumerate(escalation.contacts, 1))
    return (f"Escalate: {chain}",
            f"Support: Supabase {escalation.supabase_support_url} · AWS {escalation.aws_support_url}")


def markdown(configs: Mapping[str, EnvironmentConfig]) -> str:
    """The contacts block: per environment, the chain in order and the support links; UNSET is said plainly."""
    out = []
    for name, config in configs.items():
        esc = config.escalation
        out += [f"### `{name}`", "", "| order | role | who | channel | reach |", "|---|---|---|---|---|"]
        out += [f"| {i} | {c.role} | {c.name} | {c.channel} | {c.reach} |" for i, c in enumerate(esc.contacts, 1)]
        out += ["", f"Support cases: [Supabase]({esc.supabase_support_url}), [AWS]({esc.aws_support_url})."]
        if esc.placeholders():
            out += ["", f"**{len(esc.placeholders())} contact(s) still {UNSET_CONTACT}**: set "
                        f"`environments.{name}.escalation.contacts` in `cdk.json`"
                        + (" (a deploy of this environment refuses them)." if config.retain else ".")]
        out.append("")
    return "\n".join(out).rstrip("\n")


def page_block(text: str) -> str:
    """The generated block of the page as it stands."""
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{PAGE.name} has no {BEGIN} … {END} block")
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"rewrite the block in {PAGE}")
    parser.add_argument("--cdk-json", default="cdk.json")
    args = parser.parse_args(argv)
    block = markdown(load_all(read_cdk_context(args.cdk_json)))
    if not args.write:
        print(block)
        return
    text = PAGE.read_text()
    page_block(text)
    head, rest = text.split(BEGIN, 1)
    PAGE.write_text(f"{head}{BEGIN}\n{block}\n{END}{rest.split(END, 1)[1]}")


if __name__ == "__main__":
    main()
