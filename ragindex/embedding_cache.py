"""Embedding cache keyed by (model fingerprint, text hash): a text is embedded once per model, ever."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import lancedb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ragindex.index_store import scan_columns, table_names

_LOOKUP_BATCH = 512


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class EmbeddingCache:
    """One LanceDB table per model fingerprint with columns text_hash and vector."""

    def __init__(self, uri: str, fingerprint_id: str, dimension: int):
        self.db = lancedb.connect(uri)
        self.name = f"embeddings_{fingerprint_id}"
        self.dimension = dimension
        self.schema = pa.schema([("text_hash", pa.string()),
                                 ("vector", pa.list_(pa.float32(), dimension))])
        self._table = self.db.open_table(self.name) if self.name in table_names(self.db) else None

    def _open(self):
        if self._table is None:
            self._table = self.db.create_table(self.name, schema=self.schema, exist_ok=True)
        return self._table

    def known(self) -> set[str]:
        """All text hashes with a vector for this model."""
        if self._table is None:
            return set()
        if not self._table.count_rows():
            return set()
        return set(scan_columns(self._table, ["text_hash"]).column("text_hash").to_pylist())  # not the vectors

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
        if len(hashes) * 4 > self._table.count_rows():  # most of the cache: one scan beats many lookups
            table = self._table.to_arrow()
            table = table.filter(pc.is_in(table.column("text_hash"), pa.array(hashes, pa.string())))
            return self._collect(table, found)
        for start in range(0, len(hashes), _LOOKUP_BATCH):
            part = hashes[start : start + _LOOKUP_BATCH]
            where = f"text_hash IN ({', '.join(_quote(h) for h in part)})"
            rows = self._table.search().where(where).select(["text_hash", "vector"]).limit(len(part) * 4)
            self._collect(rows.to_arrow(), found)
        return found

    def _collect(self, table: pa.Table, found: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vectors = np.asarray(table.column("vector").combine_chunks().values, dtype=np.float32)
        vectors = vectors.reshape(-1, self.dimension)
        for text_hash, vector in zip(table.column("text_hash").to_pylist(), vectors, strict=True):
            found[text_hash] = vector
        return found
