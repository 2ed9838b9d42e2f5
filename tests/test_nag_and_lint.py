"""cdk-nag on every environment, proof that it is live, and cfn-lint on every template."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_s3 as s3

from backup_constructs.nag import acknowledge, add_nag_packs
from tests.conftest import cdk_context

# Every environment of cdk.json (staging too once added), then the session fixture's variants.
VARIANTS = ["prod-xacct", "prod-xacct-pending", "prod-app", "dev-trail"]


@pytest.mark.parametrize("env_name", [*cdk_context()["environments"], *VARIANTS])
def test_synth_is_nag_clean(synthesized, env_name):
    """The session fixture synthesized with both packs on; a finding would have raised there."""
    report_path = synthesized[env_name].outdir / "validation-report.json"
    if report_path.exists():
        report = json.loads(report_path.read_text())
        errors = [(p["pluginName"], v["ruleName"]) for p in report["pluginReports"] for v in p["violations"]
                  if v["severity"] == "error"]
        assert errors == []


def test_nag_is_live_and_acknowledgments_are_narrow(tmp_path):
    app = App(outdir=str(tmp_path))
    stack = Stack(app, "Probe")
    bare = s3.Bucket(stack, "Bare")
    acknowledged = s3.Bucket(stack, "Acknowledged", enforce_ssl=True)
    acknowledge(acknowledged, "probe", "AwsSolutions-S1")
    add_nag_packs(app)
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    flagged = {
        (v["ruleName"], c["constructPath"])
        for p in report["pluginReports"] for v in p["violations"] for c in v["violatingConstructs"]
    }
    assert ("AwsSolutions-S1", "Probe/Bare/Resource") in flagged
    assert ("AwsSolutions-S10", "Probe/Bare/Resource") in flagged
    assert ("AwsSolutions-S1", "Probe/Acknowledged/Resource") not in flagged
    assert {p["pluginName"] for p in report["pluginReports"]} >= {"AwsSolutions", "NIST.800.53.R5"}
    del bare


def test_cfn_lint_has_no_errors(synthesized):
    templates = [str(p) for env in synthesized.values() for p in env.outdir.glob("*.template.json")]
    assert len(templates) >= 7
    # Errors only (E*); informational/warning rules are advice, not failures.
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), "--format", "parseable",
         "--ignore-checks", "W", "I", "--", *templates],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode in (0, 4, 8), result.stdout + result.stderr  # 4/8 = warnings/info bits only
    assert [line for line in result.stdout.splitlines() if ":E" in line] == []


def test_the_runtime_package_never_imports_cdk():
    """tavari_dr is shared by the Lambdas and the CLI: it must load without CDK, jsii or cdk-nag."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "tavari_dr"
    offenders = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.name}: {n}" for n in names
                          if n.split(".")[0] in ("aws_cdk", "constructs", "cdk_nag", "jsii", "backup_constructs",
                                                 "stacks")]
    assert not offenders


def test_the_import_contracts_name_every_runtime_module_and_every_handler():
    """The contracts' forbidden lists are explicit (import-linter has no "all but"): a runtime module
    added later is forbidden to the stacks unless it joins the contract, and every Lambda handler
    is held to core plus exactly one capability."""
    import tomllib

    root = Path(__file__).resolve().parent.parent
    contracts = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    runtime = root / "tavari_dr"
    units = {f"tavari_dr.{p.stem}" for p in runtime.glob("*.py") if p.stem != "__init__"}
    units |= {f"tavari_dr.{p.name}" for p in runtime.iterdir() if (p / "__init__.py").is_file() and p.name != "core"}
    units |= {f"tavari_dr.core.{p.stem}" for p in (runtime / "core").glob("*.py") if p.stem != "__init__"}
    (cdk_side,) = [c for c in contracts if c.get("source_modules") == ["stacks", "backup_constructs"]]
    contract = {"tavari_dr.core.config", "tavari_dr.core.outputs", "tavari_dr.core.metrics",
                "tavari_dr.core.guardrails"}
    assert set(cdk_side["forbidden_modules"]) == units - contract
    capabilities = {u for u in units if u.count(".") == 1} - {"tavari_dr.__main__", "tavari_dr.cli", "tavari_dr.drill"}
    handlers = [c for c in contracts if all(s.startswith("lambdas.") for s in c.get("source_modules", ["x"]))]
    held = [s.removeprefix("lambdas.") for c in handlers for s in c["source_modules"]]
    assert sorted(held) == sorted(p.parent.name for p in (root / "lambdas").glob("*/handler.py"))
    for c in handlers:
        allowed = capabilities - set(c["forbidden_modules"])
        assert len(allowed) == 1, (c["name"], allowed)
        assert set(c["forbidden_modules"]) == (capabilities - allowed) | {
            "tavari_dr.cli", "tavari_dr.drill", "stacks", "backup_constructs"}, c["name"]


@pytest.mark.parametrize("env_name", ["dev", "prod"])
def test_every_acknowledgment_still_acknowledges_a_finding(env_name, tmp_path, monkeypatch):
    """An acknowledgment whose finding is gone (the rule learnt to pass it, or the code changed) would
    stay unnoticed, its reason stale. Synthesize with every acknowledgment recorded instead of applied:
    each must then match a finding cdk-nag reports on its construct."""
    from aws_cdk import Validations

    import backup_constructs.nag as nag
    from stacks.app import build_app
    from tavari_dr.core.config import load_environment
    from tests.conftest import cdk_context

    recorded = []

    class Recording:
        def __init__(self, construct):
            self.construct = construct

        @classmethod
        def of(cls, construct):
            return cls(construct)

        def acknowledge(self, *acknowledgments):
            recorded.extend((self.construct.node.path, a.id.split("::", 1)[1]) for a in acknowledgments)

        def add_plugins(self, *plugins):
            Validations.of(self.construct).add_plugins(*plugins)

    monkeypatch.setattr(nag, "Validations", Recording)
    context = {**cdk_context(), "env": env_name}
    app = App(context=context, outdir=str(tmp_path))
    build_app(app, load_environment(context))
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    found = {(c["constructPath"], v["ruleName"]) for p in report["pluginReports"] for v in p["violations"]
             for c in v["violatingConstructs"]}
    assert len(recorded) > 50
    stale = [(path, rule) for path, rule in recorded
             if not any(rule == r and (p == path or p.startswith(path + "/")) for p, r in found)]
    assert stale == []
