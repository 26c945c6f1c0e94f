"""The evaluation sets of bench_ranking.py: msmarco-5k (BEIR, judged) and generated heading/cloze sets over the
pydoc and lancedb-docs corpora, each with its index table (cached under the work directory)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ragindex.chunking import make_chunker
from ragindex.config import ChunkerConfig, IndexConfig, SourceConfig
from ragindex.datasets.generators import generate, masked_texts
from ragindex.datasets.rows import DatasetRow
from ragindex.documents import Document
from ragindex.evaluation.beir import EvalSet, load_beir
from ragindex.evaluation.tables import document_chunks, write_chunks
from ragindex.index_store import IndexStore
from ragindex.sources import read_source

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SOURCES = {
    "msmarco-5k": SourceConfig(name="msmarco", type="beir", path=str(SHARED / "datasets" / "msmarco-5k")),
    "pydoc": SourceConfig(name="pydoc", type="pydoc_topics"),
    "lancedb-docs": SourceConfig(name="lancedb-docs", type="directory",
                                 path=str(SHARED / "corpora" / "lancedb-docs" / "2025-05-31")),
}


@dataclass
class RankingSet:
    """An evaluation set and the tables it is measured on: `store` is what is searched (cloze sentences
    removed for generated sets), `original` the unmasked table (the answer sentences are still there)."""

    name: str
    evalset: EvalSet
    store: IndexStore
    original: IndexStore
    unit: str  # what the qrels judge: "doc" or "chunk"
    rows: list[DatasetRow]


def _table(uri: Path, name: str, build, titles: str = "off") -> IndexStore:
    store = IndexStore.at(IndexConfig(uri=str(uri), title_vectors=titles), name)
    if not store.exists():
        build(store)
    return store


def titled(rs: RankingSet, uri: Path, embedder) -> IndexStore:
    """The searched table of a set again, with title vectors (index.title_vectors: auto): the same rows and
    vectors, each distinct heading path (else title) embedded once."""
    def build(store: IndexStore) -> None:
        table = rs.store.open().to_arrow()
        vectors = np.stack(table.column("vector").to_numpy(zero_copy_only=False)).astype(np.float32)
        write_chunks(store, table.drop_columns(["vector"]).to_pylist(), embedder, vectors)

    return _table(uri, f"{rs.store.name}-titles", build, titles="auto")


def _chunks(name: str, embedder) -> list[dict]:
    documents = [d for d in read_source(SOURCES[name]) if isinstance(d, Document)]
    return document_chunks(documents, make_chunker(ChunkerConfig(), embedder))


def load_set(name: str, uri: Path, embedder, n: int = 100) -> RankingSet:
    """Build (once) and load one evaluation set with its tables."""
    if name == "msmarco-5k":
        store = _table(uri, "msmarco", lambda s: write_chunks(s, _chunks(name, embedder), embedder))
        return RankingSet(name, load_beir(SOURCES[name].resolved_path()), store, store, "doc", [])
    original = _table(uri, name, lambda s: write_chunks(s, _chunks(name, embedder), embedder))
    table = original.open().to_arrow()
    chunks = table.drop_columns(["vector"]).to_pylist()
    rows = generate(chunks, ["heading", "cloze"], n=n, seed=0, corpus_version=f"{name}-bench").rows
    masked = masked_texts(chunks, rows)

    def build_masked(store: IndexStore) -> None:
        vectors = np.stack(table.column("vector").to_numpy(zero_copy_only=False)).astype(np.float32)
        changed = [i for i, c in enumerate(chunks) if c["chunk_id"] in masked]
        vectors[changed] = embedder.embed([masked[chunks[i]["chunk_id"]] for i in changed])
        write_chunks(store, [{**c, "text": masked.get(c["chunk_id"], c["text"])} for c in chunks], embedder, vectors)

    store = _table(uri, f"{name}-masked", build_masked)
    evalset = EvalSet({r.query_id: r.query for r in rows}, {r.query_id: dict(r.judgements) for r in rows},
                      generators={r.query_id: r.generator for r in rows})
    return RankingSet(name, evalset, store, original, "chunk", rows)
