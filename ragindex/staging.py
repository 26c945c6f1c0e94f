"""Intermediate data of a build, readable by any process: the documents and chunks of each (table, source).

Both are LanceDB tables in a staging database at `storage.uri` (a local folder or `s3://...`). Each row records
the run that wrote it, and each build step derives its work from data, not from a hand-over: the chunk step
re-chunks the documents whose hash differs from what the chunk table was cut from, and the index step commits
the chunks the index lacks. So any step can be re-materialized alone, in any process, from its parents' data.
Old versions are removed with the index's retention.
"""

from __future__ import annotations

from collections.abc import Iterator

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
SPOOL_ROWS = 4096  # rows a step holds in memory before it spools them to a pending table
SPOOL_CHARS = 32 << 20  # ... or text characters, whichever comes first
SCAN_ROWS = 4096  # rows per record batch of a streaming read


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

    def batches(self, columns: list[str], version: int | None = None) -> Iterator[pa.RecordBatch]:
        """Some columns of every row, SCAN_ROWS at a time (memory bounded by the batch, not the table)."""
        table = self.open(version)
        rows = table.count_rows()
        if rows:
            yield from table.search().select(columns).limit(rows).to_batches(SCAN_ROWS)

    def spool(self) -> Spool:
        return Spool(self)


class Spool:
    """The rows of one commit to a stage table, gathered in bounded memory: past SPOOL_ROWS rows (or SPOOL_CHARS
    of text) they go, a batch at a time, to a pending table beside it, which `reader` streams back for the one
    merge; `close` drops it. A pending table left by a killed run is overwritten by the next."""

    def __init__(self, stage: StageTable):
        self.stage = stage
        self.count = 0
        self._rows: list[dict] = []
        self._chars = 0
        self._pending = None

    @property
    def pending_name(self) -> str:
        return f"{self.stage.name}__pending"

    def add(self, row: dict) -> None:
        self._rows.append(row)
        self.count += 1
        self._chars += len(row.get("text") or "")
        if len(self._rows) >= SPOOL_ROWS or self._chars >= SPOOL_CHARS:
            batch = pa.Table.from_pylist(self._rows, self.stage.schema)
            if self._pending is None:  # a leftover of a killed run is dropped: overwriting a missing one warns
                self.stage.db.drop_table(self.pending_name, ignore_missing=True)
                self._pending = self.stage.db.create_table(self.pending_name, batch)
            else:
                self._pending.add(batch)
            self._rows, self._chars = [], 0

    def reader(self) -> pa.RecordBatchReader:
        """Every row added, spooled ones first, as one stream."""
        schema = self.stage.schema
        tail = pa.Table.from_pylist(self._rows, schema)

        def batches() -> Iterator[pa.RecordBatch]:
            if self._pending is not None:
                for batch in self._pending.search().limit(self._pending.count_rows()).to_batches(SCAN_ROWS):
                    yield pa.RecordBatch.from_arrays([batch.column(n) for n in schema.names], schema=schema)
            yield from tail.to_batches(SCAN_ROWS)

        return pa.RecordBatchReader.from_batches(schema, batches())

    def close(self) -> None:
        if self._pending is not None:
            self.stage.db.drop_table(self.pending_name)
            self._pending = None


class StageStore:
    """The staging database: a documents and a chunks table per (index table, source)."""

    def __init__(self, uri: str):
        self.uri = uri
        self.db = connect(uri)

    def documents(self, table: str, source: str) -> StageTable:
        return StageTable(self.db, f"{table}__{source}__documents", DOCUMENT_SCHEMA)

    def chunks(self, table: str, source: str) -> StageTable:
        return StageTable(self.db, f"{table}__{source}__chunks", chunk_schema())
