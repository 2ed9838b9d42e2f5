"""Import every handler from its *built* asset in a clean interpreter, as Lambda would.

The interpreter sees only the asset and what the Lambda Python runtime ships (boto3 and its
dependencies); the project's own editable install is out of reach, so a module missing from
the bundle fails here, not in AWS.

One stand-in: this machine runs CPython 3.11 and cannot load a cp314-only extension module. Where
a bundle holds a top-level one (cffi's ``_cffi_backend``, which cryptography loads at import), the
host's build of the *same version* of that distribution sits after the asset on ``sys.path``;
everything else (PyJWT, cryptography's abi3 Rust extension) loads from the asset itself, and
test_compiled_code_is_built_for_the_lambda_runtime checks the bundled build is the Lambda's.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.tags import compatible_tags, cpython_tags
from packaging.utils import canonicalize_name

from backup_constructs.python_function import code_version

RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")
RUNTIME_DISTRIBUTIONS = {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "urllib3", "six"}
LAMBDA_PYTHON = (3, 14)
# Lambda's python3.14 runtime is Amazon Linux 2023 (glibc 2.34) on x86_64, the project's architecture.
LAMBDA_PLATFORMS = [f"manylinux_2_{minor}_x86_64" for minor in range(34, 4, -1)] + [
    "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]
LAMBDA_TAGS = {str(t) for t in [*cpython_tags(LAMBDA_PYTHON, platforms=LAMBDA_PLATFORMS),
                                *compatible_tags(LAMBDA_PYTHON, "cp314", platforms=LAMBDA_PLATFORMS)]}
LAMBDA_MARKERS = {**default_environment(), "implementation_name": "cpython",
                  "platform_python_implementation": "CPython", "python_version": "3.14",
                  "python_full_version": "3.14.0", "sys_platform": "linux", "platform_system": "Linux",
                  "platform_machine": "x86_64", "os_name": "posix", "extra": ""}


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


def host_stand_ins(asset: Path, tmp_path: Path) -> Path:
    """A folder of the host's builds of the asset's top-level cp314 extension modules, each of the
    same distribution version as the bundled one (see the module docstring)."""
    folder = tmp_path / f"stand-ins-{asset.name}"
    folder.mkdir()
    for extension in asset.glob("*.cpython-314-*.so"):
        name = extension.name.split(".", 1)[0]
        owner = next(d for d in asset.glob("*.dist-info")
                     if any(line.startswith(extension.name + ",") for line in (d / "RECORD").read_text().splitlines()))
        distribution, version = owner.name.removesuffix(".dist-info").rsplit("-", 1)
        assert importlib.metadata.version(distribution) == version, (distribution, version)
        host = Path(importlib.util.find_spec(name).origin)
        (folder / host.name).symlink_to(host)
    return folder


def run_in_asset(asset: Path, code: str, tmp_path: Path, lambda_runtime_site: Path,
                 variables: dict[str, str] | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    """``code`` in a clean interpreter that sees the asset, then the stand-ins, then the runtime's boto3."""
    path = [str(asset), str(host_stand_ins(asset, tmp_path)), str(lambda_runtime_site)]
    # The clean environment keeps one thing of this process's: its clock. Under libfaketime the tokens a
    # test signs carry the faked time, and a child on the real clock would call them not yet valid.
    clock = {k: v for k, v in os.environ.items()
             if k.startswith("FAKETIME") or k in ("LD_PRELOAD", "DONT_FAKE_MONOTONIC")}
    env_vars = {"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-west-1", "PATH": "/usr/bin:/bin",
                **clock, **(variables or {})}
    return subprocess.run([sys.executable, "-I", "-S", "-B", "-c", f"import sys; sys.path[:0] = {path!r}\n{code}"],
                          env=env_vars, cwd=tmp_path, capture_output=True, text=True, timeout=60, input=stdin)


def test_every_handler_imports_from_its_built_asset(synthesized, lambda_runtime_site, tmp_path):
    for env, stack, logical_id, resource in functions(synthesized):
        asset = asset_dir(env, resource)
        module, _, attribute = resource["Properties"]["Handler"].rpartition(".")
        declared = resource["Properties"].get("Environment", {}).get("Variables", {})
        variables = {k: rendered(v) for k, v in declared.items()}
        code = (
            "import importlib\n"
            f"m = importlib.import_module({module!r}); assert callable(getattr(m, {attribute!r}))\n"
            "import tavari_dr; assert tavari_dr.__file__.startswith(sys.path[0]), tavari_dr.__file__\n"
            # The version the synth stamped, also in a drill report's evidence (it was None in the bundles).
            "from tavari_dr.core import evidence\n"
            f"assert tavari_dr.__version__ == evidence.versions()['tavari-dr'] == {code_version()!r}, "
            "tavari_dr.__version__"
        )
        scratch = tmp_path / env.name / logical_id
        scratch.mkdir(parents=True)
        result = run_in_asset(asset, code, scratch, lambda_runtime_site, variables)
        assert result.returncode == 0, f"{stack}/{logical_id}: {result.stderr}"


POSTGRES_DRIVER = ["psycopg", "psycopg-3.3.9.dist-info", "psycopg_binary", "psycopg_binary-3.3.9.dist-info",
                   "psycopg_binary.libs", "typing_extensions-4.16.0.dist-info", "typing_extensions.py"]
TOKEN_VERIFICATION = ["jwt", "pyjwt-2.15.1.dist-info", "cryptography", "cryptography-51.0.1.dist-info", "cffi",
                      "cffi-2.1.1.dist-info", "_cffi_backend.cpython-314-x86_64-linux-gnu.so", "pycparser",
                      "pycparser-3.12.dist-info"]
# Every function: Powertools' Logger and OpenTelemetry with its closure (tavari_dr.core.observability);
# the X-Ray SDK no more (docs/decisions/0029).
OBSERVABILITY = ["aws_lambda_powertools", "aws_lambda_powertools-3.37.0.dist-info",
                 "typing_extensions-4.16.0.dist-info", "typing_extensions.py",
                 "opentelemetry", "opentelemetry_api-1.45.2.dist-info", "opentelemetry_sdk-1.45.2.dist-info",
                 "opentelemetry_semantic_conventions-0.66b2.dist-info",
                 "opentelemetry_sdk_extension_aws-2.1.0.dist-info",
                 "opentelemetry_propagator_aws_xray-1.0.2.dist-info", "opentelemetry_instrumentation-0.66b2.dist-info",
                 "opentelemetry_instrumentation_botocore-0.66b2.dist-info",
                 "opentelemetry_exporter_otlp_proto_http-1.45.2.dist-info",
                 "opentelemetry_exporter_otlp_proto_common-1.45.2.dist-info",
                 "opentelemetry_exporter_otlp_common-0.66b2.dist-info",
                 "opentelemetry_exporter_http_transport-0.66b2.dist-info", "opentelemetry_proto-1.45.2.dist-info",
                 "google", "googleapis_common_protos-1.76.0.dist-info", "protobuf-7.36.2.dist-info",
                 "requests", "requests-2.34.2.dist-info", "charset_normalizer", "charset_normalizer-3.5.3.dist-info",
                 "idna", "idna-3.21.dist-info", "certifi", "certifi-2026.10.19.post1.dist-info",
                 "packaging", "packaging-26.4.dist-info", "wrapt", "wrapt-2.5.2.dist-info", "wrapt-stubs"]
# What each function carries besides its own code and OBSERVABILITY: the functions that read PostgreSQL
# the driver, the authorizer PyJWT and cryptography; each only its own.
THIRD_PARTY = {"Export API: GET /api/account/export[/{export_id}]": POSTGRES_DRIVER,
               "Export API: large account exports in the background": POSTGRES_DRIVER,
               "Export API: verifies Supabase access tokens": TOKEN_VERIFICATION}


def test_the_bundle_holds_our_code_and_nothing_else(synthesized):
    for env, _stack, _logical_id, resource in functions(synthesized):
        asset = asset_dir(env, resource)
        top = sorted(p.name for p in asset.iterdir())
        third_party = THIRD_PARTY.get(resource["Properties"]["Description"], [])
        assert top == sorted({"handler.py", "tavari_dr", *OBSERVABILITY, *third_party}), top
        assert not list(asset.rglob("__pycache__"))
        assert not list(asset.rglob("aws_xray_sdk*")), asset  # past its end of support (docs/decisions/0029)


def bundled(asset: Path) -> dict[str, str]:
    """Canonical distribution name -> version, for every distribution an asset carries."""
    return {canonicalize_name(d.name.removesuffix(".dist-info").rsplit("-", 1)[0]):
            d.name.removesuffix(".dist-info").rsplit("-", 1)[1] for d in asset.glob("*.dist-info")}


def test_every_bundled_distribution_has_its_dependencies_on_the_lambda_platform(synthesized):
    """Requires-Dist of each bundled distribution, markers evaluated for CPython 3.14 on Linux x86_64:
    each one it needs is bundled too, at a version it accepts, or is one the runtime's boto3 brings
    (Powertools needs jmespath, requests urllib3), at a version the one this machine stands in
    with satisfies."""
    checked = 0
    for env, stack, logical_id, resource in functions(synthesized):
        asset = asset_dir(env, resource)
        present = bundled(asset)
        for info in asset.glob("*.dist-info"):
            for line in (info / "METADATA").read_text().splitlines():
                if not line.startswith("Requires-Dist: "):
                    continue
                requirement = Requirement(line.removeprefix("Requires-Dist: "))
                if requirement.marker is not None and not requirement.marker.evaluate(LAMBDA_MARKERS):
                    continue
                name = canonicalize_name(requirement.name)
                where = f"{stack}/{logical_id}: {info.name} needs {requirement}"
                if name in RUNTIME_DISTRIBUTIONS and name not in present:
                    version = importlib.metadata.version(name)
                else:
                    assert name in present, where
                    version = present[name]
                assert requirement.specifier.contains(version, prereleases=True), where
                checked += 1
    assert checked >= 2 * len(synthesized)  # cryptography -> cffi -> pycparser, in every environment


def test_the_authorizer_carries_pyjwt_with_cryptography(synthesized):
    """PyJWT declares cryptography only as its "crypto" extra, so the closure test cannot see it."""
    for env, _stack, _logical_id, resource in functions(synthesized):
        if resource["Properties"]["Description"] == "Export API: verifies Supabase access tokens":
            assert {"pyjwt", "cryptography", "cffi", "pycparser"} <= set(bundled(asset_dir(env, resource)))


def test_bundled_versions_are_the_ones_the_tests_run():
    """requirements.txt pins what the tests import; requirements-lambda.txt what ships: they agree."""
    root = Path(__file__).resolve().parent.parent

    def pins(name: str) -> dict[str, str]:
        found = {}
        for line in (root / name).read_text().splitlines():
            match = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^]]*\])?==(\S+)", line.split("#")[0].strip())
            if match:
                found[canonicalize_name(match[1])] = match[2]
        return found

    runtime, bundle = pins("requirements.txt"), pins("requirements-lambda.txt")
    shared = set(runtime) & set(bundle)
    assert {"psycopg", "pyjwt", "cryptography"} <= shared
    assert {name: runtime[name] for name in shared} == {name: bundle[name] for name in shared}


def test_compiled_code_is_built_for_the_lambda_runtime(synthesized):
    """Compiled distributions must match the functions' runtime and architecture, or the import fails
    in AWS only (this machine's interpreter cannot load a cp314 extension to prove it): every wheel
    tag is one CPython 3.14 on manylinux x86_64 (glibc <= 2.34) accepts, and every extension module
    is abi3 or cp314 x86_64."""
    seen = set()
    for env, _stack, _logical_id, resource in functions(synthesized):
        asset = asset_dir(env, resource)
        runtime = resource["Properties"]["Runtime"]  # python3.14
        assert runtime == "python{}.{}".format(*LAMBDA_PYTHON)
        assert resource["Properties"].get("Architectures", ["x86_64"]) == ["x86_64"]
        for wheel in asset.glob("*.dist-info/WHEEL"):
            fields = wheel.read_text().splitlines()
            if "Root-Is-Purelib: true" in fields:
                continue
            tags = {line.split(": ", 1)[1] for line in fields if line.startswith("Tag: ")}
            assert tags & LAMBDA_TAGS, (wheel.parent.name, tags)
            seen.add(wheel.parent.name)
        for extension in asset.rglob("*.so"):
            if ".libs" in extension.parent.name:  # vendored C libraries (libpq, OpenSSL), not modules
                continue
            assert re.search(r"\.(abi3|cpython-314-x86_64-linux-gnu)\.so$", extension.name), extension
    assert {"psycopg_binary-3.3.9.dist-info", "cryptography-51.0.1.dist-info", "cffi-2.1.1.dist-info"} <= seen


def test_the_authorizer_asset_verifies_real_tokens(synthesized, lambda_runtime_site, tmp_path):
    """The authorizer's bundle, alone, verifies ES256, RS256 and HS256 tokens and refuses a forged
    one: jwt and cryptography are imported from the asset, the JWKS from a local server."""
    from tests.http_stub import ScriptedServer
    from tests.test_jwt_auth import EC_JWK, HS_SECRET, OTHER_EC_KEY, RSA_JWK, claims, token

    server = ScriptedServer([(200, {}, {"keys": [EC_JWK, RSA_JWK]}, 0)] * 10, path="/auth/v1/.well-known/jwks.json")
    issuer = server.url.removesuffix("/.well-known/jwks.json")
    body = claims(iss=issuer)
    tokens = {"es256": token(body=body), "rs256": token("RS256", "rsa-1", body=body),
              "hs256": token("HS256", body=body), "forged": token(key=OTHER_EC_KEY, body=body)}
    code = """
import json
import cryptography, jwt
from tavari_dr.export import authorizer
assert jwt.__file__.startswith(sys.path[0]) and cryptography.__file__.startswith(sys.path[0]), (jwt, cryptography)
job = json.loads(sys.stdin.read())
verifier = authorizer.verifier_for(job["project"], job["secret"])
print(json.dumps({name: authorizer.authorize({"headers": {"authorization": "Bearer " + t}}, verifier)
                  for name, t in job["tokens"].items()}))
"""
    try:
        checked = 0
        for env, _stack, logical_id, resource in functions(synthesized):
            if resource["Properties"]["Description"] != "Export API: verifies Supabase access tokens":
                continue
            scratch = tmp_path / env.name / logical_id
            scratch.mkdir(parents=True)
            job = {"project": issuer.removesuffix("/auth/v1"), "secret": HS_SECRET, "tokens": tokens}
            result = run_in_asset(asset_dir(env, resource), code, scratch, lambda_runtime_site, stdin=json.dumps(job))
            assert result.returncode == 0, result.stderr
            answers = json.loads(result.stdout.strip().splitlines()[-1])
            allowed = {"isAuthorized": True, "context": {"sub": body["sub"]}}
            assert answers == {"es256": allowed, "rs256": allowed, "hs256": allowed, "forged": {"isAuthorized": False}}
            checked += 1
        assert checked == len(synthesized)
    finally:
        server.close()


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
    """No asset holds the CLI, the local drill or its deployer; each holds tavari_dr/__init__.py and the
    version the synth stamped (_version.py), core,
    and exactly the capability subpackages its handler can reach (lazy imports included), every
    module of which is there."""
    for env, stack, logical_id, resource in functions(synthesized):
        runtime = asset_dir(env, resource) / "tavari_dr"
        where = f"{stack}/{logical_id}"
        packages = sorted(p.name for p in runtime.iterdir() if p.is_dir())
        assert "drill" not in packages and "cli" not in packages, where
        assert not list(runtime.rglob("local_deploy.py")), where
        assert sorted(p.name for p in runtime.iterdir() if p.is_file()) == ["__init__.py", "_version.py"], where
        needed = reachable(runtime.parent)
        assert all(_source(runtime.parent, m) is not None for m in needed), (where, needed)
        capabilities = {m.split(".")[1] for m in needed if m.count(".") >= 1} - {"core"}
        assert packages == sorted({"core", *capabilities}), (where, packages, capabilities)


class OtlpReceiver:
    """A stand-in for the ADOT collector layer's OTLP/HTTP receiver on a loopback port: the spans the
    function exports, decoded with the OTLP protobuf schema."""

    def __init__(self) -> None:
        import http.server
        import threading

        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

        self.requests: list = []
        received = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = trace_service_pb2.ExportTraceServiceRequest()
                request.ParseFromString(body)
                received.append((self.path, self.headers.get("Content-Type"), request))
                answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def spans(self) -> list:
        return [span for _path, _type, request in self.requests for resource in request.resource_spans
                for scope in resource.scope_spans for span in scope.spans]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _attributes(span) -> dict:
    def value(v):
        kind = v.WhichOneof("value")
        return [value(x) for x in v.array_value.values] if kind == "array_value" else getattr(v, kind)
    return {a.key: value(a.value) for a in span.attributes}


def test_a_handler_traces_and_logs_from_its_asset_as_in_lambda(synthesized, lambda_runtime_site, tmp_path):
    """Under Lambda's environment (LAMBDA_TASK_ROOT, the invocation's trace header) the drill-steps handler,
    from its asset alone: OpenTelemetry loads from the asset, instruments botocore (and not http.client: a
    webhook's URL is a secret), and exports the invocation's span, in the invocation's X-Ray trace, annotated
    with the job and the drill's execution and marked failed, by OTLP/HTTP to the collector layer (here a
    loopback receiver of this test's) before the handler returns; the log lines on stderr are JSON with the
    same keys. The function declares that endpoint, and the layer, itself (test_monitoring_stack)."""
    env, _stack, logical_id, resource = next(
        f for f in functions(synthesized) if f[3]["Properties"]["Handler"] == "handler.handler"
        and f[3]["Properties"]["Description"].startswith("Quarterly DR drill"))
    asset = asset_dir(env, resource)
    variables = {k: rendered(v) for k, v in resource["Properties"]["Environment"]["Variables"].items()}
    assert variables["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://localhost:4318"
    receiver = OtlpReceiver()
    variables.update({"LAMBDA_TASK_ROOT": str(asset), "AWS_LAMBDA_FUNCTION_NAME": "drill-steps",
                      "_X_AMZN_TRACE_ID": "Root=1-6750a1b2-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=1",
                      "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url})
    code = """
import http.client, importlib, importlib.util, types
import aws_lambda_powertools, opentelemetry.sdk.trace, botocore.client
m = importlib.import_module("handler")
assert opentelemetry.sdk.trace.__file__.startswith(sys.path[0])
assert aws_lambda_powertools.__file__.startswith(sys.path[0])
assert importlib.util.find_spec("aws_xray_sdk") is None, "the X-Ray SDK is bundled"
assert hasattr(botocore.client.BaseClient._make_api_call, "__wrapped__"), "botocore is not traced"
assert not hasattr(http.client.HTTPConnection._send_request, "__wrapped__"), "http.client is traced"
context = types.SimpleNamespace(function_name="drill-steps", memory_limit_in_mb=256, aws_request_id="req-9",
                                invoked_function_arn="arn:aws:lambda:eu-west-1:123456789012:function:drill-steps")
try:
    m.handler({"step": "nope", "execution": "arn:aws:states:eu-west-1:123456789012:execution:drill:q1"}, context)
except ValueError:
    print("refused", flush=True)
import os
os._exit(0)  # no exit handler: the span must have left during the invocation, as before Lambda freezes
"""
    scratch = tmp_path / logical_id
    scratch.mkdir()
    try:
        result = run_in_asset(asset, code, scratch, lambda_runtime_site, variables)
    finally:
        receiver.close()
    assert result.returncode == 0 and result.stdout.strip() == "refused", result.stderr
    assert {(path, kind) for path, kind, _request in receiver.requests} == {("/v1/traces", "application/x-protobuf")}
    (traced,) = [s for s in receiver.spans() if s.name == "quarterly_drill"]
    assert traced.trace_id.hex() == "6750a1b20123456789abcdef01234567"
    assert traced.parent_span_id.hex() == "53995c3f42cd8ad8"
    attributes = _attributes(traced)
    assert {k: attributes[k] for k in ("job", "run", "faas.coldstart", "faas.invocation_id")} == {
        "job": "quarterly_drill", "run": "arn:aws:states:eu-west-1:123456789012:execution:drill:q1",
        "faas.coldstart": True, "faas.invocation_id": "req-9"}
    assert set(attributes["aws.xray.annotations"]) == {"job", "run"}
    assert traced.status.code == traced.status.STATUS_CODE_ERROR and traced.status.message == "ValueError"
    (line,) = [json.loads(x) for x in result.stderr.splitlines() if x.startswith("{")]
    assert line["message"] == "invocation_finished" and line["outcome"] == "error" and line["error"] == "ValueError"
    assert line["job"] == "quarterly_drill" and line["function_request_id"] == "req-9"
    assert line["xray_trace_id"] == "1-6750a1b2-0123456789abcdef01234567"
