"""Run every query of an evaluation set through every search mode and measure quality and latency."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from ragindex.config import SEARCH_MODES
from ragindex.datasets.generators import LEXICAL_GENERATORS
from ragindex.evaluation.beir import EvalSet
from ragindex.evaluation.fusion import FusionChoice
from ragindex.evaluation.fusion_cv import choose_fusion
from ragindex.evaluation.fusion_titles import TITLE_WEIGHTS, choose_title_weight
from ragindex.evaluation.latency import percentiles_ms
from ragindex.evaluation.metrics import (
    METRICS,
    ann_recall_at_k,
    doc_scores_from_chunks,
    mean_metrics,
    per_query_metrics,
)
from ragindex.evaluation.statistics import bootstrap_ci
from ragindex.search import Retriever

MODES = SEARCH_MODES
LATENCY_QUERIES = 50  # the served hybrid call is made only for its latency: timed on this many queries, spread out
Progress = Callable[[str], None]


@dataclass
class EvaluationResult:
    """Everything the report, the gate and MLflow need: means, per-query scores, runs, the fusion to serve."""

    dataset: str
    n_queries: int
    modes: dict[str, dict[str, float]]
    per_query: dict[str, dict[str, dict[str, float]]]  # mode -> query -> metric -> value
    runs: dict[str, dict[str, dict[str, float]]]  # mode -> query -> doc -> score
    ann_recall_at_10: float
    latency_ms: dict[str, dict[str, float]]
    fusion: FusionChoice
    problems: list[str] = field(default_factory=list)

    def as_json(self, mlflow_run_id: str | None, index: dict) -> dict:
        return {
            "dataset": self.dataset,
            "n_queries": self.n_queries,
            "modes": self.modes,
            "confidence": confidence_intervals(self.per_query),
            "ann_recall@10": self.ann_recall_at_10,
            "latency_ms": self.latency_ms,
            "fusion": self.fusion.as_dict(),
            "mlflow_run_id": mlflow_run_id,
            "index": index,
            "problems": self.problems,
            "per_query": self.per_query,
        }


def confidence_intervals(per_query: dict[str, dict[str, dict[str, float]]], seed: int = 0) -> dict:
    """Seeded percentile-bootstrap 95% interval and the number of queries behind every mean."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for mode, queries in per_query.items():
        out[mode] = {}
        for metric in METRICS:
            values = [scores[metric] for scores in queries.values()]
            if values:
                mean, low, high = bootstrap_ci(values, seed=seed)
                out[mode][metric] = {"mean": mean, "ci_low": low, "ci_high": high, "n": len(values)}
    return out


def fusion_evidence(evalset: EvalSet) -> tuple[set[str], str]:
    """(lexical query ids, what the other queries are): generated heading/cloze queries reuse the chunk's own
    words, so they may measure fusion but never choose it."""
    lexical = {q for q, g in evalset.generators.items() if g in LEXICAL_GENERATORS}
    others: dict[str, int] = {}
    for qid in evalset.scored_query_ids:
        if qid not in lexical:
            name = evalset.generators.get(qid, "judged qrels")
            others[name] = others.get(name, 0) + 1
    return lexical, ", ".join(f"{name} ({n} queries)" for name, n in sorted(others.items())) or "none"


def title_weights(retriever: Retriever) -> tuple[float, ...]:
    """The title weights an evaluation tries: none without title vectors (off, or a table built without them),
    the cross-validated grid under auto, 0 and the configured weight under on."""
    index = retriever.store.config
    if index.title_vectors == "off" or not retriever.has_titles:
        return ()
    return TITLE_WEIGHTS if index.title_vectors == "auto" else tuple(sorted({0.0, index.title_weight}))


def evaluate(retriever: Retriever, evalset: EvalSet, dataset: str, depth: int = 100, folds: int = 5,
             seed: int = 0, progress: Progress | None = None, unit: Literal["doc", "chunk"] = "doc"
             ) -> EvaluationResult:
    """Dense (ANN as served), dense_exact (brute-force cosine), fts (BM25) and hybrid as served: the fusion
    (method and parameter, or a single mode when no fusion beats it by search.fusion_margin) is chosen by
    nested cross-validation, so every query is scored with a choice made without it. `unit` is what the
    qrels judge: documents (a document scores as its best chunk) or chunks. With title vectors, their weight
    is chosen first, the same way (ragindex/evaluation/fusion_titles.py), and dense is that served dense run.
    Every query times dense, dense_exact and fts; the served hybrid path (its ranking is the CV fusion of those
    runs) is timed on LATENCY_QUERIES of them, spread over the set: its two keyword queries are most of an
    evaluation's time on a small corpus."""
    qids = evalset.scored_query_ids
    stride = -(-len(qids) // LATENCY_QUERIES)
    runs: dict[str, dict[str, dict[str, float]]] = {m: {} for m in ("dense", "dense_exact", "fts")}
    weights = title_weights(retriever)
    weighted: dict[float, dict[str, dict[str, float]]] = {w: {} for w in weights if w}
    seconds: dict[str, list[float]] = {m: [] for m in MODES}
    ann_recalls: list[float] = []
    for i, qid in enumerate(qids):
        text = evalset.queries[qid]
        start = time.perf_counter()
        vector = retriever.embedder.embed([text])[0]
        embed_s = time.perf_counter() - start
        hits = {}
        for mode in ("dense", "dense_exact", "fts"):
            start = time.perf_counter()
            hits[mode] = retriever.search(text, mode, depth, vector=vector, title_weight=0.0)
            seconds[mode].append(time.perf_counter() - start + (embed_s if mode != "fts" else 0.0))
            runs[mode][qid] = _run(hits[mode], unit)
        for weight, run in weighted.items():
            run[qid] = _run(retriever.search(text, "dense", depth, vector=vector, title_weight=weight), unit)
        if i % stride == 0:
            start = time.perf_counter()
            retriever.search(text, "hybrid", 10, vector=vector)  # the served hybrid path, for its latency
            seconds["hybrid"].append(time.perf_counter() - start + embed_s)
        ann_recalls.append(ann_recall_at_k([h.chunk_id for h in hits["dense"]],
                                           [h.chunk_id for h in hits["dense_exact"]], 10))
        if progress and (i + 1) % 25 == 0:
            progress(f"evaluated {i + 1}/{len(qids)} queries")
    qrels = {q: evalset.qrels[q] for q in qids}
    lexical, evidence = fusion_evidence(evalset)
    margin = retriever.config.fusion_margin
    titles = None
    if weights:
        forced = retriever.store.config.title_weight if retriever.store.config.title_vectors == "on" else None
        titles = choose_title_weight({0.0: runs["dense"], **weighted}, qrels, margin=margin, folds=folds, seed=seed,
                                     lexical=lexical, evidence=evidence, forced=forced)
        runs["dense"] = titles.cv_run
    selection = choose_fusion(runs["dense"], runs["fts"], qrels, margin=margin, folds=folds,
                              seed=seed, lexical=lexical, evidence=evidence)
    runs["hybrid"] = selection.cv_run
    fusion = selection.choice
    if titles is not None:
        fusion = replace(fusion, title_weight=titles.weight, details={**fusion.details, "titles": titles.record()})
    per_query = {mode: per_query_metrics(run, qrels) for mode, run in runs.items()}
    return EvaluationResult(
        dataset=dataset,
        n_queries=len(qids),
        modes={mode: mean_metrics(per_query[mode]) for mode in MODES},
        per_query={mode: per_query[mode] for mode in MODES},
        runs={mode: runs[mode] for mode in MODES},
        ann_recall_at_10=float(np.mean(ann_recalls)) if ann_recalls else 1.0,
        latency_ms={mode: percentiles_ms(s) for mode, s in seconds.items() if s},
        fusion=fusion,
        problems=list(evalset.problems),
    )


def _run(hits, unit: str) -> dict[str, float]:
    return doc_scores_from_chunks((h.doc_id if unit == "doc" else h.chunk_id, h.score) for h in hits)
