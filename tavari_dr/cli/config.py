"""`tavari-dr config show`: an environment's configuration as the loader validated it, every key with its
default resolved (docs/reference/configuration.md says what each key means).

Light on purpose (a pyproject import contract keeps it so): only click, the loader and the CLI contract
(tavari_dr.cli.envelope), never boto3 or tavari_dr.cli.common, so that reading the configuration needs
neither AWS credentials nor the SDK's import time."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import click

from tavari_dr.cli.envelope import TavariCommand, answer, format_option
from tavari_dr.core.config import ConfigError, EnvironmentConfig, load_from_file


class BadConfiguration(click.ClickException):
    """A configuration the loader refused (a bad --env, a bad value): click prints one line, exit 2 (usage)."""

    exit_code = 2


def as_document(config: EnvironmentConfig) -> dict[str, Any]:
    """The environment as a cdk.json entry of ``environments`` would spell it, every default filled in
    (the loader reads it back to the same configuration)."""
    document = dataclasses.asdict(config)
    del document["name"]  # the entry's key in cdk.json, not one of its settings
    return document


def flatten(document: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """``section.key`` and value, in declaration order; lists stay whole (one line each)."""
    pairs: list[tuple[str, Any]] = []
    for key, value in document.items():
        if isinstance(value, dict):
            pairs += flatten(value, f"{prefix}{key}.")
        else:
            pairs.append((f"{prefix}{key}", value))
    return pairs


@click.group("config")
def group() -> None:
    """The configuration (cdk.json environments, through the loader app.py uses)."""


@group.command("show", cls=TavariCommand,
               help="Print an environment's validated configuration: every key, defaults resolved "
                            "(exit 2 naming the key, the value and what is allowed when cdk.json is refused)."
                            "\n\n\b\nExamples:\n  tavari-dr config show --env prod\n"
                            "  tavari-dr config show --env dev --format json")
@click.option("--env", "env_name", required=True, help="Environment in cdk.json (e.g. dev, prod).")
@click.option("--cdk-json", type=click.Path(dir_okay=False, path_type=Path), default=Path("cdk.json"),
              show_default=True, help="The project's cdk.json.")
@format_option
def show(env_name: str, cdk_json: Path, output_format: str) -> None:
    try:
        config = load_from_file(env_name, cdk_json)
    except ConfigError as err:
        raise BadConfiguration(str(err)) from None
    document = as_document(config)
    # json: the environment as one cdk.json entry, in the envelope's result; text: one `key = value` line per key
    answer(output_format, document, lambda: (f"{key} = {json.dumps(value)}" for key, value in flatten(document)))
