"""`--engine athena`: the same query in Trino's dialect, over the Glue tables, through boto3's Athena.

No Athena here: the SQL is parsed as Trino by sqlglot (every function it calls is one Trino
documents), then transpiled to DuckDB and run over the same files as the local engine, behind a
fake Athena client that answers in Athena's result shape; the API calls themselves are checked
with botocore's Stubber.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import duckdb
import pytest
import sqlglot
from botocore.stub import ANY, Stubber
from sqlglot import exp

from tavari_dr.bucket import inventory_plan as ip
from tavari_dr.bucket import restore as r
from tests.inventory_files import (
    BASE,
    Model,
    VersionStub,
    canary_record,
    feed_records,
    inventory_rows,
    write_feed,
    write_inventory,
)

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
# Functions the queries call that sqlglot does not model, each in Trino's function reference
# (https://trino.io/docs/current/functions.html): url_decode (URL functions), rpad / strpos /
# starts_with (string functions), date_parse (date and time functions).
TRINO_FUNCTIONS = {"URL_DECODE", "RPAD", "STRPOS", "STARTS_WITH", "DATE_PARSE"}


def window():
    return ip.Window("bkt", "in/", BASE + timedelta(seconds=5), True, datetime(1970, 1, 1, tzinfo=UTC),
                     BASE + timedelta(hours=1), (("in/a", "v1", BASE, False), ("in/b", "v2", None, True)))


def athena_queries():
    engine = ip.AthenaEngine(None, "wg", "db", "2026-11-02-00-00")
    w = window()
    return [ip.feed_facts_sql(engine.feed, "bkt"), ip.heads_needed_sql(engine.inventory, engine.feed, w),
            ip.plan_sql(engine.inventory, engine.feed, w)]


@pytest.mark.parametrize("index", [0, 1, 2])
def test_the_athena_queries_are_trino_sql_calling_only_trino_functions(index):
    tree = sqlglot.parse_one(athena_queries()[index], read="trino")
    unknown = {f.name.upper() for f in tree.find_all(exp.Anonymous)}
    assert unknown <= TRINO_FUNCTIONS, unknown - TRINO_FUNCTIONS
    assert tree.find(exp.Table, bfs=False) is not None
    # the report's partition, and every feed partition, by the Glue tables' names (contract §5)
    tables = {t.name for t in tree.find_all(exp.Table)}
    assert tables & {"inventory", "change_feed"}
    if "inventory" in tables:
        assert "dt = '2026-11-02-00-00'" in tree.sql(dialect="trino")


class TranspilingAthena:
    """Athena's three calls, answered by running the Trino text in DuckDB (transpiled by sqlglot)
    over tables shaped like the Glue ones: inventory (with dt) and change_feed (event_time a string)."""

    def __init__(self, connection):
        self.connection, self.results, self.calls = connection, {}, []

    def start_query_execution(self, **kwargs):
        self.calls.append(kwargs)
        sql = sqlglot.transpile(kwargs["QueryString"], read="trino", write="duckdb")[0]
        cursor = self.connection.execute(sql)
        names = [d[0] for d in cursor.description]
        kinds = [_trino_type(d[1]) for d in cursor.description]
        self.results[str(len(self.calls))] = (names, kinds, cursor.fetchall())
        return {"QueryExecutionId": str(len(self.calls))}

    def get_query_execution(self, QueryExecutionId):  # noqa: N803 (boto3's parameter name)
        return {"QueryExecution": {"Status": {"State": "SUCCEEDED"}}}

    def get_paginator(self, name):
        assert name == "get_query_results"
        return self

    def paginate(self, QueryExecutionId):  # noqa: N803
        names, kinds, rows = self.results[QueryExecutionId]
        header = {"Data": [{"VarCharValue": n} for n in names]}
        cells = [{"Data": [{} if v is None else {"VarCharValue": _text(v)} for v in row]} for row in rows]
        meta = {"ColumnInfo": [{"Name": n, "Type": k} for n, k in zip(names, kinds, strict=True)]}
        yield {"ResultSet": {"Rows": [header, *cells[:2]], "ResultSetMetadata": meta}}
        for start in range(2, len(cells), 3):  # more pages, as Athena pages its results
            yield {"ResultSet": {"Rows": cells[start:start + 3], "ResultSetMetadata": meta}}


def _trino_type(duck) -> str:
    text = str(duck).upper()
    return {"BOOLEAN": "boolean", "BIGINT": "bigint", "INTEGER": "integer", "HUGEINT": "bigint"}.get(
        text, "timestamp(3)" if text.startswith("TIMESTAMP") else "varchar")


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.replace(tzinfo=None).isoformat(sep=" ", timespec="milliseconds")
    return str(value)


def history():
    m = Model()
    m.add("in/a b.pdf", second=0)
    m.add("in/a b.pdf", delete=True, second=0)
    m.add("in/a b.pdf", second=20)
    m.add("in/c", second=1)
    m.add("in/c", second=3)
    m.add("in/d", second=2)
    m.add("in/d", delete=True, second=30)
    m.add("out/e", second=2)
    return m, BASE + timedelta(seconds=10)


def test_athena_and_duckdb_make_the_same_plan(tmp_path):
    m, when = history()
    inventory = write_inventory(inventory_rows(m, 5), tmp_path / "inv", 2)
    older = write_inventory(inventory_rows(m, 2), tmp_path / "old")  # an older report: another dt
    feed = write_feed([*feed_records(m, 0), canary_record()], tmp_path / "feed", 2, duplicate=0.5)

    local, _ = ip.plan_from_inventory(VersionStub(m, []).client, ip.DuckDbEngine(inventory, feed, threads=1),
                                      "bkt", when, prefix="in/", now=NOW)
    glue = duckdb.connect()
    glue.execute("SET TimeZone = 'UTC'")
    parquet = ", ".join(f"'{p}'" for p in inventory)
    # Test files' paths only, in DuckDB's own syntax (the Glue tables' stand-ins).
    glue.execute(f"CREATE TABLE inventory AS SELECT *, '2026-11-02-00-00' AS dt FROM read_parquet([{parquet}]) "  # noqa: S608
                 f"UNION ALL SELECT *, '2026-11-01-00-00' AS dt FROM read_parquet(['{older[0]}'])")
    lines = ", ".join(f"'{p}'" for p in feed)
    columns = "{" + ", ".join(f"'{k}': '{v}'" for k, v in ip.FEED_COLUMNS.items()) + "}"
    glue.execute(f"CREATE TABLE change_feed AS SELECT *, '2026-11-01' AS dt FROM read_json([{lines}], "  # noqa: S608
                 f"format = 'newline_delimited', compression = 'gzip', columns = {columns})")
    athena = TranspilingAthena(glue)
    engine = ip.AthenaEngine(athena, "tavari-inventory", "tavari_db", "2026-11-02-00-00", sleep=lambda _s: None)
    remote, state = ip.plan_from_inventory(VersionStub(m, []).client, engine, "bkt", when, prefix="in/", now=NOW)

    assert remote == local and remote.keys_in_scope == 3  # out/e is out of scope
    assert {a.key: a.action for a in remote.actions} == {"in/a b.pdf": "delete-marker", "in/d": "copy"}
    assert state.records > 0 and len(engine.executions) == 3
    assert all(c["WorkGroup"] == "tavari-inventory" and c["QueryExecutionContext"] == {"Database": "tavari_db"}
               for c in athena.calls)


def athena_client():
    return boto3.client("athena", region_name="eu-west-1", aws_access_key_id="t", aws_secret_access_key="t")  # noqa: S106


def test_the_engine_waits_for_the_query_and_reads_every_result_page():
    client = athena_client()
    stub = Stubber(client)
    stub.add_response("start_query_execution", {"QueryExecutionId": "q1"},
                      {"QueryString": "SELECT 1", "WorkGroup": "wg", "QueryExecutionContext": {"Database": "db"}})
    stub.add_response("get_query_execution", {"QueryExecution": {"Status": {"State": "RUNNING"}}},
                      {"QueryExecutionId": "q1"})
    stub.add_response("get_query_execution", {"QueryExecution": {"Status": {"State": "SUCCEEDED"}}},
                      {"QueryExecutionId": "q1"})
    meta = {"ColumnInfo": [{"Name": "key", "Type": "varchar"}, {"Name": "n", "Type": "bigint"},
                           {"Name": "t_marker", "Type": "boolean"}, {"Name": "t_lm", "Type": "timestamp(3)"}]}
    stub.add_response("get_query_results", {
        "ResultSet": {"Rows": [{"Data": [{"VarCharValue": c["Name"]} for c in meta["ColumnInfo"]]},
                               {"Data": [{"VarCharValue": "a"}, {"VarCharValue": "1"}, {"VarCharValue": "true"},
                                         {"VarCharValue": "2026-11-01 09:00:05.000"}]}],
                      "ResultSetMetadata": meta}, "NextToken": "p2"}, {"QueryExecutionId": "q1"})
    stub.add_response("get_query_results", {
        "ResultSet": {"Rows": [{"Data": [{"VarCharValue": "b"}, {}, {"VarCharValue": "false"}, {}]}],
                      "ResultSetMetadata": meta}}, {"QueryExecutionId": "q1", "NextToken": "p2"})
    slept = []
    with stub:
        rows = list(ip.AthenaEngine(client, "wg", "db", "x", sleep=slept.append).rows("SELECT 1"))
    assert rows == [{"key": "a", "n": 1, "t_marker": True, "t_lm": datetime(2026, 11, 1, 9, 0, 5)},
                    {"key": "b", "n": None, "t_marker": False, "t_lm": None}]
    assert slept == [1.0]


def test_a_failed_athena_query_is_a_plan_error_naming_athenas_reason():
    client = athena_client()
    stub = Stubber(client)
    stub.add_response("start_query_execution", {"QueryExecutionId": "q2"}, {"QueryString": ANY, "WorkGroup": "wg",
                                                                          "QueryExecutionContext": ANY})
    stub.add_response("get_query_execution", {"QueryExecution": {"Status": {
        "State": "FAILED", "StateChangeReason": "Query exhausted resources at this scale factor"}}},
        {"QueryExecutionId": "q2"})
    with stub, pytest.raises(r.PlanError, match="q2 failed: Query exhausted"):
        list(ip.AthenaEngine(client, "wg", "db", "x").rows("SELECT 1"))
