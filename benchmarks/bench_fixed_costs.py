"""Fixed costs of a cold build against the raw embedder: the best build / raw ratio a corpus can reach.

Every fixed cost a cold build of a fresh data dir pays, whatever the corpus, is timed in a fresh interpreter in
the order `ragindex index` pays it (each figure is the increment over what the earlier ones imported; the
minimum of --repeats interpreters): Dagster and the code location with LanceDB (before the run starts), Great
Expectations (the first check), torch with the model load (weights hash, precision probe, ONNX export), MLflow
and its new SQLite store (the build's run). Then the raw embedder embeds each corpus's chunk texts in one
process, model loaded. The ceiling of a build is raw / (raw + the in-run fixed costs): the ratio it would reach
if documents, chunking, writes, indexes, the checks' own work and Dagster's events took no time at all.

    PYTHONPATH=benchmarks .venv/bin/python benchmarks/bench_fixed_costs.py            # ~1.5 min
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_pipeline import MODEL, chunk_texts
from machine_info import cpu_flags, cpu_model

ROOT = Path(__file__).resolve().parent.parent
GOAL = 0.85
BEFORE_RUN = "Dagster + code location"


def child() -> dict[str, float]:
    """One fresh interpreter: each fixed cost as the increment over the ones before it, in the build's order."""
    seconds: dict[str, float] = {}
    mark = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        seconds[name] = now - mark
        mark = now

    work = Path(tempfile.mkdtemp(prefix="ragindex-fixed-"))
    import ragindex_app.pipelines.runner  # noqa: F401  (what `ragindex index` imports before the run)

    lap(BEFORE_RUN)
    import great_expectations  # noqa: F401

    lap("Great Expectations import")
    from ragindex.embedding import Embedder

    Embedder(MODEL, hash_cache=work / "weights-sha256.json", onnx_dir=work / "onnx").load()
    lap("torch + model load (fresh data dir)")
    from mlflow.tracking import MlflowClient

    lap("MLflow import")
    MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}").search_experiments()
    lap("MLflow new store")
    return seconds


def raw_seconds() -> dict[str, dict[str, float]]:
    """Raw embedder seconds and tokens of the pydoc chunks and the 5,000 MS MARCO chunks, model loaded."""
    from ragindex.embedding import load_embedder

    texts = chunk_texts(5000)
    embedder = load_embedder(MODEL, 64, "cpu").load()
    embedder.embed(texts["pydoc"][:64])  # warm the runtime's first shapes
    out = {}
    for corpus, corpus_texts in texts.items():
        start = time.perf_counter()
        embedder.embed(corpus_texts)
        out[corpus] = {"seconds": time.perf_counter() - start, "tokens": sum(embedder.count_tokens(corpus_texts)),
                       "chunks": len(corpus_texts)}
    out["precision"] = embedder.precision
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "fixed_costs.md"))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child()))
        return 0
    runs = []
    for _ in range(args.repeats):
        done = subprocess.run([sys.executable, __file__, "--child"], capture_output=True, text=True, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'benchmarks'}"}, check=True)
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    fixed = {name: min(run[name] for run in runs) for name in runs[0]}
    in_run = sum(s for name, s in fixed.items() if name != BEFORE_RUN)
    raw = raw_seconds()
    lines = [f"# Fixed costs of a cold build ({dt.date.today()})", "",
             f"{cpu_model()}, {os.cpu_count()} cores, flags {cpu_flags()}; load {os.getloadavg()[0]:.1f}; "
             f"minimum of {args.repeats} fresh interpreters; raw embedder {raw['precision']}", "",
             "| fixed cost | seconds |", "|---|---|"]
    lines += [f"| {name}{' (before the run)' if name == BEFORE_RUN else ''} | {s:.2f} |" for name, s in fixed.items()]
    lines += [f"| **in the run** | **{in_run:.2f}** |", "",
              "| corpus | chunks | tokens | raw embed s | raw tokens/s | ceiling: raw / (raw + in-run fixed) "
              f"| fixed costs allowed at {GOAL:.0%} |", "|---|---|---|---|---|---|---|"]
    for corpus in ("pydoc", "msmarco"):
        r = raw[corpus]
        lines.append(f"| {corpus} | {r['chunks']} | {r['tokens']} | {r['seconds']:.1f} | "
                     f"{r['tokens'] / r['seconds']:,.0f} | {r['seconds'] / (r['seconds'] + in_run):.0%} | "
                     f"{r['seconds'] * (1 / GOAL - 1):.2f} s |")
    table = "\n".join(lines)
    print(table)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
