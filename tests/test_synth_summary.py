"""`make synth`'s summary (tavari_dr.cli.synth_summary) on cloud assemblies laid out as `cdk synth` writes them:
short, the warnings and unacknowledged findings last, and words that say what its exit code does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tavari_dr.cli import synth_summary

SAME_ACCOUNT = ("Tavari-Prod-DatabaseBackups keeps its backup replica in the same account (123456789012) as the "
                "primary: whoever controls that account can destroy both copies.")


def assembly(root: Path, name: str, *, stacks: int = 3, plugins: list[dict] | None = None,
             annotation: str | None = None) -> Path:
    """A cdk.out/<env> folder: manifest.json, one template per stack (its metadata file holding the stack's
    annotations, as CDK writes it), and validation-report.json when ``plugins``."""
    out = root / name
    out.mkdir(parents=True)
    artifacts = {}
    for i in range(stacks):
        stack = f"Tavari-{name.title()}-Stack{i}"
        (out / f"{stack}.template.json").write_text(json.dumps({
            "Resources": {f"Bucket{j}": {"Type": "AWS::S3::Bucket"} for j in range(20)}
            | {"Key": {"Type": "AWS::KMS::Key"}, "CDKMetadata": {"Type": "AWS::CDK::Metadata"}},
            "Outputs": {f"Output{j}": {"Value": "x"} for j in range(25)}}))
        metadata = {f"/{stack}/Bucket0/Resource": [{"type": "aws:cdk:logicalId", "data": "Bucket0"}]}
        if annotation and i == 0:
            metadata[f"/{stack}"] = [{"type": "aws:cdk:warning", "data": f"{annotation} [ack: tavari:same-account]",
                                      "trace": ["Annotations.addWarningV2 (annotations.js:1:2194)"]}]
        (out / f"{stack}.metadata.json").write_text(json.dumps(metadata))
        artifacts[stack] = {"type": "aws:cloudformation:stack", "environment": "aws://123456789012/eu-west-1",
                            "properties": {"templateFile": f"{stack}.template.json"},
                            "additionalMetadataFile": f"{stack}.metadata.json"}
    artifacts["Tree"] = {"type": "cdk:tree", "properties": {"file": "tree.json"}}
    (out / "manifest.json").write_text(json.dumps({"version": "48.0.0", "artifacts": artifacts}))
    if plugins is not None:
        (out / "validation-report.json").write_text(json.dumps({"title": "Validation Report",
                                                                "pluginReports": plugins}))
    return out


def pack(name: str, violations: list[dict] | None = None, conclusion: str = "success") -> dict:
    return {"pluginName": name, "conclusion": conclusion, "violations": violations or [],
            "suppressedViolations": [{"ruleName": "AwsSolutions-IAM5", "severity": "error"}] * 12}


def violation(rule: str, severity: str, path: str, description: str) -> dict:
    return {"ruleName": rule, "description": description, "severity": severity,
            "violatingConstructs": [{"constructPath": path}]}


def run(capsys, *paths: Path) -> tuple[list[str], int]:
    code = synth_summary.main([str(p) for p in paths])
    return capsys.readouterr().out.splitlines(), code


def test_a_warning_is_listed_last_and_the_verdict_says_exit_0_without_calling_it_success(tmp_path, capsys):
    """prod as it synthesizes today: nag clean, and the app's own warning (the backup replica in the primary's
    account) in the Construct Annotations report and in the stack's metadata: listed once, at the end."""
    dev = assembly(tmp_path, "dev", plugins=[pack("AwsSolutions"), pack("NIST.800.53.R5")])
    prod = assembly(tmp_path, "prod", annotation=SAME_ACCOUNT, plugins=[
        pack("AwsSolutions"), pack("NIST.800.53.R5"),
        pack("Construct Annotations", [violation("Annotation::tavari:same-account", "warning",
                                                 "Tavari-Prod-Stack0", SAME_ACCOUNT)])])
    lines, code = run(capsys, dev, prod)
    assert code == 0
    text = "\n".join(lines)
    assert "success" not in text  # (was: "Construct Annotations: success, 1 unacknowledged finding(s)")
    assert len(lines) < 25, text  # one line per stack (was: one per resource type and output, 130 lines here)
    assert text.count(SAME_ACCOUNT) == 1
    # Where the eye lands: the warning, then one verdict that names the exit code and the warning.
    assert lines[-4:] == [
        "  WARNING  " + f"{prod}  Annotation::tavari:same-account  at Tavari-Prod-Stack0",
        f"      {SAME_ACCOUNT}", "",
        "synth passed (exit 0) with 1 warning(s) to decide on, listed above; nag (AwsSolutions, NIST.800.53.R5): "
        "clean"]
    assert max(i for i, line in enumerate(lines) if "Stack" in line and "resources" in line) < \
        lines.index("Warnings and unacknowledged findings (1):")


def test_an_annotation_no_validation_report_lists_is_still_listed(tmp_path, capsys):
    prod = assembly(tmp_path, "prod", annotation=SAME_ACCOUNT)
    lines, code = run(capsys, prod)
    assert code == 0 and lines[-3] == f"      {SAME_ACCOUNT}"


def test_a_nag_warning_is_never_called_clean(tmp_path, capsys):
    """A warning-severity nag finding does not fail synth (exit 0), and the words say there is one."""
    prod = assembly(tmp_path, "prod", plugins=[pack("AwsSolutions", [violation(
        "AwsSolutions-S1", "warning", "Tavari-Prod-Stack1/Bucket3/Resource", "The S3 Bucket has server access "
        "logs disabled.")]), pack("NIST.800.53.R5")])
    lines, code = run(capsys, prod)
    assert code == 0
    text = "\n".join(lines)
    assert "clean" not in text and "success" not in text  # (was: "nag: clean (AwsSolutions, NIST.800.53.R5)")
    assert "  AwsSolutions: 1 unacknowledged warning (listed at the end); 12 acknowledged" in lines
    assert lines[-1] == ("synth passed (exit 0) with 1 warning(s) to decide on, listed above; nag (AwsSolutions, "
                         "NIST.800.53.R5): 1 unacknowledged finding(s), listed above")
    assert lines[-4] == f"  WARNING  {prod}  AwsSolutions-S1  at Tavari-Prod-Stack1/Bucket3/Resource"


@pytest.mark.parametrize("conclusion", ["success", "failure"])
def test_an_error_fails_and_says_so_last(tmp_path, capsys, conclusion):
    prod = assembly(tmp_path, "prod", annotation=SAME_ACCOUNT, plugins=[pack("AwsSolutions", [violation(
        "AwsSolutions-IAM5", "error", "Tavari-Prod-Stack2/Role/Resource", "The IAM entity contains wildcard "
        "permissions.")], conclusion=conclusion), pack("NIST.800.53.R5")])
    lines, code = run(capsys, prod)
    assert code == 1
    assert lines[-1].startswith("synth FAILED (exit 1): ") and "passed" not in "\n".join(lines)
    assert lines[-1].endswith("nag (AwsSolutions, NIST.800.53.R5): 1 unacknowledged finding(s), listed above")
    # Errors before warnings, both after every stack line.
    found = [line for line in lines if line.startswith(("  ERROR  ", "  WARNING  "))]
    assert [line.split()[0] for line in found] == ["ERROR", "WARNING"]


def test_a_missing_assembly_fails(tmp_path, capsys):
    dev = assembly(tmp_path, "dev", plugins=[pack("AwsSolutions"), pack("NIST.800.53.R5")])
    lines, code = run(capsys, dev, tmp_path / "prod")
    assert code == 1
    assert lines[-1] == (f"synth FAILED (exit 1): {tmp_path / 'prod'}: no cloud assembly; nag (AwsSolutions, "
                         "NIST.800.53.R5) of the assemblies found: clean")


def test_detail_lists_resource_types_and_outputs(tmp_path, capsys):
    dev = assembly(tmp_path, "dev", stacks=1, plugins=[pack("AwsSolutions")])
    assert synth_summary.main(["--detail", str(dev)]) == 0
    out = capsys.readouterr().out
    assert "  Tavari-Dev-Stack0  123456789012/eu-west-1  21 resources, 25 outputs" in out
    assert "       20 x AWS::S3::Bucket" in out and "      output Output24" in out
