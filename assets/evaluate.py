"""Group evaluate: measure every build on judged queries, register the retriever, gate the champion."""

from dataclasses import replace

from dagster import AssetExecutionContext, MetadataValue, Output, asset

from ragindex.build import IndexBuild
from ragindex.evaluation.fusion import PRIOR
from ragindex.evaluation.measure import EvaluationOutcome, measure, mlflow_metrics
from ragindex.evaluation.report import fusion_paragraph, metrics_table
from ragindex.index_store import logical_table
from ragindex.paths import DataLayout
from ragindex.serving.pins import advance_pins, dropped_since
from ragindex.titles import configured_weight
from ragindex.tracking import dataset_digest
from ragindex_app.assets.metadata import markdown_table, previous_metadata
from ragindex_app.assets.partitions import BuildPartition, build_partitions
from ragindex_app.resources.embedder import EmbedderResource
from ragindex_app.resources.lancedb import LanceDBResource
from ragindex_app.resources.mlflow import MlflowResource
from ragindex_app.resources.project import ProjectResource


@asset(group_name="evaluate", partitions_def=build_partitions, kinds={"python"})
def evaluation(context: AssetExecutionContext, search_index: IndexBuild, project: ProjectResource,
               embedder: EmbedderResource, lancedb: LanceDBResource,
               mlflow: MlflowResource) -> Output[EvaluationOutcome]:
    """nDCG@10, recall@10/100, MRR@10, MAP@100, hit@10 per mode (dense, dense_exact, fts, hybrid), ANN recall
    and latency, on the judged queries of the source; logged to the build's MLflow run."""
    part = BuildPartition.of(context)
    outcome = EvaluationOutcome(part.table, part.source, search_index.tag, "")
    folder = project.evaluation_set(part.source)
    if search_index.unchanged:
        outcome.status = "unchanged: the build was measured when it was made"
    elif folder is None:
        outcome.status = "no judged queries for this source"
    if outcome.status:
        context.log.info(outcome.status)
        previous = previous_metadata(context) if search_index.unchanged else {}
        carried = {k: MetadataValue.json(v) if k == "metrics_json" else v for k, v in previous.items()
                   if k in ("metrics_json", "n_queries", "report", "folder")}
        return Output(outcome, metadata={"status": outcome.status, **carried})
    out = DataLayout.current().evaluation(part.table, search_index.tag)
    result, payload, files = measure(lancedb.store(part.table), search_index.tag, embedder.embedder(), folder, out,
                                     project.config.search, project.config.evaluation, search_index.mlflow_run_id,
                                     progress=context.log.info)
    outcome.status, outcome.payload, outcome.folder, outcome.dataset = "measured", payload, str(out), str(folder)
    if search_index.mlflow_run_id:
        mlflow.tracker.log_metrics(search_index.mlflow_run_id, mlflow_metrics(result))
        mlflow.tracker.log_files(search_index.mlflow_run_id, files, "evaluation")
    return Output(outcome, metadata={
        "status": outcome.status,
        "n_queries": result.n_queries,
        "metrics": MetadataValue.md(metrics_table(result)),
        "ann_recall@10": round(result.ann_recall_at_10, 4),
        "hybrid_fusion": result.fusion.label,
        "fusion": MetadataValue.md(fusion_paragraph(result.fusion)),
        "problems": MetadataValue.md("\n".join(f"- {p}" for p in result.problems) or "none"),
        "report": MetadataValue.path(str(out / "report.md")),
        "folder": str(out),
        "metrics_json": MetadataValue.json({k: v for k, v in payload.items() if k != "per_query"}),
    })


@asset(group_name="evaluate", partitions_def=build_partitions, kinds={"mlflow"})
def champion(context: AssetExecutionContext, evaluation: EvaluationOutcome, search_index: IndexBuild,
             project: ProjectResource, embedder: EmbedderResource, lancedb: LanceDBResource,
             mlflow: MlflowResource) -> Output[dict]:
    """A registered retriever version pinned to this build's tag; `champion` moves only if the gate passes. An
    unchanged source registers nothing: the decision names the version that serves. A build that deleted chunks
    re-pins every alias (and rollback target) whose tag still holds them to this build's tag, same settings."""
    part = BuildPartition.of(context)
    tracker = mlflow.tracker
    fingerprint_id = embedder.fingerprint_id()
    name = mlflow.registered_name(logical_table(part.table, fingerprint_id))
    if search_index.unchanged:
        current = tracker.champion(name)
        serving = f"v{current.version} ({tracker.serving_config(current).get('tag')})" if current else "none"
        decision = {"model": name, "version": current.version if current else None, "promoted": False,
                    "reason": f"unchanged: nothing registered; serving {serving}"}
        return Output(decision, metadata={**{k: str(v) for k, v in decision.items()}, "unchanged": True})
    config = project.config
    fusion = evaluation.payload["fusion"] if evaluation.payload else \
        replace(PRIOR, title_weight=configured_weight(config.index)).as_dict()
    search = config.search.model_dump()
    model_config = {"uri": search_index.uri, "table": search_index.table, "tag": search_index.tag,
                    "version": search_index.version, "model": config.embedder.model, "fingerprint": fingerprint_id,
                    "fts_title_boost": config.index.fts_title_boost, "ann": config.index.ann.model_dump(),
                    "search": search, "fusion": fusion}
    version = tracker.register_retriever(search_index.mlflow_run_id, name, model_config)
    if evaluation.payload is None:
        result = tracker.promote_unmeasured(name, version)
        decision = {"model": name, "version": version, "promoted": result.promoted, "reason": result.reason}
    else:
        mode = config.serving.gate_mode
        score = evaluation.payload["modes"][mode]["ndcg@10"]
        digest = dataset_digest(evaluation.payload)
        comparison = tracker.compare_with_champion(name, evaluation.payload["per_query"][mode], digest)
        significant_loss = bool(comparison) and comparison["ndcg@10"]["diff"] < 0 \
            and comparison["ndcg@10"]["p_holm"] < 0.05
        result = tracker.promote(name, version, score, digest, config.serving.promotion_margin, significant_loss,
                                 mode)
        decision = {"model": name, "version": version, "promoted": result.promoted, "reason": result.reason,
                    "previous_champion": result.previous_champion, "paired_test": comparison}
    context.log.info(f"{name} v{version}: {decision['reason']}")
    if search_index.deleted:  # deleted chunks leave what serves in this same build (ragindex/serving/pins.py)
        store = lancedb.store(part.table)
        moved = advance_pins(tracker, store, search_index.tag, search_index.version,
                             dropped_since(store, search_index.tag), f"build {search_index.tag} deleted chunks")
        decision["repinned"] = [r.line() for r in moved]
        for line in decision["repinned"]:
            context.log.info(f"re-pinned {line}")
    return Output(decision, metadata={"model": name, "version": version, "promoted": decision["promoted"],
                                      "reason": decision["reason"], "serving_config": MetadataValue.json(model_config),
                                      "repinned": MetadataValue.json(decision.get("repinned", [])),
                                      "decision": MetadataValue.md(markdown_table([decision], list(decision)))})
