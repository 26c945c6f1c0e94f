"""Choose the weight of title vectors in dense scores by nested cross-validation, never away from 0 unless it helps.

The same rule as the fusion (ragindex/evaluation/fusion_cv.py): weight 0 is the floor, the non-zero weights one
family whose weight is tuned inside; the family is served only when its cross-validated estimate beats weight 0 by
more than the margin. Lexical generated queries (heading, cloze) may measure title vectors but never choose them:
with fewer than MIN_EVIDENCE other queries weight 0 is served (a heading query matches a heading path by
construction). `index.title_vectors: on` forces the configured weight.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, field

import numpy as np

from ragindex.evaluation.fusion import Scores
from ragindex.evaluation.fusion_cv import MIN_EVIDENCE, _family_cv, _folds, _interval
from ragindex.evaluation.metrics import METRICS, Qrels, query_metrics, rank_docs

TITLE_WEIGHTS: tuple[float, ...] = (0.0, 0.1, 0.25, 0.5, 1.0)
Runs = Mapping[str, Scores]  # query -> chunk or document -> score


@dataclass
class TitleSelection:
    """The served title weight, why, and the dense run scored honestly (each query by a weight chosen without it)."""

    weight: float
    evidence: str
    cv_run: dict[str, dict[str, float]] = field(repr=False)
    cv_scores: dict[str, dict[str, float]] = field(default_factory=dict)
    details: dict = field(default_factory=dict)

    def record(self) -> dict:
        """What the FusionChoice keeps (details["titles"]), so MLflow and the serving config say why."""
        data = asdict(self)
        data.pop("cv_run")
        return data


def _decide(scores: np.ndarray, weights: list[float], folds: int, seed: int, margin: float) -> int:
    """The weight served on these queries: the best non-zero weight if the family's CV estimate beats weight 0
    by more than `margin` (the weight then tuned on all of them), else 0."""
    zero = weights.index(0.0)
    others = [i for i, w in enumerate(weights) if w]
    n = scores.shape[1]
    if n < 2 or not others:
        return zero
    cv = _family_cv(scores, {"zero": [zero], "titles": others}, _folds(n, min(folds, n), seed))
    if cv["titles"].mean() - cv["zero"].mean() <= margin:
        return zero
    return others[int(np.argmax(scores[others].mean(axis=1)))]


def choose_title_weight(runs: Mapping[float, Runs], qrels: Qrels, *, margin: float = 0.0, folds: int = 5,
                        seed: int = 0, metric: str = "ndcg@10", lexical: Collection[str] = (),
                        evidence: str = "judged qrels", forced: float | None = None) -> TitleSelection:
    """`runs` maps each candidate weight (0 among them) to its dense run. Nested k-fold CV over the non-lexical
    queries as in `choose_fusion`; `forced` (title_vectors: on) serves that weight and only measures it."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")
    weights = sorted(runs)
    if 0.0 not in weights or (forced is not None and forced not in weights):
        raise ValueError("title weight runs need weight 0 (and the forced weight)")
    qids = sorted(q for q, j in qrels.items() if any(r > 0 for r in j.values()))
    if len(qids) < 2:
        raise ValueError(f"need >= 2 scored queries to cross-validate folds, got {len(qids)}")
    scores = np.array([[query_metrics(rank_docs(runs[w].get(q, {})), qrels[q])[metric] for q in qids]
                       for w in weights])
    measured = {f"{w:g}": _interval(scores[i], seed) for i, w in enumerate(weights)}
    lexical = set(lexical)
    used = [i for i, q in enumerate(qids) if q not in lexical]
    details = {"weights": weights, "margin": margin, "folds": min(folds, max(len(used), 2)), "seed": seed,
               "queries": len(qids), "evidence_queries": len(used), "measured": measured}

    def served(weight: float, why: str) -> TitleSelection:
        run = {q: dict(runs[weight].get(q, {})) for q in qids}
        return TitleSelection(weight, why, run, {"served": measured[f"{weight:g}"]}, details)

    if forced is not None:
        return served(forced, "configured (index.title_vectors: on)")
    if len(used) < MIN_EVIDENCE:
        details["lexical_preference"] = weights[_decide(scores, weights, folds, seed + 1, margin)]
        return served(0.0, f"prior: {len(used)} non-lexical queries (< {MIN_EVIDENCE})")
    sub = scores[:, used]
    fold_of = _folds(len(used), min(folds, len(used)), seed)
    honest = np.empty(len(used))
    picks = []
    for f in range(int(fold_of.max()) + 1):
        train = fold_of != f
        picks.append(_decide(sub[:, train], weights, folds, seed + 1, margin))
        honest[~train] = sub[picks[-1], ~train]
    final = weights[_decide(sub, weights, folds, seed + 1, margin)]
    details["fold_choices"] = [weights[i] for i in picks]
    run = {qids[i]: dict(runs[weights[picks[fold_of[j]]]].get(qids[i], {})) for j, i in enumerate(used)}
    for q in qids:
        run.setdefault(q, dict(runs[final].get(q, {})))  # lexical queries: never tuned on
    return TitleSelection(final, evidence, run, {"served": _interval(honest, seed)}, details)
