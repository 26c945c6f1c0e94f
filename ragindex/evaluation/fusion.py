"""Score fusion of dense and sparse runs (RRF, normalized linear) with cross-validated weight choice."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ragindex.evaluation.metrics import METRICS, Qrels, query_metrics, rank_docs

Scores = Mapping[str, float]
Norm = Literal["minmax", "zscore"]


def rrf(runs: Sequence[Scores], k: int = 60) -> dict[str, float]:
    """Reciprocal rank fusion: sum over runs of 1 / (k + rank), rank 1-based in trec_eval order."""
    fused: dict[str, float] = {}
    for scores in runs:
        for rank, doc in enumerate(rank_docs(scores), start=1):
            fused[doc] = fused.get(doc, 0.0) + 1.0 / (k + rank)
    return fused


def normalize(scores: Scores, norm: Norm = "minmax") -> dict[str, float]:
    """Min-max (to [0, 1]; a constant list maps to 1.0) or z-score (a constant list maps to 0.0)."""
    if not scores:
        return {}
    values = np.array(list(scores.values()), dtype=float)
    if norm == "minmax":
        span = values.max() - values.min()
        out = (values - values.min()) / span if span > 0 else np.ones_like(values)
    elif norm == "zscore":
        std = values.std()
        out = (values - values.mean()) / std if std > 0 else np.zeros_like(values)
    else:
        raise ValueError(f"unknown norm {norm!r}; expected 'minmax' or 'zscore'")
    return dict(zip(scores, out.tolist(), strict=True))


def normalized_fusion(
    dense: Scores, sparse: Scores, weight: float, norm: Norm = "minmax"
) -> dict[str, float]:
    """weight * norm(dense) + (1 - weight) * norm(sparse); a doc missing from a list gets its minimum."""
    nd, ns = normalize(dense, norm), normalize(sparse, norm)
    # Missing docs take the list's lowest normalized value; for min-max that is the range floor 0.
    fill_d = 0.0 if norm == "minmax" or not nd else min(nd.values())
    fill_s = 0.0 if norm == "minmax" or not ns else min(ns.values())
    docs = list(dict.fromkeys([*nd, *ns]))
    return {d: weight * nd.get(d, fill_d) + (1.0 - weight) * ns.get(d, fill_s) for d in docs}


@dataclass
class FusionChoice:
    """Outcome of cross-validated fusion-weight selection."""

    weight: float  # chosen on all queries; use this for serving
    fold_weights: list[float]  # weight picked on the other folds, one per fold
    folds: int
    seed: int
    metric: str
    cv_run: dict[str, dict[str, float]]  # each query fused with the weight of its fold (never tuned on it)
    per_weight_mean: dict[float, float]  # mean metric over all queries for every candidate weight
    query_folds: dict[str, int] = field(default_factory=dict)  # query id -> held-out fold index


def choose_fusion_weight(
    dense_runs: Mapping[str, Scores],
    sparse_runs: Mapping[str, Scores],
    qrels: Qrels,
    weights: Iterable[float] | None = None,
    folds: int = 5,
    seed: int = 0,
    metric: str = "ndcg@10",
    norm: Norm = "minmax",
) -> FusionChoice:
    """k-fold CV over queries: each fold is fused with the weight that maximizes `metric` on the others."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")
    grid = [round(float(w), 10) for w in (np.linspace(0.0, 1.0, 21) if weights is None else weights)]
    if not grid:
        raise ValueError("weights must not be empty")
    qids = sorted(q for q, j in qrels.items() if any(r > 0 for r in j.values()))
    n_folds = min(folds, len(qids))
    if n_folds < 2:
        raise ValueError(f"need >= 2 folds and >= 2 scored queries, got folds={folds}, queries={len(qids)}")
    fused = [
        {q: normalized_fusion(dense_runs.get(q, {}), sparse_runs.get(q, {}), w, norm) for q in qids}
        for w in grid
    ]
    # scores[w, q]: metric of query q fused with weight grid[w]
    scores = np.array([[query_metrics(rank_docs(run[q]), qrels[q])[metric] for q in qids] for run in fused])
    order = np.random.default_rng(seed).permutation(len(qids))
    fold_of = np.empty(len(qids), dtype=int)
    for f, idx in enumerate(np.array_split(order, n_folds)):
        fold_of[idx] = f
    fold_weights: list[float] = []
    cv_run: dict[str, dict[str, float]] = {}
    for f in range(n_folds):
        train = fold_of != f
        best = int(np.argmax(scores[:, train].mean(axis=1)))  # first max wins ties
        fold_weights.append(grid[best])
        for i in np.flatnonzero(~train):
            cv_run[qids[i]] = fused[best][qids[i]]
    means = scores.mean(axis=1)
    return FusionChoice(
        weight=grid[int(np.argmax(means))],
        fold_weights=fold_weights,
        folds=n_folds,
        seed=seed,
        metric=metric,
        cv_run={q: cv_run[q] for q in qids},
        per_weight_mean={w: float(m) for w, m in zip(grid, means, strict=True)},
        query_folds={q: int(fold_of[i]) for i, q in enumerate(qids)},
    )
