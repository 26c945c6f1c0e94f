"""The build, step by step: collect documents, chunk, embed (through the cache), commit to the index.

Every step reads its parents' data from the staging tables (ragindex/staging.py) at the versions they produced
and returns a small, JSON-serialisable record of what it did (`StepOutput`). A step with nothing to do writes
nothing: a source that did not change costs a scan of its manifests and no model load.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from itertools import chain

import numpy as np
import pyarrow as pa

from ragindex.access import AccessPolicy
from ragindex.chunking import Chunker
from ragindex.config import IndexConfig, SourceConfig
from ragindex.documents import Document, Skipped
from ragindex.embedding_cache import EMBED_BATCH, EmbeddingCache, Progress, fill_cache_parts
from ragindex.errors import ConfigError
from ragindex.heap import return_freed_memory
from ragindex.index_store import IndexStore, index_schema
from ragindex.lance_tables import in_list, scan_in
from ragindex.sources import read_source
from ragindex.staging import DOCUMENT_SCHEMA, StageStore, StageTable
from ragindex.step_output import StepOutput
from ragindex.titles import TITLE_HASH, TITLE_VECTOR, title_column, title_hash, title_texts

TEXT_PART = 8 * EMBED_BATCH  # texts the embed step holds at once
SAMPLE_ROWS = 10
INDEX_BATCH = 8192  # index rows per record batch of the commit: its vector copies stay small


class DeletionGuardError(RuntimeError):
    """A run would delete more of a source than the configuration allows."""


@dataclass
class DocumentsResult(StepOutput):
    """What one run found in a source: counts, skipped inputs, and the staging version it left."""

    table: str
    source: str
    version: int
    added: int
    modified: int
    deleted: int
    unchanged: int
    total: int
    skipped: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.modified or self.deleted)

    def counts(self) -> dict[str, int]:
        return {"added": self.added, "modified": self.modified, "deleted": self.deleted, "unchanged": self.unchanged}


@dataclass
class ChunksResult(StepOutput):
    table: str
    source: str
    version: int
    documents_version: int
    chunked_documents: int  # documents (re)cut by this run
    dropped_documents: int  # documents whose chunks were removed (deleted from the source)
    chunks: int  # chunks written by this run
    tokens: int
    total: int  # chunks the source has now
    chunker_hash: str
    run_id: str
    sample: list[dict] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class EmbeddingsResult(StepOutput):
    table: str
    source: str
    chunks_version: int
    embedded: int  # distinct texts embedded by this run
    reused: int  # distinct texts of this run's chunks that were cached already
    fingerprint: dict
    chunks_run_id: str = ""  # the run whose chunks these are ("" when the chunk step wrote none)
    precision: str = ""  # what embedded this run's texts ("" when the model was not loaded)
    runtime: dict = field(default_factory=dict)  # backend, probe cosine, CPU flags, timings (Embedder.runtime_info)
    seconds: float = 0.0


@dataclass
class IndexBuild(StepOutput):
    table: str
    source: str
    uri: str
    version: int
    tag: str
    rows: int
    source_rows: int
    inserted: int
    updated: int
    deleted: int
    unchanged: bool
    indexes: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    mlflow_run_id: str | None = None


def collect_documents(source: SourceConfig, stage: StageTable, table: str, run_id: str) -> DocumentsResult:
    """Compare the source with the documents it had; stage added and modified documents in one commit (streamed
    to it in bounded batches, so memory does not grow with the source).

    Files whose size and mtime are unchanged are not read (unless `always_hash`); a file whose content is the
    same but whose mtime moved gets its new mtime recorded, so it is not read again next time."""
    start = time.perf_counter()
    policy = AccessPolicy(source.access)
    previous = stage.columns(["doc_id", "content_hash", "size", "mtime", "access_hash"])
    rows = list(zip(*(previous.column(c).to_pylist() for c in previous.column_names), strict=True))
    known = {d: (h, s, m) for d, h, s, m, _ in rows}
    current = {d for d, *_, a in rows if a == policy.fingerprint}  # groups resolved under today's policy
    counts = {"added": 0, "modified": 0, "unchanged": 0}
    changed = stage.spool()
    skipped: list[Skipped] = []
    seen: set[str] = set()
    for item in read_source(source, {d: v for d, v in known.items() if d in current}):
        if isinstance(item, str):
            counts["unchanged"] += 1
            seen.add(item)
        elif isinstance(item, Skipped):
            skipped.append(item)
            if item.doc_id in known:  # indexed before, unreadable now: kept as it was
                seen.add(item.doc_id)
        else:
            seen.add(item.doc_id)
            old = known.get(item.doc_id)
            status = "added" if old is None else "modified" if old[0] != item.content_hash else "unchanged"
            counts[status] += 1
            if status != "unchanged" or (old[1], old[2]) != (item.size, item.mtime) or item.doc_id not in current:
                changed.add({**asdict(item), "run_id": run_id, "access_hash": policy.fingerprint})
    deleted = sorted(set(known) - seen)
    try:
        if changed.count or deleted:
            merge = stage.open().merge_insert("doc_id").when_matched_update_all().when_not_matched_insert_all()
            if deleted:
                merge = merge.when_not_matched_by_source_delete(in_list("doc_id", deleted))
            merge.execute(changed.reader())
    finally:
        changed.close()
    kept = sum(1 for s in skipped if s.doc_id in known)
    return DocumentsResult(table, source.name, stage.version(), counts["added"], counts["modified"], len(deleted),
                           counts["unchanged"], len(seen) - kept, [{"path": s.path, "reason": s.reason}
                                                                    for s in skipped], time.perf_counter() - start)


def _doc_states(table: pa.Table, id_column: str, hash_column: str, extra: str | None = None) -> dict[str, tuple]:
    columns = [table.column(id_column).to_pylist(), table.column(hash_column).to_pylist()]
    if extra:
        columns.append(table.column(extra).to_pylist())
    return {row[0]: tuple(row[1:]) for row in zip(*columns, strict=True)}


def _read_documents(stage: StageTable, version: int, doc_ids: set[str]) -> Iterator[Document]:
    """The staged documents with these ids: one streaming scan when they are most of the table, else `IN`
    lookups."""
    table = stage.open(version)
    names = [f.name for f in DOCUMENT_SCHEMA if f.name not in ("run_id", "access_hash")]
    if len(doc_ids) * 4 > table.count_rows():
        parts = stage.batches(names, version)
    else:
        parts = scan_in(table, names, "doc_id", doc_ids)
    for part in parts:
        for batch in part.to_batches(256) if isinstance(part, pa.Table) else [part]:
            for row in batch.to_pylist():
                if row["doc_id"] in doc_ids:
                    yield Document(**{**row, "images": tuple(row["images"] or ()),
                                      "groups": None if row["groups"] is None else tuple(row["groups"])})


def chunk_documents(documents: DocumentsResult, document_stage: StageTable, chunk_stage: StageTable,
                    chunker: Chunker, run_id: str) -> ChunksResult:
    """Cut every document whose content (or the chunker) changed since its chunks were made; drop the chunks of
    documents the source no longer has. One commit to the chunk table, its rows streamed in bounded batches."""
    start = time.perf_counter()
    docs = _doc_states(document_stage.columns(["doc_id", "content_hash"], documents.version), "doc_id",
                       "content_hash")
    chunked = _doc_states(chunk_stage.columns(["doc_id", "doc_hash", "chunker_hash"]), "doc_id", "doc_hash",
                          "chunker_hash")
    todo = {d for d, (h,) in docs.items() if chunked.get(d) != (h, chunker.config_hash)}
    dropped = set(chunked) - set(docs)
    rows = chunk_stage.spool()
    sample: list[dict] = []
    tokens = 0
    for document in _read_documents(document_stage, documents.version, todo):
        for chunk in chunker.chunk(document):
            row = {**vars(chunk), "title": document.title, "path": document.path, "format": document.format,
                   "doc_hash": document.content_hash, "doc_size": document.size, "doc_mtime": document.mtime,
                   "chunker_hash": chunker.config_hash, "groups": list(document.visible_to), "run_id": run_id}
            if len(sample) < SAMPLE_ROWS:
                sample.append({k: row[k] for k in ("chunk_id", "doc_id", "heading_path", "n_tokens", "text")})
            rows.add(row)
            tokens += chunk.n_tokens
    replaced = (todo & set(chunked)) | dropped
    try:
        if rows.count or replaced:
            merge = chunk_stage.open().merge_insert("chunk_id").when_matched_update_all() \
                .when_not_matched_insert_all()
            if replaced:
                merge = merge.when_not_matched_by_source_delete(
                    None if replaced == set(chunked) else in_list("doc_id", sorted(replaced)))
            merge.execute(rows.reader())
    finally:
        rows.close()
    table = chunk_stage.open()
    return ChunksResult(documents.table, documents.source, table.version, documents.version, len(todo), len(dropped),
                        rows.count, tokens, table.count_rows(), chunker.config_hash, run_id, sample,
                        time.perf_counter() - start)


def _missing_texts(chunk_stage: StageTable, version: int, missing: list[str], rows: int
                   ) -> Iterator[dict[str, str]]:
    """The texts of these hashes, TEXT_PART at a time in the order of `missing`'s scan: one streaming scan when
    they are most of the table, else `IN` lookups."""
    wanted = set(missing)
    parts = chunk_stage.batches(["text_hash", "text"], version) if len(wanted) * 4 > rows \
        else scan_in(chunk_stage.open(version), ["text_hash", "text"], "text_hash", missing)
    texts: dict[str, str] = {}
    for part in parts:
        for h, t in zip(part.column("text_hash").to_pylist(), part.column("text").to_pylist(), strict=True):
            if h in wanted:
                wanted.discard(h)
                texts[h] = t
                if len(texts) >= TEXT_PART:
                    yield texts
                    texts = {}
    yield texts


def _trimmed(parts: Iterator[dict[str, str]]) -> Iterator[dict[str, str]]:
    """The parts, with the heap freed after each is embedded: batches of ever-new shapes otherwise leave the
    process holding every freed batch's memory (measured: +480 MiB at 50k passages, gone after a trim), and the
    index step that follows in this process starts from the model's footprint, not from the embed step's peak."""
    for part in parts:
        yield part
        return_freed_memory()


def embed_chunks(chunks: ChunksResult, chunk_stage: StageTable, cache: EmbeddingCache,
                 embedder_factory: Callable[[], object], fingerprint: dict,
                 progress: Progress | None = None, titles: bool = False) -> EmbeddingsResult:
    """Make sure the cache holds a vector for every chunk text of the source (and, with `titles`, every title
    text: ragindex/titles.py); the texts are read (TEXT_PART at a time), and the model loaded, only for hashes
    the cache lacks (an unchanged source reads one hash column, two more with titles)."""
    start = time.perf_counter()
    table = chunk_stage.columns(["text_hash", "run_id", *(["heading_path", "title"] if titles else [])],
                                chunks.version)
    hashes = table.column("text_hash").to_pylist()
    fresh = {h for h, r in zip(hashes, table.column("run_id").to_pylist(), strict=True)
             if chunks.chunks and r == chunks.run_id}
    named = {title_hash(t): t for t in title_texts(table)} if titles else {}
    named.pop(None, None)
    missing = cache.missing(hashes)
    chunk_missing = set(missing)
    new_titles = [h for h in cache.missing(named) if h not in chunk_missing]  # a title may equal a chunk text
    loaded: list[object] = []

    def factory():
        loaded.append(embedder_factory())
        return loaded[-1]

    title_parts = ({h: named[h] for h in new_titles[i:i + TEXT_PART]} for i in range(0, len(new_titles), TEXT_PART))
    parts = chain(title_parts, _missing_texts(chunk_stage, chunks.version, missing, len(hashes)) if missing else ())
    total = len(missing) + len(new_titles)
    embedded = fill_cache_parts(_trimmed(parts), total, factory, cache, progress) if total else 0
    runtime = (loaded[0].runtime_info() or {}) if loaded and embedded else {}
    reused = max(0, len(fresh) - (embedded - len(new_titles)))  # embedded counts the title texts too
    return EmbeddingsResult(chunks.table, chunks.source, chunks.version, embedded, reused,
                            fingerprint, chunks.run_id if chunks.chunks else "", str(runtime.get("precision", "")),
                            runtime, time.perf_counter() - start)


def guard_deletions(source: str, indexed: dict[str, int], staged: dict[str, int], config: IndexConfig) -> int:
    """Chunks a commit loses (of deleted documents, plus the net shrink of the others); stops the run when they
    exceed the configured share of the source, as when a folder is unmounted or a chunker breaks."""
    old_total = sum(indexed.values())
    lost = sum(max(0, n - staged.get(d, 0)) for d, n in indexed.items())
    if old_total and lost / old_total > config.max_delete_fraction and not config.confirm_deletions:
        raise DeletionGuardError(
            f"source '{source}': this run would delete {lost} of {old_total} chunks "
            f"({lost / old_total:.0%} > max_delete_fraction {config.max_delete_fraction:.0%}); is the source "
            "missing or unmounted? If the deletions are intended set index.confirm_deletions: true")
    return lost


def _counts(doc_ids: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for d in doc_ids:
        counts[d] = counts.get(d, 0) + 1
    return counts


def _index_rows(chunk_stage: StageTable, version: int, doc_ids: set[str], vectors: dict[str, np.ndarray],
                dimension: int, fingerprint_id: str, titles: bool = False, embed_titles: bool = False
                ) -> pa.RecordBatchReader:
    """The index rows of these documents; `titles` writes the title columns, filled when `embed_titles` (a table
    that has them, built on with title vectors off, gets them empty)."""
    schema = index_schema(dimension, titles=titles)
    names = [f.name for f in schema if f.name not in ("vector", "fingerprint", TITLE_HASH, TITLE_VECTOR)]

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in chunk_stage.batches(names, version):
            selected = batch.filter(pa.array([d in doc_ids for d in batch.column("doc_id").to_pylist()]))
            for start in range(0, selected.num_rows, INDEX_BATCH):
                yield _index_batch(selected.slice(start, INDEX_BATCH), names, schema, vectors, dimension,
                                   fingerprint_id, titles, embed_titles)

    return pa.RecordBatchReader.from_batches(schema, batches())


def _index_batch(part: pa.RecordBatch, names: list[str], schema: pa.Schema, vectors: dict[str, np.ndarray],
                 dimension: int, fingerprint_id: str, titles: bool, embed_titles: bool) -> pa.RecordBatch:
    """One batch of index rows: the staged columns, the cached vectors, the fingerprint (and title columns)."""
    hashes = part.column("text_hash").to_pylist()
    matrix = np.stack([vectors[h] for h in hashes]).astype(np.float32, copy=False)
    if titles and not np.isfinite(matrix).all():  # LanceDB would null it (title columns: on_bad_vectors)
        raise ValueError("a cached chunk vector is not finite; clear the embedding cache of this model")
    columns = {n: part.column(n) for n in names}
    columns["fingerprint"] = pa.array([fingerprint_id] * len(hashes), pa.string())
    columns["vector"] = pa.FixedSizeListArray.from_arrays(pa.array(matrix.ravel()), dimension)
    if titles:
        title_hashes = [title_hash(t) for t in title_texts(part)] if embed_titles else [None] * len(hashes)
        columns[TITLE_HASH] = pa.array(title_hashes, pa.string())
        columns[TITLE_VECTOR] = title_column(title_hashes, vectors, dimension)
    return pa.RecordBatch.from_pydict(columns, schema=schema)


def _untitled_docs(store: IndexStore, source: str, staged: dict[str, str | None], doc_of: dict[str, str]) -> set[str]:
    """Documents with an indexed chunk whose title hash is not the one its staged chunk has now."""
    if not store.exists() or TITLE_HASH not in store.open().schema.names:
        return set(doc_of.values())
    rows = store.source_rows(source, ["chunk_id", TITLE_HASH])
    return {doc_of[c] for c, h in zip(rows.column("chunk_id").to_pylist(), rows.column(TITLE_HASH).to_pylist(),
                                      strict=True) if c in staged and staged[c] != h}


def _commit(chunks: ChunksResult, chunk_stage: StageTable, store: IndexStore, cache: EmbeddingCache,
            fingerprint_id: str, staged_rows: pa.Table, changed_docs: set[str], replaced: set[str], titles: bool,
            title_hashes: list[str | None]):
    """The one commit of the changed documents' chunks (with their title vectors when `title_hashes`); their
    vectors are freed before the indexes are built. With nothing to replace or update (a new source, or only new
    documents) the rows stream into an append."""
    doc_ids = staged_rows.column("doc_id").to_pylist()
    new = [(c, h) for c, d, h in zip(staged_rows.column("chunk_id").to_pylist(), doc_ids,
                                     staged_rows.column("text_hash").to_pylist(), strict=True) if d in changed_docs]
    needed = [h for _, h in new] + [h for h, d in zip(title_hashes, doc_ids, strict=False) if h and d in changed_docs]
    vectors = cache.get(needed)
    lost = [h for h in needed if h not in vectors]
    if lost:
        raise RuntimeError(f"embedding cache lacks {len(lost)} vectors (e.g. {lost[0]}); materialize embeddings")
    append = not replaced and not store.holds_any([c for c, _ in new])
    rows = _index_rows(chunk_stage, chunks.version, changed_docs, vectors, cache.dimension, fingerprint_id, titles,
                       bool(title_hashes))
    return store.commit_source(chunks.source, rows, cache.dimension, replaced, fingerprint_id,
                               len(new) if append else None)


def write_index(chunks: ChunksResult, chunk_stage: StageTable, store: IndexStore, cache: EmbeddingCache,
                fingerprint_id: str) -> IndexBuild:
    """Commit to the index what its rows of the source lack or hold too many of (one commit), keep the indexes
    current and tag the version. Nothing to commit: no commit and no new tag (the source's last tag stands)."""
    start = time.perf_counter()
    held = store.fingerprint()
    if held not in (None, fingerprint_id):
        raise ConfigError(f"table '{store.name}' holds vectors of model {held}, not {fingerprint_id}; build the new "
                          "model into its green table and promote it")
    titles = store.config.title_vectors != "off" or (store.exists() and TITLE_VECTOR in store.open().schema.names)
    staged_rows = chunk_stage.columns(["chunk_id", "doc_id", "text_hash", *(["heading_path", "title"] if titles
                                                                              else [])], chunks.version)
    index_rows = store.source_rows(chunks.source, ["chunk_id", "doc_id"])
    staged_ids = set(staged_rows.column("chunk_id").to_pylist())
    indexed_ids = set(index_rows.column("chunk_id").to_pylist())
    doc_of = dict(zip(staged_rows.column("chunk_id").to_pylist(), staged_rows.column("doc_id").to_pylist(),
                      strict=True))
    doc_of_indexed = dict(zip(index_rows.column("chunk_id").to_pylist(), index_rows.column("doc_id").to_pylist(),
                              strict=True))
    changed_docs = {doc_of[c] for c in staged_ids - indexed_ids} | {doc_of_indexed[c] for c in indexed_ids - staged_ids}
    title_hashes = [title_hash(t) for t in title_texts(staged_rows)] if store.config.title_vectors != "off" else []
    if title_hashes:  # rows indexed without their title vector (title vectors just turned on) are rewritten
        changed_docs |= _untitled_docs(store, chunks.source, dict(zip(staged_rows.column("chunk_id").to_pylist(),
                                                                      title_hashes, strict=True)), doc_of)
    if not changed_docs and store.exists():
        indexes = store.ensure_indexes()  # complete what a run killed after its commit left undone
        last = store.latest_tag(chunks.source)
        unchanged = last is not None and not indexes
        tag = last if unchanged else store.tag(chunks.source)
        return IndexBuild(chunks.table, chunks.source, store.uri, tag.version, str(tag), store.count(),
                          store.count(chunks.source), 0, 0, 0, unchanged, indexes, time.perf_counter() - start)
    guard_deletions(chunks.source, _counts(index_rows.column("doc_id").to_pylist()),
                    _counts(staged_rows.column("doc_id").to_pylist()), store.config)
    replaced = changed_docs & set(doc_of_indexed.values())
    result = _commit(chunks, chunk_stage, store, cache, fingerprint_id, staged_rows, changed_docs, replaced, titles,
                     title_hashes)
    return_freed_memory()  # the commit's vectors and write buffers: the index builds start from a lower peak
    indexes = store.ensure_indexes()
    tag = store.tag(chunks.source)
    return IndexBuild(chunks.table, chunks.source, store.uri, tag.version, str(tag), store.count(),
                      store.count(chunks.source), result.inserted, result.updated, result.deleted, False, indexes,
                      time.perf_counter() - start)


def build_source(source: SourceConfig, stages: StageStore, store: IndexStore, chunker: Chunker,
                 cache: EmbeddingCache, embedder_factory: Callable[[], object], fingerprint: dict, run_id: str,
                 progress: Progress | None = None) -> IndexBuild:
    """All four steps for one source in this process (used where a table is built inside a step, such as the
    evaluation table of a generated data set)."""
    docs_stage, chunk_stage = stages.documents(store.name, source.name), stages.chunks(store.name, source.name)
    documents = collect_documents(source, docs_stage, store.name, run_id)
    chunks = chunk_documents(documents, docs_stage, chunk_stage, chunker, run_id)
    embed_chunks(chunks, chunk_stage, cache, embedder_factory, fingerprint, progress,
                 titles=store.config.title_vectors != "off")
    return write_index(chunks, chunk_stage, store, cache, fingerprint["id"])
