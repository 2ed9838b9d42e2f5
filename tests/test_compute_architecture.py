"""compute.architecture: arm64 puts every Lambda and every Fargate task on Graviton, with arm64 wheels in
the bundles; the default (x86_64) leaves the templates as they were (tests/test_snapshots.py pins them)."""

from __future__ import annotations

import re
from pathlib import Path


def _resources(synthesized, kind: str) -> list[tuple[str, dict]]:
    return [(logical, r.get("Properties", {})) for t in synthesized.templates.values()
            for logical, r in t["Resources"].items() if r["Type"] == kind]


def test_arm64_puts_every_function_and_task_on_graviton(prod_arm64):
    functions = _resources(prod_arm64, "AWS::Lambda::Function")
    tasks = _resources(prod_arm64, "AWS::ECS::TaskDefinition")
    assert functions and tasks
    assert all(props.get("Architectures") == ["arm64"] for _, props in functions), \
        [logical for logical, props in functions if props.get("Architectures") != ["arm64"]]
    assert all(props["RuntimePlatform"]["CpuArchitecture"] == "ARM64" for _, props in tasks)


def test_x86_is_the_default_and_declares_nothing_new(prod):
    assert all("Architectures" not in props for _, props in _resources(prod, "AWS::Lambda::Function"))
    assert all(props["RuntimePlatform"]["CpuArchitecture"] == "X86_64"
               for _, props in _resources(prod, "AWS::ECS::TaskDefinition"))


def test_arm64_bundles_carry_aarch64_extensions_only(prod_arm64):
    """Every compiled module in an arm64 function's asset is built for aarch64 (or abi3 from the aarch64
    wheel): an x86 .so would fail at import on Graviton."""
    extensions = [p for asset in Path(prod_arm64.outdir).glob("asset.*") if asset.is_dir()
                  for p in asset.rglob("*.so")]
    assert extensions
    assert not [p.name for p in extensions if "x86_64" in p.name]
    assert any(re.search(r"cpython-314-aarch64-linux-gnu\.so$", p.name) for p in extensions)
