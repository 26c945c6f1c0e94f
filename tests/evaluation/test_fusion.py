"""Tests for RRF, normalized fusion, the FusionChoice and its nested cross-validated selection with a floor."""

from __future__ import annotations

import numpy as np
import pytest

from ragindex.evaluation.fusion import PRIOR, FusionChoice, normalize, normalized_fusion, rrf
from ragindex.evaluation.fusion_cv import MIN_EVIDENCE, candidates, choose_fusion
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


def _fusion_wins(n: int) -> tuple[dict, dict, dict]:
    """Each mode ranks its own junk first and the relevant doc second: only a fusion puts it first."""
    dense, sparse, qrels = {}, {}, {}
    for i in range(n):
        q = f"q{i:02d}"
        qrels[q] = {"rel": 1}
        dense[q] = {f"dj{i}": 1.0, "rel": 0.9 - 0.001 * i, f"dk{i}": 0.1}
        sparse[q] = {f"sj{i}": 12.0, "rel": 11.0, f"sk{i}": 1.0 + 0.01 * i}
    return dense, sparse, qrels


def _fusion_loses(n: int) -> tuple[dict, dict, dict]:
    """Dense ranks the relevant doc first; full-text scores are junk that every fusion lets in above it."""
    dense, sparse, qrels = {}, {}, {}
    for i in range(n):
        q = f"q{i:02d}"
        qrels[q] = {"rel": 1}
        dense[q] = {"rel": 0.80, **{f"d{j}": 0.79 - 0.01 * j for j in range(5)}}
        sparse[q] = {f"s{j}": 20.0 - j for j in range(12)}
    return dense, sparse, qrels


def test_fusion_that_must_lose_serves_the_single_mode() -> None:
    dense, sparse, qrels = _fusion_loses(30)
    selection = choose_fusion(dense, sparse, qrels, margin=0.0, folds=5)
    choice = selection.choice
    assert choice.method == "dense" and choice.evidence == "judged qrels"
    assert choice.cv_scores["dense"]["mean"] == 1.0 and choice.cv_scores["served"]["mean"] == 1.0
    assert choice.cv_scores["rrf"]["mean"] < 1.0 and choice.cv_scores["fts"]["mean"] == 0.0
    assert all(label == "dense" for label in choice.details["fold_choices"])
    assert per_query_metrics(selection.cv_run, qrels)["q00"]["ndcg@10"] == 1.0
    assert choice.fuse(dense["q00"], sparse["q00"]) == dense["q00"]


def test_fusion_that_wins_is_served_unless_the_margin_forbids_it() -> None:
    dense, sparse, qrels = _fusion_wins(30)
    choice = choose_fusion(dense, sparse, qrels, folds=5).choice
    assert choice.method in ("minmax", "zscore", "rrf")
    assert choice.cv_scores["served"]["mean"] == 1.0
    assert choice.cv_scores["dense"]["mean"] == pytest.approx(1 / np.log2(3))
    assert choice.cv_scores["served"]["ci_low"] <= 1.0 <= choice.cv_scores["served"]["ci_high"]
    strict = choose_fusion(dense, sparse, qrels, margin=1.0, folds=5).choice
    assert strict.method in ("dense", "fts") and strict.margin == 1.0


def test_each_query_is_scored_by_a_choice_made_without_it() -> None:
    # half the queries need a fusion, half are hurt by it: the outer folds may disagree, and every query's
    # hybrid run must be the fusion its fold's training queries chose
    win_d, win_s, win_q = _fusion_wins(12)
    lose_d, lose_s, lose_q = _fusion_loses(12)
    rename = {f"q{i:02d}": f"l{i:02d}" for i in range(12)}
    dense = {**win_d, **{rename[q]: v for q, v in lose_d.items()}}
    sparse = {**win_s, **{rename[q]: v for q, v in lose_s.items()}}
    qrels = {**win_q, **{rename[q]: v for q, v in lose_q.items()}}
    selection = choose_fusion(dense, sparse, qrels, folds=4, seed=1)
    labels = selection.choice.details["fold_choices"]
    assert len(labels) == 4 and set(selection.query_folds.values()) == {0, 1, 2, 3}
    by_label = {c.label: c for c in candidates()}
    for q, fold in selection.query_folds.items():
        assert selection.cv_run[q] == pytest.approx(by_label[labels[fold]].fuse(dense[q], sparse[q]))
    again = choose_fusion(dense, sparse, qrels, folds=4, seed=1)
    assert again.query_folds == selection.query_folds and again.choice == selection.choice


def test_lexical_queries_never_move_the_prior() -> None:
    dense, sparse, qrels = _fusion_loses(30)
    selection = choose_fusion(dense, sparse, qrels, lexical=set(qrels))
    choice = selection.choice
    assert (choice.method, choice.weight) == (PRIOR.method, PRIOR.weight)
    assert choice.evidence.startswith("prior: 0 non-lexical queries")
    assert choice.details["lexical_preference"] == "dense"  # what the lexical queries alone would have served
    assert selection.cv_run["q00"] == pytest.approx(PRIOR.fuse(dense["q00"], sparse["q00"]))
    few = choose_fusion(dense, sparse, qrels, lexical=set(sorted(qrels)[MIN_EVIDENCE - 1:]))
    assert few.choice.method == PRIOR.method  # MIN_EVIDENCE - 1 non-lexical queries are not enough
    enough = choose_fusion(dense, sparse, qrels, lexical=set(sorted(qrels)[MIN_EVIDENCE:]), evidence="llm")
    assert enough.choice.method == "dense" and enough.choice.evidence == "llm"


def test_fusion_choice_round_trips_and_validates() -> None:
    choice = FusionChoice("rrf", rrf_k=20, margin=0.01, evidence="judged qrels",
                          cv_scores={"rrf": {"mean": 0.5, "ci_low": 0.4, "ci_high": 0.6, "n": 9}})
    data = choice.as_dict()
    assert data["label"] == "rrf k=20" and FusionChoice.from_dict(data) == choice
    assert choice.fuse({"a": 1.0}, {"b": 1.0}) == pytest.approx(rrf([{"a": 1.0}, {"b": 1.0}], k=20))
    with pytest.raises(ValueError, match="dense weight"):
        FusionChoice("minmax")
    with pytest.raises(ValueError, match="unknown fusion method"):
        FusionChoice("max")  # type: ignore[arg-type]
