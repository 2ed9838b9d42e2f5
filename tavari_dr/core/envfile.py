"""Read and write .env files, strictly: a malformed line is an error, never a guess.

Accepted: ``KEY=value``, ``export KEY=value``, ``KEY="double \\"quoted\\" \\n"``,
``KEY='single quoted, literal'``, blank lines, ``# comments``, CRLF line ends, and an
unquoted value's trailing `` # comment``. Refused, with the line number: a line without
``=``, a bad key, an unterminated quote, text after a closing quote, a duplicate key.
"""

from __future__ import annotations

import re

from tavari_dr.core.config import ENV_KEY_RE

_DQ_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\", "$": "$"}
_SAFE_UNQUOTED = re.compile(r"[A-Za-z0-9_./:@%+,=-]*")


class EnvFileError(ValueError):
    """The env file cannot be read unambiguously."""


def parse(text: str, source: str = "env file") -> dict[str, str]:
    values: dict[str, str] = {}
    first_line: dict[str, int] = {}
    # Only \n ends a line: str.splitlines() would also split on \f, \v, \x1c, U+2028, ...
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r").strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        if "=" not in line:
            raise EnvFileError(f"{source}:{number}: no '=' in this line; expected KEY=value")
        key, _, rest = line.partition("=")
        key = key.strip()
        if not ENV_KEY_RE.match(key):
            raise EnvFileError(f"{source}:{number}: {key!r} is not a valid key; use letters, digits and _")
        if key in values:
            raise EnvFileError(f"{source}:{number}: {key} is defined again (first on line {first_line[key]})")
        values[key] = _value(rest.lstrip(), f"{source}:{number}")
        first_line[key] = number
    return values


def _value(rest: str, where: str) -> str:
    if rest[:1] in ("'", '"'):
        quote = rest[0]
        out = []
        i = 1
        while i < len(rest):
            char = rest[i]
            if quote == '"' and char == "\\" and i + 1 < len(rest):
                out.append(_DQ_ESCAPES.get(rest[i + 1], "\\" + rest[i + 1]))
                i += 2
                continue
            if char == quote:
                tail = rest[i + 1:].strip()
                if tail and not tail.startswith("#"):
                    raise EnvFileError(f"{where}: unexpected text after the closing quote: {tail!r}")
                return "".join(out)
            out.append(char)
            i += 1
        raise EnvFileError(f"{where}: the value's {quote} quote is never closed")
    comment = re.search(r"\s#", rest)
    return (rest[:comment.start()] if comment else rest).strip()


def dump(values: dict[str, str]) -> str:
    """An env file that `parse` reads back to exactly ``values``."""
    lines = []
    for key, value in values.items():
        if value and _SAFE_UNQUOTED.fullmatch(value):  # match() would accept a trailing newline
            lines.append(f"{key}={value}")
        else:
            escaped = (value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
                       .replace("\r", "\\r").replace("\t", "\\t").replace("$", "\\$"))
            lines.append(f'{key}="{escaped}"')
    return "\n".join(lines) + "\n"
