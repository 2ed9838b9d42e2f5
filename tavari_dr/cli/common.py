"""What every `tavari-dr` command shares: the options that talk to AWS, error reporting, resource
discovery ("the name given, or the stack output"), ``--format json`` and its envelope, and the byte sizes
people read.

The CLI contract (docs/decisions/0034): every leaf command is a TavariCommand. It takes ``--format text|json``;
in json it answers with ONE document on stdout, on success and on failure alike::

    {"command": "db restore", "env": "prod", "ok": true, "result": {...}, "errors": [{"code": ..., "message": ...}]}

``result`` is what the command answers (``echo_json``/``answer``), or, for a command that only prints lines,
``{"output": [lines]}``; ``errors`` the failure (its ``code`` the click exception's kind: ``failed``,
``usage_error``, ``missing_parameter``, ``bad_parameter``, ...). Exit codes are click's and the project's:
0 ok, 1 failed or refused, 2 usage. In text the failure stays one line on stderr. In help, the options every
command takes (environment and AWS) come after the command's own. Nothing here imports botocore: help and usage
errors never load an AWS SDK."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from tavari_dr.cli.envelope import (  # noqa: F401 (the contract's names, used by every command module)
    FORMATS,
    SHARED_SECTION,
    Failed,
    SharedOption,
    TavariCommand,
    answer,
    echo_json,
    error,
    format_option,
)
from tavari_dr.core import outputs
from tavari_dr.core.audit import AuditRecord, caller_arn
from tavari_dr.core.aws import AwsTarget, DiscoveryError, stack_outputs
from tavari_dr.core.config import ConfigError, EnvironmentConfig, load_from_file
from tavari_dr.core.envfile import EnvFileError
from tavari_dr.database.failures import describe_anywhere
from tavari_dr.database.manifest import BackupError, BackupTampered


def reports_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """One readable line instead of a traceback, with the right exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except click.ClickException:
            raise
        except (ConfigError, EnvFileError) as err:
            raise click.UsageError(str(err)) from None
        except DiscoveryError as err:
            raise Failed(str(err)) from None
        except Exception as err:
            failed = _one_line(err)
            if failed is None:
                raise
            raise failed from None

    return wrapper


def _one_line(err: Exception) -> Failed | None:
    """The Failed an AWS, file or PostgreSQL error is reported as (None: a bug, its traceback stands).
    botocore is imported here, once something failed, not for every --help."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(err, ClientError):
        error = err.response.get("Error", {})
        return Failed(f"AWS refused {err.operation_name}: {error.get('Code')}: {error.get('Message')}")
    if isinstance(err, BotoCoreError):  # before OSError: some of botocore's are OSErrors too
        return Failed(f"AWS call failed: {err}")
    if isinstance(err, OSError):  # a file that is there, or not, or not ours to write
        return Failed(f"{err.filename or 'I/O'}: {err.strerror or err}")
    described = describe_anywhere(err)  # a PostgreSQL failure, naming its server
    return Failed(described) if described is not None else None


ENV_HELP = "Environment in cdk.json (e.g. dev, prod)."


def http_url(ctx: click.Context | None, param: click.Parameter | None, value: str | None) -> str | None:
    """A click callback: an http(s) URL with a host and, if given, a port in range (what botocore takes
    as an endpoint), or a usage error naming the option."""
    if value is None:
        return None
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError when out of range or not a number
    except ValueError as err:
        raise click.BadParameter(f"{value!r}: {err}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.BadParameter(f"{value!r} is not an http(s) URL, e.g. http://127.0.0.1:5000")
    return value


def shared_options(*, env_required: bool = True, env_default: str | None = None,
                   env_help: str = ENV_HELP) -> list[Callable[[Callable[..., Any]], Any]]:
    """--env, --cdk-json, --region, --dr-region and --endpoint-url: one definition for every command."""
    return [
        click.option("--env", "env_name", cls=SharedOption, required=env_required, help=env_help,
                     # (no default=None: click 8.3 would count an explicit None as given)
                     **({"default": env_default, "show_default": True} if env_default is not None else {})),
        click.option("--cdk-json", cls=SharedOption, type=click.Path(dir_okay=False, path_type=Path),
                     default=Path("cdk.json"), show_default=True, help="The project's cdk.json."),
        click.option("--region", cls=SharedOption, help="Primary region (default: the environment's)."),
        click.option("--dr-region", cls=SharedOption,
                     help="DR region (default: the environment's replication region)."),
        click.option("--endpoint-url", cls=SharedOption, envvar="TAVARI_DR_ENDPOINT_URL", callback=http_url,
                     help="AWS endpoint, e.g. a local emulator (env TAVARI_DR_ENDPOINT_URL)."),
    ]


def with_options(options: list[Callable[[Callable[..., Any]], Any]], command: Callable[..., Any]) -> Any:
    """``command`` with ``options`` in the order they are listed (as stacked decorators would give)."""
    for option in reversed(options):
        command = option(command)
    return command


def aws_command(group: click.Group | None, name: str, help_text: str, *, env_required: bool = True,
                env_help: str = ENV_HELP) -> Callable[[Callable[..., Any]], click.Command]:
    """A command with the shared options, called as ``func(config, target, ...)``; with
    ``env_required=False`` config is None when --env is not given. ``group`` None: a top-level command."""

    def decorate(func: Callable[..., Any]) -> click.Command:
        @functools.wraps(func)
        def with_config(env_name: str, cdk_json: Path, region: str | None, dr_region: str | None,
                        endpoint_url: str | None, **kwargs: Any) -> Any:
            return func(*load(env_name, cdk_json, region, dr_region, endpoint_url), **kwargs)

        command = with_options(shared_options(env_required=env_required, env_help=env_help),
                               reports_errors(with_config))
        return (group.command if group is not None else click.command)(name, help=help_text,
                                                                        cls=TavariCommand)(command)

    return decorate


def load(env_name: str | None, cdk_json: Path, region: str | None, dr_region: str | None,
         endpoint_url: str | None) -> tuple[EnvironmentConfig | None, AwsTarget]:
    if env_name is None:
        return None, AwsTarget(region=region, dr_region=dr_region, endpoint_url=endpoint_url)
    if not env_name:  # `--env "$UNSET"`: refuse rather than fall back to cdk.json's default environment
        raise click.UsageError("--env is empty; name an environment in cdk.json")
    config = load_from_file(env_name, cdk_json)
    target = AwsTarget(region=region or config.region, dr_region=dr_region or config.replication.region,
                       endpoint_url=endpoint_url)
    return config, target


class Deployed:
    """Resources of one deployed environment: the name given, or its stack's output (each stack read once)."""

    def __init__(self, config: EnvironmentConfig | None, target: AwsTarget) -> None:
        self.config, self.target = config, target
        self._outputs: dict[tuple[str, bool], dict[str, str]] = {}

    def outputs(self, purpose: str, *, dr: bool = False) -> dict[str, str]:
        assert self.config is not None
        if (purpose, dr) not in self._outputs:
            self._outputs[purpose, dr] = stack_outputs(self.target.client("cloudformation", dr=dr),
                                                       self.config.stack_name(purpose))
        return self._outputs[purpose, dr]

    def resource(self, given: str | None, purpose: str, output: str, *, what: str, option: str | None = None,
                 hint: str | None = None) -> str:
        """``given`` when set, else the output of the ``purpose`` stack; the errors say how to name it instead
        (``hint``, default: deploy the current app or pass ``option``)."""
        if given:
            return given
        if self.config is None:
            raise click.UsageError(f"name the {what}: --env ENV (stack output) or {option} NAME")
        found = self.outputs(purpose)
        if output not in found:
            hint = hint or "deploy the current app" + (f" or pass {option}" if option else "")
            raise DiscoveryError(f"{self.config.stack_name(purpose)} has no output {output}; {hint}")
        return found[output]

    def secret_arns(self, explicit: Iterable[str] = ()) -> dict[str, str]:
        """Entry name -> secret ARN: ``NAME=ARN`` as given (--secret-arn), else the Secrets stack's output."""
        config = self.config
        assert config is not None
        declared = {e.name for e in config.secrets.all_entries}
        given: dict[str, str] = {}
        for item in explicit:
            name, sep, arn = item.partition("=")
            if not sep or not arn:
                raise click.UsageError(f"--secret-arn {item!r}: use NAME=ARN")
            if name not in declared:
                raise click.UsageError(f"--secret-arn {name}: not a declared entry of {config.name}")
            given[name] = arn
        return {entry.name: self.resource(given.get(entry.name), outputs.SECRETS,
                                          outputs.secret_output_key(entry.name), what="secret",
                                          hint=f"deploy the current app, or pass --secret-arn {entry.name}=ARN")
                for entry in config.secrets.all_entries}


# ----------------------------------------------------------------------------- --format and its envelope

def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


report_bucket_option = click.option(
    "--report-bucket", help="Where the restore's audit record goes (default: the DatabaseBackups stack's reports "
                            "bucket).")


@contextmanager
def audited(config: EnvironmentConfig | None, target: AwsTarget, report_bucket: str | None, record: AuditRecord,
            *, say: Callable[[str], None] | None = None) -> Iterator[dict[str, str]]:
    """Write ``record`` (a real restore) to the reports bucket's audit/ whatever happens: the body sets
    ``outcome``; a refusal or a failure is recorded as one. The record's S3 URL ends up in the state
    (``record``) and, through ``say`` (default: stderr), in front of the operator."""
    bucket = Deployed(config, target).resource(report_bucket, outputs.DATABASE_BACKUPS, outputs.REPORTS_BUCKET_NAME,
                                               what="reports bucket (where the restore's audit record goes)",
                                               option="--report-bucket")
    record.caller = caller_arn(target.client("sts"))
    state = {"outcome": "failed: interrupted"}
    try:
        yield state
    except click.ClickException as err:
        state["outcome"] = f"failed: {err.format_message()}"
        raise
    except Exception as err:
        state["outcome"] = f"{'refused' if isinstance(err, BackupTampered) else 'failed'}: {err}"
        raise
    finally:
        state["record"] = f"s3://{bucket}/{record.write(target.client('s3'), bucket, state['outcome'])}"
        (say or (lambda line: click.echo(line, err=True)))(f"audit record: {state['record']}")


def backup_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """A backup, verification or restore step that failed (BackupError names the step): one line, exit 1."""
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except BackupError as err:
            raise Failed(str(err)) from None

    return wrapper
