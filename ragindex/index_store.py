"""The LanceDB index table: schema, one-commit-per-source upserts, version tags and indexes."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import lancedb
import pyarrow as pa
from lancedb.index import FTS, BTree

from ragindex.config import IndexConfig
from ragindex.errors import ConfigError
from ragindex.manifest import DocState

MANIFEST_COLUMNS = ["doc_id", "doc_hash", "doc_size", "doc_mtime", "chunker_hash", "fingerprint", "chunk_id"]
FTS_COLUMNS = ("text", "title")
FILTER_FIELDS = ("source", "doc_id", "title", "path", "format", "heading_path", "fingerprint", "kind")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def index_schema(dimension: int) -> pa.Schema:
    """Vector, text and metadata columns; document-level fields ride on every chunk row (the manifest)."""
    return pa.schema([
        ("chunk_id", pa.string()),
        ("doc_id", pa.string()),
        ("source", pa.string()),
        ("text", pa.string()),
        ("text_hash", pa.string()),
        ("heading_path", pa.string()),
        ("position", pa.int32()),
        ("n_tokens", pa.int32()),
        ("title", pa.string()),
        ("path", pa.string()),
        ("format", pa.string()),
        ("doc_hash", pa.string()),
        ("doc_size", pa.int64()),
        ("doc_mtime", pa.float64()),
        ("chunker_hash", pa.string()),
        ("fingerprint", pa.string()),
        ("page", pa.int32()),  # PDF page of the chunk's text, null for other formats
        ("kind", pa.string()),  # text | image
        ("image_path", pa.string()),  # the image an image chunk describes
        ("vector", pa.list_(pa.float32(), dimension)),
    ])


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


def scan_columns(table, columns: list[str], where: str | None = None) -> pa.Table:
    """Some columns of every (matching) row, without reading the vectors."""
    query = table.search()
    if where:
        query = query.where(where)
    return query.select(columns).limit(max(table.count_rows(), 1)).to_arrow()


def quote(value: str) -> str:
    """A SQL string literal: single quotes doubled, never pasted raw."""
    return "'" + str(value).replace("'", "''") + "'"


def where_clause(filters: dict[str, str]) -> str | None:
    """`field = 'value'` terms joined by AND, for known metadata fields only."""
    terms = []
    for name, value in filters.items():
        if name not in FILTER_FIELDS or not _IDENT.match(name):
            raise ConfigError(f"unknown filter field '{name}'; use one of {', '.join(FILTER_FIELDS)}")
        terms.append(f"{name} = {quote(value)}")
    return " AND ".join(terms) or None


@dataclass(frozen=True)
class CommitResult:
    version: int
    inserted: int
    updated: int
    deleted: int


class IndexStore:
    """A LanceDB table of chunks at `uri`/`table`; every vector row carries its model fingerprint."""

    def __init__(self, config: IndexConfig, table: str | None = None):
        self.config = config
        self.uri = config.resolved_uri()
        self.name = table or config.table
        self.logical_name = self.name
        self.db = lancedb.connect(self.uri)

    @classmethod
    def for_model(cls, config: IndexConfig, table: str | None, fingerprint_id: str) -> IndexStore:
        """The physical table a model writes: the logical table while it holds this model's vectors (or is
        new), else a green table `<logical>-<fingerprint>` built beside it (blue/green on a model change)."""
        store = cls(config, table)
        held = store.fingerprints()
        if held and fingerprint_id not in held:
            store.name = f"{store.logical_name}-{fingerprint_id[:8]}"
        return store

    def exists(self) -> bool:
        return self.name in table_names(self.db)

    def open(self, version: int | str | None = None):
        if not self.exists():
            raise ConfigError(f"index table '{self.name}' not found at {self.uri}; build it first with "
                              "'ragindex index' or 'make run'")
        table = self.db.open_table(self.name)
        if version is not None:
            table.checkout(version)
        return table

    def open_or_create(self, dimension: int):
        if not self.exists():
            return self.db.create_table(self.name, schema=index_schema(dimension), exist_ok=True)
        table = self.db.open_table(self.name)
        missing = [f for f in index_schema(dimension) if f.name not in table.schema.names]
        if missing:  # a table built before these columns existed: added empty, filled as documents are re-chunked
            table.add_columns(missing)
        return table

    def count(self) -> int:
        return self.open().count_rows() if self.exists() else 0

    def manifest(self, source: str) -> dict[str, DocState]:
        """The last indexed state of every document of a source, read from the table itself."""
        if not self.exists():
            return {}
        table = self.open()
        rows = scan_columns(table, MANIFEST_COLUMNS, f"source = {quote(source)}").to_pylist()
        states: dict[str, DocState] = {}
        chunk_ids: dict[str, list[str]] = {}
        for row in rows:
            chunk_ids.setdefault(row["doc_id"], []).append(row["chunk_id"])
            states.setdefault(row["doc_id"], DocState(row["doc_hash"], row["doc_size"], row["doc_mtime"],
                                                       row["chunker_hash"], row["fingerprint"]))
        return {doc: DocState(s.content_hash, s.size, s.mtime, s.chunker_hash, s.fingerprint,
                              tuple(sorted(chunk_ids[doc]))) for doc, s in states.items()}

    def source_count(self, source: str) -> int:
        return self.open().count_rows(f"source = {quote(source)}") if self.exists() else 0

    def fingerprints(self) -> set[str]:
        if not self.exists() or not self.count():
            return set()
        return set(scan_columns(self.open(), ["fingerprint"]).column("fingerprint").unique().to_pylist())

    def commit_source(self, source: str, rows: pa.RecordBatchReader | pa.Table, dimension: int,
                      replaced_docs: Iterable[str]) -> CommitResult:
        """Upsert a source's new chunks and delete the old chunks of replaced documents in ONE commit."""
        table = self.open_or_create(dimension)
        replaced = sorted(set(replaced_docs))
        merge = table.merge_insert("chunk_id").when_matched_update_all().when_not_matched_insert_all()
        if replaced:
            ids = ", ".join(quote(d) for d in replaced)
            merge = merge.when_not_matched_by_source_delete(f"source = {quote(source)} AND doc_id IN ({ids})")
        result = merge.execute(rows)
        return CommitResult(table.version, result.num_inserted_rows, result.num_updated_rows,
                            result.num_deleted_rows)

    def ensure_indexes(self) -> dict[str, str]:
        """Create missing indexes (chunk id BTREE, native FTS, ANN past min_rows) and fold new rows in."""
        table = self.open()
        existing = {tuple(i.columns): i for i in table.list_indices()}
        actions: dict[str, str] = {}
        rows = table.count_rows()
        if ("chunk_id",) not in existing and rows:
            table.create_index("chunk_id", config=BTree())
            actions["chunk_id"] = "created BTREE"
        for column in FTS_COLUMNS if self.config.fts and rows else ():
            if (column,) not in existing:
                table.create_index(column, config=FTS(remove_stop_words=self.config.fts_stop_words, stem=True))
                actions[column] = "created FTS"
        ann = self.config.ann
        if ("vector",) not in existing and rows >= max(ann.min_rows, 256):
            partitions = ann.num_partitions or max(1, int(math.sqrt(rows) / 2))
            table.create_index(metric="cosine", vector_column_name="vector", index_type=ann.index_type,
                               num_partitions=partitions)
            actions["vector"] = f"created {ann.index_type} ({partitions} partitions)"
        stats = {i.name: table.index_stats(i.name) for i in table.list_indices()}
        unindexed = [name for name, stat in stats.items() if stat and stat.num_unindexed_rows]
        if unindexed:  # pruning is retention's job: optimize() alone prunes at 7 days and refuses tagged versions
            table.optimize(cleanup_older_than=timedelta(days=36500))
            actions["optimize"] = f"folded new rows into {', '.join(sorted(unindexed))}"
        return actions

    def has_ann(self) -> bool:
        return self.exists() and any(tuple(i.columns) == ("vector",) for i in self.open().list_indices())

    def tag(self, source: str) -> tuple[int, str]:
        """Tag the current version; the tag names the source, the time and the version."""
        table = self.open()
        version = table.version
        tag = f"{source}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-v{version}"
        if tag not in table.tags.list():
            table.tags.create(tag, version)
        return version, tag
