from __future__ import annotations

import functools
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, Duration, ILocalBundling, RemovalPolicy, Size
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from backup_constructs.compute import architecture, lambda_architecture, lambda_deps
from backup_constructs.nag import acknowledge, grant_policy
from tavari_dr.core.config import LOG_RETENTION_DAYS

ROOT = Path(__file__).resolve().parent.parent
# Active tracing adds this statement to every function's role (CDK, Tracing.ACTIVE).
XRAY_REASON = ("Resource * for xray:PutTraceSegments and xray:PutTelemetryRecords (active tracing): the "
               "Service Authorization Reference lists no resource type for either.")
_RETENTION = dict(zip(LOG_RETENTION_DAYS, [r for r in logs.RetentionDays if r is not logs.RetentionDays.INFINITE],
                      strict=True))


def retention(days: int) -> logs.RetentionDays:
    """The RetentionDays member for a day count the config loader accepted."""
    return _RETENTION[days]
RUNTIME_PACKAGE = ROOT / "tavari_dr"
# What every asset carries; a function adds the capability subpackages it runs (never these two).
CORE = "core"
NEVER_IN_AN_ASSET = ("cli", "drill")
# requirements-lambda.txt installed for the Lambda platform by `make install` (synth needs no network);
# an arm64 app bundles from build/lambda-deps-arm64 (backup_constructs.compute).
LAMBDA_DEPS = ROOT / "build" / "lambda-deps"
# What every function bundles besides its own packages: Powertools' Logger and OpenTelemetry with X-Ray's
# IDs and propagator, botocore's instrumentation and the OTLP/HTTP exporter, each with its closure
# (tavari_dr.core.observability; docs/decisions/0018 says why bundled, 0029 why OpenTelemetry).
OBSERVABILITY = ("aws-lambda-powertools", "typing-extensions", "opentelemetry-api", "opentelemetry-sdk",
                 "opentelemetry-semantic-conventions", "opentelemetry-sdk-extension-aws",
                 "opentelemetry-propagator-aws-xray", "opentelemetry-instrumentation",
                 "opentelemetry-instrumentation-botocore", "opentelemetry-exporter-otlp-proto-http",
                 "opentelemetry-exporter-otlp-proto-common", "opentelemetry-exporter-otlp-common",
                 "opentelemetry-exporter-http-transport", "opentelemetry-proto", "googleapis-common-protos",
                 "protobuf", "requests", "charset-normalizer", "idna", "certifi", "packaging", "wrapt")
# The collector the spans go to: AWS's ADOT collector-only Lambda layer (an extension; its default
# configuration receives OTLP on localhost:4317/4318 and exports traces to X-Ray). Its ARN,
# arn:aws:lambda:<region>:901920570463:layer:aws-otel-collector-<amd64|arm64>-ver-0-115-0:<n>, comes from
# CDK's table of AWS's published layers (aws_lambda.AdotLambdaLayerGenericVersion), pinned here: a newer
# collector is a deliberate change (tests/test_snapshots.py shows it), not whatever LATEST is that day.
ADOT_COLLECTOR = lambda_.AdotLambdaLayerGenericVersion.V0_115_0
# tavari_dr.core.observability exports where this is set: the layer's OTLP/HTTP receiver.
OTLP_ENDPOINT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://localhost:4318"}


# The version module every bundle carries beside tavari_dr/__init__.py (which reads it: a bundle has no
# installed distribution for importlib.metadata to find).
VERSION_MODULE = "_version.py"


@functools.cache
def code_version() -> str:
    """The version of the checkout being synthesized, from git as pyproject.toml's [tool.setuptools_scm] says
    (SETUPTOOLS_SCM_PRETEND_VERSION overrides it): computed at each synth, not the installed distribution's,
    which is as old as the last ``make install``. It changes every commit, and so every asset's hash
    (tests/test_snapshots.py masks asset hashes): a deploy updates every function, and each reports the
    commit it was built from. setuptools-scm's command line: a build tool, at synth only, never bundled."""
    done = subprocess.run([sys.executable, "-m", "setuptools_scm", "--config", str(ROOT / "pyproject.toml"),
                           "--root", str(ROOT)], capture_output=True, text=True, timeout=60)
    version = done.stdout.strip()
    if done.returncode != 0 or not version:
        raise ValueError(f"setuptools-scm found no version for {ROOT}: {done.stderr.strip()[-500:]}")
    return version


def dist_info(distribution: str, root: Path = LAMBDA_DEPS) -> Path | None:
    """The ``<name>-<version>.dist-info`` folder of an installed distribution (names compared as
    PEP 503 normalizes them: PyJWT is pyjwt-2.15.1.dist-info), or None."""
    wanted = re.sub(r"[-_.]+", "_", distribution).lower()
    for candidate in root.glob("*.dist-info"):
        if re.sub(r"[-_.]+", "_", candidate.name.removesuffix(".dist-info").rsplit("-", 1)[0]).lower() == wanted:
            return candidate
    return None


def distribution_files(distribution: str, root: Path = LAMBDA_DEPS) -> list[str]:
    """The files one distribution installed under ``root``, from its RECORD (scripts pip put outside
    it, ``../../bin/...``, left out: a Lambda runs none)."""
    info = dist_info(distribution, root)
    if info is None:
        raise ValueError(f"{distribution} is not installed in {root}: add it to requirements-lambda.txt "
                         "and run `make install`")
    paths = [line.rsplit(",", 2)[0] for line in (info / "RECORD").read_text().splitlines() if line.strip()]
    return [p for p in paths if not p.startswith(("../", "/")) and "__pycache__" not in p]


@jsii.implements(ILocalBundling)
class _CopySources:
    """Local bundling, no Docker: the handler folder, ``tavari_dr/__init__.py`` with the code's version
    (``tavari_dr/_version.py``, code_version), ``tavari_dr/core`` and
    the capability subpackages the function runs — never the CLI, the local drill or its deployer.

    The bundle holds our own code and OBSERVABILITY: the Lambda Python runtime already provides boto3,
    and EMF metrics are plain JSON lines. A function that declares ``packages`` also gets exactly those
    distributions of requirements-lambda.txt (installed for the Lambda platform by ``make install``),
    file by file from their RECORDs.
    """

    def __init__(self, handler_dir: Path, capabilities: Sequence[str], packages: Sequence[str],
                 deps: Path = LAMBDA_DEPS) -> None:
        self.handler_dir, self.capabilities, self.deps = handler_dir, tuple(capabilities), deps
        self.packages = tuple(dict.fromkeys((*OBSERVABILITY, *packages)))  # each distribution once

    def try_bundle(self, output_dir: str, *, image=None, **_: object) -> bool:  # noqa: ARG002
        out = Path(output_dir)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        shutil.copytree(self.handler_dir, out, dirs_exist_ok=True, ignore=ignore)
        (out / "tavari_dr").mkdir(exist_ok=True)
        shutil.copy2(RUNTIME_PACKAGE / "__init__.py", out / "tavari_dr" / "__init__.py")
        (out / "tavari_dr" / VERSION_MODULE).write_text("# Written at synth by backup_constructs/python_function.py."
                                                        f"\nversion = {code_version()!r}\n")
        for package in (CORE, *self.capabilities):
            shutil.copytree(RUNTIME_PACKAGE / package, out / "tavari_dr" / package, dirs_exist_ok=True, ignore=ignore)
        for distribution in self.packages:
            for relative in distribution_files(distribution, self.deps):
                target = out / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(self.deps / relative, target)
        return True


class PythonFunction(Construct):
    """A project Lambda: ``lambdas/<name>/handler.py`` + ``tavari_dr`` core + its capabilities, bundled at synth.

    name: folder under lambdas/.
    capabilities: the tavari_dr subpackages the handler runs besides core (required), e.g.
        ("alerts",) or ("verification", "database"); tests/test_lambda_assets.py checks that the
        asset holds exactly what the handler can reach.
    description, timeout, memory_size, environment: as for lambda.Function.
    log_retention: how long its log group keeps logs (required).
    log_key: KMS key of its log group (required; see keys.log_group_key).
    removal_policy: for the log group and dead-letter queue.
    synchronous_reason: for a function only ever invoked synchronously, why it has no dead-letter
        queue (default None: it gets an encrypted DLQ for failed asynchronous invocations).
    packages: distributions of requirements-lambda.txt to bundle, each with every dependency it has
        on the Lambda platform (default none); tests/test_lambda_assets.py checks that closure and
        that compiled code matches the runtime.
    ephemeral_storage_mib: /tmp size (default: Lambda's 512 MiB).

    The role has no managed policy: it may write to its own log group, and callers grant the rest.
    """

    def __init__(self, scope: Construct, construct_id: str, *, name: str, description: str,
                 capabilities: Sequence[str], log_retention: logs.RetentionDays, log_key: kms.IKey,
                 removal_policy: RemovalPolicy, timeout: Duration = Duration.minutes(1), memory_size: int = 256,
                 environment: dict[str, str] | None = None, synchronous_reason: str | None = None,
                 packages: Sequence[str] = (), ephemeral_storage_mib: int | None = None) -> None:
        super().__init__(scope, construct_id)
        handler_dir = ROOT / "lambdas" / name
        if not (handler_dir / "handler.py").is_file():
            raise ValueError(f"lambdas/{name}/handler.py does not exist")
        for package in capabilities:
            if package in (CORE, *NEVER_IN_AN_ASSET) or not (RUNTIME_PACKAGE / package / "__init__.py").is_file():
                raise ValueError(f"lambdas/{name}: {package!r} is not a capability subpackage of tavari_dr "
                                 f"(core always ships; {' and '.join(NEVER_IN_AN_ASSET)} never do)")
        deps = lambda_deps(self)
        if not (deps / ".installed").is_file():
            raise ValueError(f"lambdas/{name} bundles requirements-lambda.txt, but {deps} is not "
                             "installed: run `make install`")
        for distribution in (*OBSERVABILITY, *packages):
            distribution_files(distribution, deps)  # a missing one fails here, naming it, not inside bundling
        self.log_group = logs.LogGroup(self, "Logs", retention=log_retention, encryption_key=log_key,
                                       removal_policy=removal_policy)
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                             description=f"Lambda {name}")
        self.log_group.grant_write(self.role)
        self.dead_letter_queue = None
        if synchronous_reason is None:
            self.dead_letter_queue = sqs.Queue(
                self, "DeadLetters", encryption=sqs.QueueEncryption.KMS_MANAGED, enforce_ssl=True,
                retention_period=Duration.days(14), removal_policy=removal_policy)
        self.function = lambda_.Function(
            self, "Function",
            # The newest Python runtime CDK knows (determine_latest_python_runtime lags behind it).
            runtime=lambda_.Runtime.PYTHON_3_14,
            handler="handler.handler",
            code=lambda_.Code.from_asset(
                str(handler_dir),
                asset_hash_type=AssetHashType.OUTPUT,  # the bundle includes tavari_dr code: hash what ships
                bundling=BundlingOptions(image=DockerImage.from_registry("unused-local-bundling"),
                                         local=_CopySources(handler_dir, capabilities, packages, deps)),
            ),
            description=description,
            timeout=timeout,
            memory_size=memory_size,
            ephemeral_storage_size=Size.mebibytes(ephemeral_storage_mib) if ephemeral_storage_mib else None,
            environment={**(environment or {}), **OTLP_ENDPOINT},
            role=self.role,
            log_group=self.log_group,
            dead_letter_queue=self.dead_letter_queue,
            # X-Ray: one trace per invocation (continuing the caller's: a drill's state machine); the
            # handler's span, annotated with the job and the backup or restore ID, and its AWS calls as
            # children reach it through the ADOT collector layer (OpenTelemetry, docs/decisions/0029).
            tracing=lambda_.Tracing.ACTIVE,
            layers=[lambda_.LayerVersion.from_layer_version_arn(
                self, "AdotCollector", ADOT_COLLECTOR.layer_arn(self, lambda_architecture(self)))],
            # x86_64 stays Lambda's default, undeclared (the templates as they were); arm64 is declared.
            architecture=lambda_architecture(self) if architecture(self) == "arm64" else None,
        )
        acknowledge(grant_policy(self.role), XRAY_REASON, "AwsSolutions-IAM5[Resource::*]")
        if synchronous_reason is not None:
            acknowledge(self.function, synchronous_reason, "NIST.800.53.R5-LambdaDLQ")
        acknowledge(self.function,
                    "No reserved concurrency: new accounts have too little to reserve, and nothing here needs "
                    "a guaranteed share: the scheduled jobs are idempotent (an overlapping run is harmless), "
                    "the export API keeps one export per user in flight, the others handle one event each.",
                    "NIST.800.53.R5-LambdaConcurrency")
        acknowledge(self.function,
                    "Talks to AWS APIs and, over TLS, to services on the internet (webhooks, the Supabase "
                    "Management API and its database pooler); a VPC would need NAT or endpoints and protect "
                    "nothing here.",
                    "NIST.800.53.R5-LambdaInsideVPC")
