"""Time and memory of each drift test and the combined decision on 100k x 384 vs 100k x 384 embeddings."""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ragindex.drift.two_sample import classifier_test, detect_drift, mmd_rff_test, pca_ks_test

OUT = Path(__file__).resolve().parent / "out" / "drift.md"


def unit_gaussian(n: int, d: int, rng: np.random.Generator, offset: np.ndarray) -> np.ndarray:
    """n float32 unit-norm rows: Gaussian with a decaying spectrum plus a common offset, like real embeddings
    (whose centroid is far from the origin)."""
    A = rng.standard_normal((n, d), dtype=np.float32)
    A *= np.linspace(2.0, 0.2, d, dtype=np.float32)
    A += offset
    A /= np.linalg.norm(A, axis=1, keepdims=True)
    return A


def measure(fn: Callable[[], object]) -> tuple[object, float, float]:
    """(result, wall seconds without tracing, peak traced MiB in a second, traced run)."""
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, seconds, peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000, help="rows per side")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--shift", type=float, default=0.25, help="mean shift (in units of one coordinate sd)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    start = time.perf_counter()
    centre = rng.standard_normal(args.dim).astype(np.float32)
    centre *= 8.0 / np.linalg.norm(centre)  # rows have norm ~24 before scaling: centroid norm ~0.3 after
    direction = rng.standard_normal(args.dim).astype(np.float32)
    direction *= args.shift * 2.0 / np.linalg.norm(direction)  # shift relative to the leading sd (2.0)
    X = unit_gaussian(args.rows, args.dim, rng, centre)
    Y_same = unit_gaussian(args.rows, args.dim, rng, centre)
    Y_shift = unit_gaussian(args.rows, args.dim, rng, centre + direction)
    print(f"generated 3 x {args.rows} x {args.dim} float32 in {time.perf_counter() - start:.1f} s")

    detect_drift(X[:200], Y_same[:200])  # warm-up: imports (sklearn, threadpoolctl) are not timed
    rows = []
    for scenario, Y in (("no shift", Y_same), (f"shift {args.shift:g}", Y_shift)):
        for name, fn in (
            ("classifier", lambda Y=Y: classifier_test(X, Y)),
            ("mmd_rff", lambda Y=Y: mmd_rff_test(X, Y)),
            ("pca_ks", lambda Y=Y: pca_ks_test(X, Y)),
            ("combined (detect_drift)", lambda Y=Y: detect_drift(X, Y)),
        ):
            result, seconds, peak = measure(fn)
            if name.startswith("combined"):
                p, effect, verdict = result.p_value, "", "DRIFT" if result.drifted else "no drift"
            else:
                p, effect, verdict = result.p_value, f"{result.effect_label} = {result.effect_size:.3f}", ""
            rows.append((scenario, name, seconds, peak, p, effect, verdict))
            print(f"{scenario:>10} {name:<24} {seconds:6.2f} s  peak {peak:7.1f} MiB  p={p:.3g} {effect} {verdict}")

    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lines = [
        f"# Drift tests on {args.rows:,} x {args.dim} vs {args.rows:,} x {args.dim} float32 unit-norm rows",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, NumPy {np.__version__}. Defaults: max_samples 5000 per side "
        "(every test), 2000 permutations, 256 Fourier features, 10 components, BLAS single-threaded.",
        "Seconds: one untraced run. Peak MiB: tracemalloc peak of a second, traced run (NumPy/Python "
        "allocations, not BLAS scratch). The input arrays themselves "
        f"({X.nbytes / 2**20:.0f} MiB per side) are not counted.",
        "",
        "| Scenario | Test | Seconds | Peak MiB | p-value | Effect | Decision |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    lines += [f"| {s} | {n} | {sec:.2f} | {mb:.1f} | {p:.3g} | {e} | {v} |" for s, n, sec, mb, p, e, v in rows]
    lines += ["", f"Process max RSS: {max_rss:.0f} MiB (includes all three {args.rows:,}-row inputs)."]
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print()
    print(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
