"""Every `tavari-dr …` command written in the operator docs (runbooks and docs/operate) parses against the CLI as
it is: the command exists, each option exists, required options and arguments are there. A runbook whose command
no longer parses fails here, not in an incident. Placeholders (`<ID>`) stand for values; `[…]` for optional
parts, which are dropped."""

from __future__ import annotations

import re
import shlex

import click
import pytest

from tavari_dr.cli import main
from tests.conftest import ROOT

# The runbooks and the operator pages that give procedures (status.md and drill.md show sample output instead).
PAGES = sorted([*(ROOT / "docs" / "runbooks").glob("*.md"),
                *(ROOT / "docs" / "operate" / name for name in ("before-you-start.md", "restore-invoices.md",
                                                                 "secrets.md", "verification.md", "alerts.md"))])
# An invocation: `.venv/bin/tavari-dr …` anywhere, or `tavari-dr …` on a line of a fenced block. A bare
# `tavari-dr status` in a sentence names the command and is not one to run.
_INVOKED = re.compile(r"\.venv/bin/tavari-dr\s+(?=[a-z])")
_FENCED = re.compile(r"(?:\.venv/bin/)?tavari-dr\s+(?=[a-z])")
_FENCE = re.compile(r"^\s*```[a-z]*\n(.*?)^\s*```", re.S | re.M)
_INLINE = re.compile(r"`([^`\n]*(?:\n[^`\n]*){0,3})`")
# Where a written command ends: a shell operator, or prose after it.
_END = re.compile(r"\s(?:&&|\|\||\||;|→|->|#)\s|\s\($")


def snippets(text: str) -> list[tuple[str, re.Pattern[str]]]:
    fenced = [block.replace("\\\n", " ") for block in _FENCE.findall(text)]
    rest = _FENCE.sub("", text)
    return [*((line, _FENCED) for block in fenced for line in block.splitlines()),
            *((span, _INVOKED) for span in _INLINE.findall(rest))]


def commands(text: str) -> list[str]:
    found = []
    for snippet, start_of in snippets(text):
        snippet = " ".join(snippet.split())
        for start in start_of.finditer(snippet):
            command = snippet[start.end():]
            end = _END.search(command)
            found.append(command[:end.start()] if end else command)
    return found


def written() -> list[tuple[str, str]]:
    return [(page.relative_to(ROOT).as_posix(), command) for page in PAGES for command in commands(page.read_text())]


def parse(command: str) -> None:
    """Raise click's own error when ``command`` (after `tavari-dr`) does not parse."""
    text = re.sub(r"\[[^\[\]]*\]", " ", command).replace("…", " ").replace("...", " ")
    text = re.sub(r"<[^<>]*>", lambda m: m.group(0).replace(" ", "_"), text)  # <new ref>: one placeholder
    args = shlex.split(text)
    cmd: click.Command = main
    path = ["tavari-dr"]
    while isinstance(cmd, click.Group):
        if not args or args[0].startswith("-"):
            raise click.UsageError(f"{' '.join(path)} needs a command")
        sub = cmd.get_command(click.Context(cmd), args[0])
        if sub is None:
            raise click.UsageError(f"no command {args[0]!r} in {' '.join(path)}")
        path.append(args.pop(0))
        cmd = sub
    # A placeholder (<ID>, <T0>) stands for a value of the right type: give the parser one it accepts, so only
    # names and arity are judged here.
    values = [_stand_in(cmd, args, i) for i in range(len(args))]
    with cmd.make_context(" ".join(path), values, resilient_parsing=False) as ctx:
        ctx.close()


def _stand_in(cmd: click.Command, args: list[str], i: int) -> str:
    arg = args[i]
    option = next((p for p in cmd.params if isinstance(p, click.Option) and i and args[i - 1] in p.opts), None)
    kind = getattr(option, "type", None)
    if isinstance(kind, click.Path) and kind.exists:  # a file the operator has (plan.json, .env.production)
        return str(ROOT / "cdk.json")
    if "<" not in arg:
        return arg
    if isinstance(kind, click.Choice):
        return str(kind.choices[0])
    if isinstance(kind, (click.types.IntParamType, click.types.FloatParamType)):
        return "1"
    if isinstance(kind, click.DateTime):
        return "2027-01-01T00:00:00"
    if "url" in arg.lower() or (option is not None and "url" in option.name):
        return "postgresql://u@h/d" if "url" not in (option.name or "") or "endpoint" not in option.name \
            else "http://127.0.0.1:5000"
    if re.search(r"T0|time|YYYY|when", arg) or (option is not None and re.search(
            r"^(to|since|until|before|after|at|aware_at)$|_at$", option.name or "")):
        return "2027-01-01T00:00:00Z"
    return "placeholder1"  # a name or ID: letters and digits pass the ID rules (a job ID: 5-36 of them)


def test_the_docs_write_the_commands_operators_run():
    found = {command.split(" -")[0].strip() for _, command in written()}
    assert len(written()) >= 40
    assert {"db restore", "db verify", "bucket restore", "secrets pull", "verify"} <= found, found


@pytest.mark.parametrize(("page", "command"), written())
def test_every_written_command_parses(page, command):
    try:
        parse(command)
    except (click.UsageError, click.BadParameter) as err:
        pytest.fail(f"{page}: `tavari-dr {command}` does not parse: {err.format_message()}")


@pytest.mark.parametrize("broken", ["db restor --env prod", "db restore --env prod --no-such-option x",
                                    "bucket restore --env prod --to"])
def test_a_command_that_no_longer_parses_is_caught(broken):
    with pytest.raises(click.UsageError):
        parse(broken)
