"""Group datasets: a generated, versioned evaluation set for sources without judged queries, and its measurement."""

from pathlib import Path

import pandas as pd
from dagster import AssetExecutionContext, MetadataValue, Output, asset

from ragindex.build import IndexBuild, build_source
from ragindex.datasets.pipeline import generate_and_publish
from ragindex.datasets.publish import load_rows, write_metrics
from ragindex.evaluation.measure import EvaluationOutcome, measure
from ragindex.evaluation.report import metrics_table
from ragindex.paths import DataLayout
from ragindex.source_registry import adhoc_source
from ragindex_app.assets.metadata import Progress, markdown_table, previous_metadata
from ragindex_app.assets.partitions import BuildPartition, build_partitions
from ragindex_app.resources.embedder import EmbedderResource
from ragindex_app.resources.lancedb import LanceDBResource
from ragindex_app.resources.mlflow import MlflowResource
from ragindex_app.resources.project import ProjectResource
from ragindex_app.resources.staging import StagingResource


@asset(group_name="datasets", partitions_def=build_partitions, kinds={"parquet"})
def rag_dataset(context: AssetExecutionContext, search_index: IndexBuild, project: ProjectResource,
                lancedb: LanceDBResource, mlflow: MlflowResource) -> Output[dict]:
    """Heading and cloze questions (plus LLM ones when an endpoint is configured) with graded chunk references,
    published as BEIR files, Parquet rows and a dataset card; `evaluate --dataset` measures any index on it."""
    part = BuildPartition.of(context)
    source = project.source(part.source)
    if source.type == "beir":
        return Output({"status": "BEIR source: its own judged queries are used", "folder": None},
                      metadata={"status": "BEIR source: its own judged queries are used"})
    previous = previous_metadata(context) if search_index.unchanged else {}
    if previous.get("folder"):
        return Output({"status": "unchanged", "folder": previous["folder"]},
                      metadata={"status": "unchanged", "folder": MetadataValue.path(previous["folder"])})
    table = lancedb.store(part.table).open(search_index.tag)
    try:
        published, result = generate_and_publish(table, source, project.config.datasets, search_index.tag)
    except ValueError as error:  # every candidate question filtered out as uninformative: nothing to publish
        status = f"nothing published: {error}"
        context.log.warning(status)
        return Output({"status": status, "folder": None}, metadata={"status": status})
    if search_index.mlflow_run_id:
        mlflow.tracker.log_files(search_index.mlflow_run_id, [published.folder / "README.md",
                                                              published.folder / "dataset.json"], "dataset")
        rows = pd.read_parquet(published.folder / "rows.parquet", columns=["query_id", "query", "generator"])
        mlflow.tracker.log_dataset(search_index.mlflow_run_id, rows, f"{source.name}-eval", str(published.folder),
                                   published.version, "evaluation")
    summary = [{"generator": name, **{k: v for k, v in info.items() if not isinstance(v, (list, dict))}}
               for name, info in result.summary()["generators"].items()]
    return Output({"status": "published", "folder": str(published.folder), "version": published.version}, metadata={
        "status": "published",
        "folder": MetadataValue.path(str(published.folder)),
        "version": published.version,
        "rows": len(result.rows),
        "per_generator": MetadataValue.md(markdown_table(summary, list(summary[0]) if summary else [])),
        "card": MetadataValue.md((published.folder / "README.md").read_text()[:4000]),
    })


@asset(group_name="datasets", partitions_def=build_partitions, kinds={"python"})
def dataset_evaluation(context: AssetExecutionContext, rag_dataset: dict, search_index: IndexBuild,
                       project: ProjectResource, embedder: EmbedderResource, lancedb: LanceDBResource,
                       staging: StagingResource, mlflow: MlflowResource) -> Output[EvaluationOutcome]:
    """Every search mode measured on the generated set, per generator with intervals. The set's corpus (cloze
    sentences removed, so they cannot be matched verbatim) is indexed as the table `eval-<set>` through the
    embedding cache; metrics go into the set's folder and the build's MLflow run."""
    part = BuildPartition.of(context)
    outcome = EvaluationOutcome(part.table, part.source, search_index.tag, rag_dataset["status"],
                                dataset=rag_dataset.get("folder"))
    if rag_dataset["status"] != "published":
        previous = previous_metadata(context)
        context.log.info(f"not measured: {rag_dataset['status']}")
        return Output(outcome, metadata={"status": f"not measured: {rag_dataset['status']}",
                                         **({"metrics": MetadataValue.md(previous["metrics"])}
                                            if previous.get("metrics") else {})})
    folder = Path(rag_dataset["folder"])
    source = adhoc_source(folder)
    store = lancedb.store(f"eval-{source.name}")
    config = project.config
    build = build_source(source, staging.store, store, embedder.chunker(config.chunker), lancedb.cache(),
                         embedder.embedder, embedder.fingerprint(), context.run.run_id,
                         Progress(context.log, "embedding the evaluation corpus"))
    out = DataLayout.current().evaluation(store.name, build.tag)
    try:
        result, payload, files = measure(store, build.tag, embedder.embedder(), source.resolved_path(), out,
                                         config.search, config.evaluation, search_index.mlflow_run_id,
                                         context.log.info)
    except ValueError as error:  # too few questions to cross-validate: reported, never a failed build
        outcome.status = f"not measured: {error}"
        context.log.warning(outcome.status)
        return Output(outcome, metadata={"status": outcome.status})
    data = write_metrics(folder, result.per_query, result.runs, load_rows(folder), seed=config.evaluation.seed)
    payload["by_generator"] = data["summary"]
    outcome.status, outcome.payload, outcome.folder = "measured", payload, str(out)
    if search_index.mlflow_run_id:
        mlflow.tracker.log_files(search_index.mlflow_run_id, files, "dataset_evaluation")
    return Output(outcome, metadata={
        "status": "measured",
        "dataset": MetadataValue.path(str(folder)),
        "eval_table": store.name,
        "n_queries": result.n_queries,
        "metrics": MetadataValue.md(metrics_table(result)),
        "metrics_json": MetadataValue.json({k: v for k, v in payload.items() if k != "per_query"}),
        "embedded": build.inserted,
    })
