"""The account export serialized by PostgreSQL (tavari-export/2) holds exactly the rows and types the
Python serializer of tavari-export/1 wrote: every file of both parsed and compared, on the demo data
and on a table with every awkward type. The /1 serializer lives on here only, as the reference."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import uuid
import zipfile
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from tavari_dr.core.config import DEFAULT_DATASETS, Dataset
from tavari_dr.export import account as x
from tests.conftest import owners

pytestmark = pytest.mark.postgres


# --------------------------------------------------------------------------- tavari-export/1, for reference


def v1_value(value: Any) -> Any:
    """tavari-export/1's to_json_value, as it was."""
    if value is None or isinstance(value, (bool, int, str, float)):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$base64": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, (list, tuple)):
        return [v1_value(v) for v in value]
    if isinstance(value, dict):
        return {k: v1_value(v) for k, v in value.items()}
    return str(value)


def v1_export(url: str, user_id: str, datasets) -> dict[str, bytes]:
    """tavari-export/1's rows: SELECT * through a server-side cursor, one json.dumps per row."""
    from psycopg import sql
    from psycopg.rows import dict_row

    files = {}
    with psycopg.connect(url) as conn:
        business_ids = x._business_ids(conn, user_id)
        for dataset in datasets:
            where, value = x._owner_filter(dataset, user_id, business_ids)
            query = sql.SQL("SELECT * FROM {} WHERE {} ORDER BY 1").format(x._ident(dataset.table), where)
            out = io.BytesIO()
            with conn.cursor(name=f"v1_{dataset.name}", row_factory=dict_row) as cur:
                cur.execute(query, (value,))
                for row in cur:
                    out.write((json.dumps({k: v1_value(v) for k, v in row.items()}, ensure_ascii=False,
                                          sort_keys=True) + "\n").encode())
            files[f"{dataset.name}.jsonl"] = out.getvalue()
    return files


# --------------------------------------------------------------------------- comparing what a reader gets


def column_types(url: str, table: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        return dict(x._columns(conn, table))


def same_value(old: Any, new: Any, type_name: str) -> bool:
    """Whether a reader of /1 and a reader of /2 get the same value (and type) for this column."""
    if old is None or new is None:
        return old is None and new is None
    element = type_name.removesuffix("[]")
    if type_name.endswith("[]"):
        return (isinstance(old, list) and isinstance(new, list) and len(old) == len(new)
                and all(same_value(o, n, element + ("[]" if isinstance(o, list) else ""))
                        for o, n in zip(old, new, strict=True)))
    if element.startswith("numeric"):
        # The same digits and exponent: /1 wrote Python's str (1E-7), /2 PostgreSQL's text (0.0000001).
        return isinstance(old, str) and isinstance(new, str) and Decimal(old).as_tuple() == Decimal(new).as_tuple()
    if element in ("real", "double precision"):
        if isinstance(old, float) and not math.isfinite(old):
            # The one documented change: /1 wrote the non-JSON tokens NaN/Infinity, /2 writes strings.
            return new == {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}[repr(old)]
        return type(old) is type(new) and old == new
    if element.startswith(("timestamp", "time", "date")):
        # The same instant (/1 wrote the server's zone, /2 writes UTC) and the same kind (zone or not).
        parse = (date.fromisoformat if element == "date" else datetime.fromisoformat
                 if element.startswith("timestamp") else time.fromisoformat)
        a, b = parse(old), parse(new)
        return (getattr(a, "tzinfo", None) is None) == (getattr(b, "tzinfo", None) is None) and a == b
    return type(old) is type(new) and old == new


def assert_same_rows(url: str, old: dict[str, bytes], new: zipfile.ZipFile, datasets) -> int:
    compared = 0
    for dataset in datasets:
        name, types = f"{dataset.name}.jsonl", column_types(url, dataset.table)
        old_rows = [json.loads(line) for line in lines(old[name])]
        new_rows = [json.loads(line) for line in lines(new.read(name))]
        assert len(old_rows) == len(new_rows), name
        for o, n in zip(old_rows, new_rows, strict=True):
            assert list(n) == sorted(o), f"{name}: keys"  # the same keys, in code-point order
            different = {k: (o[k], n[k]) for k in o if not same_value(o[k], n[k], types[k])}
            assert not different, f"{name}: {different}"
            compared += 1
    return compared


def lines(data: bytes) -> list[str]:
    """JSON Lines split as the format says, on "\\n" only (str.splitlines would also split at U+2028)."""
    return data.decode().split("\n")[:-1] if data else []


def export(url: str, user: str, datasets=DEFAULT_DATASETS) -> tuple[zipfile.ZipFile, dict]:
    out = io.BytesIO()
    metadata = x.export_account(url, user, out, datasets=datasets)
    return zipfile.ZipFile(io.BytesIO(out.getvalue())), metadata


def test_the_demo_data_reads_the_same_in_both_formats(db):
    for user in owners(db):
        zf, metadata = export(db, user)
        assert metadata["schema_version"] == "tavari-export/2"
        compared = assert_same_rows(db, v1_export(db, user, DEFAULT_DATASETS), zf, DEFAULT_DATASETS)
        assert compared == sum(f["rows"] for f in metadata["files"].values()) > 0
        for name, info in metadata["files"].items():  # the digest is over the bytes written
            assert hashlib.sha256(zf.read(name)).hexdigest() == info["sha256"]


AWKWARD = """
CREATE TABLE businesses (id uuid PRIMARY KEY, owner_id uuid NOT NULL);  -- the account map reads it
CREATE TYPE mood AS ENUM ('ok', 'złe');
CREATE TABLE awkward (
  id serial PRIMARY KEY, owner_id uuid NOT NULL, "Zeta" text, "aa b" int,
  n numeric, n_fixed numeric(30, 10), f8 double precision, f4 real, i8 bigint, i2 smallint, flag boolean,
  ts timestamp, tstz timestamptz, d date, t time, ttz timetz,
  blob bytea, doc jsonb, raw json, tags text[], amounts numeric[], grid int[][], stamps timestamptz[],
  blobs bytea[], feeling mood, code char(5), big text
);
"""
HUGE = "łóżko 🍕 \u0001\t\"\\ " * 60_000


def awkward_rows(owner: str) -> list[tuple]:
    return [
        (owner, "x", 1, Decimal("12345678901234567890.123456789012345678901234567890"), Decimal("1.5000000000"),
         1.1, 0.1, 2**62, -3, True, datetime(2026, 3, 29, 2, 30, 0, 500000),
         "2026-03-29T01:30:00.000001+00", date(2026, 12, 1), time(23, 59, 59, 999999), "12:00:00+05:30",
         bytes(range(256)) * 3, json.dumps({"z": 1, "aa": [1.50, None, "é"], "b": {"y": True, "x": "</script>"}}),
         '{"dup": 1, "dup": 2,  "spaced" :  true}', ["a", None, "ü,\"q\""],
         [Decimal("0.0000001"), Decimal("NaN"), None, Decimal("-0.00")], [[1, 2], [3, 4]],
         ["2026-01-01T00:00:00+01"], [b"\x00\xff", None], "złe", "ab", HUGE),
        (owner, None, None, Decimal("NaN"), None, float("nan"), float("inf"), None, None, False, None, None, None,
         None, None, b"", "[]", "null", [], [], None, [], [], "ok", None, ""),
        (owner, "", 0, Decimal("Infinity"), Decimal("-0.0000000001"), float("-inf"), -0.0, -(2**63), 0, None,
         datetime(1999, 12, 31, 23, 59, 59), "1970-01-01T00:00:00+00", date(1, 1, 1), time(0, 0), None, None,
         '{"": "", "\\u00e9": "escaped é"}', '"just a string"', None, None, None, None, None, None, "     ",
         "\u2028\u2029"),
        (owner, "1E-7", 7, Decimal("0.0000001"), Decimal("0E-10"), 1e300, 3.4028235e38, 1, 1, True,
         datetime(2026, 1, 1), "2026-10-25T01:59:59.999999+00", date(9999, 12, 31), time(12, 0, 0, 500000),
         "00:00:00-12", b"\n" * 100, '{"n": 12345678901234567890123, "f": 1e-7}', "[1, 2.50, 3e2]", ["a"],
         [Decimal("1e+20")], [[None, 1]], [None], [None], None, "xyz", "é" * 10),
    ]


@pytest.fixture
def awkward(pg):
    url = pg.create_database(f"awkward_{uuid.uuid4().hex[:8]}")
    owner = str(uuid.uuid4())
    with psycopg.connect(url) as conn:
        conn.execute(AWKWARD)
        # /1 wrote timestamps in the server's zone: one far from UTC shows what /2 changes (the offset only).
        conn.execute(f"ALTER DATABASE {url.rsplit('/', 1)[1]} SET TimeZone TO 'Asia/Kathmandu'")
        with conn.cursor() as cur:
            columns = ("owner_id, \"Zeta\", \"aa b\", n, n_fixed, f8, f4, i8, i2, flag, ts, tstz, d, t, ttz, blob, "
                       "doc, raw, tags, amounts, grid, stamps, blobs, feeling, code, big")
            cur.executemany(f"INSERT INTO awkward ({columns}) VALUES ({', '.join(['%s'] * 26)})",  # noqa: S608
                            awkward_rows(owner))
            cur.execute("INSERT INTO awkward (owner_id) VALUES (%s)", (owner,))  # NULL everywhere else
            cur.execute("INSERT INTO awkward (owner_id, big) VALUES (%s, 'someone else')", (str(uuid.uuid4()),))
    return url, owner, (Dataset("awkward", "public.awkward", "user", "owner_id"),)


def test_every_awkward_type_reads_the_same_in_both_formats(awkward):
    url, owner, datasets = awkward
    zf, metadata = export(url, owner, datasets)
    assert metadata["files"]["awkward.jsonl"]["rows"] == 5  # not the other owner's row
    assert assert_same_rows(url, v1_export(url, owner, datasets), zf, datasets) == 5
    rows = [json.loads(line) for line in lines(zf.read("awkward.jsonl"))]
    first = rows[0]
    # The canonical forms themselves (docs/export-format.md), beyond "the same as before":
    assert first["n"] == "12345678901234567890.123456789012345678901234567890"  # every digit, as text
    assert first["n_fixed"] == "1.5000000000" and rows[3]["n"] == "0.0000001"  # scale kept, never an exponent
    assert first["f4"] == 0.1 and rows[2]["f4"] == -0.0 and isinstance(rows[2]["f4"], float)  # never an int
    assert first["tstz"] == "2026-03-29T01:30:00.000001+00:00" and first["ts"] == "2026-03-29T02:30:00.5"
    assert rows[1]["f8"] == "NaN" and rows[1]["f4"] == "Infinity" and rows[2]["f8"] == "-Infinity"
    assert base64.b64decode(first["blob"]["$base64"]) == bytes(range(256)) * 3
    assert rows[1]["blob"] == {"$base64": ""} and rows[4]["blob"] is None
    assert first["blobs"][0] == {"$base64": base64.b64encode(b"\x00\xff").decode()} and first["blobs"][1] is None
    assert first["big"] == HUGE and first["doc"]["b"]["x"] == "</script>"
    assert rows[3]["doc"]["n"] == 12345678901234567890123  # jsonb's numbers as written: no float on the way
    assert first["raw"] == {"dup": 2, "spaced": True}
    line = lines(zf.read("awkward.jsonl"))[4]
    assert line.startswith('{"Zeta":null,"aa b":null,"amounts":null,') and ", " not in line  # compact
    assert list(json.loads(line)) == sorted(column_types(url, "public.awkward"))


def test_values_the_python_serializer_could_not_load_are_exported(pg):
    """psycopg cannot load infinite or BC timestamps into Python: /1 failed the whole export on them."""
    url = pg.create_database(f"edge_{uuid.uuid4().hex[:8]}")
    owner = str(uuid.uuid4())
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE businesses (id uuid PRIMARY KEY, owner_id uuid NOT NULL)")
        conn.execute("CREATE TABLE edge (owner_id uuid, at timestamptz, day date, span interval, f float8)")
        conn.execute("INSERT INTO edge VALUES (%s, 'infinity', '-infinity', '1 mon 2 days 03:00:00.5', "
                     "0.1::float8 + 0.2), (%s, '0044-03-15 12:00:00+00 BC', '4713-01-01 BC', '-1 year', 1e-300)",
                     (owner, owner))
        # A role or database that rounds floats for display must not round the export.
        conn.execute(f"ALTER DATABASE {url.rsplit('/', 1)[1]} SET extra_float_digits TO 0")
    datasets = (Dataset("edge", "public.edge", "user", "owner_id"),)
    with pytest.raises(psycopg.DataError):
        v1_export(url, owner, datasets)
    zf, _ = export(url, owner, datasets)
    rows = [json.loads(line) for line in lines(zf.read("edge.jsonl"))]
    assert [(r["at"], r["day"]) for r in rows] == [("infinity", "-infinity"),
                                                   ("0044-03-15T12:00:00+00:00 BC", "4713-01-01 BC")]
    # Intervals as ISO 8601 durations (months stay months; /1's timedelta made a month 30 days).
    assert [r["span"] for r in rows] == ["P1M2DT3H0.5S", "P-1Y"]
    assert [r["f"] for r in rows] == [0.1 + 0.2, 1e-300]


class FailingSink(io.RawIOBase):
    """A ZIP destination that fails after ``limit`` bytes (a full disk, a broken upload)."""

    def __init__(self, limit: int) -> None:
        self.limit, self.written = limit, 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        if self.written + len(data) > self.limit:
            raise OSError(28, "No space left on device")
        self.written += len(data)
        return len(data)


def test_a_destination_that_fails_mid_entry_fails_the_export_instead_of_hanging(db, monkeypatch):
    """The compressor thread's failure reaches the caller (and the reading thread never blocks on a
    queue nobody empties)."""
    monkeypatch.setattr(x, "BLOCK_BYTES", 256)  # many blocks from the demo data
    monkeypatch.setattr(x, "QUEUE_BLOCKS", 1)
    alice = owners(db)[0]
    with pytest.raises(OSError, match="No space left"):
        x.export_account(db, alice, FailingSink(limit=4096))


def test_blocks_never_split_the_count_or_the_digest(db, monkeypatch):
    """Rows are counted and hashed per block; tiny blocks give the same counts and digests as big ones."""
    alice = owners(db)[0]
    _, big = export(db, alice)
    monkeypatch.setattr(x, "BLOCK_BYTES", 7)
    zf, small = export(db, alice)
    assert small["files"] == big["files"]
    assert all(hashlib.sha256(zf.read(n)).hexdigest() == f["sha256"] for n, f in small["files"].items())
