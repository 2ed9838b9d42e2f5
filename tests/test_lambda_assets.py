"""Import every handler from its *built* asset in a clean interpreter, as Lambda would.

The interpreter sees only the asset and what the Lambda Python runtime ships (boto3 and its
dependencies); the project's own editable install is out of reach, so a module missing from
the bundle fails here, not in AWS.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")


@pytest.fixture(scope="session")
def lambda_runtime_site(tmp_path_factory) -> Path:
    import importlib

    site = tmp_path_factory.mktemp("lambda-runtime")
    for name in RUNTIME_PROVIDED:
        module = importlib.import_module(name)
        source = Path(module.__file__)
        source = source.parent if source.name == "__init__.py" else source
        (site / source.name).symlink_to(source)
    return site


def functions(synthesized):
    for env in synthesized.values():
        for stack, template in env.templates.items():
            for logical_id, resource in template["Resources"].items():
                if resource["Type"] == "AWS::Lambda::Function":
                    yield env, stack, logical_id, resource


def asset_dir(env, resource) -> Path:
    """cdk.out/asset.<hash>/ of a function whose Code.S3Key is <hash>.zip."""
    key = resource["Properties"]["Code"]["S3Key"]
    return env.outdir / f"asset.{key.removesuffix('.zip')}"


def rendered(value) -> str:
    """An environment value as Lambda would see it: intrinsic functions become placeholder strings
    (Fn::Join keeps its literal parts, so JSON built with Stack.to_json_string stays JSON)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(rendered(p) for p in parts)
    return "dummy"


def test_there_are_functions_to_check(synthesized):
    assert len(list(functions(synthesized))) >= 2


def test_every_handler_imports_from_its_built_asset(synthesized, lambda_runtime_site, tmp_path):
    for env, stack, logical_id, resource in functions(synthesized):
        asset = asset_dir(env, resource)
        module, _, attribute = resource["Properties"]["Handler"].rpartition(".")
        declared = resource["Properties"].get("Environment", {}).get("Variables", {})
        variables = {k: rendered(v) for k, v in declared.items()}
        code = (
            "import sys, importlib;"
            f"sys.path[:0] = [{str(asset)!r}, {str(lambda_runtime_site)!r}];"
            f"m = importlib.import_module({module!r}); assert callable(getattr(m, {attribute!r}));"
            "import tavari_dr; assert tavari_dr.__file__.startswith(sys.path[0]), tavari_dr.__file__"
        )
        env_vars = {"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-west-1", "PATH": "/usr/bin:/bin",
                    **variables}
        result = subprocess.run([sys.executable, "-I", "-S", "-B", "-c", code], env=env_vars, cwd=tmp_path,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"{stack}/{logical_id}: {result.stderr}"


THIRD_PARTY = ["psycopg", "psycopg-3.2.13.dist-info", "psycopg_binary", "psycopg_binary-3.2.13.dist-info",
               "psycopg_binary.libs", "typing_extensions-4.16.0.dist-info", "typing_extensions.py"]
# The functions that read PostgreSQL, and only they, carry requirements-lambda.txt.
WITH_DRIVER = {"Export API: GET /api/account/export[/{export_id}]",
               "Export API: large account exports in the background"}


def test_the_bundle_holds_our_code_and_nothing_else(synthesized):
    for env, _stack, _logical_id, resource in functions(synthesized):
        asset = asset_dir(env, resource)
        top = sorted(p.name for p in asset.iterdir())
        driver = resource["Properties"]["Description"] in WITH_DRIVER
        assert top == sorted(["handler.py", "tavari_dr", *(THIRD_PARTY if driver else [])]), top
        assert not list(asset.rglob("__pycache__"))


def test_the_postgresql_driver_is_built_for_the_lambda_runtime(synthesized):
    """The driver's compiled half must match the functions' runtime and architecture, or the
    import fails in AWS only (this machine's interpreter cannot load a cp314 extension)."""
    seen = 0
    for env, _stack, _logical_id, resource in functions(synthesized):
        wheel = asset_dir(env, resource) / "psycopg_binary-3.2.13.dist-info" / "WHEEL"
        if not wheel.exists():
            continue
        seen += 1
        tags = [line.split(": ", 1)[1] for line in wheel.read_text().splitlines() if line.startswith("Tag: ")]
        runtime = resource["Properties"]["Runtime"]  # python3.14
        assert any(t.startswith(f"cp{runtime.removeprefix('python').replace('.', '')}-") and t.endswith("_x86_64")
                   for t in tags), tags
        assert resource["Properties"].get("Architectures", ["x86_64"]) == ["x86_64"]
        assert list((asset_dir(env, resource) / "psycopg_binary").glob("_psycopg.cpython-314-x86_64-linux-gnu.so"))
    assert seen == len(synthesized) * len(WITH_DRIVER)  # every synthesized environment


def _imported(path: Path) -> set[str]:
    """tavari_dr modules a file imports, at module level or inside functions (lazy imports too)."""
    import ast

    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.split(".")[0] == "tavari_dr"}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "tavari_dr":
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}  # `from tavari_dr.x import module`
    return names


def _source(root: Path, module: str) -> Path | None:
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def reachable(asset: Path) -> set[str]:
    """Every tavari_dr module the handler can reach, resolved against the project's own tree."""
    project = Path(__file__).resolve().parent.parent
    seen: set[str] = set()
    todo = _imported(asset / "handler.py")
    while todo:
        module = todo.pop()
        source = _source(project, module)
        if module in seen or source is None:  # a name imported from a module, not a module
            continue
        seen.add(module)
        todo |= _imported(source)
    return seen


def test_each_asset_carries_core_and_the_capabilities_its_handler_reaches_nothing_else(synthesized):
    """No asset holds the CLI, the local drill or its deployer; each holds tavari_dr/__init__.py, core,
    and exactly the capability subpackages its handler can reach (lazy imports included), every
    module of which is there."""
    for env, stack, logical_id, resource in functions(synthesized):
        runtime = asset_dir(env, resource) / "tavari_dr"
        where = f"{stack}/{logical_id}"
        packages = sorted(p.name for p in runtime.iterdir() if p.is_dir())
        assert "drill" not in packages and "cli" not in packages, where
        assert not list(runtime.rglob("local_deploy.py")), where
        assert [p.name for p in runtime.iterdir() if p.is_file()] == ["__init__.py"], where
        needed = reachable(runtime.parent)
        assert all(_source(runtime.parent, m) is not None for m in needed), (where, needed)
        capabilities = {m.split(".")[1] for m in needed if m.count(".") >= 1} - {"core"}
        assert packages == sorted({"core", *capabilities}), (where, packages, capabilities)
