"""The processor every function and task of one app runs on: cdk.json ``compute.architecture``.

build_app sets it once on the (still empty) app; PythonFunction and the Fargate task definitions read
it from their own scope. One app-wide setting instead of a parameter threaded through every stack and
construct signature that makes a function or a task (seven of them): no construct can disagree.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import App
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from tavari_dr.core.config import ARCHITECTURES

ROOT = Path(__file__).resolve().parent.parent
_CONTEXT_KEY = "tavari:compute-architecture"  # written by set_architecture only, from the validated config
DEFAULT = ARCHITECTURES[0]
# requirements-lambda.txt installed for each Lambda platform by `make install` (Makefile: LAMBDA_DEPS*).
LAMBDA_DEPS = {"x86_64": ROOT / "build" / "lambda-deps", "arm64": ROOT / "build" / "lambda-deps-arm64"}


def set_architecture(app: App, architecture: str) -> None:
    """Before any stack is added (CDK refuses context on a node with children)."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"compute.architecture: {architecture!r} is not one of {', '.join(ARCHITECTURES)}")
    app.node.set_context(_CONTEXT_KEY, architecture)


def architecture(scope: Construct) -> str:
    return scope.node.try_get_context(_CONTEXT_KEY) or DEFAULT


def lambda_architecture(scope: Construct) -> lambda_.Architecture:
    return lambda_.Architecture.ARM_64 if architecture(scope) == "arm64" else lambda_.Architecture.X86_64


def cpu_architecture(scope: Construct) -> ecs.CpuArchitecture:
    return ecs.CpuArchitecture.ARM64 if architecture(scope) == "arm64" else ecs.CpuArchitecture.X86_64


def image_platform(scope: Construct) -> ecr_assets.Platform | None:
    """The job image's build platform: arm64 builds for linux/arm64 (its base image, python:3.13-slim-trixie,
    and Debian's postgresql-client are published for both); x86 keeps the asset as it always was (None:
    Docker's default on the x86 build hosts), so its hash and the default templates do not move."""
    return ecr_assets.Platform.LINUX_ARM64 if architecture(scope) == "arm64" else None


def lambda_deps(scope: Construct) -> Path:
    return LAMBDA_DEPS[architecture(scope)]
