"""Compare two embedding models on a probe set: kNN overlap and rank agreement of pairwise similarities."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import stats

EmbedFn = Callable[[list[str]], np.ndarray]


def _embed_unit(embed: EmbedFn, texts: list[str], side: str) -> np.ndarray:
    """Call embed, check the shape and return float64 rows scaled to unit length (zero rows stay zero)."""
    V = np.asarray(embed(texts), dtype=np.float64)
    if V.ndim != 2 or V.shape[0] != len(texts):
        raise ValueError(f"embed_{side} returned shape {V.shape} for {len(texts)} texts; expected (n, d)")
    if not np.isfinite(V).all():
        raise ValueError(f"embed_{side} returned NaN or infinite values")
    norms = np.linalg.norm(V, axis=1, keepdims=True)
    return V / np.where(norms > 0, norms, 1.0)


def _knn(V: np.ndarray, rows: slice, k: int) -> np.ndarray:
    """Indices of the k most cosine-similar other probes for the given rows (self excluded)."""
    sims = V[rows] @ V.T
    idx = np.arange(rows.start, rows.stop)
    sims[np.arange(idx.size), idx] = -np.inf
    return np.argpartition(-sims, k - 1, axis=1)[:, :k]


def model_change_report(
    probe_texts: Sequence[str],
    embed_a: EmbedFn,
    embed_b: EmbedFn,
    k: int = 10,
    max_pairs: int = 2_000_000,
    seed: int = 0,
    block_size: int = 1024,
) -> dict[str, Any]:
    """How much the neighbourhood structure of a probe set changes between embedding models a and b.

    Returns the mean (and median, min) Jaccard overlap of each probe's k nearest neighbours in the two
    spaces, the Spearman rank correlation of the pairwise cosine similarities (upper triangle; a seeded
    sample of max_pairs pairs when there are more), and the sizes. Works across dimensions.
    """
    start = time.perf_counter()
    texts = [str(t) for t in probe_texts]
    n = len(texts)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if n < k + 2:
        raise ValueError(f"model_change_report needs at least k + 2 = {k + 2} probe texts, got {n}")
    A = _embed_unit(embed_a, texts, "a")
    B = _embed_unit(embed_b, texts, "b")

    jaccard = np.empty(n)
    for lo in range(0, n, block_size):
        rows = slice(lo, min(n, lo + block_size))
        na, nb = _knn(A, rows, k), _knn(B, rows, k)
        for i, (ra, rb) in enumerate(zip(na, nb, strict=True)):
            inter = np.intersect1d(ra, rb, assume_unique=True).size
            jaccard[lo + i] = inter / (2 * k - inter)

    total_pairs = n * (n - 1) // 2
    if total_pairs <= max_pairs:
        iu, ju = np.triu_indices(n, k=1)
    else:
        rng = np.random.default_rng(seed)
        iu = rng.integers(0, n, size=max_pairs)
        ju = rng.integers(0, n - 1, size=max_pairs)
        ju = ju + (ju >= iu)  # uniform over j != i
    sims_a = np.empty(iu.size)
    sims_b = np.empty(iu.size)
    for lo in range(0, iu.size, 262_144):
        i, j = iu[lo : lo + 262_144], ju[lo : lo + 262_144]
        sims_a[lo : lo + i.size] = np.einsum("ij,ij->i", A[i], A[j])
        sims_b[lo : lo + i.size] = np.einsum("ij,ij->i", B[i], B[j])
    rho = float(stats.spearmanr(sims_a, sims_b).statistic) if iu.size > 1 else float("nan")

    return {
        "n_probes": n,
        "k": k,
        "dimension_a": int(A.shape[1]),
        "dimension_b": int(B.shape[1]),
        "knn_jaccard_mean": float(jaccard.mean()),
        "knn_jaccard_median": float(np.median(jaccard)),
        "knn_jaccard_min": float(jaccard.min()),
        "spearman_pairwise_cosine": rho,
        "n_pairs": int(iu.size),
        "pairs_sampled": bool(total_pairs > max_pairs),
        "seconds": time.perf_counter() - start,
    }
