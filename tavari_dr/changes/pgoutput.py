"""A decoder of PostgreSQL's pgoutput logical replication messages (protocol version 1).

The message formats are PostgreSQL's documented "Logical Replication Message Formats"; only what
the capture needs is decoded, and a message of another kind is an error, never skipped silently.
Column values stay in PostgreSQL's text output form (what the server's output functions wrote),
so a replay hands them back to the same types' input functions unchanged.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
# A column pgoutput did not send because it is an unchanged TOASTed value ('u'): the replay keeps the
# stored value. Text values are str and NULL is None, so this marker cannot be confused with either.
UNCHANGED = 0


class DecodeError(ValueError):
    """A message this decoder does not know how to read (the stream cannot be trusted past it)."""


def lsn_text(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int:
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def pg_time(micros: int) -> datetime:
    return PG_EPOCH + timedelta(microseconds=micros)


@dataclass(frozen=True)
class Begin:
    final_lsn: int
    commit_time: datetime
    xid: int


@dataclass(frozen=True)
class Commit:
    commit_lsn: int
    end_lsn: int
    commit_time: datetime


@dataclass(frozen=True)
class Relation:
    relid: int
    schema: str
    name: str
    identity: str  # 'd' default (primary key), 'n' nothing, 'f' full, 'i' index
    columns: tuple[str, ...]
    type_oids: tuple[int, ...]
    key: tuple[bool, ...]  # part of the replica identity

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    def shape(self) -> tuple:
        return (self.schema, self.name, self.identity, self.columns, self.type_oids, self.key)


@dataclass(frozen=True)
class Change:
    op: str  # "I", "U", "D"
    relid: int
    old: tuple | None  # the key ('K') or, with REPLICA IDENTITY FULL, the whole old row ('O')
    old_kind: str | None  # "K" or "O"
    new: tuple | None


@dataclass(frozen=True)
class Truncate:
    relids: tuple[int, ...]
    cascade: bool
    restart_identity: bool


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, fmt: str):
        size = struct.calcsize(fmt)
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return values[0] if len(values) == 1 else values

    def string(self) -> str:
        end = self.data.index(b"\0", self.pos)
        text = self.data[self.pos:end].decode()
        self.pos = end + 1
        return text

    def byte(self) -> str:
        value = chr(self.data[self.pos])
        self.pos += 1
        return value

    def tuple_data(self) -> tuple:
        count = self.take("!h")
        values: list = []
        for _ in range(count):
            kind = self.byte()
            if kind == "n":
                values.append(None)
            elif kind == "u":
                values.append(UNCHANGED)
            elif kind == "t":
                length = self.take("!i")
                values.append(self.data[self.pos:self.pos + length].decode())
                self.pos += length
            else:
                raise DecodeError(f"tuple column kind {kind!r} (binary mode is not requested)")
        return tuple(values)


def decode(payload: bytes) -> Begin | Commit | Relation | Change | Truncate | None:
    """One message; None for those the capture has no use for (origin, type)."""
    r = _Reader(payload)
    kind = r.byte()
    if kind == "B":
        final_lsn, micros, xid = r.take("!QqI")
        return Begin(final_lsn, pg_time(micros), xid)
    if kind == "C":
        _flags, commit_lsn, end_lsn, micros = r.take("!bQQq")
        return Commit(commit_lsn, end_lsn, pg_time(micros))
    if kind == "R":
        relid = r.take("!I")
        schema, name = r.string(), r.string()
        identity = r.byte()
        columns, oids, key = [], [], []
        for _ in range(r.take("!h")):
            flags = r.take("!b")
            columns.append(r.string())
            oid, _typmod = r.take("!Ii")
            oids.append(oid)
            key.append(bool(flags & 1))
        return Relation(relid, schema, name, identity, tuple(columns), tuple(oids), tuple(key))
    if kind == "I":
        relid = r.take("!I")
        if r.byte() != "N":
            raise DecodeError("insert without a new tuple")
        return Change("I", relid, None, None, r.tuple_data())
    if kind == "U":
        relid = r.take("!I")
        marker = r.byte()
        old = old_kind = None
        if marker in ("K", "O"):
            old_kind, old = marker, r.tuple_data()
            marker = r.byte()
        if marker != "N":
            raise DecodeError("update without a new tuple")
        return Change("U", relid, old, old_kind, r.tuple_data())
    if kind == "D":
        relid = r.take("!I")
        marker = r.byte()
        if marker not in ("K", "O"):
            raise DecodeError("delete without a key or old tuple")
        return Change("D", relid, r.tuple_data(), marker, None)
    if kind == "T":
        count, options = r.take("!Ib")
        relids = tuple(r.take("!I") for _ in range(count))
        return Truncate(relids, bool(options & 1), bool(options & 2))
    if kind in ("O", "Y", "M"):
        return None
    raise DecodeError(f"pgoutput message kind {kind!r} is not one this capture reads")
