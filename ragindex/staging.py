"""Intermediate data of a build, readable by any process: the documents and chunks of each (table, source).

Both are LanceDB tables in a staging database at `storage.uri` (a local folder or `s3://...`). Each row records
the run that wrote it, and each build step derives its work from data, not from a hand-over: the chunk step
re-chunks the documents whose hash differs from what the chunk table was cut from, and the index step commits
the chunks the index lacks. So any step can be re-materialized alone, in any process, from its parents' data.
Old versions are removed with the index's retention.
"""

from __future__ import annotations

import pyarrow as pa

from ragindex.index_store import index_schema
from ragindex.lance_tables import scan_columns, table_names
from ragindex.storage import connect

DOCUMENT_SCHEMA = pa.schema([
    ("doc_id", pa.string()), ("source", pa.string()), ("text", pa.string()), ("content_hash", pa.string()),
    ("title", pa.string()), ("path", pa.string()), ("size", pa.int64()), ("mtime", pa.float64()),
    ("format", pa.string()), ("images", pa.list_(pa.string())), ("run_id", pa.string()),
    ("groups", pa.list_(pa.string())), ("access_hash", pa.string())])  # access groups, policy they came from
_INDEX_ONLY = ("vector", "fingerprint")


def chunk_schema() -> pa.Schema:
    """The index's columns without the vector and the model fingerprint, plus the run that wrote the row."""
    fields = [f for f in index_schema(1) if f.name not in _INDEX_ONLY]
    return pa.schema([*fields, pa.field("run_id", pa.string())])


class StageTable:
    """One staging table; `at(version)` pins reads to the version a step produced."""

    def __init__(self, db, name: str, schema: pa.Schema):
        self.db = db
        self.name = name
        self.schema = schema

    def exists(self) -> bool:
        return self.name in table_names(self.db)

    def open(self, version: int | None = None):
        """The table (created if new; columns added to the schema since it was made are added, empty), or a
        checked-out copy at a version."""
        table = self.db.open_table(self.name) if self.exists() else self.db.create_table(
            self.name, schema=self.schema, exist_ok=True)
        if version is not None and version != table.version:
            table.checkout(version)
        elif version is None:
            missing = [f for f in self.schema if f.name not in table.schema.names]
            if missing:
                table.add_columns(missing)
        return table

    def version(self) -> int:
        return self.open().version

    def columns(self, columns: list[str], version: int | None = None, where: str | None = None) -> pa.Table:
        table = self.open(version)
        if not table.count_rows():
            return self.schema.empty_table().select(columns)
        return scan_columns(table, columns, where)


class StageStore:
    """The staging database: a documents and a chunks table per (index table, source)."""

    def __init__(self, uri: str):
        self.uri = uri
        self.db = connect(uri)

    def documents(self, table: str, source: str) -> StageTable:
        return StageTable(self.db, f"{table}__{source}__documents", DOCUMENT_SCHEMA)

    def chunks(self, table: str, source: str) -> StageTable:
        return StageTable(self.db, f"{table}__{source}__chunks", chunk_schema())
