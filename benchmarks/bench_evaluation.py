"""Retrieval quality and latency on a BEIR data set (default: ../shared/datasets/msmarco-5k), every mode plus
plain reciprocal rank fusion (k=60) for comparison. Indexes through the Dagster assets first (cached), like
`ragindex evaluate`. Writes a Markdown table to benchmarks/out/evaluation.md."""

from __future__ import annotations

import argparse
import os
import time
from datetime import date
from pathlib import Path

os.environ.setdefault("DAGSTER_HOME", str(Path(__file__).resolve().parents[1]))

from machine_info import cpu_model  # noqa: E402

from ragindex.config import load_config  # noqa: E402
from ragindex.embedding import load_embedder  # noqa: E402
from ragindex.evaluation.beir import load_beir  # noqa: E402
from ragindex.evaluation.fusion import rrf  # noqa: E402
from ragindex.evaluation.metrics import METRICS, mean_metrics, per_query_metrics  # noqa: E402
from ragindex.evaluation.report import fusion_paragraph  # noqa: E402
from ragindex.evaluation.runner import confidence_intervals, evaluate  # noqa: E402
from ragindex.index_store import IndexStore  # noqa: E402
from ragindex.search import Retriever  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default=str(ROOT.parent / "shared" / "datasets" / "msmarco-5k"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "evaluation.md"))
    args = parser.parse_args()

    from ragindex_app.pipelines.runner import run_index, source_name

    config = load_config()
    name = source_name(None, args.dataset)
    start = time.perf_counter()
    summary = run_index(None, args.dataset, f"eval-{name}")
    build_s = time.perf_counter() - start
    retriever = Retriever(IndexStore.at(config.index, summary.table), load_embedder(), config.search)
    evalset = load_beir(args.dataset)
    result = evaluate(retriever, evalset, args.dataset)
    qrels = {q: evalset.qrels[q] for q in evalset.scored_query_ids}
    rrf_run = {q: rrf([result.runs["dense"][q], result.runs["fts"][q]]) for q in result.runs["dense"]}
    rrf_means = mean_metrics(per_query_metrics(rrf_run, qrels))
    ci = confidence_intervals(result.per_query)
    lines = [f"Data set `{Path(args.dataset).name}`, {result.n_queries} scored queries, index "
             f"`{summary.table}` ({summary['search_index']['rows']} chunks, "
             f"ANN: {'yes' if retriever.has_ann else 'no'}); "
             f"{cpu_model()}, {os.cpu_count()} cores, {date.today()}; index step {build_s:.0f} s (cached).", "",
             "| mode | " + " | ".join(METRICS) + " | p50 ms | p95 ms |", "|" + "---|" * (len(METRICS) + 3)]
    for mode in ("dense", "dense_exact", "fts", "hybrid"):
        cells = " | ".join(f"{ci[mode][m]['mean']:.3f} [{ci[mode][m]['ci_low']:.3f}, {ci[mode][m]['ci_high']:.3f}]"
                           for m in METRICS)
        lat = result.latency_ms[mode]
        lines.append(f"| {mode} | {cells} | {lat['p50']:.1f} | {lat['p95']:.1f} |")
    lines.append("| rrf (k=60, for comparison) | " + " | ".join(f"{rrf_means[m]:.3f}" for m in METRICS) + " | | |")
    lines += ["", f"ANN recall@10 against exact search: {result.ann_recall_at_10:.4f}. "
              f"{fusion_paragraph(result.fusion)} Latency includes embedding the query (all modes but fts)."]
    table = "\n".join(lines)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
