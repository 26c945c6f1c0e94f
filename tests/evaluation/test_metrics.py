"""Hand-computed and pytrec_eval cross-checks for ragindex.evaluation.metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ragindex.evaluation.metrics import (
    METRICS,
    ann_recall_at_k,
    doc_scores_from_chunks,
    mean_metrics,
    per_query_metrics,
    rank_docs,
)

pytrec_eval = pytest.importorskip("pytrec_eval")


def test_hand_computed_single_query() -> None:
    # Ranking by score: d1 (rel 3), d2 (rel 0), d3 (rel 2), d4 (unjudged), then nothing.
    # Judged relevant: d1=3, d3=2, d9=1 (d9 is never retrieved) -> 3 relevant docs.
    run = {"q": {"d1": 0.9, "d2": 0.8, "d3": 0.7, "d4": 0.6}}
    qrels = {"q": {"d1": 3, "d2": 0, "d3": 2, "d9": 1}}
    m = per_query_metrics(run, qrels)["q"]
    # DCG@10  = 3/log2(2) + 0/log2(3) + 2/log2(4) = 3 + 0 + 1 = 4
    # IDCG@10 = 3/log2(2) + 2/log2(3) + 1/log2(4) = 3 + 1.261860 + 0.5 = 4.761860
    assert m["ndcg@10"] == pytest.approx(4 / (3 + 2 / math.log2(3) + 0.5), abs=1e-12)
    assert m["ndcg@10"] == pytest.approx(0.840008, abs=1e-6)
    # recall@10 = recall@100 = 2 retrieved relevant / 3 relevant
    assert m["recall@10"] == pytest.approx(2 / 3)
    assert m["recall@100"] == pytest.approx(2 / 3)
    # first relevant at rank 1 -> 1/1
    assert m["mrr@10"] == 1.0
    # AP = (P@1 + P@3) / 3 = (1/1 + 2/3) / 3 = 5/9
    assert m["map@100"] == pytest.approx(5 / 9)
    assert m["hit@10"] == 1.0


def test_hand_computed_cutoffs_and_mrr() -> None:
    # 150 docs, scores descending n0 > n1 > ...; relevant: n4 (rank 5), n49 (rank 50), n119 (rank 120).
    run = {"q": {f"n{i}": 1000.0 - i for i in range(150)}}
    qrels = {"q": {"n4": 1, "n49": 2, "n119": 1}}
    m = per_query_metrics(run, qrels)["q"]
    # DCG@10 = 1/log2(6); IDCG@10 = 2/log2(2) + 1/log2(3) + 1/log2(4) = 2 + 0.630930 + 0.5
    assert m["ndcg@10"] == pytest.approx((1 / math.log2(6)) / (2 + 1 / math.log2(3) + 0.5))
    assert m["recall@10"] == pytest.approx(1 / 3)  # only n4 in top 10
    assert m["recall@100"] == pytest.approx(2 / 3)  # n4, n49; n119 is past the cut
    assert m["mrr@10"] == pytest.approx(1 / 5)  # first relevant at rank 5
    # AP@100 = (1/5 + 2/50) / 3 = 0.24 / 3 = 0.08 (n119 beyond 100 contributes nothing)
    assert m["map@100"] == pytest.approx(0.08)
    assert m["hit@10"] == 1.0


def test_relevant_only_after_rank_10_gives_zero_mrr_and_hit() -> None:
    run = {"q": {f"n{i}": 100.0 - i for i in range(20)}}
    qrels = {"q": {"n12": 1}}
    m = per_query_metrics(run, qrels)["q"]
    assert m["mrr@10"] == 0.0 and m["hit@10"] == 0.0 and m["ndcg@10"] == 0.0
    assert m["recall@100"] == 1.0
    assert m["map@100"] == pytest.approx(1 / 13)  # single relevant at rank 13


def test_ties_broken_by_docid_descending() -> None:
    # All scores equal: trec_eval orders b > a lexicographically descending -> "b" first.
    assert rank_docs({"a": 1.0, "b": 1.0, "c": 2.0}) == ["c", "b", "a"]
    m = per_query_metrics({"q": {"a": 1.0, "b": 1.0}}, {"q": {"a": 1}})["q"]
    assert m["mrr@10"] == 0.5  # "a" is ranked second


def test_negative_grades_gain_nothing() -> None:
    # trec_eval: grade -1 gains 0. DCG = 0 + 2/log2(3) + 1/log2(4); IDCG = 2 + 1/log2(3)
    m = per_query_metrics({"q": {"a": 3.0, "b": 2.0, "c": 1.0}}, {"q": {"a": -1, "b": 2, "c": 1}})["q"]
    assert m["ndcg@10"] == pytest.approx((2 / math.log2(3) + 0.5) / (2 + 1 / math.log2(3)))
    assert m["mrr@10"] == 0.5


def test_missing_and_unscorable_queries() -> None:
    qrels = {"has_rel": {"d": 1}, "no_rel": {"d": 0}}
    pq = per_query_metrics({}, qrels)
    assert list(pq) == ["has_rel"]  # no positive judgement -> not scored
    assert pq["has_rel"] == {m: 0.0 for m in METRICS}  # no results -> zeros
    assert mean_metrics({}) == {m: 0.0 for m in METRICS}


def test_mean_metrics() -> None:
    pq = {"a": {m: 1.0 for m in METRICS}, "b": {m: 0.0 for m in METRICS}}
    assert mean_metrics(pq) == {m: 0.5 for m in METRICS}


def test_doc_scores_from_chunks_keeps_best_chunk() -> None:
    hits = [("d1", 0.2), ("d2", 0.5), ("d1", 0.9), ("d2", 0.1)]
    assert doc_scores_from_chunks(hits) == {"d1": 0.9, "d2": 0.5}


def test_ann_recall_at_k() -> None:
    exact = [f"e{i}" for i in range(10)]
    ann = ["e0", "e1", "x", "e3", "y", "e5", "e6", "e7", "e8", "e11"]
    assert ann_recall_at_k(ann, exact, k=10) == pytest.approx(7 / 10)
    assert ann_recall_at_k(["a", "b"], ["b", "a", "c"], k=2) == 1.0  # top-2 sets equal
    assert ann_recall_at_k(["a"], ["a", "b"], k=10) == 0.5  # denominator min(10, 2) = 2
    assert ann_recall_at_k(["a"], [], k=10) == 1.0


def _random_case(seed: int = 7) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, int]]]:
    rng = np.random.default_rng(seed)
    run: dict[str, dict[str, float]] = {}
    qrels: dict[str, dict[str, int]] = {}
    for q in range(50):
        qid = f"q{q}"
        docs = [f"d{i:03d}" for i in rng.choice(300, size=100, replace=False)]
        # Rounded scores give many ties, which trec_eval breaks by docid descending.
        run[qid] = {d: float(s) for d, s in zip(docs, np.round(rng.random(100) * 5) / 5, strict=True)}
        judged = rng.choice(300, size=int(rng.integers(1, 40)), replace=False)
        qrels[qid] = {f"d{i:03d}": int(rng.choice([-1, 0, 0, 1, 2, 3])) for i in judged}
    qrels["q0"] = {"d999": 2}  # relevant doc never retrieved
    run["q1"] = {}  # query with no results
    return run, qrels


def test_matches_pytrec_eval_on_random_run_with_ties() -> None:
    run, qrels = _random_case()
    ours = per_query_metrics(run, qrels)
    measures = {"ndcg_cut_10", "recall_10", "recall_100", "map_cut_100", "P_10"}
    ref = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    top10 = {q: {d: run[q][d] for d in rank_docs(run[q])[:10]} for q in run}
    rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)
    assert len(ours) >= 40
    for qid, m in ours.items():
        if qid not in ref:  # pytrec_eval omits queries without results; ours scores them 0
            assert qid == "q1" and all(v == 0.0 for v in m.values())
            continue
        assert m["ndcg@10"] == pytest.approx(ref[qid]["ndcg_cut_10"], abs=1e-6)
        assert m["recall@10"] == pytest.approx(ref[qid]["recall_10"], abs=1e-6)
        assert m["recall@100"] == pytest.approx(ref[qid]["recall_100"], abs=1e-6)
        assert m["map@100"] == pytest.approx(ref[qid]["map_cut_100"], abs=1e-6)
        assert m["mrr@10"] == pytest.approx(rr[qid]["recip_rank"], abs=1e-6)
        assert m["hit@10"] == float(ref[qid]["P_10"] > 0)
