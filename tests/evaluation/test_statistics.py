"""Tests for bootstrap CIs, the paired randomization test, Holm correction and run comparison."""

from __future__ import annotations

import numpy as np
import pytest

from ragindex.evaluation.latency import percentiles_ms
from ragindex.evaluation.statistics import bootstrap_ci, compare_runs, holm, paired_randomization_test


def test_holm_hand_case() -> None:
    # sorted p: c=0.01, a=0.02, b=0.04, d=0.5 with m=4 multipliers 4, 3, 2, 1
    # c: 4*0.01=0.04; a: max(0.04, 3*0.02=0.06)=0.06; b: max(0.06, 2*0.04=0.08)=0.08; d: max(0.08, 0.5)=0.5
    adj = holm({"a": 0.02, "b": 0.04, "c": 0.01, "d": 0.5})
    assert adj == pytest.approx({"a": 0.06, "b": 0.08, "c": 0.04, "d": 0.5})
    assert list(adj) == ["a", "b", "c", "d"]  # input order kept
    # monotonicity: x: 3*0.3 = 0.9; y: max(0.9, 2*0.4 = 0.8) = 0.9; z: max(0.9, 1*0.95) = 0.95
    assert holm({"x": 0.3, "y": 0.4, "z": 0.95}) == pytest.approx({"x": 0.9, "y": 0.9, "z": 0.95})
    assert holm({"x": 0.6, "y": 0.7}) == {"x": 1.0, "y": 1.0}  # 2*0.6 capped at 1
    assert holm({}) == {}


def test_randomization_exact_small_n() -> None:
    # diffs = [1, 2, 3]; |sum| over the 8 sign patterns: 6, 0, 2, 4, 4, 2, 0, 6.
    # Observed |sum| = 6 -> 2 of 8 patterns are as extreme -> p = 0.25
    assert paired_randomization_test([1, 2, 3], [0, 0, 0]) == pytest.approx(0.25)
    # diffs = [1, 1, 1, 1] -> only all-plus and all-minus reach |sum| 4 -> p = 2/16
    assert paired_randomization_test([1, 1, 1, 1], [0, 0, 0, 0]) == pytest.approx(2 / 16)
    # diffs = [3, -1]: |sum| in {2, 4, 4, 2}, observed 2 -> p = 1
    assert paired_randomization_test([3, 0], [0, 1]) == 1.0
    assert paired_randomization_test([0.5, 0.5], [0.5, 0.5]) == 1.0  # no difference at all
    assert paired_randomization_test([], []) == 1.0
    with pytest.raises(ValueError):
        paired_randomization_test([1, 2], [1])


def test_randomization_monte_carlo_large_n() -> None:
    rng = np.random.default_rng(1)
    a = rng.random(40)
    b_same = a + rng.normal(0, 0.01, size=40)
    p_null = paired_randomization_test(a, b_same, n_perm=2000, seed=0)
    assert p_null > 0.05
    p_big = paired_randomization_test(a + 0.5, a, n_perm=2000, seed=0)
    assert p_big == pytest.approx(1 / 2001)  # +1 smoothing: never exactly 0
    assert paired_randomization_test(a, b_same, n_perm=2000, seed=0) == p_null  # deterministic


def test_bootstrap_ci_deterministic_and_sane() -> None:
    values = np.random.default_rng(5).random(30).tolist()
    mean, lo, hi = bootstrap_ci(values, n_boot=2000, seed=0)
    assert mean == pytest.approx(float(np.mean(values)))
    assert 0.0 <= lo < mean < hi <= 1.0
    # percentile interval close to the normal one: 2 * 1.96 * sd / sqrt(n), within 20 %
    normal_width = 2 * 1.96 * np.std(values) / np.sqrt(len(values))
    assert hi - lo == pytest.approx(normal_width, rel=0.2)
    assert bootstrap_ci(values, n_boot=2000, seed=0) == (mean, lo, hi)
    assert bootstrap_ci(values, n_boot=2000, seed=1) != (mean, lo, hi)
    assert bootstrap_ci([0.3, 0.3, 0.3]) == pytest.approx((0.3, 0.3, 0.3))
    narrow = bootstrap_ci(values, level=0.5)
    assert lo <= narrow[1] <= narrow[2] <= hi
    with pytest.raises(ValueError):
        bootstrap_ci([])


def test_compare_runs_common_queries_and_holm() -> None:
    a = {"q1": {"m1": 0.0, "m2": 1.0}, "q2": {"m1": 0.0, "m2": 1.0}, "q3": {"m1": 0.0, "m2": 1.0}, "qa": {}}
    b = {"q1": {"m1": 1.0, "m2": 1.0}, "q2": {"m1": 2.0, "m2": 1.0}, "q3": {"m1": 3.0, "m2": 1.0}, "qb": {}}
    res = compare_runs({k: v for k, v in a.items() if v}, {k: v for k, v in b.items() if v}, ["m1", "m2"])
    assert res["m1"]["n"] == 3
    assert res["m1"]["mean_a"] == 0.0 and res["m1"]["mean_b"] == 2.0 and res["m1"]["diff"] == 2.0
    assert res["m1"]["p"] == pytest.approx(0.25)  # same sign patterns as diffs [1, 2, 3]
    assert res["m2"]["p"] == 1.0 and res["m2"]["diff"] == 0.0
    assert res["m1"]["p_holm"] == pytest.approx(0.5)  # 2 * 0.25
    assert res["m2"]["p_holm"] == 1.0


def test_percentiles_ms() -> None:
    # 1..100 ms; numpy linear interpolation: p50 = 50.5, p95 = 95.05
    out = percentiles_ms([i / 1000 for i in range(1, 101)])
    assert out == pytest.approx({"p50": 50.5, "p95": 95.05, "n": 100})
    with pytest.raises(ValueError):
        percentiles_ms([])
