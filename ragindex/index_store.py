"""The LanceDB index table: schema, one-commit-per-source upserts, version tags and indexes."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

import pyarrow as pa
from lancedb.index import FTS, BTree, IvfFlat, IvfHnswSq, IvfPq

from ragindex.build_tag import BuildTag
from ragindex.config import ANN_MIN_ROWS_FLOOR, IndexConfig
from ragindex.errors import ConfigError
from ragindex.lance_tables import IN_LIST_BATCH, in_list, quote, scan_columns, table_names
from ragindex.titles import TITLE_HASH, TITLE_VECTOR

FINGERPRINT_KEY = "ragindex.fingerprint"
ANN_KINDS = {"IVF_HNSW_SQ": IvfHnswSq, "IVF_PQ": IvfPq, "IVF_FLAT": IvfFlat}  # index.ann.index_type -> its config
FTS_COLUMNS = ("text", "title")
FILTER_FIELDS = ("source", "doc_id", "title", "path", "format", "heading_path", "fingerprint", "kind")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def index_schema(dimension: int, fingerprint_id: str | None = None, titles: bool = False) -> pa.Schema:
    """Vector, text and metadata columns; document-level fields ride on every chunk row (the manifest). The
    model fingerprint is also schema metadata, so which model a table holds is known without a scan. `titles`
    adds the title vector and its text hash (ragindex/titles.py)."""
    metadata = {FINGERPRINT_KEY: fingerprint_id} if fingerprint_id else None
    extra = [(TITLE_HASH, pa.string()), (TITLE_VECTOR, pa.list_(pa.float32(), dimension))] if titles else []
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
        ("groups", pa.list_(pa.string())),  # access groups that may retrieve the chunk (ragindex/access.py)
        ("vector", pa.list_(pa.float32(), dimension)),
        *extra,
    ], metadata=metadata)


def where_clause(filters: dict[str, str]) -> str | None:
    """`field = 'value'` terms joined by AND, for known metadata fields only."""
    terms = []
    for name, value in filters.items():
        if name not in FILTER_FIELDS or not _IDENT.match(name):
            raise ConfigError(f"unknown filter field '{name}'; use one of {', '.join(FILTER_FIELDS)}")
        terms.append(f"{name} = {quote(value)}")
    return " AND ".join(terms) or None


def vector_query(table, vector, k: int, exact: bool, nprobes: int, ef: int, refine_factor: int | None = None,
                 where: str | None = None, column: str = "vector"):
    """The one way this project asks LanceDB for the k nearest rows by cosine: exact (brute force) or through the
    ANN index with its probe settings (HNSW needs ef >= k), prefiltered by `where`."""
    query = table.search(vector, vector_column_name=column).distance_type("cosine")
    if exact:
        query = query.bypass_vector_index()
    else:
        query = query.nprobes(nprobes).ef(max(ef, k))
        if refine_factor:
            query = query.refine_factor(refine_factor)
    if where:
        query = query.where(where, prefilter=True)
    return query.limit(k)


def physical_table(db, logical: str, fingerprint_id: str) -> str:
    """The table a model writes for a logical table: the logical one while it holds this model's vectors (or is
    new), else a green table `<logical>-<fingerprint>` built beside it (blue/green on a model change)."""
    held = table_fingerprint(db, logical)
    return logical if held in (None, fingerprint_id) else f"{logical}-{fingerprint_id[:8]}"


def logical_table(physical: str, fingerprint_id: str) -> str:
    """The logical table a physical one serves: a green table `<logical>-<fingerprint>` names its blue one."""
    suffix = f"-{fingerprint_id[:8]}"
    return physical[: -len(suffix)] if physical.endswith(suffix) else physical


def table_fingerprint(db, name: str) -> str | None:
    """The model fingerprint a table's vectors carry (schema metadata; a column scan for older tables)."""
    if name not in table_names(db):
        return None
    table = db.open_table(name)
    metadata = table.schema.metadata or {}
    if FINGERPRINT_KEY.encode() in metadata:
        return metadata[FINGERPRINT_KEY.encode()].decode()
    if not table.count_rows():
        return None
    held = scan_columns(table, ["fingerprint"]).column("fingerprint").unique().to_pylist()
    return held[0] if len(held) == 1 else ",".join(sorted(held))


@dataclass(frozen=True)
class CommitResult:
    version: int
    inserted: int
    updated: int
    deleted: int


class IndexStore:
    """A LanceDB table of chunks; every vector row carries its model fingerprint. Opened once, then reused."""

    def __init__(self, db, config: IndexConfig, name: str | None = None):
        self.db = db
        self.config = config
        self.uri = config.resolved_uri()
        self.name = name or config.table
        self._table = None

    @classmethod
    def at(cls, config: IndexConfig, name: str | None = None) -> IndexStore:
        """A table at `index.uri` on a connection of its own (the resources share one per run)."""
        from ragindex.storage import connect

        return cls(connect(config.resolved_uri()), config, name)

    def exists(self) -> bool:
        return self._table is not None or self.name in table_names(self.db)

    def open(self, version: int | str | None = None):
        """The table (latest version), or a checked-out copy at a version number or tag."""
        if version is not None:
            return self._checkout(version)
        if self._table is None:
            if not self.exists():
                raise ConfigError(f"index table '{self.name}' not found at {self.uri}; build it first with "
                                  "'ragindex index' or 'make run'")
            self._table = self.db.open_table(self.name)
        else:
            self._table.checkout_latest()
        return self._table

    def _checkout(self, version: int | str):
        self.open()  # a missing table stops with its one line
        table = self.db.open_table(self.name)
        try:
            table.checkout(version)
        except (ValueError, TypeError, RuntimeError, OSError) as error:
            known = ", ".join(sorted(table.tags.list())[-5:]) or "none"
            raise ConfigError(f"table '{self.name}' has no version or tag '{version}' (latest version "
                              f"{table.version}; newest tags: {known})") from error
        return table

    def open_or_create(self, dimension: int, fingerprint_id: str | None = None):
        """The table, created with this model's fingerprint if new; columns added to the schema since a table
        was built are added to it, empty (filled as its documents are re-chunked)."""
        titles = self.config.title_vectors != "off"
        if not self.exists():
            self._table = self.db.create_table(self.name, schema=index_schema(dimension, fingerprint_id, titles),
                                               exist_ok=True)
        table = self.open()
        missing = [f for f in index_schema(dimension, titles=titles) if f.name not in table.schema.names]
        if missing:
            table.add_columns(missing)
        return table

    def count(self, source: str | None = None) -> int:
        if not self.exists():
            return 0
        return self.open().count_rows(f"source = {quote(source)}" if source else None)

    def digest(self, version: int | str | None = None) -> str:
        """Content identity of the table (its sorted, content-addressed chunk ids)."""
        ids = sorted(scan_columns(self.open(version), ["chunk_id"]).column("chunk_id").to_pylist())
        return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]

    def fingerprint(self) -> str | None:
        return table_fingerprint(self.db, self.name)

    def source_rows(self, source: str, columns: list[str]) -> pa.Table:
        """Some columns of every row of one source (no vectors unless asked)."""
        if not self.exists():
            return pa.table({c: pa.array([], pa.string()) for c in columns})
        return scan_columns(self.open(), columns, f"source = {quote(source)}")

    def holds_any(self, chunk_ids: list[str]) -> bool:
        """Whether any of these chunk ids is in the table (any source): `IN` counts on the chunk-id index."""
        if not self.exists() or not self.count():
            return False
        table = self.open()
        return any(table.count_rows(in_list("chunk_id", chunk_ids[start : start + IN_LIST_BATCH]))
                   for start in range(0, len(chunk_ids), IN_LIST_BATCH))

    def commit_source(self, source: str, rows: pa.RecordBatchReader | pa.Table, dimension: int,
                      replaced_docs: Iterable[str], fingerprint_id: str | None = None,
                      append: int | None = None) -> CommitResult:
        """Upsert a source's new chunks and delete the old chunks of replaced documents in ONE commit. `append`
        (the row count) says the rows replace nothing and no id is in the table: then they stream into one
        append, which holds a batch at a time (a merge holds the whole input)."""
        table = self.open_or_create(dimension, fingerprint_id)
        # a chunk without a title has a null title vector, which LanceDB otherwise refuses as a bad vector
        bad_vectors = "null" if TITLE_VECTOR in rows.schema.names else "error"
        if append is not None:
            table.add(rows, on_bad_vectors=bad_vectors)
            return CommitResult(table.version, append, 0, 0)
        replaced = sorted(set(replaced_docs))
        merge = table.merge_insert("chunk_id").when_matched_update_all().when_not_matched_insert_all()
        if replaced:
            merge = merge.when_not_matched_by_source_delete(
                f"source = {quote(source)} AND {in_list('doc_id', replaced)}")
        result = merge.execute(rows, on_bad_vectors=bad_vectors)
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
        for column in self._vector_columns(table):  # title vectors: rows without a title have none
            held = rows if column == "vector" else table.count_rows(f"{column} IS NOT NULL")
            if (column,) not in existing and held >= max(self.config.ann.min_rows, ANN_MIN_ROWS_FLOOR):
                actions[column] = self._create_ann(table, held, column=column)
        stats = {i.name: table.index_stats(i.name) for i in table.list_indices()}
        unindexed = [name for name, stat in stats.items() if stat and stat.num_unindexed_rows]
        if unindexed:  # pruning is retention's job: optimize() alone prunes at 7 days and refuses tagged versions
            table.optimize(cleanup_older_than=timedelta(days=36500))
            actions["optimize"] = f"folded new rows into {', '.join(sorted(unindexed))}"
        return actions

    def _vector_columns(self, table) -> list[str]:
        """The columns searched by vector: the chunk vector, and the title vector when configured and present."""
        titles = self.config.title_vectors != "off" and TITLE_VECTOR in table.schema.names
        return ["vector", TITLE_VECTOR] if titles else ["vector"]

    def _create_ann(self, table, rows: int, replace: bool = False, column: str = "vector") -> str:
        """Unless `ann.num_partitions` is set, LanceDB sizes the partitions per index type (about 1M rows each for
        IVF_HNSW_*, 4-8k for IVF_FLAT/IVF_PQ). Measured on a 100k-row table, IVF_HNSW_SQ, nprobes 20, ef 64:
        1 partition 2.9 ms p50 at recall@10 0.98; 64 partitions 4.9 ms, 0.95; sqrt(rows)/2 = 158 partitions
        (this project's earlier default) 9.5 ms, 0.93 (docs/benchmarks.md)."""
        ann = self.config.ann
        kind = ANN_KINDS[ann.index_type]
        table.create_index(column, config=kind(distance_type="cosine", num_partitions=ann.num_partitions),
                           replace=replace)
        partitions = ann.num_partitions or "LanceDB's default"
        return f"{'rebuilt' if replace else 'created'} {ann.index_type} ({partitions} partitions, {rows} rows)"

    def rebuild_ann(self) -> str | None:
        """Train the ANN index again over every row when new rows were folded in as delta segments: LanceDB never
        compacts fragments that different segments cover, so without this an incremental table keeps a fragment
        per build."""
        table = self.open()
        stats = {tuple(i.columns): table.index_stats(i.name) for i in table.list_indices()}
        done = [f"{c}: {self._create_ann(table, table.count_rows(), replace=True, column=c)}"
                for c in self._vector_columns(table)
                if stats.get((c,)) is not None and stats[(c,)].num_indices > 1]
        return "; ".join(done) or None

    def has_ann(self) -> bool:
        return self.exists() and any(tuple(i.columns) == ("vector",) for i in self.open().list_indices())

    def tags(self) -> dict[str, int]:
        return {name: int(info["version"]) for name, info in self.open().tags.list().items()}

    def latest_tag(self, source: str) -> BuildTag | None:
        """The newest build tag of a source (the version that source was last built at)."""
        tags = [t for t in (BuildTag.parse(name) for name in self.tags()) if t and t.source == source]
        return max(tags, key=lambda t: (t.version, t.time), default=None)

    def tag(self, source: str) -> BuildTag:
        """Tag the current version with a new build tag of the source."""
        table = self.open()
        tag = BuildTag.new(source, table.version)
        if str(tag) not in table.tags.list():
            table.tags.create(str(tag), tag.version)
        return tag
