"""docs/reference/cli.md from the click tree of `tavari-dr` (tavari_dr/cli/): every command, its arguments
and options with their help, and its examples (the ``Examples:`` block of its help, which --help shows)."""

from __future__ import annotations

from collections.abc import Iterator

import click

from tools.refgen.markdown import code, document, table, text

SOURCE = "tavari_dr/cli/"
PROG = "tavari-dr"
EXAMPLES = "Examples:"


def root() -> click.Group:
    from tavari_dr.cli import main

    return main


def walk(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every group and command, depth first, in the order the group lists them (the top group loads its
    commands lazily: asked through list_commands/get_command, as click's help does, never ``.commands``)."""
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is None:
            continue
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from walk(command, (*path, name))


def leaves() -> Iterator[tuple[tuple[str, ...], click.Command]]:
    return ((path, c) for path, c in walk(root()) if not isinstance(c, click.Group))


def split_help(command: click.Command) -> tuple[list[str], list[str]]:
    """(paragraphs of the description, example command lines) of a command's help."""
    paragraphs, examples = [], []
    for paragraph in (command.help or "").split("\n\n"):
        lines = [line for line in paragraph.split("\n") if line != "\b"]
        if lines and lines[0].strip() == EXAMPLES:
            examples += [line.strip() for line in lines[1:] if line.strip()]
        elif lines:
            paragraphs.append(" ".join(" ".join(lines).split()))
    return paragraphs, examples


def _type(param: click.Parameter) -> str:
    if isinstance(param, click.Option) and param.is_flag:
        return "flag"
    kind = param.type
    if isinstance(kind, click.Choice):
        return "one of " + ", ".join(code(c) for c in kind.choices)
    if isinstance(kind, click.IntRange | click.FloatRange):
        return text(kind.name + " " + kind._describe_range())
    if isinstance(kind, click.Path):
        return "directory" if not kind.file_okay else ("file" if not kind.dir_okay else "path")
    return text(kind.name)


def _default(param: click.Parameter) -> str:
    value = param.default
    if value is None or callable(value) or (isinstance(param, click.Option) and param.is_flag and not value) \
            or value == ():
        return ""
    return code(str(value) if not isinstance(value, bool | int | float) else value)


def param_rows(command: click.Command) -> list[list[str]]:
    rows = []
    for param in command.params:
        if isinstance(param, click.Argument):
            names, helptext = code(param.human_readable_name), "(argument)"
        else:
            names = ", ".join(code(o) for o in [*param.opts, *param.secondary_opts])
            helptext = param.help or ""
            if param.multiple:
                helptext += " Repeatable."
            if param.envvar:
                helptext += f" Env: `{param.envvar}`."
        rows.append([names, _type(param), _default(param), "yes" if param.required else "", text(helptext.strip())])
    return rows


def render() -> str:
    main = root()
    commands = list(leaves())
    blocks = [text(f"Every command of `{PROG}`: {len(commands)} commands. Exit codes: 0 ok, 1 a check or operation "
                   "failed, 2 a usage error (one line naming what is wrong). The examples are each command's own "
                   f"(`{PROG} <command> --help` shows them)."),
              "## Global options", f"`{PROG} [GLOBAL OPTIONS] <command> ...`",
              table(["option", "type", "default", "required", "help"], param_rows(main))]
    index = [f"- [`{PROG} {' '.join(path)}`](#{PROG}-{'-'.join(path)}): {text(split_help(c)[0][0])}"
             for path, c in commands]
    blocks += ["## Commands", "\n".join(index)]
    for path, command in walk(main):
        if isinstance(command, click.Group):
            blocks += [f"## `{PROG} {' '.join(path)}`", text(command.help or "")]
            continue
        paragraphs, examples = split_help(command)
        heading = "##" if len(path) == 1 else "###"
        ctx = click.Context(command, info_name=" ".join([PROG, *path]))
        # No explicit anchor: GitHub and the docs site both slug `tavari-dr db restore` to tavari-dr-db-restore.
        blocks += [f'{heading} `{PROG} {" ".join(path)}`',
                   *[text(p) for p in paragraphs],
                   f"Usage: `{' '.join(command.collect_usage_pieces(ctx)).join([ctx.info_name + ' ', ''])}`",
                   table(["option", "type", "default", "required", "help"], param_rows(command)),
                   "Examples:", "```sh\n" + "\n".join(examples) + "\n```"]
    return document("CLI reference", SOURCE, blocks)
