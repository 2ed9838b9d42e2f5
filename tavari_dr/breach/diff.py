"""Which accounts' rows a breach changed: the live database against a backup restored from before it.

The map of which rows belong to which account is the export's (``data_export.datasets``: table -> owner
column, core.accountmap), plus the account's own ``auth.users`` row (an attacker changing an e-mail
address changes the account). Each table is read once from each side, ordered by its primary key, and
merged as it streams (server-side cursors), so a table of any size is compared in constant memory: a key
on one side only is a row deleted or added, a key on both with other content a row changed. A table
without a primary key is compared as whole rows (a change is then one deletion and one addition).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from tavari_dr.core.accountmap import ACCOUNT_TABLE, BUSINESS_TABLE
from tavari_dr.core.config import Dataset

ACCOUNT_DATASET = Dataset("account", ACCOUNT_TABLE, "user", "id")
KINDS = ("changed", "deleted", "added")


@dataclass
class TableDiff:
    table: str
    keyed_by: list[str]  # the primary key's columns; empty: compared as whole rows
    counts: dict[str, Counter[str]] = field(default_factory=lambda: {k: Counter() for k in KINDS})
    unowned: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))  # rows of no known account

    def accounts(self) -> set[str]:
        return {a for counter in self.counts.values() for a in counter}


@dataclass
class DataDiff:
    tables: list[TableDiff]
    missing: list[str]  # tables the map names that one side lacks
    emails: dict[str, str]  # account -> e-mail (auth.users), from either side
    business_owners: dict[str, str]  # business ID -> account, from either side

    def accounts(self) -> set[str]:
        return {a for t in self.tables for a in t.accounts()}


def _present(conn: Any, table: str) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]


def primary_key(conn: Any, table: str) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
        "WHERE i.indrelid = %s::regclass AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)",
        (table,)).fetchall()]


def _rows(conn: Any, table: str, key: list[str], owner: str) -> Iterator[tuple[str, str | None, str]]:
    """(key, owner, content hash) of every row, ordered by key in byte order (COLLATE "C": the order
    Python compares str in, so both sides merge alike)."""
    from psycopg import sql

    from tavari_dr.core.accountmap import ident

    keyed = (sql.SQL("ROW({})::text").format(sql.SQL(", ").join(sql.Identifier(c) for c in key)) if key else
             sql.SQL("md5(t::text) || '#' || row_number() OVER (PARTITION BY md5(t::text))"))
    query = sql.SQL('SELECT k, o, h FROM (SELECT {} AS k, {}::text AS o, md5(t::text) AS h FROM {} t) s '
                    'ORDER BY k COLLATE "C"').format(keyed, sql.Identifier(owner), ident(table))
    with conn.cursor(name=f"breach_{abs(hash(table))}") as cur:
        cur.itersize = 5000
        cur.execute(query)
        yield from cur


def _merge(before: Iterator[tuple[str, str | None, str]], live: Iterator[tuple[str, str | None, str]],
           record: Any) -> None:
    a, b = next(before, None), next(live, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a[0] < b[0]):
            record("deleted", a[1])
            a = next(before, None)
        elif a is None or b[0] < a[0]:
            record("added", b[1])
            b = next(live, None)
        else:
            if a[2] != b[2]:
                record("changed", b[1])
                if a[1] != b[1]:  # moved to another account: the one it left is touched too
                    record("changed", a[1])
            a, b = next(before, None), next(live, None)


def _owners_and_emails(conn: Any) -> tuple[dict[str, str], dict[str, str]]:
    owners = ({str(b): str(u) for b, u in conn.execute(f"SELECT id, owner_id FROM {BUSINESS_TABLE}")}  # noqa: S608
              if _present(conn, BUSINESS_TABLE) else {})
    emails = ({str(u): e for u, e in conn.execute(f"SELECT id, email FROM {ACCOUNT_TABLE} WHERE email IS NOT NULL")}  # noqa: S608
              if _present(conn, ACCOUNT_TABLE) else {})
    return owners, emails


def compare(before_url: str, live_url: str, datasets: Sequence[Dataset]) -> DataDiff:
    """``before_url``: the backup restored into a scratch database; ``live_url``: the database now."""
    import psycopg

    with psycopg.connect(before_url) as before, psycopg.connect(live_url) as live:
        owners_before, emails_before = _owners_and_emails(before)
        owners_live, emails_live = _owners_and_emails(live)
        owners = {**owners_before, **owners_live}
        emails = {**emails_before, **emails_live}
        tables, missing = [], []
        for dataset in (*datasets, ACCOUNT_DATASET):
            if not (_present(before, dataset.table) and _present(live, dataset.table)):
                missing.append(dataset.table)
                continue
            diff = TableDiff(dataset.table, primary_key(live, dataset.table))

            def record(kind: str, owner: str | None, diff: TableDiff = diff, dataset: Dataset = dataset) -> None:
                account = owner if dataset.owner == "user" else owners.get(owner or "")
                if account is None:
                    diff.unowned[kind] += 1
                else:
                    diff.counts[kind][account] += 1

            _merge(_rows(before, dataset.table, diff.keyed_by, dataset.column),
                   _rows(live, dataset.table, diff.keyed_by, dataset.column), record)
            tables.append(diff)
    return DataDiff(tables, missing, emails, owners)
