"""Seeded, deterministic samples of embeddings to compare, read from an index table or a vectors Parquet file.

Every loader returns at most `max_rows` chunk rows (whole documents when sampling by document), the model
fingerprint the vectors carry and each row's document id. `per_document` turns chunk rows into one row per
document (the normalised mean of its chunk vectors). The tests assume independent rows; chunks of one document
are alike, so on chunk rows two random halves of one corpus split by document look "drifted"
(benchmarks/bench_drift_real.py). Document rows keep the tests calibrated when documents, not chunks, are what
a batch adds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ragindex.lance_tables import quote

DEFAULT_MAX_ROWS = 20_000


@dataclass
class Sample:
    """A deterministic sample of one side's embeddings: (n, d) float32 rows and the model that made them."""

    label: str
    vectors: np.ndarray
    fingerprint: str | None
    total: int  # rows available before sampling
    ids: list[str] = field(default_factory=list)  # chunk ids (document ids once per_document), in row order
    texts: list[str] | None = None
    groups: list[str] | None = None  # each row's document id, when known
    unit: str = "chunk"

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    def describe(self) -> dict[str, Any]:
        return {"label": self.label, "rows": len(self), "unit": self.unit, "total": self.total,
                "fingerprint": self.fingerprint}


def per_document(sample: Sample) -> Sample:
    """One row per document: the L2-normalised mean of its chunk vectors (rows without a document id, or an
    already aggregated sample, are returned unchanged)."""
    if sample.unit == "document" or sample.groups is None:
        return sample
    if not len(sample):
        return Sample(sample.label, sample.vectors, sample.fingerprint, 0, [], None, [], "document")
    docs, index = np.unique(np.asarray(sample.groups, dtype=object).astype(str), return_inverse=True)
    sums = np.zeros((len(docs), sample.vectors.shape[1]), dtype=np.float64)
    np.add.at(sums, index, sample.vectors.astype(np.float64))
    sums /= np.bincount(index, minlength=len(docs))[:, None]
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    means = (sums / np.where(norms > 0, norms, 1.0)).astype(np.float32)
    return Sample(sample.label, means, sample.fingerprint, len(docs), docs.tolist(), None, docs.tolist(), "document")


def as_unit(sample: Sample, unit: str) -> Sample:
    """The sample as chunk rows or as document rows (see per_document)."""
    if unit not in ("chunk", "document"):
        raise ValueError(f"unit must be 'chunk' or 'document', got {unit!r}")
    return per_document(sample) if unit == "document" else sample


def pick_rows(keys: Sequence[tuple[str, str]], max_rows: int, seed: int, by_document: bool) -> list[int]:
    """Positions of the rows to keep among (chunk id, doc id) keys sorted by chunk id: a seeded sample of
    rows, or (by_document) whole documents in seeded order while their rows fit in max_rows."""
    if len(keys) <= max_rows:
        return list(range(len(keys)))
    if not by_document:
        return sample_positions(len(keys), max_rows, seed).tolist()
    rows_of: dict[str, list[int]] = {}
    for position, (_, doc) in enumerate(keys):
        rows_of.setdefault(doc, []).append(position)
    docs = sorted(rows_of)
    kept: list[int] = []
    for i in np.random.default_rng(seed).permutation(len(docs)):
        rows = rows_of[docs[i]]
        if kept and len(kept) + len(rows) > max_rows:
            continue
        kept.extend(rows)
        if len(kept) >= max_rows:
            break
    return sorted(kept)


def sample_positions(n: int, k: int, seed: int) -> np.ndarray:
    """At most k of range(n), chosen by the seeded generator, sorted (all of them when n <= k)."""
    if n <= k:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))


def _matrix(column: pa.ChunkedArray | pa.Array, dimension: int | None = None) -> np.ndarray:
    """A (fixed-size or variable) list<float> column as an (n, d) float32 matrix."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if len(array) == 0:
        return np.zeros((0, dimension or 0), dtype=np.float32)
    if pa.types.is_fixed_size_list(array.type):
        width = array.type.list_size
        return np.asarray(array.flatten(), dtype=np.float32).reshape(-1, width)
    return np.asarray(array.to_pylist(), dtype=np.float32)


def _one_fingerprint(values: Iterable[str | None], label: str) -> str | None:
    found = sorted({v for v in values if v})
    if len(found) > 1:
        raise ValueError(f"{label} mixes vectors of several models ({', '.join(found)}); compare one model at a time")
    return found[0] if found else None


def source_filter(source: str) -> str:
    """The `where` clause that keeps one source's rows of an index table."""
    return f"source = {quote(source)}"


def table_sample(table, label: str, *, where: str | None = None, exclude_ids: Iterable[str] = (),
                 max_rows: int = DEFAULT_MAX_ROWS, seed: int = 0, with_text: bool = False,
                 by_document: bool = True) -> Sample:
    """A seeded sample of an opened index table's vectors (check it out at a version or tag first).

    Reads chunk and document ids first (cheap), picks at most `max_rows` rows in chunk-id order with the seed
    (whole documents when `by_document`), then fetches only those rows' `vector` and `fingerprint` (and `text`
    when asked): the same inputs give the same sample whatever the table's physical layout.
    """
    if where:
        label += f" where {where}"
    vector_type = table.schema.field("vector").type
    dimension = vector_type.list_size if pa.types.is_fixed_size_list(vector_type) else None
    total_rows = table.count_rows(where) if where else table.count_rows()
    if not total_rows:
        return Sample(label, np.zeros((0, dimension or 0), dtype=np.float32), None, 0)
    query = table.search()
    if where:
        query = query.where(where)
    ids = query.with_row_id(True).select(["chunk_id", "doc_id"]).limit(total_rows).to_arrow()
    excluded = set(exclude_ids)
    keyed = sorted((c, d, r) for c, d, r in zip(ids.column("chunk_id").to_pylist(), ids.column("doc_id").to_pylist(),
                                                ids.column("_rowid").to_pylist(), strict=True) if c not in excluded)
    chosen = [keyed[i] for i in pick_rows([(c, d) for c, d, _ in keyed], max_rows, seed, by_document)]
    columns = ["chunk_id", "doc_id", "vector", "fingerprint"] + (["text"] if with_text else [])
    if not chosen:
        return Sample(label, np.zeros((0, dimension or 0), dtype=np.float32), None, 0, [], [] if with_text else None,
                      [])
    rows = table.take_row_ids([r for _, _, r in chosen]).select(columns).to_arrow()
    rows = rows.sort_by([("chunk_id", "ascending")])
    return Sample(label, _matrix(rows.column("vector"), dimension),
                  _one_fingerprint(rows.column("fingerprint").to_pylist(), label), len(keyed),
                  rows.column("chunk_id").to_pylist(), rows.column("text").to_pylist() if with_text else None,
                  rows.column("doc_id").to_pylist())


def parquet_sample(path: str | Path, max_rows: int = DEFAULT_MAX_ROWS, seed: int = 0,
                   fingerprint: str | None = None, chunks_path: str | Path | None = None,
                   by_document: bool = True) -> Sample:
    """A seeded sample of a vectors Parquet file (columns `vector`, optionally `chunk_id`, `doc_id`,
    `fingerprint`). Document ids come from the file or, by chunk id, from `chunks_path` (a build's
    chunks.parquet, whose rows the build's vectors.parquet follows)."""
    path = Path(path)
    names = pq.ParquetFile(path).schema_arrow.names
    if "vector" not in names:
        raise ValueError(f"{path} has no 'vector' column")
    columns = [c for c in ("chunk_id", "doc_id", "vector", "fingerprint") if c in names]
    table = pq.read_table(path, columns=columns)
    ids = table.column("chunk_id").to_pylist() if "chunk_id" in columns else [str(i) for i in range(table.num_rows)]
    docs: list[str] | None = table.column("doc_id").to_pylist() if "doc_id" in columns else None
    if docs is None and chunks_path is not None and Path(chunks_path).is_file() and "chunk_id" in columns:
        chunk_rows = pq.read_table(chunks_path, columns=["chunk_id", "doc_id"])
        doc_of = dict(zip(chunk_rows.column("chunk_id").to_pylist(), chunk_rows.column("doc_id").to_pylist(),
                          strict=True))
        docs = [doc_of.get(c, c) for c in ids]
    positions = pick_rows(list(zip(ids, docs or ids, strict=True)), max_rows, seed, by_document and docs is not None)
    picked = table.take(pa.array(positions, pa.int64())) if table.num_rows else table
    if "fingerprint" in columns:
        fingerprint = _one_fingerprint([*picked.column("fingerprint").to_pylist(), fingerprint], str(path))
    return Sample(str(path), _matrix(picked.column("vector")), fingerprint, table.num_rows,
                  [ids[i] for i in positions] if "chunk_id" in columns else [], None,
                  [docs[i] for i in positions] if docs is not None else None)


def batch_sample(rows: pa.Table, cache, label: str, max_rows: int = DEFAULT_MAX_ROWS, seed: int = 0,
                 by_document: bool = True) -> Sample:
    """A seeded sample of a build's chunks (columns chunk_id, doc_id, text_hash) with their cached vectors."""
    keyed = sorted(zip(rows.column("chunk_id").to_pylist(), rows.column("doc_id").to_pylist(),
                       rows.column("text_hash").to_pylist(), strict=True))
    chosen = [keyed[i] for i in pick_rows([(c, d) for c, d, _ in keyed], max_rows, seed, by_document)]
    found = cache.get(h for _, _, h in chosen)
    vectors = np.stack([found[h] for _, _, h in chosen]).astype(np.float32) if chosen else \
        np.zeros((0, cache.dimension), np.float32)
    return Sample(f"this run's new and changed chunks ({label})", vectors, cache.name.removeprefix("embeddings_"),
                  len(keyed), [c for c, _, _ in chosen], None, [d for _, d, _ in chosen])
