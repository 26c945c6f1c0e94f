"""Evaluation outputs a person reads: the metrics JSON, a Markdown report and a per-query plot."""

from __future__ import annotations

import json
from pathlib import Path

from ragindex.evaluation.fusion import FusionChoice
from ragindex.evaluation.metrics import METRICS
from ragindex.evaluation.runner import MODES, EvaluationResult


def metrics_table(result: EvaluationResult) -> str:
    head = "| mode | " + " | ".join(METRICS) + " | p50 ms | p95 ms |"
    lines = [head, "|" + "---|" * (len(METRICS) + 3)]
    for mode in MODES:
        values = " | ".join(f"{result.modes[mode][m]:.4f}" for m in METRICS)
        latency = result.latency_ms.get(mode, {"p50": float("nan"), "p95": float("nan")})
        lines.append(f"| {mode} | {values} | {latency['p50']:.1f} | {latency['p95']:.1f} |")
    return "\n".join(lines)


def markdown_report(result: EvaluationResult, index: dict) -> str:
    fusion = result.fusion
    problems = "\n".join(f"- {p}" for p in result.problems) or "- none"
    return (f"# Retrieval evaluation: {result.dataset}\n\n"
            f"Index `{index.get('table')}` version {index.get('version')} (tag `{index.get('tag')}`), "
            f"{result.n_queries} scored queries.\n\n{metrics_table(result)}\n\n"
            f"ANN recall@10 against exact search: **{result.ann_recall_at_10:.4f}**\n\n"
            f"{fusion_paragraph(fusion)}\n\n"
            f"## Data problems\n{problems}\n")


def fusion_paragraph(fusion: FusionChoice) -> str:
    """What hybrid serves, why, and the cross-validated score of every candidate family with its interval."""
    scores = ", ".join(f"{name} {v['mean']:.4f} [{v['ci_low']:.4f}, {v['ci_high']:.4f}]"
                       for name, v in fusion.cv_scores.items())
    folds = fusion.details.get("fold_choices")
    return (f"Hybrid serves **{fusion.label}** (evidence: {fusion.evidence}; a fusion must beat the best single "
            f"mode by more than {fusion.margin} {fusion.metric} in cross-validation). Cross-validated "
            f"{fusion.metric} per family, 95% interval: {scores or 'none'}."
            + (f" Choice per outer fold: {', '.join(folds)}." if folds else "") + _titles_sentence(fusion))


def _titles_sentence(fusion: FusionChoice) -> str:
    titles = fusion.details.get("titles")
    if not titles:
        return ""
    measured = ", ".join(f"{w} {v['mean']:.4f}" for w, v in titles["details"]["measured"].items())
    return (f" Title vectors: weight **{titles['weight']:g}** in dense scores (evidence: {titles['evidence']}); "
            f"dense {fusion.metric} per weight: {measured}.")


def plot_per_query(result: EvaluationResult, path: Path) -> Path:
    """Per-query nDCG@10 by mode, queries sorted by the dense score."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    queries = sorted(result.per_query["dense_exact"], key=lambda q: result.per_query["dense_exact"][q]["ndcg@10"])
    fig, ax = plt.subplots(figsize=(9, 4), dpi=110)
    for mode in MODES:
        ax.plot([result.per_query[mode].get(q, {}).get("ndcg@10", 0.0) for q in queries], marker=".", lw=1,
                label=f"{mode} (mean {result.modes[mode]['ndcg@10']:.3f})")
    ax.set_xlabel("query (sorted by dense_exact nDCG@10)")
    ax.set_ylabel("nDCG@10")
    ax.set_title(f"Per-query nDCG@10 on {result.dataset}")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_outputs(folder: Path, result: EvaluationResult, payload: dict, index: dict) -> list[Path]:
    """metrics.json (the documented payload), per_query.json, report.md and per_query_ndcg.png."""
    folder.mkdir(parents=True, exist_ok=True)
    files = [folder / "metrics.json", folder / "per_query.json", folder / "report.md"]
    summary = {k: v for k, v in payload.items() if k != "per_query"}
    files[0].write_text(json.dumps(summary, indent=2))
    files[1].write_text(json.dumps(result.per_query, indent=2))
    files[2].write_text(markdown_report(result, index))
    files.append(plot_per_query(result, folder / "per_query_ndcg.png"))
    return files
