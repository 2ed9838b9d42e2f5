"""The CLI contract every leaf command of `tavari-dr` keeps (docs/decisions/0034): ``--format text|json`` and, in
json, ONE document on stdout, on success and on failure alike::

    {"command": "db restore", "env": "prod", "ok": true, "result": {...}, "errors": [{"code": ..., "message": ...}]}

``result`` is what the command answers (``echo_json``/``answer``), or, for a command that only prints lines,
``{"output": [lines]}``; ``errors`` the failure (its ``code`` the click exception's kind: ``failed``,
``usage_error``, ``missing_parameter``, ``bad_parameter``, ...). Exit codes are click's and the project's:
0 ok, 1 failed or refused, 2 usage. In text the failure stays one line on stderr. In help, the options every
command takes (environment and AWS, SharedOption) come after the command's own. Only click and the standard
library here: a command that talks to no AWS (``config show``) keeps the contract without loading the AWS side
of tavari_dr.cli.common."""

from __future__ import annotations

import contextlib
import io
import json
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import click


class Failed(click.ClickException):
    """The operation ran and failed (exit 1), as opposed to a usage error (exit 2)."""

    exit_code = 1


class SharedOption(click.Option):
    """An option every command takes (the environment and AWS): listed after the command's own in help."""


SHARED_SECTION = "Environment and AWS options"


_FORMAT = "tavari_dr.format"  # ctx.meta keys (meta is shared by a command's context and its parents')
_ENVELOPE = "tavari_dr.envelope"
_RESULT = "tavari_dr.result"
_ERRORS = "tavari_dr.errors"
FORMATS = ("text", "json")
FORMAT_HELP = "text for people, json for programs (one JSON document on stdout, also on failure)."


def _remember_format(ctx: click.Context, _param: click.Parameter, value: str) -> str:
    ctx.meta[_FORMAT] = value
    return value


def _format_option(*, expose: bool) -> click.Option:
    return click.Option(["--format", "output_format"], type=click.Choice(FORMATS), default="text",
                        show_default=True, help=FORMAT_HELP, callback=_remember_format, expose_value=expose)


# For a command that builds its own document (it reads output_format); every other command gets the same
# option from TavariCommand, unseen by its function.
format_option = click.option("--format", "output_format", type=click.Choice(FORMATS), default="text",
                             show_default=True, help=FORMAT_HELP, callback=_remember_format)


def _given(args: Sequence[str], option: str) -> str | None:
    """The last value of ``option`` on a command line click could not parse (what it would have taken)."""
    found = None
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg == option and i + 1 < len(args):
            found = args[i + 1]
        elif arg.startswith(option + "="):
            found = arg.split("=", 1)[1]
    return found


def _error_code(err: click.ClickException) -> str:
    """Failed -> failed, UsageError -> usage_error, MissingParameter -> missing_parameter, ..."""
    name = "usage_error" if type(err) is click.UsageError else type(err).__name__
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class TavariCommand(click.Command):
    """Every leaf command of `tavari-dr`: --format text|json and one envelope (see the module's docstring);
    help with the shared options in their own section after the command's own. The help text and epilog
    (``\\b`` blocks included) are click's own rendering."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not any(p.name == "output_format" for p in self.params):
            self.params.append(_format_option(expose=False))

    # ------------------------------------------------------------------ help

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        own: list[tuple[str, str]] = []
        shared: list[tuple[str, str]] = []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None:
                (shared if isinstance(param, SharedOption) else own).append(record)
        for title, records in (("Options", own), (SHARED_SECTION, shared)):
            if records:
                with formatter.section(title):
                    formatter.write_dl(records)

    # ------------------------------------------------------------------ the envelope

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        given = list(args)
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as err:
            if ctx.meta.get(_FORMAT, _given(given, "--format")) != "json":
                raise
            env = ctx.params.get("env_name")
            if not isinstance(env, str):  # not parsed yet (click 8.3+ holds its UNSET sentinel there): as given
                env = _given(given, "--env")
            self._answer(ctx, "", env=env, error=err)
            raise click.exceptions.Exit(err.exit_code) from None

    def invoke(self, ctx: click.Context) -> Any:
        if ctx.meta.get(_FORMAT) != "json":
            return super().invoke(ctx)
        ctx.meta.update({_ENVELOPE: True, _RESULT: None, _ERRORS: []})
        stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", newline="\n")
        env = ctx.params.get("env_name")
        try:
            with contextlib.redirect_stdout(stdout):
                value = super().invoke(ctx)
        except click.ClickException as err:
            self._answer(ctx, _read(stdout), env=env, error=err)
            raise click.exceptions.Exit(err.exit_code) from None
        except click.exceptions.Exit as done:
            self._answer(ctx, _read(stdout), env=env, exit_code=done.exit_code)
            raise
        except SystemExit as done:
            self._answer(ctx, _read(stdout), env=env, exit_code=done.code if isinstance(done.code, int) else 1)
            raise
        except click.Abort:
            self._answer(ctx, _read(stdout), env=env, error=Failed("aborted"))
            raise click.exceptions.Exit(1) from None
        except Exception as err:  # a bug: the envelope says so, the traceback follows on stderr as before
            self._answer(ctx, _read(stdout), env=env, error=Failed(f"{type(err).__name__}: {err}"))
            raise
        self._answer(ctx, _read(stdout), env=env)
        return value

    @staticmethod
    def _answer(ctx: click.Context, printed: str, *, env: str | None, error: click.ClickException | None = None,
                exit_code: int | None = 0) -> None:
        document = ctx.meta.get(_RESULT)
        lines = printed.splitlines()
        if document is not None:  # it answered with a document: anything else it printed goes to stderr
            for line in lines:
                click.echo(line, err=True)
        errors = list(ctx.meta.get(_ERRORS) or [])
        if error is not None:
            errors.append({"code": _error_code(error), "message": error.format_message()})
        elif exit_code and not errors:
            errors.append({"code": "exit_status", "message": f"exited {exit_code}"})
        command = " ".join(ctx.command_path.split()[1:]) or ctx.command_path
        click.echo(json.dumps({"command": command, "env": env, "ok": error is None and not exit_code,
                               "result": document if document is not None else {"output": lines},
                               "errors": errors}, indent=1, default=str))


def _read(stream: io.TextIOWrapper) -> str:
    stream.flush()
    return stream.buffer.getvalue().decode("utf-8")  # type: ignore[attr-defined]


def error(code: str, message: str) -> None:
    """Add a failure to the envelope's errors (a command that exits non-zero by itself, such as status)."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None and ctx.meta.get(_ENVELOPE):
        ctx.meta[_ERRORS].append({"code": code, "message": message})


def echo_json(document: Any) -> None:
    """The command's whole answer as one JSON document: in the envelope's ``result`` (--format json of a
    TavariCommand), else on stdout (errors still go to stderr)."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None and ctx.meta.get(_ENVELOPE):
        ctx.meta[_RESULT] = json.loads(json.dumps(document, default=str))
        return
    click.echo(json.dumps(document, indent=1, default=str))


def answer(output_format: str, document: Any, lines: Callable[[], Iterable[str]], *, failure: str | None = None,
           summary: str | None = None) -> None:
    """How a command that reports answers: ``document`` as JSON, or the human ``lines``; then exit 1 with
    ``failure`` (when set), else, for people, the ``summary`` line."""
    if output_format == "json":
        echo_json(document)
    else:
        for line in lines():
            click.echo(line)
    if failure:
        raise Failed(failure)
    if summary and output_format != "json":
        click.echo(summary)
