"""The title weight chosen by nested cross-validation with a floor at 0, as the fusion is."""

from __future__ import annotations

import numpy as np
import pytest

from ragindex.evaluation.fusion_cv import MIN_EVIDENCE
from ragindex.evaluation.fusion_titles import TITLE_WEIGHTS, choose_title_weight

N = 30


def _runs(helps: bool, seed: int = 0) -> tuple[dict, dict]:
    """Per query a body and a title score for the relevant doc and 5 others; the title score of the relevant
    doc is high when titles help, random (like any other doc's) when they do not."""
    rng = np.random.default_rng(seed)
    runs: dict[float, dict] = {w: {} for w in TITLE_WEIGHTS}
    qrels = {}
    for q in range(N):
        docs = [f"d{q}-{i}" for i in range(6)]
        body = rng.uniform(0.3, 0.6, 6)
        title = rng.uniform(0.0, 0.8, 6)
        if helps:
            title[0] = 1.0
        else:
            body[0] += 0.05  # the body alone already ranks it well; titles are noise
        for w in TITLE_WEIGHTS:
            runs[w][f"q{q}"] = {d: float(b + w * t) for d, b, t in zip(docs, body, title, strict=True)}
        qrels[f"q{q}"] = {docs[0]: 1}
    return runs, qrels


def test_titles_that_do_not_help_keep_the_weight_at_zero() -> None:
    runs, qrels = _runs(helps=False)
    chosen = choose_title_weight(runs, qrels, margin=0.005)
    assert chosen.weight == 0.0 and chosen.evidence == "judged qrels"
    assert set(chosen.details["fold_choices"]) == {0.0}
    assert chosen.cv_run == runs[0.0]


def test_titles_that_help_are_served_and_every_query_scored_without_itself() -> None:
    runs, qrels = _runs(helps=True)
    chosen = choose_title_weight(runs, qrels, margin=0.005, evidence="llm (30 queries)")
    assert chosen.weight > 0 and all(w > 0 for w in chosen.details["fold_choices"])
    measured = chosen.details["measured"]
    assert measured["0"]["mean"] < chosen.cv_scores["served"]["mean"] <= max(v["mean"] for v in measured.values())
    assert chosen.record()["evidence"] == "llm (30 queries)" and "cv_run" not in chosen.record()


def test_lexical_queries_never_move_it_and_on_forces_it() -> None:
    runs, qrels = _runs(helps=True)
    lexical = choose_title_weight(runs, qrels, lexical=set(qrels))
    assert lexical.weight == 0.0 and lexical.evidence == f"prior: 0 non-lexical queries (< {MIN_EVIDENCE})"
    assert lexical.details["lexical_preference"] > 0
    enough = choose_title_weight(runs, qrels, lexical=set(sorted(qrels)[MIN_EVIDENCE:]))
    assert enough.weight > 0 and enough.details["evidence_queries"] == MIN_EVIDENCE
    forced = choose_title_weight(runs, qrels, forced=0.25)
    assert forced.weight == 0.25 and forced.cv_run == runs[0.25]
    with pytest.raises(ValueError, match="weight 0"):
        choose_title_weight({1.0: runs[1.0]}, qrels)
