"""Choose the served fusion by nested cross-validation over method and parameter, never below the best single mode."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ragindex.evaluation.fusion import FUSION_METHODS, PRIOR, SINGLE_METHODS, FusionChoice, Scores
from ragindex.evaluation.metrics import METRICS, Qrels, query_metrics, rank_docs
from ragindex.evaluation.statistics import bootstrap_ci

WEIGHTS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)  # dense share (0 and 1 are the single modes)
RRF_KS: tuple[int, ...] = (1, 5, 10, 20, 40, 60, 100)
MIN_EVIDENCE = 10  # fewer non-lexical scored queries than this: the prior is served


def candidates(weights: Sequence[float] = WEIGHTS, rrf_ks: Sequence[int] = RRF_KS) -> list[FusionChoice]:
    """Every single mode and every (fusion method, parameter) pair cross-validation chooses among."""
    return ([FusionChoice(m) for m in SINGLE_METHODS]
            + [FusionChoice(m, weight=float(w)) for m in ("minmax", "zscore") for w in weights]
            + [FusionChoice("rrf", rrf_k=int(k)) for k in rrf_ks])


@dataclass
class FusionSelection:
    """The served choice and the honest hybrid run: each query fused by a choice made without it."""

    choice: FusionChoice
    cv_run: dict[str, dict[str, float]]
    query_folds: dict[str, int]


def _folds(n: int, folds: int, seed: int) -> np.ndarray:
    fold_of = np.empty(n, dtype=int)
    for f, idx in enumerate(np.array_split(np.random.default_rng(seed).permutation(n), folds)):
        fold_of[idx] = f
    return fold_of


def _family_cv(scores: np.ndarray, families: dict[str, list[int]], fold_of: np.ndarray
               ) -> dict[str, np.ndarray]:
    """Per family, every query scored with the family's parameter that is best on the other folds."""
    out = {}
    for family, rows in families.items():
        values = np.empty(scores.shape[1])
        for f in np.unique(fold_of):
            train = fold_of != f
            best = rows[int(np.argmax(scores[rows][:, train].mean(axis=1)))]  # first max wins ties
            values[~train] = scores[best, ~train]
        out[family] = values
    return out


def _decide(scores: np.ndarray, families: dict[str, list[int]], folds: int, seed: int, margin: float) -> int:
    """The candidate served on these queries: the best fusion family if its CV estimate beats the best
    single mode's by more than `margin`, else the best single mode; the parameter is tuned on all of them."""
    n = scores.shape[1]
    if n < 2:
        return families["dense"][0]
    estimates = {f: v.mean() for f, v in _family_cv(scores, families, _folds(n, min(folds, n), seed)).items()}
    single = max(SINGLE_METHODS, key=lambda f: estimates[f])
    fusion = max(FUSION_METHODS, key=lambda f: estimates[f])
    family = fusion if estimates[fusion] - estimates[single] > margin else single
    rows = families[family]
    return rows[int(np.argmax(scores[rows].mean(axis=1)))]


def _interval(values: np.ndarray, seed: int) -> dict[str, float]:
    mean, low, high = bootstrap_ci(values.tolist(), seed=seed)
    return {"mean": mean, "ci_low": low, "ci_high": high, "n": int(values.size)}


def choose_fusion(dense_runs: Mapping[str, Scores], sparse_runs: Mapping[str, Scores], qrels: Qrels, *,
                  margin: float = 0.0, folds: int = 5, seed: int = 0, metric: str = "ndcg@10",
                  lexical: Collection[str] = (), evidence: str = "judged qrels", prior: FusionChoice = PRIOR,
                  options: Sequence[FusionChoice] | None = None) -> FusionSelection:
    """Nested k-fold CV over queries: the outer folds score the selection rule itself (`_decide`), the inner
    folds estimate each family inside it. Queries in `lexical` (generated from the chunk's own words) never
    move the choice: with fewer than MIN_EVIDENCE other queries the prior is served."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")
    qids = sorted(q for q, j in qrels.items() if any(r > 0 for r in j.values()))
    if len(qids) < 2:
        raise ValueError(f"need >= 2 scored queries to cross-validate folds, got {len(qids)}")
    options = list(options or candidates())
    families = {f: [i for i, c in enumerate(options) if c.method == f] for f in (*SINGLE_METHODS, *FUSION_METHODS)}
    missing = [f for f, rows in families.items() if not rows]
    if missing:
        raise ValueError(f"candidate list lacks {', '.join(missing)}")
    fused = [{q: c.fuse(dense_runs.get(q, {}), sparse_runs.get(q, {})) for q in qids} for c in options]
    scores = np.array([[query_metrics(rank_docs(run[q]), qrels[q])[metric] for q in qids] for run in fused])
    lexical = set(lexical)
    chosen = [i for i, q in enumerate(qids) if q not in lexical]
    used = chosen if len(chosen) >= MIN_EVIDENCE else list(range(len(qids)))
    sub = scores[:, used]
    n_folds = min(folds, len(used))
    fold_of = _folds(len(used), n_folds, seed)
    family_cv = _family_cv(sub, families, fold_of)
    cv_scores = {f: _interval(v, seed) for f, v in family_cv.items()}
    details = {"folds": n_folds, "seed": seed, "queries": len(qids), "evidence_queries": len(chosen),
               "candidates": len(options)}
    if len(chosen) < MIN_EVIDENCE:
        preferred = options[_decide(sub, families, folds, seed + 1, margin)]
        details["lexical_preference"] = preferred.label  # what CV on lexical queries alone would have served
        run = {q: prior.fuse(dense_runs.get(q, {}), sparse_runs.get(q, {})) for q in qids}
        cv_scores["served"] = _interval(np.array([query_metrics(rank_docs(run[q]), qrels[q])[metric]
                                                  for q in qids]), seed)
        choice = _with(prior, margin, metric, cv_scores, details,
                       f"prior: {len(chosen)} non-lexical queries (< {MIN_EVIDENCE})")
        return FusionSelection(choice, run, {})
    served = np.empty(len(used))
    picks = []
    for f in range(n_folds):
        train = fold_of != f
        picks.append(_decide(sub[:, train], families, folds, seed + 1, margin))
        served[~train] = sub[picks[-1], ~train]
    cv_scores["served"] = _interval(served, seed)
    final = options[_decide(sub, families, folds, seed + 1, margin)]
    details["fold_choices"] = [options[i].label for i in picks]
    choice = _with(final, margin, metric, cv_scores, details, evidence)
    query_folds = {qids[i]: int(fold_of[j]) for j, i in enumerate(used)}
    run = {}
    for j, i in enumerate(used):  # each evidence query fused by the choice of the folds that did not see it
        run[qids[i]] = fused[picks[fold_of[j]]][qids[i]]
    for q in qids:
        run.setdefault(q, final.fuse(dense_runs.get(q, {}), sparse_runs.get(q, {})))  # lexical: never tuned on
    return FusionSelection(choice, run, query_folds)


def _with(base: FusionChoice, margin: float, metric: str, cv_scores: dict, details: dict, evidence: str
          ) -> FusionChoice:
    return FusionChoice(base.method, base.weight, base.rrf_k, metric, margin, evidence, cv_scores, details)
