"""`python -m tools.refgen [--check]`: write docs/reference/ (or, with --check, exit 1 naming each stale page).

Synthesizes each environment of cdk.json once, in this process (the way tests/conftest.py does; about 18
CPU-seconds each), rather than reading cdk.out/<env>, which may be older than the code."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from tools.refgen import ROOT, render, stale
from tools.refgen.templates import Templates


def synthesize(env: str, context: dict, outdir: Path) -> Templates:
    from aws_cdk import App

    from stacks.app import build_app
    from tavari_dr.core.config import load_environment

    context = {**context, "env": env}
    app = App(context=context, outdir=str(outdir))
    build_app(app, load_environment(context))
    return {stack.stack_name: stack.template for stack in app.synth().stacks}


def main(argv: list[str] | None = None, root: Path = ROOT) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.refgen", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="Write nothing; exit 1 naming each stale page.")
    args = parser.parse_args(argv)
    context = json.loads((root / "cdk.json").read_text())["context"]
    with tempfile.TemporaryDirectory(prefix="refgen-") as tmp:
        by_env = {env: synthesize(env, context, Path(tmp) / env) for env in context["environments"]}
    pages = render(by_env)
    if args.check:
        outdated = stale(pages, root)
        for path in outdated:
            print(f"{path} is stale: run `make refs`", file=sys.stderr)
        return 1 if outdated else 0
    for path, content in pages.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(content)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
