"""Group evaluate: measure every build on judged queries, register the retriever, gate the champion."""

import json
from dataclasses import dataclass
from pathlib import Path

from dagster import AssetExecutionContext, MetadataValue, Output, asset

from assets.metadata import markdown_table
from assets.partitions import sources_partitions
from ragindex import tracking
from ragindex.build import IndexBuild
from ragindex.datasets.publish import load_rows, write_metrics
from ragindex.evaluation.beir import load_beir
from ragindex.evaluation.report import metrics_table, write_outputs
from ragindex.evaluation.runner import evaluate
from ragindex.index_store import scan_columns
from ragindex.paths import data_dir
from ragindex.quality.suites import artifact_paths
from ragindex.search import Retriever, fusion_file
from resources.corpus import CorpusResource
from resources.embedder import EmbedderResource
from resources.lancedb_store import LanceStoreResource
from resources.mlflow_tracker import MlflowResource


@dataclass
class Evaluation:
    """Where the results are and the numbers the gate needs (None when the source has no judged queries)."""

    payload: dict | None
    folder: str | None
    build: IndexBuild


def evaluation_set_dir(corpus: CorpusResource, source_name: str) -> Path | None:
    project = corpus.project()
    if source_name in project.evaluation.datasets:
        return Path(project.evaluation.datasets[source_name])
    source = corpus.source(source_name)
    if source.type == "beir" and (source.resolved_path() / "queries.jsonl").is_file():
        return source.resolved_path()
    return None


@asset(group_name="evaluate", partitions_def=sources_partitions, kinds={"python"})
def evaluation(context: AssetExecutionContext, search_index: IndexBuild, corpus: CorpusResource,
               embedder: EmbedderResource, lancedb: LanceStoreResource, mlflow: MlflowResource) -> Output[Evaluation]:
    """nDCG@10, recall@10/100, MRR@10, MAP@100, hit@10 per mode (dense, dense_exact, fts, hybrid), ANN recall
    and latency, on the judged queries of the source; logged to the build's MLflow run."""
    quality_files = artifact_paths(search_index.staging) if search_index.staging else []
    if search_index.mlflow_run_id and quality_files:  # the checks passed to get here: keep their evidence
        tracking.log_files(search_index.mlflow_run_id, quality_files, "quality")
    folder = evaluation_set_dir(corpus, context.partition_key)
    if folder is None:
        context.log.info("no judged queries for this source: evaluation skipped")
        return Output(Evaluation(None, None, search_index), metadata={"status": "no judged queries"})
    project = corpus.project()
    store = lancedb.store()
    table = store.open(search_index.tag)
    doc_ids = set(scan_columns(table, ["doc_id"]).column("doc_id").to_pylist())
    evalset = load_beir(folder, known_doc_ids=doc_ids)
    retriever = Retriever(store, embedder.get(), project.search, version=search_index.tag)
    cfg = project.evaluation
    result = evaluate(retriever, evalset, str(folder), cfg.depth, cfg.folds, cfg.seed, progress=context.log.info)
    index = {"uri": search_index.uri, "table": search_index.table, "version": search_index.version,
             "tag": search_index.tag}
    payload = result.as_json(search_index.mlflow_run_id, index)
    out = data_dir() / "evaluations" / search_index.table / search_index.tag
    rows_file = Path(folder) / "rows.parquet"
    if rows_file.is_file():  # a generated data set: metrics per generator, with intervals, into its folder
        rows = load_rows(folder)
        data = write_metrics(folder, result.per_query, result.runs, rows, seed=cfg.seed)
        payload["by_generator"] = data["summary"]
    files = write_outputs(out, result, payload, index)
    fusion_file(search_index.table).write_text(json.dumps(result.fusion, indent=2))
    metrics = {f"{mode}.{name}": value for mode, values in result.modes.items() for name, value in values.items()}
    metrics |= {"ann_recall_at_10": result.ann_recall_at_10, "n_queries": result.n_queries}
    metrics |= {f"{mode}.latency_p95_ms": v["p95"] for mode, v in result.latency_ms.items()}
    metrics |= {"hybrid.weight": result.fusion["weight"]}
    tracking.log_evaluation(search_index.mlflow_run_id, {k.replace("@", "_at_"): v for k, v in metrics.items()},
                            files)
    return Output(Evaluation(payload, str(out), search_index), metadata={
        "n_queries": result.n_queries,
        "metrics": MetadataValue.md(metrics_table(result)),
        "ann_recall@10": round(result.ann_recall_at_10, 4),
        "hybrid_weight": result.fusion["weight"],
        "problems": MetadataValue.md("\n".join(f"- {p}" for p in result.problems) or "none"),
        "report": MetadataValue.path(str(out / "report.md")),
        "mlflow_run": MetadataValue.url(tracking.run_url(search_index.mlflow_run_id)),
    })


@asset(group_name="evaluate", partitions_def=sources_partitions, kinds={"mlflow"})
def champion(context: AssetExecutionContext, evaluation: Evaluation, corpus: CorpusResource,
             embedder: EmbedderResource, lancedb: LanceStoreResource, mlflow: MlflowResource) -> Output[dict]:
    """A registered retriever version pinned to this build's tag; `champion` moves only if the gate passes."""
    build = evaluation.build
    project = corpus.project()
    store = lancedb.store()
    model = embedder.get()
    name = project.serving.model_name if store.logical_name == project.index.table else \
        f"{project.serving.model_name}-{store.logical_name}"
    weight = evaluation.payload["fusion"]["weight"] if evaluation.payload else project.search.hybrid_weight
    model_config = {"uri": build.uri, "table": build.table, "tag": build.tag, "version": build.version,
                    "model": project.embedder.model, "fingerprint": model.fingerprint.id,
                    "fts_title_boost": store.config.fts_title_boost, "ann": store.config.ann.model_dump(),
                    "search": {**project.search.model_dump(), "hybrid_weight": weight}}
    version = tracking.register_retriever(build.mlflow_run_id, name, model_config)
    if evaluation.payload is None:
        result = tracking.promote_unmeasured(name, version)
        decision = {"model": name, "version": version, "promoted": result.promoted, "reason": result.reason}
    else:
        mode = project.serving.gate_mode
        score = evaluation.payload["modes"][mode]["ndcg@10"]
        digest = tracking.dataset_digest(evaluation.payload)
        comparison = tracking.compare_with_champion(name, evaluation.payload["per_query"][mode], digest)
        significant_loss = bool(comparison) and comparison["ndcg@10"]["diff"] < 0 \
            and comparison["ndcg@10"]["p_holm"] < 0.05
        result = tracking.promote(name, version, score, digest, project.serving.promotion_margin,
                                  significant_loss, mode)
        decision = {"model": name, "version": version, "promoted": result.promoted, "reason": result.reason,
                    "previous_champion": result.previous_champion, "paired_test": comparison}
    (Path(evaluation.folder or data_dir()) / "promotion.json").write_text(json.dumps(decision, indent=2))
    context.log.info(f"{name} v{version}: {decision['reason']}")
    return Output(decision, metadata={"model": name, "version": version, "promoted": decision["promoted"],
                                      "reason": decision["reason"],
                                      "decision": MetadataValue.md(markdown_table([decision], list(decision)))})
