"""Unit tests for the two-sample drift tests, refusals, model-change probes and the drift report."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest

from ragindex.drift.model_change import model_change_report
from ragindex.drift.report import format_p, markdown_summary, plot_drift
from ragindex.drift.two_sample import (
    DriftDecision,
    TestResult,
    centroid_cosine_shift,
    classifier_test,
    detect_drift,
    holm_adjust,
    mmd_rff_test,
    pca_ks_test,
)
from ragindex.embedding import ModelFingerprint


def gaussians(n: int, m: int, d: int = 16, shift: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """X ~ N(0, I), Y ~ N(shift * e1, I), as float32 rows (not normalised)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    Y = rng.standard_normal((m, d)).astype(np.float32)
    Y[:, 0] += shift
    return X, Y


def unit_rows(A: np.ndarray) -> np.ndarray:
    return (A / np.linalg.norm(A, axis=1, keepdims=True)).astype(np.float32)


FINGERPRINT = ModelFingerprint(name="all-MiniLM-L6-v2", weights_sha256="a" * 64, pooling="mean", normalize=True,
                               max_length=256, dimension=384)


# ---- hand-checkable pieces -------------------------------------------------------------------------


def test_holm_adjust_hand_case() -> None:
    # sorted 0.01, 0.02, 0.04 with multipliers 3, 2, 1 -> 0.03, 0.04, max(0.04, 0.04) = 0.04
    assert holm_adjust([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert holm_adjust([0.5, 0.6]) == [1.0, 1.0]
    assert holm_adjust([]) == []


def test_centroid_cosine_shift_hand_case() -> None:
    e1 = np.tile(np.eye(4, dtype=np.float32)[0], (30, 1))
    e2 = np.tile(np.eye(4, dtype=np.float32)[1], (30, 1))
    assert centroid_cosine_shift(e1, e1) == pytest.approx(0.0, abs=1e-12)
    assert centroid_cosine_shift(e1, e2) == pytest.approx(1.0)  # orthogonal centroids
    assert centroid_cosine_shift(e1, -e1) == pytest.approx(2.0)  # opposite centroids


def test_identical_samples_give_p_one() -> None:
    X, _ = gaussians(60, 60)
    decision = detect_drift(X, X.copy())
    by_name = {t.name: t for t in decision.tests}
    assert by_name["mmd_rff"].statistic == pytest.approx(0.0, abs=1e-9)
    assert by_name["mmd_rff"].p_value == 1.0  # every permutation ties or beats 0
    assert by_name["pca_ks"].statistic == 0.0 and by_name["pca_ks"].p_value == 1.0
    # exact twins share a fold, so the held-out model never saw a twin's opposite label: AUC stays ~0.5
    assert by_name["classifier"].effect_size == pytest.approx(0.5, abs=0.1)
    assert decision.p_value == 1.0 and not decision.drifted


# ---- synthetic Gaussians ---------------------------------------------------------------------------


@pytest.mark.parametrize("normalise", [False, True])
def test_shifted_mean_is_detected_by_every_test(normalise: bool) -> None:
    X, Y = gaussians(300, 250, shift=1.0)
    if normalise:
        X, Y = unit_rows(X), unit_rows(Y)
    decision = detect_drift(X, Y)  # default 2000 permutations
    assert decision.drifted
    for test in decision.tests:
        assert test.p_value < 1e-3, test
    by_name = {t.name: t for t in decision.tests}
    assert by_name["mmd_rff"].p_value == pytest.approx(1 / 2001)  # no permutation reached the observed MMD
    assert by_name["classifier"].effect_size > 0.7  # AUC
    assert by_name["classifier"].effect_label == "AUC"
    assert 0 < by_name["pca_ks"].effect_size <= 1  # share of components with adjusted p < alpha
    assert decision.n_reference == 300 and decision.n_current == 250


def test_same_distribution_is_not_flagged() -> None:
    X, Y = gaussians(300, 250, shift=0.0, seed=3)
    decision = detect_drift(X, Y)
    assert not decision.drifted
    assert decision.p_value > 0.05
    assert all(t.p_value > 0.01 for t in decision.tests)


def test_individual_tests_are_deterministic_and_subsample() -> None:
    X, Y = gaussians(3000, 2500, d=32, shift=0.3, seed=5)
    for fn, kwargs in ((classifier_test, {"max_samples": 400}), (mmd_rff_test, {"max_samples": 400}),
                       (pca_ks_test, {"max_samples": 400})):
        first, second = fn(X, Y, seed=11, **kwargs), fn(X, Y, seed=11, **kwargs)
        assert isinstance(first, TestResult)
        assert (first.statistic, first.p_value, first.effect_size) == (
            second.statistic, second.p_value, second.effect_size)
        assert (first.n_reference, first.n_current) == (3000, 2500)  # sizes of the inputs, not the subsample
        assert first.p_value < 0.05  # 0.3 sd shift with 400 rows per side


def test_unbalanced_sizes_and_float64_input() -> None:
    X, Y = gaussians(500, 40, shift=0.0, seed=8)
    decision = detect_drift(X.astype(np.float64), Y.astype(np.float64))
    assert 0.0 <= decision.p_value <= 1.0
    assert decision.n_reference == 500 and decision.n_current == 40


# ---- refusals --------------------------------------------------------------------------------------


def test_refuses_different_fingerprints() -> None:
    X, Y = gaussians(50, 50, d=384)
    other = dataclasses.replace(FINGERPRINT, name="bge-small-en-v1.5", weights_sha256="b" * 64)
    with pytest.raises(ValueError, match=r"different models .*model_change_report"):
        detect_drift(X, Y, reference_fingerprint=FINGERPRINT, current_fingerprint=other)
    # ids as strings or dicts work too; equal fingerprints pass
    with pytest.raises(ValueError, match="different models"):
        detect_drift(X, Y, reference_fingerprint=FINGERPRINT.id, current_fingerprint=other.as_dict())
    decision = detect_drift(X, Y, reference_fingerprint=FINGERPRINT, current_fingerprint=FINGERPRINT.as_dict())
    assert isinstance(decision, DriftDecision)


def test_refuses_different_dimensions_and_small_samples() -> None:
    X, _ = gaussians(50, 50, d=384)
    _, Y = gaussians(50, 50, d=768)
    with pytest.raises(ValueError, match=r"dimensions differ \(reference 384, current 768\)"):
        detect_drift(X, Y)
    with pytest.raises(ValueError, match="current embeddings have 19 rows; .* at least 20"):
        detect_drift(X, X[:19])
    with pytest.raises(ValueError, match="reference embeddings have 5 rows"):
        classifier_test(X[:5], X)
    bad = X.copy()
    bad[3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        mmd_rff_test(X, bad)
    with pytest.raises(ValueError, match="2-D"):
        pca_ks_test(X[0], X)
    with pytest.raises(ValueError, match="alpha"):
        detect_drift(X, X, alpha=1.5)


# ---- report ----------------------------------------------------------------------------------------


def test_as_dict_is_json_and_markdown_summary_reads_well() -> None:
    X, Y = gaussians(200, 200, shift=1.0)
    drifted = detect_drift(X, Y)
    payload = json.loads(json.dumps(drifted.as_dict()))
    assert payload["drifted"] is True
    assert [t["name"] for t in payload["tests"]] == ["classifier", "mmd_rff", "pca_ks"]
    assert set(payload["adjusted_p_values"]) == {"classifier", "mmd_rff", "pca_ks"}
    assert payload["p_value"] == pytest.approx(min(payload["adjusted_p_values"].values()))
    text = markdown_summary(drifted)
    assert text.startswith("| Test | Statistic | p-value | Holm p | Effect | Decision |")
    assert text.count("\n|") == 5  # header rule, three tests, combined row
    assert "AUC = " in text and "centroid cosine shift = " in text and "share of drifted components" in text
    assert "Drift detected" in text and "**DRIFT**" in text

    calm = detect_drift(*gaussians(200, 200, seed=3))
    calm_text = markdown_summary(calm)
    assert "No drift detected" in calm_text and "| no drift |" in calm_text
    assert format_p(0.0) == "< 1e-300" and format_p(2.5e-7) == "2.5e-07" and format_p(0.0421) == "0.0421"


def test_plot_drift_writes_png(tmp_path: Path) -> None:
    X, Y = gaussians(400, 300, d=24, shift=0.8)
    history = [("2025-05-01", 0.6), ("2025-05-08", 0.2), ("2025-05-15", 1e-5)]
    out = plot_drift(X, Y, tmp_path / "plots" / "drift.png", history=history)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plain = plot_drift(X, Y, tmp_path / "plain.png", max_points=100)
    assert plain.stat().st_size > 1000


# ---- model change on a probe set -------------------------------------------------------------------


def test_model_change_report_synthetic() -> None:
    rng = np.random.default_rng(0)
    base = rng.standard_normal((80, 32))
    texts = [f"probe {i}" for i in range(80)]
    lookup = {t: base[i] for i, t in enumerate(texts)}
    rotation, _ = np.linalg.qr(rng.standard_normal((32, 32)))

    def embed(ts: list[str]) -> np.ndarray:
        return np.stack([lookup[t] for t in ts])

    def rotated(ts: list[str]) -> np.ndarray:
        return 3.0 * embed(ts) @ rotation  # same cosine geometry, different basis and scale

    def unrelated(ts: list[str]) -> np.ndarray:
        return np.random.default_rng(1).standard_normal((len(ts), 64))

    same = model_change_report(texts, embed, rotated, k=10)
    assert same["knn_jaccard_mean"] == pytest.approx(1.0)
    assert same["spearman_pairwise_cosine"] == pytest.approx(1.0)
    assert same["n_probes"] == 80 and same["n_pairs"] == 80 * 79 // 2 and same["dimension_b"] == 32
    other = model_change_report(texts, embed, unrelated, k=10)
    assert other["knn_jaccard_mean"] < 0.2 and abs(other["spearman_pairwise_cosine"]) < 0.1
    assert other["dimension_b"] == 64
    sampled = model_change_report(texts, embed, rotated, k=5, max_pairs=500)
    assert sampled["pairs_sampled"] and sampled["n_pairs"] == 500
    assert sampled["spearman_pairwise_cosine"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least k"):
        model_change_report(texts[:11], embed, rotated, k=10)


@pytest.fixture(scope="module")
def probe_texts() -> list[str]:
    import pydoc_data.topics

    paragraphs = sorted({p.strip() for body in pydoc_data.topics.topics.values()
                         for p in re.split(r"\n\s*\n", body) if 40 <= len(p.strip()) <= 240})
    rng = np.random.default_rng(3)
    return [paragraphs[i] for i in rng.choice(len(paragraphs), size=60, replace=False)]


def test_model_change_report_real_embedder(probe_texts: list[str]) -> None:
    """MiniLM on Python-reference paragraphs vs the same model with a changed preprocessing step."""
    from ragindex.embedding import load_embedder

    embedder = load_embedder()
    cache: dict[str, np.ndarray] = {}

    def embed(texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in cache]
        if missing:
            cache.update(zip(missing, embedder.embed(missing), strict=True))
        return np.stack([cache[t] for t in texts])

    def first_half(texts: list[str]) -> np.ndarray:  # a "model" that only reads half of each text
        return embed([t[: max(20, len(t) // 2)] for t in texts])

    identical = model_change_report(probe_texts, embed, embed, k=10)
    assert identical["knn_jaccard_mean"] == pytest.approx(1.0)
    assert identical["spearman_pairwise_cosine"] == pytest.approx(1.0)
    assert identical["dimension_a"] == identical["dimension_b"] == embedder.dimension
    changed = model_change_report(probe_texts, embed, first_half, k=10)
    assert 0.1 < changed["knn_jaccard_mean"] < 0.9
    assert 0.3 < changed["spearman_pairwise_cosine"] < 0.99

    # the real fingerprint refuses a direct comparison with a different model's vectors
    vectors = embed(probe_texts)
    other = dataclasses.replace(embedder.fingerprint, name="all-mpnet-base-v2", weights_sha256="c" * 64)
    with pytest.raises(ValueError, match="different models"):
        detect_drift(vectors[:30], vectors[30:], reference_fingerprint=embedder.fingerprint,
                     current_fingerprint=other)
    same_model = detect_drift(vectors[:30], vectors[30:], reference_fingerprint=embedder.fingerprint,
                              current_fingerprint=embedder.fingerprint.as_dict())
    assert same_model.n_reference == 30
