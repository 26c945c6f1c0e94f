"""Bootstrap confidence intervals, paired randomization tests and Holm correction for per-query metrics."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np

EXACT_MAX_N = 16  # enumerate all 2**n sign flips up to this many pairs


def bootstrap_ci(
    values: Sequence[float], n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """(mean, lo, hi): percentile bootstrap interval of the mean; deterministic for a given seed."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("bootstrap_ci needs at least one value")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return float(x.mean()), float(lo), float(hi)


def paired_randomization_test(
    a: Sequence[float], b: Sequence[float], n_perm: int = 10000, seed: int = 0
) -> float:
    """Two-sided sign-flip test of mean(a - b) == 0; exact for n <= 16, else Monte Carlo (+1 smoothed)."""
    if len(a) != len(b):
        raise ValueError(f"paired samples must have equal length, got {len(a)} and {len(b)}")
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    n = d.size
    if n == 0:
        return 1.0
    observed = abs(d.mean())
    tol = 1e-12 * max(1.0, observed)
    if n <= EXACT_MAX_N:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
        stats = np.abs(signs @ d) / n
        return float(np.mean(stats >= observed - tol))
    rng = np.random.default_rng(seed)
    hits = 0
    for start in range(0, n_perm, 1000):  # batches keep memory bounded
        size = min(1000, n_perm - start)
        signs = rng.choice((1.0, -1.0), size=(size, n))
        hits += int(np.sum(np.abs(signs @ d) / n >= observed - tol))
    return (hits + 1) / (n_perm + 1)


def holm(pvalues: Mapping[str, float]) -> dict[str, float]:
    """Holm-Bonferroni adjusted p-values: step-down, made monotone and capped at 1."""
    m = len(pvalues)
    adjusted: dict[str, float] = {}
    running = 0.0
    for i, (name, p) in enumerate(sorted(pvalues.items(), key=lambda kv: (kv[1], kv[0]))):
        running = max(running, min(1.0, (m - i) * p))
        adjusted[name] = running
    return {name: adjusted[name] for name in pvalues}


def compare_runs(
    per_query_a: Mapping[str, Mapping[str, float]],
    per_query_b: Mapping[str, Mapping[str, float]],
    metrics: Sequence[str],
    n_perm: int = 10000,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Per metric over queries in both runs: means, diff = mean_b - mean_a, p, Holm-adjusted p, n."""
    common = sorted(set(per_query_a) & set(per_query_b))
    out: dict[str, dict[str, float]] = {}
    for m in metrics:
        a = np.array([per_query_a[q][m] for q in common], dtype=float)
        b = np.array([per_query_b[q][m] for q in common], dtype=float)
        mean_a = float(a.mean()) if common else 0.0
        mean_b = float(b.mean()) if common else 0.0
        out[m] = {
            "mean_a": mean_a,
            "mean_b": mean_b,
            "diff": mean_b - mean_a,
            "p": paired_randomization_test(a, b, n_perm=n_perm, seed=seed),
            "n": len(common),
        }
    adjusted = holm({m: v["p"] for m, v in out.items()})
    for m, v in out.items():
        v["p_holm"] = adjusted[m]
    return out
