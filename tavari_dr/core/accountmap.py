"""Which rows belong to one Tavari account: the one map the GDPR export reads (tavari_dr.export.account)
and an erasure deletes (tavari_dr.database.erasure), so what is exported and what is erased cannot differ.

The map is the export's datasets (core.config.Dataset, ``data_export.datasets`` in cdk.json): a row is
the account's when its ``column`` holds the account's user ID (owner "user", e.g. businesses.owner_id)
or one of the account's business IDs (owner "business", e.g. messages.business_id). An erasure also
removes what names the account beyond that (ACCOUNT_REFERENCES): its Storage object metadata and the
account itself, its ``auth.users`` row, which the export leaves out (it holds credential hashes) but
which a restore would otherwise bring back with its e-mail address.

Every caller passes the environment's datasets (``config.data_export.datasets``); the built-in
DEFAULT_DATASETS are only what an environment without that setting gets. The rows go in foreign-key
order read from the database's own catalog (a table before every table it references), so a
configured table such as ``public.profiles (user_id REFERENCES auth.users)`` loses its rows before the
account's; a cycle of foreign keys, or a table outside the map that still references an account's
rows, fails the erasure naming the constraint, and nothing is removed (the caller's one transaction).

The object side of the map: the account's invoice PDFs sit under ``data_export.invoice_key_prefix``
(default ``invoices/{business_id}/``) in the invoice bucket, one prefix per business or per user
(``invoice_prefixes``); a bucket restore leaves those keys out for every erased account.
"""

from __future__ import annotations

import graphlib
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from tavari_dr.core.config import Dataset

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


class AccountMapError(ValueError):
    """The account's rows cannot be removed as the map says (a foreign key stands in the way)."""


def invoice_prefixes(template: str, user_id: str, business_ids: Sequence[str] | None) -> list[str]:
    """The invoice-bucket key prefixes of one account (``data_export.invoice_key_prefix`` filled in).
    A per-business template needs the account's business IDs: None (not known) is an error, never
    "no objects"."""
    if "{user_id}" in template:
        return [template.replace("{user_id}", str(uuid.UUID(str(user_id))))]
    if business_ids is None:
        raise AccountMapError(f"the invoice keys of account {user_id} are per business ({template}) and its "
                              "businesses are not known")
    return [template.replace("{business_id}", str(uuid.UUID(str(b)))) for b in sorted(business_ids)]


def deletion_order(datasets: Iterable[Dataset]) -> list[Dataset]:
    """Rows that point at a business first, then the rows that name the user (the businesses
    themselves): the foreign keys run that way."""
    datasets = list(datasets)
    return [d for d in datasets if d.owner == "business"] + [d for d in datasets if d.owner == "user"]


def erase_accounts(conn: Any, user_ids: Sequence[str], datasets: Sequence[Dataset]) -> dict[str, int]:
    """Delete every row of the accounts (one statement per table and owner column, whatever the number
    of accounts), in the caller's transaction, a table before every table it references (the catalog's
    foreign keys); returns table -> rows deleted (tables where none were, too). A table the map names
    but the database lacks counts 0: a partial restore need not hold every table. Fails before the
    first DELETE on a cycle of foreign keys between the map's tables, and on a foreign key from outside
    the map at the first row it protects (AccountMapError naming the constraint; the caller's
    transaction rolls back)."""
    import psycopg
    from psycopg import sql

    users = sorted({str(u) for u in user_ids})
    removed: dict[str, int] = {}
    present = {t for t in {d.table for d in datasets} | {t for t, _ in ACCOUNT_REFERENCES}
               if conn.execute("SELECT to_regclass(%s)", (t,)).fetchone()[0] is not None}
    businesses = business_ids(conn, users) if BUSINESS_TABLE in present else []
    # (table, statement, parameter), in the map's order; then sorted by the foreign keys.
    steps: list[tuple[str, Any, Any]] = []
    for dataset in deletion_order(datasets):
        removed.setdefault(dataset.table, 0)
        if dataset.table in present:
            where, value = owner_filter(dataset, users, businesses)
            steps.append((dataset.table, sql.SQL("DELETE FROM {} WHERE {}").format(ident(dataset.table), where),
                          value))
    for table, column in ACCOUNT_REFERENCES:
        removed.setdefault(table, 0)
        if table in present and _has_column(conn, table, column):
            steps.append((table, sql.SQL("DELETE FROM {} WHERE {} = ANY(%s)").format(
                ident(table), sql.Identifier(column)), _uuids(users)))
    order = foreign_key_order(conn, [t for t, _, _ in steps])
    steps.sort(key=lambda step: order.index(step[0]))  # stable: one table's statements keep the map's order
    for table, statement, value in steps:
        try:
            cursor = conn.execute(statement, (value,))
        except psycopg.errors.ForeignKeyViolation as err:
            raise AccountMapError(
                f"deleting the erased accounts' rows of {table} is refused by the foreign key "
                f"{err.diag.constraint_name} of {err.diag.schema_name}.{err.diag.table_name}: that table is not in "
                "data_export.datasets (add it, with the column naming the user or business), or its key should "
                "cascade; nothing was removed") from None
        removed[table] += cursor.rowcount
    return removed


def foreign_key_order(conn: Any, tables: Sequence[str]) -> list[str]:
    """``tables`` (schema-qualified), each before every one of them it references, from pg_constraint;
    ties keep the given order. A cycle between different tables is an AccountMapError naming its keys
    (a self-reference is one DELETE's business, and PostgreSQL checks it at the statement's end)."""
    wanted = list(dict.fromkeys(tables))
    edges = conn.execute(
        "SELECT c.conname, cn.nspname || '.' || cc.relname, pn.nspname || '.' || pc.relname "
        "FROM pg_constraint c JOIN pg_class cc ON cc.oid = c.conrelid JOIN pg_namespace cn ON cn.oid = cc.relnamespace "
        "JOIN pg_class pc ON pc.oid = c.confrelid JOIN pg_namespace pn ON pn.oid = pc.relnamespace "
        "WHERE c.contype = 'f' AND c.conrelid <> c.confrelid ORDER BY 1").fetchall()
    # graphlib emits a node after its predecessors: a referencing (child) table precedes what it references.
    graph: dict[str, set[str]] = {t: set() for t in wanted}
    keys: dict[tuple[str, str], list[str]] = {}
    for name, child, parent in edges:
        if child in graph and parent in graph:
            graph[parent].add(child)
            keys.setdefault((child, parent), []).append(name)
    sorter = graphlib.TopologicalSorter(graph)
    try:
        sorter.prepare()
    except graphlib.CycleError as err:
        cycle = err.args[1]
        # each node of ``cycle`` is a predecessor (here: the referencing table) of the next
        names = [n for child, parent in zip(cycle, cycle[1:], strict=False) for n in keys.get((child, parent), [])]
        raise AccountMapError(f"the foreign keys {', '.join(sorted(set(names)))} form a cycle between "
                              f"{', '.join(sorted(set(cycle)))}: no order deletes the erased accounts' rows; "
                              "nothing was removed") from None
    position = {t: i for i, t in enumerate(wanted)}
    out: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=position.__getitem__)
        out.extend(ready)
        sorter.done(*ready)
    return out


def _has_column(conn: Any, table: str, column: str) -> bool:
    schema, _, name = table.partition(".")
    return conn.execute("SELECT 1 FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
                        "AND column_name = %s", (schema, name, column)).fetchone() is not None
