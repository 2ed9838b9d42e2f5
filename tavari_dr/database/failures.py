"""A PostgreSQL failure as one line that names the server and the step: what an operator reads
instead of a psycopg traceback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from tavari_dr.database.manifest import BackupError


def server_of(url: str) -> str:
    """host:port of a database URL (never its user or password)."""
    try:
        parts = urlsplit(url)
        return f"{parts.hostname or '?'}:{parts.port or 5432}"
    except ValueError:
        return "?"


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def describe(err: Exception, server: str, doing: str) -> str:
    import psycopg

    if isinstance(err, psycopg.errors.InsufficientPrivilege):
        kind = "permission denied by"
    elif isinstance(err, psycopg.OperationalError) and getattr(err, "sqlstate", None) is None:
        kind = "cannot connect to"  # no SQLSTATE: the client gave up before the server answered
    else:
        kind = "error from"
    return f"{doing + ': ' if doing else ''}{kind} PostgreSQL at {server}: {one_line(str(err))}"


@contextmanager
def database_step(url: str, doing: str) -> Iterator[None]:
    """Turn any psycopg error inside into a BackupError naming ``url``'s server and ``doing``."""
    import psycopg

    try:
        yield
    except psycopg.Error as err:
        raise BackupError(describe(err, server_of(url), doing)) from None


def describe_anywhere(err: BaseException) -> str | None:
    """A psycopg error raised outside any database_step, naming the server its connection had (a
    failed connection keeps it), else None."""
    import psycopg

    if not isinstance(err, psycopg.Error):
        return None
    pgconn = getattr(err, "pgconn", None)
    server = "?"
    if pgconn is not None and pgconn.host:
        server = f"{pgconn.host.decode(errors='replace')}:{pgconn.port.decode(errors='replace') or 5432}"
    return describe(err, server, "")
