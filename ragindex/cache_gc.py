"""Garbage collection of the embedding cache: vectors that no kept index version and no staged chunk uses.

Tied to retention: it runs after a cleanup removed versions, so "kept" is retention's policy (the latest version
and every version still tagged). Live hashes are held as sorted 64-bit keys (8 bytes a hash, not a Python set of
strings), so memory stays bounded at 100M rows; a key collision can only keep a dead vector, never delete a live
one. A vector deleted here and needed again later is simply embedded again.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ragindex.embedding_cache import SCAN_ROWS, EmbeddingCache
from ragindex.index_store import table_fingerprint
from ragindex.lance_tables import table_names
from ragindex.titles import TITLE_HASH

GC_SLACK = 1.25  # collect once the cache holds this many times the rows its tables use
VERSION_GRACE = timedelta(hours=1)  # cache versions younger than this survive (a reader may be on one)
_HEX = np.full(256, 255, dtype=np.uint8)
_HEX[np.frombuffer(b"0123456789abcdef", np.uint8)] = np.arange(16, dtype=np.uint8)
_HEX[np.frombuffer(b"ABCDEF", np.uint8)] = np.arange(10, 16, dtype=np.uint8)


def hash_keys(hashes: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """uint64 keys of hex text hashes: their first 16 hex digits, parsed without a Python loop."""
    if isinstance(hashes, pa.ChunkedArray):
        hashes = hashes.combine_chunks()
    fixed = pc.cast(pc.utf8_slice_codeunits(hashes, 0, 16), pa.binary(16))
    raw = np.frombuffer(fixed.buffers()[1], np.uint8, count=16 * len(fixed), offset=16 * fixed.offset)
    digits = _HEX[raw].reshape(-1, 16).astype(np.uint64)
    if (digits > 15).any():
        raise ValueError("text hashes must be hex digests")
    return (digits << (np.arange(60, -1, -4, dtype=np.uint64))).sum(axis=1, dtype=np.uint64)


def _hash_batches(table) -> Iterator[pa.Array]:
    """Every text hash of a table, and its title hashes where it has title vectors (ragindex/titles.py)."""
    columns = [c for c in ("text_hash", TITLE_HASH) if c in table.schema.names]
    query = table.search().select(columns).limit(max(table.count_rows(), 1))
    for batch in query.to_batches(SCAN_ROWS):
        for column in columns:
            hashes = batch.column(column).drop_null()
            if len(hashes):
                yield hashes


def live_keys(tables: Iterable) -> np.ndarray:
    """Sorted, distinct keys of every text hash the given tables (or checked-out versions) hold."""
    parts = [np.unique(hash_keys(column)) for table in tables for column in _hash_batches(table)]
    return np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.uint64)


def kept_versions(db, fingerprint_id: str) -> Iterator:
    """The latest version and every tagged version of each table in `db` that holds this model's vectors."""
    for name in sorted(table_names(db)):
        if table_fingerprint(db, name) != fingerprint_id:
            continue
        table = db.open_table(name)
        yield table
        for version in sorted({int(info["version"]) for info in table.tags.list().values()} - {table.version}):
            old = db.open_table(name)
            old.checkout(version)
            yield old


def staged_chunks(staging_db) -> Iterator:
    """Every staged chunk table (built or about to be: their vectors are needed by the next index step)."""
    for name in sorted(table_names(staging_db)):
        if name.endswith("__chunks"):
            yield staging_db.open_table(name)


def collect_garbage(cache: EmbeddingCache, live: np.ndarray) -> dict:
    """Delete cached vectors whose key is not live (streamed: a delete per scan batch), then compact and prune
    the cache's own versions older than VERSION_GRACE."""
    before = cache.rows()
    deleted = 0
    for batch in cache.scan(["text_hash"]):
        column = batch.column("text_hash")
        keys = hash_keys(column)
        at = np.minimum(np.searchsorted(live, keys), max(len(live) - 1, 0))
        dead = live[at] != keys if len(live) else np.ones(len(keys), bool)
        if dead.any():
            cache.delete(column.filter(pa.array(dead)).to_pylist())
            deleted += int(dead.sum())
    if deleted:
        cache.compact(prune_older_than=VERSION_GRACE)
    return {"rows_before": before, "deleted": deleted, "rows_after": cache.rows(), "live_keys": int(len(live))}


def collect_after_retention(cache: EmbeddingCache, index_db, staging_db) -> dict:
    """Garbage-collect the cache against the kept versions of its model's index tables and the staged chunks."""
    return collect_garbage(cache, live_keys([*kept_versions(index_db, cache.fingerprint_id),
                                             *staged_chunks(staging_db)]))


def due(cache: EmbeddingCache, used_rows: int) -> bool:
    """True when the cache holds GC_SLACK times more rows than its tables use."""
    return cache.rows() > GC_SLACK * max(used_rows, 1)
