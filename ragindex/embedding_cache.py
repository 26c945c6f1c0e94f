"""Embedding cache keyed by (model fingerprint, text hash): a text is embedded once per model, ever.

`embed_through_cache` is the one loop that turns texts into vectors: cached vectors are read, missing texts
are embedded in batches, and each batch is committed to the cache before it is used, so a crash never loses
finished work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ragindex.lance_tables import scan_columns, scan_in, table_names
from ragindex.storage import connect

EMBED_BATCH = 1024  # texts per cache commit
Progress = Callable[[int, int], None]  # (texts embedded so far, texts to embed)


class EmbeddingCache:
    """One LanceDB table per model fingerprint with columns text_hash and vector."""

    def __init__(self, uri: str, fingerprint_id: str, dimension: int):
        self.db = connect(uri)
        self.name = f"embeddings_{fingerprint_id}"
        self.dimension = dimension
        self.schema = pa.schema([("text_hash", pa.string()), ("vector", pa.list_(pa.float32(), dimension))])
        self._table = self.db.open_table(self.name) if self.name in table_names(self.db) else None

    def _open(self):
        if self._table is None:
            self._table = self.db.create_table(self.name, schema=self.schema, exist_ok=True)
        return self._table

    def rows(self) -> int:
        return self._table.count_rows() if self._table is not None else 0

    def missing(self, text_hashes: Iterable[str]) -> list[str]:
        """The given hashes (deduplicated, in order) that have no vector for this model."""
        wanted = list(dict.fromkeys(text_hashes))
        rows = self.rows()
        if not wanted or not rows:
            return wanted
        if len(wanted) * 4 > rows:  # most of the cache: one column scan beats many lookups
            present = pc.is_in(pa.array(wanted, pa.string()),
                               value_set=scan_columns(self._table, ["text_hash"]).column("text_hash").combine_chunks())
        else:
            found = {h for part in scan_in(self._table, ["text_hash"], "text_hash", wanted)
                     for h in part.column("text_hash").to_pylist()}
            present = pa.array([h in found for h in wanted])
        return [h for h, hit in zip(wanted, present.to_pylist(), strict=True) if not hit]

    def put(self, text_hashes: Sequence[str], vectors: np.ndarray) -> None:
        """Append vectors; each call is one LanceDB commit, so a crash keeps every finished batch."""
        if not len(text_hashes):
            return
        flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).ravel())
        batch = pa.table({"text_hash": pa.array(list(text_hashes), pa.string()),
                          "vector": pa.FixedSizeListArray.from_arrays(flat, self.dimension)})
        self._open().add(batch)

    def get(self, text_hashes: Iterable[str]) -> dict[str, np.ndarray]:
        """Vectors for the given hashes (those present)."""
        hashes = list(dict.fromkeys(text_hashes))
        found: dict[str, np.ndarray] = {}
        if self._table is None or not hashes:
            return found
        if len(hashes) * 4 > self.rows():
            table = self._table.to_arrow()
            return self._collect(table.filter(pc.is_in(table.column("text_hash"), pa.array(hashes, pa.string()))),
                                 found)
        for part in scan_in(self._table, ["text_hash", "vector"], "text_hash", hashes):
            self._collect(part, found)
        return found

    def _collect(self, table: pa.Table, found: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vectors = np.asarray(table.column("vector").combine_chunks().values, dtype=np.float32)
        vectors = vectors.reshape(-1, self.dimension)
        for text_hash, vector in zip(table.column("text_hash").to_pylist(), vectors, strict=True):
            found[text_hash] = vector
        return found


def fill_cache(texts_by_hash: dict[str, str], embedder_factory: Callable[[], object], cache: EmbeddingCache,
               progress: Progress | None = None) -> int:
    """Embed the texts the cache lacks (the model is created only if one is missing); returns how many."""
    missing = cache.missing(texts_by_hash)
    if not missing:
        return 0
    embedder = embedder_factory()
    for start in range(0, len(missing), EMBED_BATCH):
        part = missing[start : start + EMBED_BATCH]
        vectors = embedder.embed([texts_by_hash[h] for h in part])
        bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
        if len(bad):  # never cached: a cached vector is reused by every later build
            raise ValueError(f"the model returned non-finite vectors for {len(bad)} of {len(part)} texts "
                             f"(text hash {part[bad[0]]}); nothing of this batch was cached")
        cache.put(part, vectors)
        if progress:
            progress(min(start + EMBED_BATCH, len(missing)), len(missing))
    return len(missing)


def embed_through_cache(texts: Sequence[str], hashes: Sequence[str], embedder_factory: Callable[[], object],
                        cache: EmbeddingCache, progress: Progress | None = None) -> np.ndarray:
    """Vectors for texts (keyed by their hashes), in order; only texts never embedded with this model are."""
    fill_cache(dict(zip(hashes, texts, strict=True)), embedder_factory, cache, progress)
    if not hashes:
        return np.zeros((0, cache.dimension), dtype=np.float32)
    found = cache.get(hashes)
    lost = [h for h in hashes if h not in found]
    if lost:
        raise RuntimeError(f"embedding cache lost {len(lost)} vectors (e.g. {lost[0]}); rerun the build")
    return np.stack([found[h] for h in hashes]).astype(np.float32)
