"""Measure one table version on a BEIR folder: every mode, intervals, reports, and the figures MLflow records."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ragindex.config import EvaluationConfig, SearchConfig
from ragindex.evaluation.beir import load_beir
from ragindex.evaluation.report import write_outputs
from ragindex.evaluation.runner import EvaluationResult, evaluate
from ragindex.index_store import IndexStore
from ragindex.lance_tables import scan_columns
from ragindex.search import Retriever
from ragindex.step_output import StepOutput


@dataclass
class EvaluationOutcome(StepOutput):
    """An evaluation step's record: `status` says whether it measured; `payload` is the metrics JSON."""

    table: str
    source: str
    tag: str
    status: str  # "measured", "unchanged", "no judged queries", ...
    payload: dict | None = None
    folder: str | None = None  # reports of this evaluation
    dataset: str | None = None  # the BEIR folder measured on
    files: list[str] = field(default_factory=list)


def mlflow_metrics(result: EvaluationResult) -> dict[str, float]:
    """Flat metric names for MLflow (`@` is not allowed there)."""
    metrics = {f"{mode}.{name}": value for mode, values in result.modes.items() for name, value in values.items()}
    metrics |= {"ann_recall_at_10": result.ann_recall_at_10, "n_queries": result.n_queries}
    metrics |= {f"{mode}.latency_p95_ms": v["p95"] for mode, v in result.latency_ms.items()}
    metrics |= {"hybrid.served_cv_ndcg_at_10": result.fusion.cv_scores.get("served", {}).get("mean", float("nan"))}
    metrics |= {"dense.title_weight": result.fusion.title_weight}
    return {k.replace("@", "_at_"): float(v) for k, v in metrics.items()}


def measure(store: IndexStore, tag: str, embedder, dataset: Path, out: Path, search: SearchConfig,
            config: EvaluationConfig, mlflow_run_id: str | None, progress: Callable[[str], None] | None = None,
            groups: tuple[str, ...] | None = None) -> tuple[EvaluationResult, dict, list[Path]]:
    """Evaluate the table at `tag` on the judged queries of `dataset`; write metrics.json, per-query scores,
    report.md and a plot into `out`. Returns the result, the metrics payload and the files written. `groups`:
    measure what a caller with these groups retrieves; None: every chunk (the build's own evaluation)."""
    table = store.open(tag)
    doc_ids = set(scan_columns(table, ["doc_id"]).column("doc_id").to_pylist())
    evalset = load_beir(dataset, known_doc_ids=doc_ids)
    retriever = Retriever(store, embedder, search, version=tag, groups=groups or (), unrestricted=groups is None)
    result = evaluate(retriever, evalset, str(dataset), config.depth, config.folds, config.seed, progress=progress)
    index = {"uri": store.uri, "table": store.name, "version": table.version, "tag": tag}
    payload = result.as_json(mlflow_run_id, index)
    return result, payload, write_outputs(out, result, payload, index)
