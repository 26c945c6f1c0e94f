"""Group datasets: a generated, versioned evaluation set for sources that bring no judged queries."""

import pandas as pd
from dagster import AssetExecutionContext, MetadataValue, Output, asset

from assets.metadata import markdown_table
from assets.partitions import sources_partitions
from ragindex import tracking
from ragindex.build import IndexBuild
from ragindex.datasets.pipeline import generate_and_publish
from resources.corpus import CorpusResource
from resources.lancedb_store import LanceStoreResource
from resources.mlflow_tracker import MlflowResource


@asset(group_name="datasets", partitions_def=sources_partitions, kinds={"parquet"})
def rag_dataset(context: AssetExecutionContext, search_index: IndexBuild, corpus: CorpusResource,
                lancedb: LanceStoreResource, mlflow: MlflowResource) -> Output[str | None]:
    """Heading and cloze questions (plus LLM ones when an endpoint is configured) with graded chunk references,
    published as BEIR files, Parquet rows and a dataset card; `evaluate --dataset` measures any index on it."""
    source = corpus.source(context.partition_key)
    if source.type == "beir":
        return Output(None, metadata={"status": "BEIR source: its own judged queries are used"})
    project = corpus.project()
    table = lancedb.store().open(search_index.tag)
    published, result = generate_and_publish(table, source, project.datasets, search_index.tag)
    if search_index.mlflow_run_id:
        tracking.log_files(search_index.mlflow_run_id, [published.folder / "README.md",
                                                        published.folder / "dataset.json"], "dataset")
        rows = pd.read_parquet(published.folder / "rows.parquet", columns=["query_id", "query", "generator"])
        tracking.log_dataset(search_index.mlflow_run_id, rows, f"{source.name}-eval", str(published.folder),
                             published.version, "evaluation")
    summary = [{"generator": name, **{k: v for k, v in info.items() if not isinstance(v, (list, dict))}}
               for name, info in result.summary()["generators"].items()]
    return Output(str(published.folder), metadata={
        "folder": MetadataValue.path(str(published.folder)),
        "version": published.version,
        "rows": len(result.rows),
        "per_generator": MetadataValue.md(markdown_table(summary, list(summary[0]) if summary else [])),
        "card": MetadataValue.md((published.folder / "README.md").read_text()[:4000]),
    })
