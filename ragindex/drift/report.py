"""Human-readable drift reports: a Markdown table with a one-sentence verdict, and a PNG plot."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ragindex.drift.two_sample import DriftDecision

TEST_TITLES = {
    "classifier": "Classifier (logistic regression, held-out AUC)",
    "mmd_rff": "MMD (Gaussian kernel, random Fourier features)",
    "pca_ks": "PCA + Kolmogorov-Smirnov (Holm)",
}


def format_p(p: float) -> str:
    """p-values for people: 3 significant digits, scientific below 1e-3, '< 1e-300' for underflow."""
    if p <= 0.0:
        return "< 1e-300"
    if p < 1e-3:
        return f"{p:.1e}"
    return f"{p:.3g}"


def markdown_summary(decision: DriftDecision) -> str:
    """A Markdown table (test, statistic, p-value, effect, decision) and one plain-English sentence."""
    adjusted = decision.adjusted_p_values
    lines = [
        "| Test | Statistic | p-value | Holm p | Effect | Decision |",
        "|---|---:|---:|---:|---|---|",
    ]
    for t in decision.tests:
        verdict = "drift" if adjusted[t.name] <= decision.alpha else "no drift"
        lines.append(
            f"| {TEST_TITLES.get(t.name, t.name)} | {t.statistic:.4g} | {format_p(t.p_value)} | "
            f"{format_p(adjusted[t.name])} | {t.effect_label} = {t.effect_size:.3f} | {verdict} |"
        )
    lines.append(
        f"| **Combined (Holm over {len(decision.tests)} tests)** | | | **{format_p(decision.p_value)}** | | "
        f"**{'DRIFT' if decision.drifted else 'no drift'}** |"
    )
    sizes = f"{decision.n_current} current vs {decision.n_reference} reference embeddings"
    if decision.drifted:
        flagged = [TEST_TITLES.get(name, name).split(" (")[0] for name, p in adjusted.items()
                   if p <= decision.alpha]
        sentence = (f"Drift detected: the {sizes} differ (combined p = {format_p(decision.p_value)} "
                    f"at alpha = {decision.alpha:g}), flagged by {', '.join(flagged)}.")
        auc = next((t.effect_size for t in decision.tests if t.name == "classifier"), None)
        if auc is not None:
            sentence += f" A classifier tells them apart with held-out AUC {auc:.2f} (0.5 = indistinguishable)."
    else:
        sentence = (f"No drift detected: no test found a difference between the {sizes} "
                    f"(combined p = {format_p(decision.p_value)} at alpha = {decision.alpha:g}).")
    return "\n".join(lines) + "\n\n" + sentence + "\n"


def _pca_2d(X: np.ndarray, Y: np.ndarray, max_points: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded subsamples of X and Y projected on the top two principal axes of their union."""
    rng = np.random.default_rng(seed)
    Xs = X[np.sort(rng.choice(len(X), min(len(X), max_points), replace=False))].astype(np.float64)
    Ys = Y[np.sort(rng.choice(len(Y), min(len(Y), max_points), replace=False))].astype(np.float64)
    pooled = np.vstack([Xs, Ys])
    mean = pooled.mean(axis=0)
    _, _, vt = np.linalg.svd(pooled - mean, full_matrices=False)
    axes = vt[:2].T
    return (Xs - mean) @ axes, (Ys - mean) @ axes


def plot_drift(
    X: np.ndarray,
    Y: np.ndarray,
    path: str | Path,
    history: Sequence[tuple[str, float]] | None = None,
    alpha: float = 0.05,
    max_points: int = 2000,
    seed: int = 0,
) -> Path:
    """PNG: 2-D PCA of reference vs current (subsampled) and, if given, the p-value history with alpha."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    X, Y = np.asarray(X), np.asarray(Y)
    if X.ndim != 2 or Y.ndim != 2 or X.shape[1] != Y.shape[1]:
        raise ValueError(f"plot_drift needs two 2-D arrays of the same width, got {X.shape} and {Y.shape}")
    if len(X) < 2 or len(Y) < 1:
        raise ValueError("plot_drift needs at least two reference rows and one current row")
    px, py = _pca_2d(X, Y, max_points, seed)
    panels = 2 if history else 1
    fig = Figure(figsize=(6.0 * panels, 5.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, panels, 1)
    ax.scatter(px[:, 0], px[:, 1], s=6, alpha=0.4, label=f"reference (n={len(X)})", color="tab:blue")
    ax.scatter(py[:, 0], py[:, 1], s=6, alpha=0.4, label=f"current (n={len(Y)})", color="tab:orange")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title("Embeddings on the top two principal axes")
    ax.legend(loc="best", markerscale=2)
    if history:
        labels = [str(label) for label, _ in history]
        p_values = np.clip([float(p) for _, p in history], 1e-300, 1.0)
        hx = fig.add_subplot(1, 2, 2)
        positions = np.arange(len(labels))
        hx.plot(positions, p_values, color="0.4", linewidth=1)
        colors = ["tab:red" if p <= alpha else "tab:green" for p in p_values]
        hx.scatter(positions, p_values, c=colors, zorder=3)
        hx.axhline(alpha, color="tab:red", linestyle="--", label=f"alpha = {alpha:g}")
        hx.set_yscale("log")
        hx.set_xticks(positions, labels, rotation=45, ha="right")
        hx.set_ylabel("combined p-value (log scale)")
        hx.set_title("Drift p-value history")
        hx.legend(loc="best")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out
