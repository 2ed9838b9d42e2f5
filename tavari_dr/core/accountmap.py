"""Which rows belong to one Tavari account: the one map the GDPR export reads (tavari_dr.export.account)
and an erasure deletes (tavari_dr.database.erasure), so what is exported and what is erased cannot differ.

The map is the export's datasets (core.config.Dataset, ``data_export.datasets`` in cdk.json): a row is
the account's when its ``column`` holds the account's user ID (owner "user", e.g. businesses.owner_id)
or one of the account's business IDs (owner "business", e.g. messages.business_id). An erasure also
removes what names the account beyond that (ACCOUNT_REFERENCES): its Storage object metadata and the
account itself, its ``auth.users`` row, which the export leaves out (it holds credential hashes) but
which a restore would otherwise bring back with its e-mail address.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from tavari_dr.core.config import DEFAULT_DATASETS, Dataset

ACCOUNT_TABLE = "auth.users"  # the account itself: id = the user ID
BUSINESS_TABLE = "public.businesses"  # where a business's owner is named (owner_id)
# Rows that name the user but are not account data the export includes, deleted last (the account's
# own row after everything that points at it): Storage's object metadata (owner) and the account.
ACCOUNT_REFERENCES = (("storage.objects", "owner"), (ACCOUNT_TABLE, "id"))


def ident(table: str) -> Any:
    from psycopg import sql

    schema, _, name = table.partition(".")
    return sql.Identifier(schema, name) if name else sql.Identifier(schema)


def _uuids(user_ids: Sequence[str]) -> list[uuid.UUID]:
    return [uuid.UUID(str(u)) for u in user_ids]  # adapted as uuid[]; anything else is refused here


def business_ids(conn: Any, user_ids: Sequence[str]) -> list[Any]:
    """The businesses the users own (every account's business IDs at once: one query for many)."""
    if not user_ids:
        return []
    return [r[0] for r in conn.execute(
        "SELECT id FROM public.businesses WHERE owner_id = ANY(%s) ORDER BY id", (_uuids(user_ids),)).fetchall()]


def owner_filter(dataset: Dataset, user_ids: Sequence[str], businesses: Sequence[Any]) -> tuple[Any, Any]:
    """``WHERE`` clause tying the dataset's rows to the users, and its one parameter. One user is
    compared as a plain value (the export's index-friendly form, whatever the column's type)."""
    from psycopg import sql

    column = sql.Identifier(dataset.column)
    if dataset.owner == "user":
        if len(user_ids) == 1:
            return sql.SQL("{} = %s").format(column), str(user_ids[0])
        return sql.SQL("{} = ANY(%s)").format(column), _uuids(user_ids)
    return sql.SQL("{} = ANY(%s)").format(column), list(businesses)


def deletion_order(datasets: Iterable[Dataset]) -> list[Dataset]:
    """Rows that point at a business first, then the rows that name the user (the businesses
    themselves): the foreign keys run that way."""
    datasets = list(datasets)
    return [d for d in datasets if d.owner == "business"] + [d for d in datasets if d.owner == "user"]


def erase_accounts(conn: Any, user_ids: Sequence[str], datasets: Sequence[Dataset] = DEFAULT_DATASETS
                   ) -> dict[str, int]:
    """Delete every row of the accounts (one statement per table, whatever the number of accounts), in
    the caller's transaction; returns table -> rows deleted (tables where none were, too). A table the
    map names but the database lacks counts 0: a partial restore need not hold every table."""
    from psycopg import sql

    users = sorted({str(u) for u in user_ids})
    removed: dict[str, int] = {}
    present = {t for t in {d.table for d in datasets} | {t for t, _ in ACCOUNT_REFERENCES}
               if conn.execute("SELECT to_regclass(%s)", (t,)).fetchone()[0] is not None}
    businesses = business_ids(conn, users) if BUSINESS_TABLE in present else []
    for dataset in deletion_order(datasets):
        if dataset.table not in present:
            removed.setdefault(dataset.table, 0)
            continue
        where, value = owner_filter(dataset, users, businesses)
        cursor = conn.execute(sql.SQL("DELETE FROM {} WHERE {}").format(ident(dataset.table), where), (value,))
        removed[dataset.table] = removed.get(dataset.table, 0) + cursor.rowcount
    for table, column in ACCOUNT_REFERENCES:
        removed[table] = 0
        if table not in present or not _has_column(conn, table, column):
            continue
        cursor = conn.execute(sql.SQL("DELETE FROM {} WHERE {} = ANY(%s)").format(
            ident(table), sql.Identifier(column)), (_uuids(users),))
        removed[table] = cursor.rowcount
    return removed


def _has_column(conn: Any, table: str, column: str) -> bool:
    schema, _, name = table.partition(".")
    return conn.execute("SELECT 1 FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
                        "AND column_name = %s", (schema, name, column)).fetchone() is not None
