"""The Ray embed path against in-process embedding on the same cores and the same 5k MS MARCO passages.

Each configuration fills a fresh embedding cache with every passage through `fill_cache` (model loading and the
per-batch cache commits included, as in the embed step). Ray runs on a local head on 127.0.0.1 started before
the clock (its start-up is reported apart): 1 actor with every core, then one actor per core.

    python benchmarks/bench_ray.py [--limit N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from machine_info import cpu_flags, cpu_model

from ragindex.compute.ray_embed import RayEmbedder, connect
from ragindex.config import ComputeConfig, EmbedderConfig
from ragindex.documents import sha256_hex
from ragindex.embedding import load_embedder
from ragindex.embedding_cache import EmbeddingCache, fill_cache

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "msmarco-5k" / "corpus.jsonl"


def passages(limit: int) -> dict[str, str]:
    with CORPUS.open(encoding="utf-8") as lines:  # not splitlines(): passages hold U+2028
        texts = [json.loads(line)["text"] for _, line in zip(range(limit), lines, strict=False)]
    return {sha256_hex(t): t for t in texts}


def timed_fill(texts: dict[str, str], factory, dimension: int, fingerprint: str) -> dict[str, float]:
    """Wall seconds of the whole fill, and texts/s after the first committed batch (start-up excluded)."""
    cache = EmbeddingCache(tempfile.mkdtemp(prefix="bench-ray-"), fingerprint, dimension)
    marks: list[tuple[float, int]] = []
    start = time.perf_counter()
    assert fill_cache(texts, factory, cache, lambda done, _: marks.append((time.perf_counter(), done))) == len(texts)
    end = time.perf_counter()
    (first, rows) = marks[0]
    return {"seconds": round(end - start, 1), "first_batch_seconds": round(first - start, 1),
            "texts_per_second": round(len(texts) / (end - start), 1),
            "steady_texts_per_second": round((len(texts) - rows) / max(end - first, 1e-9), 1)}


def lscpu_flags(wanted: tuple[str, ...] = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "fma")) -> str:
    """The matrix-relevant flags lscpu reports."""
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    flags = next((line.split(":", 1)[1].split() for line in out.splitlines() if line.startswith("Flags")), [])
    return " ".join(f for f in wanted if f in flags)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=5000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    texts = passages(args.limit)
    config = EmbedderConfig(device="cpu")
    probe = load_embedder(config.model, config.batch_size, "cpu")
    tokens = sum(probe.count_tokens(list(texts.values())))
    cores = os.cpu_count() or 1
    load = os.getloadavg()
    load_embedder.cache_clear()  # the in-process run loads its model inside the clock, like the actors

    local = timed_fill(texts, lambda: load_embedder(config.model, config.batch_size, "cpu"), probe.dimension,
                       "local")
    start = time.perf_counter()
    how = connect(ComputeConfig(engine="ray"))
    cluster_seconds = time.perf_counter() - start
    runs = {}
    for actors in (1, cores):
        compute = ComputeConfig(engine="ray", num_actors=actors, cpus_per_actor=cores / actors)
        runs[actors] = timed_fill(texts, lambda c=compute: RayEmbedder(c, config), probe.dimension, f"ray{actors}")
    result = {
        "date": time.strftime("%Y-%m-%d"), "machine": cpu_model(), "cores": cores,
        "cpu_flags": lscpu_flags() or cpu_flags(), "load_before": [round(x, 2) for x in load],
        "passages": len(texts), "tokens": tokens, "cluster": how, "cluster_start_seconds": round(cluster_seconds, 1),
        "in_process": local, "ray": {f"{k} actors": v for k, v in runs.items()},
        "ratio_ray_to_in_process": {f"{k} actors": round(local["seconds"] / v["seconds"], 3) for k, v in runs.items()},
        "steady_ratio_ray_to_in_process": {  # None when the in-process fill was one batch (no steady phase)
            f"{k} actors": round(v["steady_texts_per_second"] / local["steady_texts_per_second"], 3)
            if local["steady_texts_per_second"] else None for k, v in runs.items()},
        "speedup_1_to_n_actors": round(runs[1]["seconds"] / runs[cores]["seconds"], 3),
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(result, indent=2) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
