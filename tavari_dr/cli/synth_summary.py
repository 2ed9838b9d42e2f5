"""Print what a synthesized cloud assembly holds: stacks, resources, outputs, nag result.

Usage: python -m tavari_dr.cli.synth_summary cdk.out/dev [cdk.out/prod ...]
Reads only files `cdk synth` wrote; exits 1 if an assembly is missing or failed validation.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path


def summarize(outdir: Path) -> tuple[list[str], bool]:
    manifest_path = outdir / "manifest.json"
    if not manifest_path.exists():
        return [f"{outdir}: no cloud assembly (manifest.json missing); did synth fail?"], False
    manifest = json.loads(manifest_path.read_text())
    lines: list[str] = []
    for name, artifact in sorted(manifest.get("artifacts", {}).items()):
        if artifact.get("type") != "aws:cloudformation:stack":
            continue
        template = json.loads((outdir / artifact["properties"]["templateFile"]).read_text())
        kinds = Counter(r["Type"] for r in template.get("Resources", {}).values() if r["Type"] != "AWS::CDK::Metadata")
        env = artifact.get("environment", "").removeprefix("aws://")
        lines.append(f"  {name}  ({env}, {sum(kinds.values())} resources)")
        for kind, count in sorted(kinds.items()):
            lines.append(f"      {count:3d} x {kind}")
        for key in sorted(template.get("Outputs", {})):
            lines.append(f"      output {key}")
    ok = True
    report_path = outdir / "validation-report.json"
    if report_path.exists():
        report = json.loads(report_path.read_text())
        for plugin in report.get("pluginReports", []):
            errors = [v for v in plugin.get("violations", []) if v.get("severity") == "error"]
            ok = ok and not errors and plugin.get("conclusion") == "success"
            lines.append(f"  {plugin['pluginName']}: {plugin.get('conclusion')}, "
                         f"{len(plugin.get('violations', []))} unacknowledged finding(s)")
    lines.append("  nag: clean (AwsSolutions, NIST.800.53.R5)" if ok
                 else "  nag: FINDINGS (see validation-report.json)")
    return lines, ok


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    all_ok = True
    for arg in argv:
        print(f"{arg}:")
        lines, ok = summarize(Path(arg))
        print("\n".join(lines))
        all_ok = all_ok and ok
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
