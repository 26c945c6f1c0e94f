"""Helpers shared by every LanceDB table of the project: listing, column scans, SQL literals."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pyarrow as pa

IN_LIST_BATCH = 512  # values per `IN (...)` predicate


def table_names(db) -> set[str]:
    """All table names of a LanceDB connection (list_tables pages its answer)."""
    names: set[str] = set()
    token = None
    while True:
        page = db.list_tables(page_token=token)
        names.update(page.tables)
        token = page.page_token
        if not token:
            return names


def quote(value: str) -> str:
    """A SQL string literal: single quotes doubled, never pasted raw."""
    return "'" + str(value).replace("'", "''") + "'"


def in_list(column: str, values: Iterable[str]) -> str:
    """`column IN ('a', 'b')` with every value quoted."""
    return f"{column} IN ({', '.join(quote(v) for v in values)})"


def scan_columns(table, columns: list[str], where: str | None = None) -> pa.Table:
    """Some columns of every (matching) row, without reading the others (the vectors above all)."""
    query = table.search()
    if where:
        query = query.where(where)
    return query.select(columns).limit(max(table.count_rows(), 1)).to_arrow()


def scan_in(table, columns: list[str], column: str, values: Iterable[str], where: str | None = None
            ) -> Iterator[pa.Table]:
    """The rows whose `column` is one of `values`, a bounded `IN` predicate at a time."""
    values = list(dict.fromkeys(values))
    limit = max(table.count_rows(), 1)
    for start in range(0, len(values), IN_LIST_BATCH):
        part = values[start : start + IN_LIST_BATCH]
        predicate = in_list(column, part) + (f" AND ({where})" if where else "")
        yield table.search().where(predicate).select(columns).limit(limit).to_arrow()
