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
    """Embed (unless `vectors` are given) and commit chunk rows in one commit, then build the indexes."""
    vectors = embedder.embed([c["text"] for c in chunks]) if vectors is None else vectors
    schema = index_schema(embedder.dimension)
    columns = {name: [c.get(name) for c in chunks] for name in schema.names if name != "vector"}
    columns["text_hash"] = [sha256_hex(c["text"]) for c in chunks]
    columns["fingerprint"] = [embedder.fingerprint.id] * len(chunks)
    columns["vector"] = pa.FixedSizeListArray.from_arrays(pa.array(np.asarray(vectors, np.float32).ravel()),
                                                          embedder.dimension)
    store.commit_source(str(chunks[0]["source"]), pa.Table.from_pydict(columns, schema=schema), embedder.dimension,
                        [])
    store.ensure_indexes()
    return store
