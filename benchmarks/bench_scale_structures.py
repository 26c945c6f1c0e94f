"""Costs of the structures that must hold at 100M chunks, measured on synthetic tables: time and peak memory of the
embedding cache's membership checks and GC at 1M rows, the index step's manifest read and deletion-guard counts at
1M rows, and one source commit (a `merge_insert`, and the streamed append a new source gets) plus the ANN and FTS
index builds at 100k rows.

Peak memory is the process's resident set sampled every 5 ms during the call, less the resident set before it
(Arrow and Lance allocate outside Python's heap, which tracemalloc would miss).

    python benchmarks/bench_scale_structures.py [--rows 1000000] [--index-rows 100000] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa

from ragindex import cache_gc
from ragindex.build import _counts, guard_deletions
from ragindex.config import IndexConfig
from ragindex.embedding_cache import EmbeddingCache
from ragindex.index_store import IndexStore, index_schema
from ragindex.lance_tables import scan_columns
from ragindex.staging import StageStore, chunk_schema
from ragindex.storage import connect

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "msmarco-5k" / "corpus.jsonl"
DIM = 384
BATCH = 100_000


def measure(fn) -> tuple[object, dict]:
    """fn()'s value, its wall seconds and the peak resident-set growth (MiB) while it ran."""
    process = psutil.Process()
    base = process.memory_info().rss
    peak = [base]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(0.005)

    thread = threading.Thread(target=sample)
    thread.start()
    start = time.perf_counter()
    value = fn()
    seconds = time.perf_counter() - start
    done.set()
    thread.join()
    return value, {"seconds": round(seconds, 3), "peak_mib": round((max(peak[0], process.memory_info().rss) - base)
                                                                    / 2**20, 1)}


def hashes(start: int, stop: int) -> list[str]:
    return [hashlib.sha256(str(i).encode()).hexdigest() for i in range(start, stop)]


def vectors(n: int, seed: int) -> pa.FixedSizeListArray:
    flat = np.random.default_rng(seed).normal(size=n * DIM).astype(np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat), DIM)


def cache_costs(rows: int, root: str) -> dict:
    cache = EmbeddingCache(root, "bench", DIM)
    for start in range(0, rows, BATCH):
        stop = min(start + BATCH, rows)
        cache._open().add(pa.table({"text_hash": hashes(start, stop), "vector": vectors(stop - start, start)}))
    _, build = measure(cache.maintain)
    out = {"rows": rows, "maintain (BTree on text_hash)": build}
    small = hashes(rows - 5_000, rows + 5_000)  # one source's update: half cached, half new
    large = hashes(rows // 2, rows // 2 + 500_000)  # a re-chunked big source: half the cache asked at once
    for label, wanted in (("missing, 10k asked (indexed lookups)", small), ("missing, 500k asked (one scan)", large)):
        found, cost = measure(lambda w=wanted: cache.missing(w))
        out[label] = {**cost, "missing": len(found)}
    _, out["get, 10k asked"] = measure(lambda: cache.get(small))

    def old_membership():  # before: every hash of the cache as one Arrow column, and as a Python set
        column = scan_columns(cache._table, ["text_hash"]).column("text_hash")
        return len(set(column.to_pylist()))

    _, out["before: all hashes loaded (Arrow column + Python set)"] = measure(old_membership)
    live_table = connect(root + "-index").create_table("chunks", pa.table({"text_hash": hashes(0, rows * 9 // 10)}))
    live, out["gc: live keys of a table holding 90% of the hashes"] = measure(lambda: cache_gc.live_keys([live_table]))
    result, cost = measure(lambda: cache_gc.collect_garbage(cache, live))
    out["gc: delete 10% and compact"] = {**cost, "deleted": result["deleted"]}
    return out


def manifest_costs(rows: int, root: str) -> dict:
    """write_index's reads: the source's (chunk_id, doc_id) from the index and the staged chunks' (chunk_id, doc_id,
    text_hash), the id sets and doc maps it builds from both and the changed documents, and the deletion guard's
    per-document counts (10 chunks a document; the staged chunks lack the last 5% of the index's)."""
    ids, doc_ids = hashes(0, rows), [f"doc-{i // 10}" for i in range(rows)]
    connect(root).create_table("chunks", pa.table({
        "chunk_id": pa.array(ids), "doc_id": pa.array(doc_ids), "source": pa.array(["big"] * rows)}))
    store = IndexStore(connect(root), IndexConfig(uri=root))
    stage = StageStore(f"{root}-staging").chunks("chunks", "big")
    staged = rows - rows // 20
    schema = chunk_schema()
    data = {f.name: pa.nulls(staged, f.type) for f in schema}
    data.update(chunk_id=pa.array(ids[:staged]), doc_id=pa.array(doc_ids[:staged]),
                text_hash=pa.array(hashes(rows, rows + staged)), source=pa.array(["big"] * staged))
    stage.db.create_table(stage.name, pa.table(data, schema=schema))
    version = stage.version()

    def manifest():  # as write_index does it, title columns off
        staged_rows = stage.columns(["chunk_id", "doc_id", "text_hash"], version)
        index_rows = store.source_rows("big", ["chunk_id", "doc_id"])
        staged_ids = set(staged_rows.column("chunk_id").to_pylist())
        indexed_ids = set(index_rows.column("chunk_id").to_pylist())
        doc_of = dict(zip(staged_rows.column("chunk_id").to_pylist(), staged_rows.column("doc_id").to_pylist(),
                          strict=True))
        doc_of_indexed = dict(zip(index_rows.column("chunk_id").to_pylist(),
                                  index_rows.column("doc_id").to_pylist(), strict=True))
        changed = {doc_of[c] for c in staged_ids - indexed_ids} | \
            {doc_of_indexed[c] for c in indexed_ids - staged_ids}
        return staged_rows, index_rows, len(changed)

    (staged_rows, index_rows, _), out = measure(manifest)
    indexed_docs, staged_docs = index_rows.column("doc_id").to_pylist(), staged_rows.column("doc_id").to_pylist()
    counts, guard = measure(lambda: guard_deletions("big", _counts(indexed_docs), _counts(staged_docs),
                                                    IndexConfig()))
    return {"rows": rows, "manifest read + id sets + doc maps": out, "deletion guard counts": {**guard,
                                                                                              "lost": counts}}


def index_costs(rows: int, root: str) -> dict:
    """One source commit of `rows` chunks as a `merge_insert` (what a build that replaces or updates rows commits),
    then the ANN (IVF_HNSW_SQ) and FTS builds the index step runs; and the same rows streamed into one append of
    another table (what a new source, or one with only new documents, commits)."""
    texts = [json.loads(line)["text"] for line in open(CORPUS, encoding="utf-8")]
    schema = index_schema(DIM)
    data = {f.name: pa.nulls(rows, f.type) for f in schema}
    data.update(chunk_id=pa.array(hashes(0, rows)), doc_id=pa.array([f"d{i}" for i in range(rows)]),
                source=pa.array(["big"] * rows), text=pa.array([texts[i % len(texts)] for i in range(rows)]),
                title=pa.array([""] * rows), vector=vectors(rows, 7))
    store = IndexStore(connect(root), IndexConfig(uri=root, ann={"min_rows": 256}))
    rows_table = pa.table(data, schema=schema)
    _, commit = measure(lambda: store.commit_source("big", rows_table, DIM, []))
    _, indexes = measure(store.ensure_indexes)
    table = store.open()
    _, optimize = measure(lambda: table.optimize(cleanup_older_than=timedelta(days=36500)))
    appended = IndexStore(store.db, store.config, "appended")
    _, append = measure(lambda: appended.commit_source(
        "big", pa.RecordBatchReader.from_batches(schema, rows_table.to_batches(4096)), DIM, [], append=rows))
    return {"rows": rows, "one merge_insert commit": commit, "ANN + FTS + chunk_id index builds": indexes,
            "optimize (nothing new)": optimize, "indexes": [i.index_type for i in table.list_indices()],
            "one streamed append commit (new source)": append}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--index-rows", type=int, default=100_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="bench-scale-")
    result = {"date": time.strftime("%Y-%m-%d"), "cache": cache_costs(args.rows, f"{root}/cache"),
              "manifest": manifest_costs(args.rows, f"{root}/manifest"),
              "index": index_costs(args.index_rows, f"{root}/index")}
    print(json.dumps(result, indent=2) if args.json else result)


if __name__ == "__main__":
    main()
