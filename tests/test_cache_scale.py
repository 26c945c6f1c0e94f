"""The embedding cache's structures for large tables: a BTree on text_hash past a threshold, membership and reads
that stream (indexed lookups or one filtered scan, same answers), compaction, and garbage collection of vectors
no kept index version or staged chunk uses."""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa

from ragindex import cache_gc, embedding_cache
from ragindex.embedding_cache import EmbeddingCache
from ragindex.storage import connect

DIM = 8


def hashes(n: int, salt: str = "") -> list[str]:
    return [hashlib.sha256(f"{salt}{i}".encode()).hexdigest() for i in range(n)]


def vectors(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)


def test_index_lookup_paths_compaction(tmp_path, monkeypatch):
    monkeypatch.setattr(embedding_cache, "INDEX_MIN_ROWS", 200)
    monkeypatch.setattr(embedding_cache, "COMPACT_FRAGMENTS", 4)
    cache = EmbeddingCache(str(tmp_path), "fp", DIM)
    stored, values = hashes(400), vectors(400)
    for start in range(0, 400, 50):  # eight small commits
        cache.put(stored[start : start + 50], values[start : start + 50])
    assert not cache.indexed()
    done = cache.maintain()
    assert cache.indexed() and set(done) == {"text_hash", "optimize"}
    assert cache._table.stats()["fragment_stats"]["num_fragments"] == 1

    asked = stored[:3] + hashes(2, salt="new")  # a small request: indexed IN lookups
    assert cache.missing(asked) == asked[3:]
    got = cache.get(asked)
    assert set(got) == set(stored[:3]) and np.allclose(got[stored[1]], values[1])
    many = stored[::2] + hashes(5, salt="x")  # most of the cache: one streamed scan
    assert cache.missing(many) == many[-5:]
    assert len(cache.get(many)) == 200 and np.allclose(cache.get(many)[stored[398]], values[398])


def test_hash_keys_match_python():
    values = hashes(5)
    keys = cache_gc.hash_keys(pa.array(values).slice(1))
    assert keys.tolist() == [int(h[:16], 16) for h in values[1:]]


def test_garbage_collection_keeps_what_kept_versions_and_staged_chunks_use(tmp_path):
    cache = EmbeddingCache(str(tmp_path / "cache"), "fp", DIM)
    stored = hashes(300)
    cache.put(stored, vectors(300))
    index_db, staging_db = connect(str(tmp_path / "index")), connect(str(tmp_path / "staging"))
    table = index_db.create_table("chunks", pa.table({"text_hash": stored[:100]}).replace_schema_metadata(
        {"ragindex.fingerprint": "fp"}))
    table.tags.create("docs-v1", table.version)  # a kept (tagged) version uses 0..99
    table.delete(f"text_hash IN ({', '.join(repr(h) for h in stored[:50])})")
    table.add(pa.table({"text_hash": stored[100:150]}))  # latest: 50..149
    staging_db.create_table("chunks__docs__chunks", pa.table({"text_hash": stored[150:170]}))
    index_db.create_table("other-model", pa.table({"text_hash": stored[200:]}).replace_schema_metadata(
        {"ragindex.fingerprint": "another"}))

    assert cache_gc.due(cache, used_rows=170)
    result = cache_gc.collect_after_retention(cache, index_db, staging_db)
    assert (result["deleted"], result["rows_after"]) == (130, 170)
    assert cache.missing(stored[:170]) == [] and cache.missing(stored[170:]) == stored[170:]
    assert not cache_gc.due(cache, used_rows=170)
