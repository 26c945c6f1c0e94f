"""The build, stage by stage: collect documents, chunk, embed (through the cache), commit to the index.

Each stage streams through a Parquet file in a per-run staging folder, so memory never holds the corpus.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ragindex.chunking import Chunker
from ragindex.config import IndexConfig, SourceConfig
from ragindex.documents import Document, Skipped
from ragindex.embedding import Embedder
from ragindex.embedding_cache import EmbeddingCache
from ragindex.errors import ConfigError
from ragindex.index_store import IndexStore, index_schema
from ragindex.manifest import ChangeSet, classify
from ragindex.sources import read_source

Progress = Callable[[str], None]
BATCH_ROWS = 2048
_DOC_SCHEMA = pa.schema([(n, t) for n, t in [
    ("doc_id", pa.string()), ("source", pa.string()), ("text", pa.string()), ("content_hash", pa.string()),
    ("title", pa.string()), ("path", pa.string()), ("size", pa.int64()), ("mtime", pa.float64()),
    ("format", pa.string())]])


class DeletionGuardError(RuntimeError):
    """A run would delete more of a source than the configuration allows."""


@dataclass
class DocumentBatch:
    """What changed in one source since the last indexed version, with the changed documents staged."""

    source: str
    staging: str
    changes: ChangeSet
    skipped: list[Skipped]
    total: int  # documents the source has now (read or unchanged)
    seconds: float
    indexed_chunks: dict[str, int] = field(default_factory=dict)  # doc id -> chunks in the index before this run

    @property
    def documents_path(self) -> Path:
        return Path(self.staging) / "documents.parquet"


@dataclass
class ChunkBatch:
    source: str
    staging: str
    chunks: int
    tokens: int
    chunker_hash: str
    seconds: float
    sample: list[dict] = field(default_factory=list)

    @property
    def chunks_path(self) -> Path:
        return Path(self.staging) / "chunks.parquet"


@dataclass
class EmbeddingBatch:
    source: str
    staging: str
    chunks: int
    embedded: int  # distinct texts embedded by this run
    reused: int  # chunks whose vector came from the cache
    fingerprint: dict
    seconds: float

    @property
    def vectors_path(self) -> Path:
        return Path(self.staging) / "vectors.parquet"


@dataclass
class IndexBuild:
    source: str
    table: str
    uri: str
    version: int
    tag: str
    rows: int
    inserted: int
    updated: int
    deleted: int
    indexes: dict[str, str]
    seconds: float
    mlflow_run_id: str | None = None
    staging: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def staging_dir(root: Path, table: str, source: str, run_id: str) -> Path:
    """A fresh folder for this run's intermediate files; older runs' folders of the source are removed."""
    parent = root / "staging" / table / source
    if parent.exists():
        for old in parent.iterdir():
            if old.name != run_id:
                shutil.rmtree(old, ignore_errors=True)
    path = parent / run_id
    path.mkdir(parents=True, exist_ok=True)
    return path


def collect_documents(source: SourceConfig, store: IndexStore, chunker_hash: str, fingerprint_id: str,
                      staging: Path) -> DocumentBatch:
    """Compare the source with the index's manifest; stage added and modified documents."""
    start = time.perf_counter()
    previous = store.manifest(source.name)
    current_ok = {d: (s.content_hash, s.size, s.mtime) for d, s in previous.items()
                  if s.chunker_hash == chunker_hash and s.fingerprint == fingerprint_id}
    changes, skipped, seen = ChangeSet(), [], set()
    rows: list[dict] = []
    with pq.ParquetWriter(staging / "documents.parquet", _DOC_SCHEMA) as writer:
        for item in read_source(source, current_ok):
            if isinstance(item, str):
                changes.unchanged.append(item)
                seen.add(item)
            elif isinstance(item, Skipped):
                skipped.append(item)
                if item.doc_id in previous:
                    changes.kept_skipped.append(item.doc_id)
                    seen.add(item.doc_id)
            else:
                seen.add(item.doc_id)
                status = classify(item.doc_id, item.content_hash, previous.get(item.doc_id), chunker_hash,
                                  fingerprint_id)
                getattr(changes, status).append(item.doc_id)
                if status != "unchanged":
                    rows.append(asdict(item))
                    if len(rows) >= 256:
                        writer.write_table(pa.Table.from_pylist(rows, _DOC_SCHEMA))
                        rows.clear()
        if rows:
            writer.write_table(pa.Table.from_pylist(rows, _DOC_SCHEMA))
    changes.deleted = sorted(set(previous) - seen)
    return DocumentBatch(source.name, str(staging), changes, skipped, len(seen) - len(changes.kept_skipped),
                         time.perf_counter() - start, {d: len(s.chunk_ids) for d, s in previous.items()})


def _iter_documents(path: Path) -> Iterator[Document]:
    for batch in pq.ParquetFile(path).iter_batches(batch_size=256):
        for row in batch.to_pylist():
            yield Document(**row)


def chunk_documents(batch: DocumentBatch, chunker: Chunker, fingerprint_id: str) -> ChunkBatch:
    """Cut every staged document into chunks carrying the document's manifest fields."""
    start = time.perf_counter()
    schema = index_schema(1).remove(index_schema(1).get_field_index("vector"))
    n_chunks = n_tokens = 0
    sample: list[dict] = []
    rows: list[dict] = []
    path = Path(batch.staging) / "chunks.parquet"
    with pq.ParquetWriter(path, schema) as writer:
        for document in _iter_documents(batch.documents_path):
            for chunk in chunker.chunk(document):
                row = {**asdict(chunk), "title": document.title, "path": document.path,
                       "format": document.format, "doc_hash": document.content_hash, "doc_size": document.size,
                       "doc_mtime": document.mtime, "chunker_hash": chunker.config_hash,
                       "fingerprint": fingerprint_id}
                rows.append(row)
                n_chunks += 1
                n_tokens += chunk.n_tokens
                if len(sample) < 10:
                    sample.append({k: row[k] for k in ("chunk_id", "doc_id", "heading_path", "n_tokens", "text")})
            if len(rows) >= BATCH_ROWS:
                writer.write_table(pa.Table.from_pylist(rows, schema))
                rows.clear()
        if rows:
            writer.write_table(pa.Table.from_pylist(rows, schema))
    return ChunkBatch(batch.source, batch.staging, n_chunks, n_tokens, chunker.config_hash,
                      time.perf_counter() - start, sample)


def embed_chunks(batch: ChunkBatch, embedder: Embedder, cache: EmbeddingCache,
                 progress: Progress | None = None) -> EmbeddingBatch:
    """Embed only texts the cache lacks for this model; write every chunk's vector in chunk order."""
    start = time.perf_counter()
    known = cache.known()
    dimension = embedder.dimension
    schema = pa.schema([("chunk_id", pa.string()), ("vector", pa.list_(pa.float32(), dimension))])
    embedded = reused = done = 0
    with pq.ParquetWriter(Path(batch.staging) / "vectors.parquet", schema) as writer:
        for part in pq.ParquetFile(batch.chunks_path).iter_batches(BATCH_ROWS, columns=["chunk_id", "text",
                                                                                         "text_hash"]):
            hashes = part.column("text_hash").to_pylist()
            texts = part.column("text").to_pylist()
            missing = {h: t for h, t in zip(hashes, texts, strict=True) if h not in known}
            fresh: dict[str, np.ndarray] = {}
            if missing:
                order = list(missing)
                vectors = embedder.embed([missing[h] for h in order])
                cache.put(order, vectors)  # committed before use: a crash never loses finished work
                fresh = dict(zip(order, vectors, strict=True))
                known.update(order)
                embedded += len(order)
            cached = cache.get(h for h in hashes if h not in fresh)
            reused += sum(1 for h in hashes if h not in fresh)
            lookup = {**cached, **fresh}
            lost = [h for h in hashes if h not in lookup]
            if lost:
                raise RuntimeError(f"embedding cache lost {len(lost)} vectors (e.g. {lost[0]}); rerun the build")
            matrix = np.stack([lookup[h] for h in hashes]).astype(np.float32)
            writer.write_table(pa.table({"chunk_id": part.column("chunk_id"),
                                         "vector": pa.FixedSizeListArray.from_arrays(pa.array(matrix.ravel()),
                                                                                      dimension)}))
            done += len(hashes)
            if progress:
                progress(f"embedded {done}/{batch.chunks} chunks ({embedded} new texts)")
    return EmbeddingBatch(batch.source, batch.staging, batch.chunks, embedded, reused,
                          embedder.fingerprint.as_dict(), time.perf_counter() - start)


def _index_rows(chunks: ChunkBatch, vectors: EmbeddingBatch, dimension: int) -> pa.RecordBatchReader:
    schema = index_schema(dimension)

    def batches() -> Iterator[pa.RecordBatch]:
        chunk_file = pq.ParquetFile(chunks.chunks_path).iter_batches(BATCH_ROWS)
        vector_file = pq.ParquetFile(vectors.vectors_path).iter_batches(BATCH_ROWS)
        for part, vec in zip(chunk_file, vector_file, strict=True):
            columns = {name: part.column(name) for name in part.schema.names}
            columns["vector"] = vec.column("vector")
            yield pa.RecordBatch.from_pydict(columns, schema=schema)

    return pa.RecordBatchReader.from_batches(schema, batches())


def check_model(store: IndexStore, fingerprint_id: str) -> None:
    """A table holds the vectors of one model; a different model goes to a new table, never mixed in."""
    others = store.fingerprints() - {fingerprint_id}
    if others:
        raise ConfigError(f"table '{store.name}' holds vectors of model {', '.join(sorted(others))}, not "
                          f"{fingerprint_id}; build the new model into another table (--name) and promote it")


def guard_deletions(batch: DocumentBatch, chunks: ChunkBatch, config: IndexConfig) -> int:
    """Chunks this run loses (of deleted documents, plus the net shrink of modified ones); stops the run when
    they exceed the configured share of the source, as when a folder is unmounted or a chunker breaks."""
    indexed = batch.indexed_chunks  # the manifest as read at the start of this run: no second table scan
    old_total = sum(indexed.values())
    new_docs = pq.read_table(chunks.chunks_path, columns=["doc_id"]).column("doc_id").to_pylist()
    lost = sum(indexed[d] for d in batch.changes.deleted)
    modified = set(batch.changes.modified)
    lost += max(0, sum(indexed[d] for d in modified) - sum(1 for d in new_docs if d in modified))
    if old_total and lost / old_total > config.max_delete_fraction and not config.confirm_deletions:
        raise DeletionGuardError(
            f"source '{batch.source}': this run would delete {lost} of {old_total} chunks "
            f"({lost / old_total:.0%} > max_delete_fraction {config.max_delete_fraction:.0%}); is the source "
            "missing or unmounted? If the deletions are intended set index.confirm_deletions: true")
    return lost


def write_index(batch: DocumentBatch, chunks: ChunkBatch, vectors: EmbeddingBatch, store: IndexStore,
                dimension: int) -> IndexBuild:
    """One commit per source (upserts + deletions), then indexes kept current and a version tag."""
    start = time.perf_counter()
    guard_deletions(batch, chunks, store.config)
    if chunks.chunks or batch.changes.replaced or not store.exists():
        result = store.commit_source(batch.source, _index_rows(chunks, vectors, dimension), dimension,
                                     batch.changes.replaced)
        inserted, updated, deleted = result.inserted, result.updated, result.deleted
    else:
        inserted = updated = deleted = 0
    indexes = store.ensure_indexes()
    version, tag = store.tag(batch.source)
    return IndexBuild(batch.source, store.name, store.uri, version, tag, store.count(), inserted, updated,
                      deleted, indexes, time.perf_counter() - start, staging=batch.staging)
