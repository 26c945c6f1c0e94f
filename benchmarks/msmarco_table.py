"""MS MARCO passages (BEIR layout) and a LanceDB index table built from them directly, for the query benchmarks."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa

from ragindex.config import AnnConfig, IndexConfig
from ragindex.documents import PUBLIC
from ragindex.index_store import IndexStore, index_schema

DATASET = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "msmarco-5k"


def load_corpus(folder: Path = DATASET, limit: int | None = None) -> tuple[list[str], list[str]]:
    """(doc ids, texts) of corpus.jsonl, title and text joined like the beir source does."""
    ids, texts = [], []
    with (folder / "corpus.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            doc = json.loads(line)
            ids.append(doc["_id"])
            texts.append(f"{doc.get('title') or ''}\n{doc['text']}".strip())
            if limit and len(ids) == limit:
                break
    return ids, texts


def build_table(uri: Path, ids: list[str], texts: list[str], vectors: np.ndarray, fingerprint: str,
                ann_min_rows: int) -> IndexStore:
    """One commit of every row into a fresh table, then the project's indexes (ANN when rows >= ann_min_rows).
    Every row is its own document: the noisy copies of the ANN case are distinct passages, so the default
    per-document cap does not fold them together (which would measure the cap, not the index)."""
    store = IndexStore.at(IndexConfig(uri=str(uri), ann=AnnConfig(min_rows=ann_min_rows)))
    n, dimension = vectors.shape
    hashes = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
    columns = {
        "chunk_id": ids, "doc_id": ids, "source": ["msmarco"] * n, "text": texts,
        "text_hash": hashes, "heading_path": [""] * n, "position": [0] * n,
        "n_tokens": [0] * n, "title": [""] * n, "path": ids, "format": ["beir"] * n, "doc_hash": hashes,
        "doc_size": [len(t) for t in texts], "doc_mtime": [0.0] * n, "chunker_hash": ["bench"] * n,
        "fingerprint": [fingerprint] * n, "page": [None] * n, "kind": ["text"] * n, "image_path": [None] * n,
        "groups": [[PUBLIC]] * n,  # every caller may retrieve them (a null groups list is visible to nobody)
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), dimension),
    }
    schema = index_schema(dimension)
    table = pa.table({name: pa.array(columns[name], schema.field(name).type) if name != "vector" else columns[name]
                      for name in schema.names}, schema=schema)
    store.commit_source("msmarco", table, dimension, [])
    store.ensure_indexes()
    return store
