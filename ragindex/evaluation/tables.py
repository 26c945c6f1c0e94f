"""Index tables written in one go from documents or chunk rows, for evaluation tables, benchmarks and tests."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict

import numpy as np
import pyarrow as pa

from ragindex.chunking import Chunker
from ragindex.documents import Document, sha256_hex
from ragindex.embedding import Embedder
from ragindex.index_store import IndexStore, index_schema
from ragindex.titles import TITLE_HASH, TITLE_VECTOR, title_column, title_hash, title_text


def document_chunks(documents: Iterable[Document], chunker: Chunker) -> list[dict]:
    """Chunk rows (every index column but the vector and fingerprint) of documents, in document order."""
    rows = []
    for doc in documents:
        for chunk in chunker.chunk(doc):
            rows.append({**asdict(chunk), "title": doc.title, "path": doc.path, "format": doc.format,
                         "doc_hash": doc.content_hash, "doc_size": doc.size, "doc_mtime": doc.mtime,
                         "chunker_hash": chunker.config_hash, "groups": list(doc.visible_to)})
    return rows


def write_chunks(store: IndexStore, chunks: Sequence[dict], embedder: Embedder,
                 vectors: np.ndarray | None = None) -> IndexStore:
    """Embed (unless `vectors` are given) and commit chunk rows in one commit, then build the indexes; with
    the store's index.title_vectors not off, each distinct title text is embedded once into title_vector."""
    vectors = embedder.embed([c["text"] for c in chunks]) if vectors is None else vectors
    titles = store.config.title_vectors != "off"
    schema = index_schema(embedder.dimension, titles=titles)
    columns = {name: [c.get(name) for c in chunks] for name in schema.names if name not in ("vector", TITLE_VECTOR)}
    columns["text_hash"] = [sha256_hex(c["text"]) for c in chunks]
    columns["fingerprint"] = [embedder.fingerprint.id] * len(chunks)
    columns["vector"] = pa.FixedSizeListArray.from_arrays(pa.array(np.asarray(vectors, np.float32).ravel()),
                                                          embedder.dimension)
    if titles:
        texts = [title_text(c.get("heading_path"), c.get("title")) for c in chunks]
        columns[TITLE_HASH] = [title_hash(t) for t in texts]
        distinct = sorted({t for t in texts if t})
        embedded = dict(zip(map(title_hash, distinct), embedder.embed(distinct) if distinct else [], strict=True))
        columns[TITLE_VECTOR] = title_column(columns[TITLE_HASH], embedded, embedder.dimension)
    store.commit_source(str(chunks[0]["source"]), pa.Table.from_pydict(columns, schema=schema), embedder.dimension,
                        [])
    store.ensure_indexes()
    return store
