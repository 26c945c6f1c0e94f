"""Tests for RRF, normalized fusion and cross-validated fusion-weight selection."""

from __future__ import annotations

import numpy as np
import pytest

from ragindex.evaluation.fusion import choose_fusion_weight, normalize, normalized_fusion, rrf
from ragindex.evaluation.metrics import per_query_metrics


def test_rrf_hand_case() -> None:
    # run 1 ranks a, b, c; run 2 ranks b, d.  With k=60:
    # a = 1/61, b = 1/62 + 1/61, c = 1/63, d = 1/62
    fused = rrf([{"a": 3.0, "b": 2.0, "c": 1.0}, {"b": 0.9, "d": 0.1}], k=60)
    assert fused == pytest.approx({"a": 1 / 61, "b": 1 / 62 + 1 / 61, "c": 1 / 63, "d": 1 / 62})
    # ties ranked by doc id descending (trec_eval): "y" rank 1, "x" rank 2
    assert rrf([{"x": 1.0, "y": 1.0}], k=1) == pytest.approx({"y": 1 / 2, "x": 1 / 3})


def test_normalized_fusion_minmax_and_missing_docs() -> None:
    dense = {"a": 0.9, "b": 0.5, "c": 0.1}  # minmax -> a=1, b=0.5, c=0
    sparse = {"b": 10.0, "d": 20.0}  # minmax -> b=0, d=1
    fused = normalized_fusion(dense, sparse, weight=0.25)
    # a = .25*1 + .75*0 (missing -> 0); b = .25*.5 + .75*0; c = 0; d = .25*0 (missing) + .75*1
    assert fused == pytest.approx({"a": 0.25, "b": 0.125, "c": 0.0, "d": 0.75})


def test_normalized_fusion_zscore_missing_gets_list_minimum() -> None:
    dense = {"a": 1.0, "b": 3.0}  # mean 2, std 1 -> a=-1, b=1
    sparse = {"a": 5.0, "c": 7.0, "e": 6.0}  # mean 6, std sqrt(2/3) -> a=-1.2247, c=1.2247, e=0
    z = 1 / np.sqrt(2 / 3)
    fused = normalized_fusion(dense, sparse, weight=0.5, norm="zscore")
    assert fused["a"] == pytest.approx(0.5 * -1 + 0.5 * -z)
    assert fused["b"] == pytest.approx(0.5 * 1 + 0.5 * -z)  # missing from sparse -> sparse min -z
    assert fused["c"] == pytest.approx(0.5 * -1 + 0.5 * z)  # missing from dense -> dense min -1
    assert normalize({"x": 2.0, "y": 2.0}) == {"x": 1.0, "y": 1.0}
    with pytest.raises(ValueError):
        normalize({"x": 1.0}, norm="rank")  # type: ignore[arg-type]


def _two_kinds_of_query(n_dense: int, n_sparse: int) -> tuple[dict, dict, dict]:
    """Dense finds the relevant doc for 'dq*' queries, sparse for 'sq*' queries; never both."""
    dense, sparse, qrels = {}, {}, {}
    for i in range(n_dense + n_sparse):
        q = f"dq{i}" if i < n_dense else f"sq{i}"
        good, bad = f"{q}-a-rel", f"{q}-z-junk"  # equal fused scores rank the junk doc first
        qrels[q] = {good: 1}
        dense[q] = {good: 1.0, bad: 0.0} if i < n_dense else {good: 0.0, bad: 1.0}
        sparse[q] = {good: 0.0, bad: 1.0} if i < n_dense else {good: 1.0, bad: 0.0}
    return dense, sparse, qrels


def test_cv_weight_never_tuned_on_held_out_fold() -> None:
    # Two queries, two folds: each fold holds one query and is tuned on the other, which prefers the
    # opposite list. In-sample tuning would make both queries perfect; honest CV gets both wrong.
    dense, sparse, qrels = _two_kinds_of_query(1, 1)
    choice = choose_fusion_weight(dense, sparse, qrels, weights=[0.0, 1.0], folds=2, seed=0)
    assert sorted(choice.fold_weights) == [0.0, 1.0]
    by_fold = {q: choice.fold_weights[f] for q, f in choice.query_folds.items()}
    assert by_fold == {"dq0": 0.0, "sq1": 1.0}  # each query got the weight its *other* query prefers
    cv = per_query_metrics(choice.cv_run, qrels)
    assert cv["dq0"]["mrr@10"] == 0.5 and cv["sq1"]["mrr@10"] == 0.5  # relevant doc ranked second
    # per-weight means over all queries tie, so the serving weight is the first best (0.0)
    half = 0.5 * (1 + 1 / np.log2(3))  # mean of nDCG 1 (rank 1) and 1/log2(3) (rank 2)
    assert choice.per_weight_mean == pytest.approx({0.0: half, 1.0: half})
    assert choice.weight == 0.0


def test_cv_run_uses_fold_weight_for_each_query() -> None:
    dense, sparse, qrels = _two_kinds_of_query(14, 6)
    choice = choose_fusion_weight(dense, sparse, qrels, folds=5, seed=3)
    assert choice.folds == 5 and len(choice.fold_weights) == 5 and choice.seed == 3
    assert sorted(choice.cv_run) == sorted(qrels)
    assert set(choice.query_folds.values()) == set(range(5))
    for q, f in choice.query_folds.items():
        w = choice.fold_weights[f]
        assert choice.cv_run[q] == pytest.approx(normalized_fusion(dense[q], sparse[q], w))
    # dense is right for 14 of 20 queries -> any weight > 0.5 ranks by dense (at 0.5 the tie puts junk
    # first for every query); 0.55 is the first grid weight above 0.5
    assert choice.weight == pytest.approx(0.55)
    assert len(choice.per_weight_mean) == 21
    # same seed -> same folds
    again = choose_fusion_weight(dense, sparse, qrels, folds=5, seed=3)
    assert again.query_folds == choice.query_folds and again.fold_weights == choice.fold_weights


def test_cv_needs_two_queries() -> None:
    dense, sparse, qrels = _two_kinds_of_query(1, 0)
    with pytest.raises(ValueError, match="folds"):
        choose_fusion_weight(dense, sparse, qrels)
