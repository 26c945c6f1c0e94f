"""trec_eval-compatible per-query retrieval metrics (nDCG, recall, MRR, MAP, hit rate)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

Run = Mapping[str, Mapping[str, float]]
Qrels = Mapping[str, Mapping[str, int]]

METRICS: tuple[str, ...] = ("ndcg@10", "recall@10", "recall@100", "mrr@10", "map@100", "hit@10")


def rank_docs(scores: Mapping[str, float]) -> list[str]:
    """Doc ids ordered like trec_eval: score descending, ties broken by doc id descending."""
    return sorted(scores, key=lambda d: (scores[d], d), reverse=True)


def _dcg(gains: Iterable[float]) -> float:
    return sum(g / math.log2(i + 2) for i, g in enumerate(gains) if g != 0)


def query_metrics(ranking: list[str], judgements: Mapping[str, int]) -> dict[str, float]:
    """All METRICS for one query; `ranking` is best-first, `judgements` is that query's qrels."""
    relevant = {d for d, r in judgements.items() if r > 0}
    n_rel = len(relevant)
    if n_rel == 0:
        raise ValueError("query has no relevant documents; it cannot be scored")
    # nDCG@10 as trec_eval ndcg_cut_10: gain = grade (negative grades gain 0), discount log2(rank + 1),
    # ideal = all rel > 0 grades sorted descending, cut at 10.
    dcg = _dcg(float(max(judgements.get(d, 0), 0)) for d in ranking[:10])
    idcg = _dcg(sorted((float(r) for r in judgements.values() if r > 0), reverse=True)[:10])
    hits = [d in relevant for d in ranking[:100]]
    first = next((i for i, h in enumerate(hits[:10]) if h), None)
    ap_sum, found = 0.0, 0
    for i, h in enumerate(hits):
        if h:
            found += 1
            ap_sum += found / (i + 1)
    return {
        "ndcg@10": dcg / idcg,
        "recall@10": sum(hits[:10]) / n_rel,
        "recall@100": sum(hits) / n_rel,
        "mrr@10": 0.0 if first is None else 1.0 / (first + 1),
        "map@100": ap_sum / n_rel,
        "hit@10": 0.0 if first is None else 1.0,
    }


def per_query_metrics(run: Run, qrels: Qrels) -> dict[str, dict[str, float]]:
    """Metrics for every qrels query with >= 1 relevant doc; queries absent from `run` score 0."""
    out: dict[str, dict[str, float]] = {}
    for qid, judgements in qrels.items():
        if not any(r > 0 for r in judgements.values()):
            continue
        out[qid] = query_metrics(rank_docs(run.get(qid, {})), judgements)
    return out


def mean_metrics(per_query: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Arithmetic mean of each metric over queries (0.0 for every metric when there are none)."""
    names = list(METRICS)
    for values in per_query.values():
        names += [m for m in values if m not in names]
    n = len(per_query)
    return {m: (sum(v.get(m, 0.0) for v in per_query.values()) / n if n else 0.0) for m in names}


def doc_scores_from_chunks(hits: Iterable[tuple[str, float]]) -> dict[str, float]:
    """Collapse chunk hits to documents: a document scores as its best chunk."""
    best: dict[str, float] = {}
    for doc_id, score in hits:
        s = float(score)
        if doc_id not in best or s > best[doc_id]:
            best[doc_id] = s
    return best


def ann_recall_at_k(ann_ids: list[str], exact_ids: list[str], k: int = 10) -> float:
    """Overlap of the ANN and exact top-k id lists divided by min(k, len(exact_ids))."""
    denom = min(k, len(exact_ids))
    if denom == 0:
        return 1.0
    return len(set(ann_ids[:k]) & set(exact_ids[:k])) / denom
