"""Two-sample drift tests on embedding matrices: classifier AUC, random-Fourier-feature MMD and PCA/KS."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import linalg, stats

MIN_ROWS = 20
TEST_NAMES = ("classifier", "mmd_rff", "pca_ks")


@dataclass(frozen=True)
class TestResult:
    """One two-sample test: statistic, p-value and an effect size with a human label."""

    __test__ = False  # not a pytest test class despite the name

    name: str
    statistic: float
    p_value: float
    effect_size: float
    effect_label: str
    n_reference: int
    n_current: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {k: (float(v) if isinstance(v, float | np.floating) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class DriftDecision:
    """Combined verdict of the three tests; p_value is the smallest Holm-adjusted p-value."""

    drifted: bool
    p_value: float
    alpha: float
    tests: list[TestResult] = field(default_factory=list)
    n_reference: int = 0
    n_current: int = 0
    seconds: float = 0.0

    @property
    def adjusted_p_values(self) -> dict[str, float]:
        """Holm-adjusted p-value of every test, by test name."""
        adjusted = holm_adjust([t.p_value for t in self.tests])
        return {t.name: p for t, p in zip(self.tests, adjusted, strict=True)}

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return {
            "drifted": bool(self.drifted),
            "p_value": float(self.p_value),
            "alpha": float(self.alpha),
            "correction": "holm",
            "n_reference": int(self.n_reference),
            "n_current": int(self.n_current),
            "seconds": float(self.seconds),
            "adjusted_p_values": self.adjusted_p_values,
            "tests": [t.as_dict() for t in self.tests],
        }


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values, in input order, capped at 1."""
    p = np.asarray(p_values, dtype=float)
    m = p.size
    if m == 0:
        return []
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate(p[order] * (m - np.arange(m)))
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    return [float(v) for v in adjusted]


def _fingerprint_key(fingerprint: Any) -> tuple[str, str]:
    """(comparison key, display text) for a ModelFingerprint, its dict, or a plain id string."""
    if hasattr(fingerprint, "id"):
        name = getattr(fingerprint, "name", "")
        return str(fingerprint.id), f"{name} {fingerprint.id}".strip()
    if isinstance(fingerprint, Mapping):
        key = str(fingerprint.get("id") or sorted(fingerprint.items()))
        return key, f"{fingerprint.get('name', '')} {fingerprint.get('id', key)}".strip()
    return str(fingerprint), str(fingerprint)


def check_fingerprints(reference_fingerprint: Any, current_fingerprint: Any) -> None:
    """Raise ValueError when both fingerprints are given and name different models."""
    if reference_fingerprint is None or current_fingerprint is None:
        return
    ref_key, ref_text = _fingerprint_key(reference_fingerprint)
    cur_key, cur_text = _fingerprint_key(current_fingerprint)
    if ref_key != cur_key:
        raise ValueError(
            f"embeddings come from different models (reference {ref_text} vs current {cur_text}); "
            "compare on a probe set with model_change_report instead"
        )


def _validate(X: Any, Y: Any, min_rows: int = MIN_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """Both sides as 2-D float arrays with the same width, enough rows and finite values."""
    out = []
    for side, A in (("reference", X), ("current", Y)):
        A = np.asarray(A)
        if A.ndim != 2:
            raise ValueError(f"{side} embeddings must be a 2-D array (rows x dimension), got shape {A.shape}")
        if not np.issubdtype(A.dtype, np.floating):
            A = A.astype(np.float32)
        if A.shape[0] < min_rows:
            raise ValueError(
                f"{side} embeddings have {A.shape[0]} rows; drift tests need at least {min_rows} per side"
            )
        if not np.isfinite(A).all():
            raise ValueError(f"{side} embeddings contain NaN or infinite values")
        out.append(A)
    if out[0].shape[1] != out[1].shape[1]:
        raise ValueError(
            f"embedding dimensions differ (reference {out[0].shape[1]}, current {out[1].shape[1]}); "
            "vectors from different models cannot be compared directly: use model_change_report on a probe set"
        )
    return out[0], out[1]


@contextmanager
def _single_blas_thread() -> Iterator[None]:
    """Run BLAS single-threaded inside the tests.

    The work here is many small and medium matrix products (at most max_samples rows per side); on a
    2-core machine shared with other jobs, spinning BLAS threads made these 3-10x slower (100k vs 100k:
    ~11 s multi-threaded vs ~3 s single-threaded under load), while on an idle machine one thread costs
    little. Predictable wall time matters more for a scheduled drift check.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _subsample(A: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """At most k rows of A, chosen without replacement by the seeded generator (original order kept)."""
    if A.shape[0] <= k:
        return A
    return A[np.sort(rng.choice(A.shape[0], size=k, replace=False))]


def _mann_whitney(pos: np.ndarray, neg: np.ndarray) -> tuple[float, float, float]:
    """(U of pos over neg, its null mean, its tie-corrected null variance)."""
    n1, n0 = pos.size, neg.size
    both = np.concatenate([pos, neg])
    ranks = stats.rankdata(both)
    u = float(ranks[:n1].sum() - n1 * (n1 + 1) / 2.0)
    n = n1 + n0
    _, counts = np.unique(both, return_counts=True)
    ties = float((counts.astype(float) ** 3 - counts).sum())
    var = n1 * n0 / 12.0 * ((n + 1) - ties / (n * (n - 1)))
    return u, n1 * n0 / 2.0, var


def _folds_keeping_duplicates_together(
    Z: np.ndarray, labels: np.ndarray, n_folds: int, rng: np.random.Generator
) -> np.ndarray:
    """Fold number per row: identical rows share a fold, folds are near-stratified, assignment is seeded.

    A held-out row whose exact twin sits in the training folds gets scored by a model that memorised
    the twin's label; keeping duplicates together removes that bias (which, for duplicates inside one
    side, would otherwise look like drift). The assignment never looks at labels beyond stratifying.
    """
    rows = np.ascontiguousarray(Z)
    keys = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()
    _, group = np.unique(keys, return_inverse=True)
    group = group.ravel()
    n_groups = int(group.max()) + 1
    share_current = np.bincount(group, weights=labels, minlength=n_groups) / np.bincount(group, minlength=n_groups)
    order = np.lexsort((rng.random(n_groups), share_current))  # deal groups class by class, randomly
    fold_of_group = np.empty(n_groups, dtype=np.int64)
    fold_of_group[order] = np.arange(n_groups) % n_folds
    return fold_of_group[group]


def classifier_test(
    X: np.ndarray,
    Y: np.ndarray,
    seed: int = 0,
    n_folds: int = 2,
    max_samples: int = 5000,
    C: float = 0.01,
    max_iter: int = 200,
) -> TestResult:
    """Classifier two-sample test: cross-fitted logistic-regression scores, AUC, one-sided normal p.

    Both sides are subsampled to the same size (at most max_samples), labelled 0 (reference) / 1
    (current) and split into near-stratified folds that keep exact duplicate rows together. Within a
    held-out fold the scores come from a model that never saw that fold (nor a twin of any of its rows),
    so the fold's Mann-Whitney U, standardised to z_f, is N(0, 1) under no drift. Statistic: mean z_f.
    The folds' z_f are averaged: their mean has variance <= 1 whatever their correlation, so
    p = 1 - Phi(mean z_f) never over-rejects. (Summing U over folds as if independent does: models for
    different folds share training rows, which makes the fold statistics positively correlated and
    gave ~10% false alarms at alpha 0.05 with 5 folds.) Two folds (the default) keep that bound nearly
    tight and give the most power. C = 0.01 on standardised features is a strong ridge penalty: in the
    usual few-hundred-rows-per-window regime it acts like a shrunken mean-difference direction and gave
    more power than C = 1 on real embeddings. Effect size: held-out AUC (within-fold comparisons).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    start = time.perf_counter()
    X, Y = _validate(X, Y)
    rng = np.random.default_rng(seed)
    n = min(X.shape[0], Y.shape[0], max_samples)
    Z = np.vstack([_subsample(X, n, rng), _subsample(Y, n, rng)]).astype(np.float32, copy=False)
    labels = np.repeat([0, 1], n)
    fold = _folds_keeping_duplicates_together(Z, labels, max(2, min(n_folds, n)), rng)
    z_scores, u_sum, pairs = [], 0.0, 0.0
    with _single_blas_thread():
        for f in range(int(fold.max()) + 1):
            train, test = fold != f, fold == f
            if min(np.bincount(labels[train], minlength=2).min(), np.bincount(labels[test], minlength=2).min()) == 0:
                z_scores.append(0.0)  # a fold without both classes carries no evidence
                continue
            scaler = StandardScaler().fit(Z[train])
            model = LogisticRegression(C=C, max_iter=max_iter)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(scaler.transform(Z[train]), labels[train])
            scores = model.decision_function(scaler.transform(Z[test]))
            held = labels[test]
            u, mean, var = _mann_whitney(scores[held == 1], scores[held == 0])
            z_scores.append((u - mean - 0.5) / math.sqrt(var) if var > 0 else 0.0)  # continuity-corrected
            u_sum += u
            pairs += float((held == 1).sum() * (held == 0).sum())
    auc = u_sum / pairs if pairs else 0.5
    z = float(np.mean(z_scores))
    p = float(stats.norm.sf(z))
    return TestResult("classifier", z, p, float(auc), "AUC", int(X.shape[0]), int(Y.shape[0]),
                      time.perf_counter() - start)


def median_distance(A: np.ndarray, rng: np.random.Generator, max_points: int = 1000) -> float:
    """Median Euclidean distance between distinct rows of a seeded subsample of A (the median heuristic)."""
    S = _subsample(A, max_points, rng).astype(np.float64)
    sq = (S * S).sum(1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (S @ S.T)
    upper = d2[np.triu_indices(S.shape[0], k=1)]
    med = float(np.sqrt(max(np.median(upper), 0.0)))
    return med if med > 0 else 1.0


def centroid_cosine_shift(X: np.ndarray, Y: np.ndarray) -> float:
    """1 - cosine(mean of X, mean of Y); 0 when the centroids point the same way."""
    mx = np.asarray(X).mean(axis=0, dtype=np.float64)
    my = np.asarray(Y).mean(axis=0, dtype=np.float64)
    norm = float(np.linalg.norm(mx) * np.linalg.norm(my))
    if norm == 0.0:
        return 0.0 if np.allclose(mx, my) else 1.0
    return float(1.0 - np.dot(mx, my) / norm)


def mmd_rff_test(
    X: np.ndarray,
    Y: np.ndarray,
    n_features: int = 256,
    n_permutations: int = 2000,
    seed: int = 0,
    max_samples: int = 5000,
    bandwidth: float | None = None,
    batch_size: int = 250,
) -> TestResult:
    """MMD^2 with random Fourier features of a Gaussian kernel and a label-permutation p-value.

    The bandwidth is the median pairwise distance of a seeded subsample of the pooled rows, and the
    features are drawn before labels are looked at, so permuting row labels over the fixed feature
    matrix is an exact permutation test: p = (1 + #{perm >= observed}) / (1 + n_permutations).
    Effect size: centroid cosine shift 1 - cos(mean X, mean Y) on all rows.
    """
    start = time.perf_counter()
    X, Y = _validate(X, Y)
    rng = np.random.default_rng(seed)
    Xs, Ys = _subsample(X, max_samples, rng), _subsample(Y, max_samples, rng)
    n, m = Xs.shape[0], Ys.shape[0]
    pooled = np.vstack([Xs, Ys]).astype(np.float32, copy=False)
    with _single_blas_thread():
        sigma = float(bandwidth) if bandwidth else median_distance(pooled, rng)
        n_freq = max(1, n_features // 2)
        W = (rng.standard_normal((pooled.shape[1], n_freq)) / sigma).astype(np.float32)
        proj = pooled @ W
        phi = np.empty((pooled.shape[0], 2 * n_freq), dtype=np.float32)
        np.cos(proj, out=phi[:, :n_freq])
        np.sin(proj, out=phi[:, n_freq:])
        phi /= np.float32(math.sqrt(n_freq))  # phi(x) . phi(y) ~ exp(-|x - y|^2 / (2 sigma^2))
        del proj
        weights = np.concatenate([np.full(n, 1.0 / n), np.full(m, -1.0 / m)]).astype(np.float32)
        observed = float(np.square((weights @ phi).astype(np.float64)).sum())
        exceed, done = 0, 0
        while done < n_permutations:
            b = min(batch_size, n_permutations - done)
            permuted = rng.permuted(np.broadcast_to(weights, (b, weights.size)), axis=1)
            null = np.square((permuted @ phi).astype(np.float64)).sum(axis=1)
            exceed += int((null >= observed * (1.0 - 1e-6)).sum())  # ties count against drift
            done += b
    p = (1.0 + exceed) / (1.0 + n_permutations)
    return TestResult("mmd_rff", observed, float(p), centroid_cosine_shift(X, Y), "centroid cosine shift",
                      int(X.shape[0]), int(Y.shape[0]), time.perf_counter() - start)


def pca_ks_test(
    X: np.ndarray,
    Y: np.ndarray,
    n_components: int = 10,
    seed: int = 0,
    max_samples: int = 5000,
    alpha: float = 0.05,
) -> TestResult:
    """Per-component two-sample KS tests on a PCA of the pooled sample, Holm-corrected.

    PCA is fitted on the pooled subsample (a label-blind choice of directions, so each KS test keeps its
    null distribution). p = smallest Holm-adjusted p; statistic = largest KS distance; effect size =
    share of components whose adjusted p is below alpha.
    """
    start = time.perf_counter()
    X, Y = _validate(X, Y)
    rng = np.random.default_rng(seed)
    Xs, Ys = _subsample(X, max_samples, rng), _subsample(Y, max_samples, rng)
    pooled = np.vstack([Xs, Ys]).astype(np.float64)
    pooled -= pooled.mean(axis=0)
    d = pooled.shape[1]
    k = max(1, min(n_components, d, pooled.shape[0] - 1))
    with _single_blas_thread():
        _, vectors = linalg.eigh(pooled.T @ pooled, subset_by_index=[d - k, d - 1])  # top k, ascending
        proj = pooled @ vectors[:, ::-1]
    a, b = proj[: Xs.shape[0]], proj[Xs.shape[0] :]
    method = "auto" if a.shape[0] * b.shape[0] <= 1_000_000 else "asymp"
    distances, p_values = [], []
    for j in range(k):
        res = stats.ks_2samp(a[:, j], b[:, j], method=method)
        distances.append(float(res.statistic))
        p_values.append(float(res.pvalue))
    adjusted = holm_adjust(p_values)
    share = float(np.mean([p < alpha for p in adjusted]))
    return TestResult("pca_ks", max(distances), min(adjusted), share, "share of drifted components",
                      int(X.shape[0]), int(Y.shape[0]), time.perf_counter() - start)


def detect_drift(
    X: np.ndarray,
    Y: np.ndarray,
    alpha: float = 0.05,
    seed: int = 0,
    *,
    reference_fingerprint: Any = None,
    current_fingerprint: Any = None,
    max_samples: int = 5000,
    n_permutations: int = 2000,
    n_features: int = 256,
    n_components: int = 10,
) -> DriftDecision:
    """Run the three tests on reference X and current Y; drifted when the smallest Holm p <= alpha.

    Refuses (ValueError) when the fingerprints name different models, the dimensions differ, or either
    side has fewer than 20 rows. max_samples caps the rows per side that each test draws (seeded), so
    the cost stays bounded on large inputs (100k x 384 per side: a few seconds on 2 cores).
    """
    start = time.perf_counter()
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    check_fingerprints(reference_fingerprint, current_fingerprint)
    X, Y = _validate(X, Y)
    tests = [
        classifier_test(X, Y, seed=seed, max_samples=max_samples),
        mmd_rff_test(X, Y, n_features=n_features, n_permutations=n_permutations, seed=seed,
                     max_samples=max_samples),
        pca_ks_test(X, Y, n_components=n_components, seed=seed, max_samples=max_samples, alpha=alpha),
    ]
    p = min(holm_adjust([t.p_value for t in tests]))
    return DriftDecision(bool(p <= alpha), float(p), float(alpha), tests, int(X.shape[0]), int(Y.shape[0]),
                         time.perf_counter() - start)
