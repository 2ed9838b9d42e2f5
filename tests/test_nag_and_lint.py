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


@pytest.mark.parametrize("env_name", ["dev", "prod", "prod-xacct", "prod-xacct-pending", "prod-app"])
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
