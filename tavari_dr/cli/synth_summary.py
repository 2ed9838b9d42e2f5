"""Print what a synthesized cloud assembly holds: one line per stack, then each assembly's rule packs, and last
(where the eye lands) every warning and unacknowledged finding, with a verdict that says what the exit code does.

Usage: python -m tavari_dr.cli.synth_summary [--detail] cdk.out/dev [cdk.out/prod ...]
Reads only files `cdk synth` wrote; exits 1 if an assembly is missing or failed validation (an error-severity
finding, or a pack that did not conclude "success"). Warnings (cdk-nag's, or the app's own annotations such as a
backup replica kept in the primary's account) never fail it: they are listed last, by name, to be decided on.
--detail adds each stack's resource types and outputs.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

# The rule packs app.py applies (the Construct Annotations report holds the app's own warnings, not a pack).
NAG_PACKS = ("AwsSolutions", "NIST.800.53.R5")
_ACK = re.compile(r"\s*\[ack: ([^\]]+)\]$")  # the acknowledgement id CDK appends to an annotation's text
ANNOTATION = "Annotation::"  # how the validation report names an annotation's rule


@dataclass(frozen=True)
class Finding:
    assembly: str
    severity: str  # error / warning / info, as CDK and cdk-nag write it
    rule: str
    where: str
    text: str


@dataclass
class Summary:
    lines: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    missing: bool = False
    failed_packs: list[str] = field(default_factory=list)  # packs whose conclusion was not "success"


def summarize(outdir: Path, *, detail: bool = False) -> Summary:
    """One assembly: its stacks (one line each, or in full with ``detail``), its packs, and its findings."""
    summary = Summary()
    name = str(outdir)
    manifest_path = outdir / "manifest.json"
    if not manifest_path.exists():
        summary.missing = True
        summary.lines.append("  no cloud assembly (manifest.json missing): did synth fail?")
        return summary
    manifest = json.loads(manifest_path.read_text())
    annotated: list[Finding] = []
    for stack, artifact in sorted(manifest.get("artifacts", {}).items()):
        if artifact.get("type") != "aws:cloudformation:stack":
            continue
        template = json.loads((outdir / artifact["properties"]["templateFile"]).read_text())
        kinds = Counter(r["Type"] for r in template.get("Resources", {}).values() if r["Type"] != "AWS::CDK::Metadata")
        env = artifact.get("environment", "").removeprefix("aws://")
        stack_outputs = sorted(template.get("Outputs", {}))
        summary.lines.append(f"  {stack}  {env}  {sum(kinds.values())} resources, {len(stack_outputs)} outputs")
        if detail:
            summary.lines += [f"      {count:3d} x {kind}" for kind, count in sorted(kinds.items())]
            summary.lines += [f"      output {key}" for key in stack_outputs]
        annotated += _annotations(name, outdir, artifact)
    report_path = outdir / "validation-report.json"
    if report_path.exists():
        report = json.loads(report_path.read_text())
        for plugin in report.get("pluginReports", []):
            violations = plugin.get("violations", [])
            acknowledged = len(plugin.get("suppressedViolations", []))
            if plugin.get("conclusion") != "success":
                summary.failed_packs.append(f"{name}: {plugin['pluginName']} concluded {plugin.get('conclusion')!r}")
            counts = Counter(v.get("severity", "error") for v in violations)
            said = (", ".join(f"{n} unacknowledged {sev}{'s' if n > 1 else ''}" for sev, n in sorted(counts.items()))
                    + " (listed at the end)" if counts else "no unacknowledged finding")
            summary.lines.append(f"  {plugin['pluginName']}: {said}; {acknowledged} acknowledged")
            for v in violations:
                where = ", ".join(c.get("constructPath", "?") for c in v.get("violatingConstructs", [])) or "?"
                summary.findings.append(Finding(name, v.get("severity", "error"), v.get("ruleName", "?"), where,
                                                _ACK.sub("", v.get("description", ""))))
    # An annotation the validation report lists already (its Construct Annotations report) is listed once.
    listed = {(f.rule, f.where) for f in summary.findings}
    summary.findings += [f for f in annotated if (f.rule, f.where) not in listed]
    return summary


def _annotations(assembly: str, outdir: Path, artifact: dict) -> list[Finding]:
    """The stack's own aws:cdk:warning / aws:cdk:error annotations (in the manifest, or the stack's metadata file)."""
    metadata = dict(artifact.get("metadata", {}))
    extra = artifact.get("additionalMetadataFile")
    if extra and (outdir / extra).exists():
        metadata.update(json.loads((outdir / extra).read_text()))
    found = []
    for path, entries in sorted(metadata.items()):
        for entry in entries:
            kind = entry.get("type", "")
            if kind in ("aws:cdk:warning", "aws:cdk:error"):
                text = str(entry.get("data", ""))
                ack = _ACK.search(text)
                found.append(Finding(assembly, kind.removeprefix("aws:cdk:"), ANNOTATION + (ack[1] if ack else "?"),
                                     path.lstrip("/"), _ACK.sub("", text)))
    return found


def verdict(summaries: dict[str, Summary]) -> tuple[list[str], int]:
    """The closing lines (warnings and findings, then one verdict) and the exit code they describe."""
    findings = [f for s in summaries.values() for f in s.findings]
    errors = [f for f in findings if f.severity == "error"]
    lines = []
    if findings:
        lines += ["", f"Warnings and unacknowledged findings ({len(findings)}):"]
        for f in sorted(findings, key=lambda f: (f.severity != "error", f.assembly, f.rule)):
            lines += [f"  {f.severity.upper()}  {f.assembly}  {f.rule}  at {f.where}", f"      {f.text}"]
    failed = [f"{name}: no cloud assembly" for name, s in summaries.items() if s.missing]
    failed += [p for s in summaries.values() for p in s.failed_packs]
    failed += [f"{len(errors)} error-severity finding(s), listed above"] if errors else []
    packs = ", ".join(NAG_PACKS)
    nag_findings = [f for f in findings if not f.rule.startswith(ANNOTATION)]
    scope = " of the assemblies found" if any(s.missing for s in summaries.values()) else ""
    nag = (f"nag ({packs}){scope}: clean" if not nag_findings else
           f"nag ({packs}){scope}: {len(nag_findings)} unacknowledged finding(s), listed above")
    warnings = len(findings) - len(errors)
    if failed:
        lines += ["", f"synth FAILED (exit 1): {'; '.join(failed)}; {nag}"]
        return lines, 1
    lines += ["", f"synth passed (exit 0) with {warnings} warning(s) to decide on, listed above; {nag}" if warnings
              else f"synth passed (exit 0): no warning, no unacknowledged finding; {nag}"]
    return lines, 0


def main(argv: list[str]) -> int:
    detail = "--detail" in argv
    paths = [a for a in argv if a != "--detail"]
    if not paths:
        print(__doc__, file=sys.stderr)
        return 2
    summaries = {}
    for arg in paths:
        summary = summarize(Path(arg), detail=detail)
        summaries[arg] = summary
        print(f"{arg}:")
        print("\n".join(summary.lines))
    lines, code = verdict(summaries)
    print("\n".join(lines))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
