"""Data-quality asset checks (Great Expectations 1.x) guarding what is published.

One check per step, each running that step's expectation suite (ragindex/quality/) on the rows the run wrote
(staging tables, filtered by run id) or on the committed table. The checks on `chunks`, `embeddings` and
`search_index` are blocking: when one fails, the assets downstream of it are not materialized and the run fails.
A step that wrote nothing passes its check without loading Great Expectations (it is imported only when rows are
validated).
"""

import warnings

from dagster import AssetCheckExecutionContext, AssetCheckResult, MetadataValue, PreviewWarning, asset_check

from ragindex.build import ChunksResult, DocumentsResult, EmbeddingsResult, IndexBuild
from ragindex.lance_tables import quote
from ragindex.paths import DataLayout
from ragindex_app.assets.partitions import BuildPartition, build_partitions
from ragindex_app.resources.embedder import EmbedderResource
from ragindex_app.resources.lancedb import LanceDBResource
from ragindex_app.resources.mlflow import MlflowResource
from ragindex_app.resources.project import ProjectResource
from ragindex_app.resources.staging import StagingResource


def _check_result(context: AssetCheckExecutionContext, result, project: ProjectResource,
                  mlflow_run: tuple | None = None) -> AssetCheckResult:
    """The suite's outcome as check metadata (a Markdown summary, counts, failures with examples); its validation
    results are written as JSON and HTML Data Docs and, when the build has an MLflow run, logged there."""
    from ragindex.quality import write_artifacts

    part = BuildPartition.of(context)
    folder = DataLayout.current().quality(part.table, part.source, context.run.run_id) / context.check_specs[0].name
    paths = write_artifacts(result, folder, project.config.quality.data_docs)
    if mlflow_run:
        tracker, run_id = mlflow_run
        tracker.log_files(run_id, paths, f"quality/{context.check_specs[0].name}")
    (context.log.info if result.success else context.log.error)(result.headline())
    metadata = {
        "summary": MetadataValue.md(result.markdown()),
        "expectations_evaluated": result.evaluated,
        "expectations_failed": len(result.failed),
        "rows": sum(result.rows.values()),
        "failed_expectations": MetadataValue.json([o.as_dict() for o in result.failed]),
        "results_json": MetadataValue.path(str(paths[0])),
        "artifacts": MetadataValue.json([str(p) for p in paths]),
    }
    metadata.update({k: v for k, v in result.observed.items() if isinstance(v, int | float) and v is not None})
    if result.notes:
        metadata["notes"] = MetadataValue.text("\n".join(result.notes))
    return AssetCheckResult(passed=result.success, metadata=metadata, description=result.headline())


def _nothing_new(what: str) -> AssetCheckResult:
    return AssetCheckResult(passed=True, description=f"nothing new to check: this run wrote no {what}",
                            metadata={"rows": 0})


def _check(**kwargs):
    """@asset_check partitioned like the assets, so each (source, table) shows its own results (partitioned
    checks are a Dagster preview feature: its warning is silenced here, once)."""

    def decorate(fn):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=PreviewWarning)
            return asset_check(partitions_def=build_partitions, **kwargs)(fn)

    return decorate


@_check(asset="documents", blocking=False)
def documents_quality(context: AssetCheckExecutionContext, documents: DocumentsResult, project: ProjectResource,
                      staging: StagingResource) -> AssetCheckResult:
    """Documents: non-empty text, unique ids, cleanly decoded text, size within the source's limit."""
    part = BuildPartition.of(context)
    frame = staging.documents(part.table, part.source).columns(
        ["doc_id", "text", "size", "format"], documents.version, f"run_id = {quote(context.run.run_id)}").to_pandas()
    if frame.empty:
        return _nothing_new("documents")
    from ragindex.quality import validate_documents

    return _check_result(context, validate_documents(frame, project.source(part.source).max_file_bytes), project)


@_check(asset="chunks", blocking=True)
def chunks_quality(context: AssetCheckExecutionContext, chunks: ChunksResult, project: ProjectResource,
                   embedder: EmbedderResource, staging: StagingResource) -> AssetCheckResult:
    """Chunks: token count within [1, model max length], unique ids, every chunk's document exists, heading
    path present where the document has headings. Blocks embedding and indexing."""
    if not chunks.chunks:
        return _nothing_new("chunks")
    from ragindex.lance_tables import scan_in
    from ragindex.quality import validate_chunks

    part = BuildPartition.of(context)
    frame = staging.chunks(part.table, part.source).columns(
        ["chunk_id", "doc_id", "heading_path", "n_tokens", "text"], chunks.version,
        f"run_id = {quote(chunks.run_id)}").to_pandas()
    stage = staging.documents(part.table, part.source)
    documents = [t.to_pandas() for t in scan_in(stage.open(chunks.documents_version),
                                                ["doc_id", "text", "title", "format"], "doc_id",
                                                frame["doc_id"].unique().tolist())]
    import pandas as pd

    model = embedder.embedder()
    result = validate_chunks(frame, pd.concat(documents, ignore_index=True), model.max_length, model.count_tokens)
    return _check_result(context, result, project)


@_check(asset="embeddings", blocking=True)
def embeddings_quality(context: AssetCheckExecutionContext, embeddings: EmbeddingsResult,
                       project: ProjectResource, embedder: EmbedderResource, lancedb: LanceDBResource,
                       staging: StagingResource) -> AssetCheckResult:
    """Embeddings of this run's chunks: the model's dimension, unit norm, no NaN or infinity, one vector per
    chunk, and one model fingerprint per table. Blocks indexing."""
    if not embeddings.chunks_run_id:
        return _nothing_new("chunks to embed")
    from ragindex.quality import validate_embeddings, vectors_table

    part = BuildPartition.of(context)
    mine = staging.chunks(part.table, part.source).columns(["chunk_id", "text_hash"], embeddings.chunks_version,
                                                           f"run_id = {quote(embeddings.chunks_run_id)}")

    found = lancedb.cache().get(mine.column("text_hash").to_pylist())
    hashes, ids = mine.column("text_hash").to_pylist(), mine.column("chunk_id").to_pylist()
    present = [i for i, h in enumerate(hashes) if h in found]
    vectors = vectors_table([ids[i] for i in present], [found[hashes[i]] for i in present])
    held = lancedb.store(part.table).fingerprint()
    fingerprint = embeddings.fingerprint["id"]
    fingerprints = {"embedding batch": [fingerprint], f"table {part.table}": [held] if held else []}
    result = validate_embeddings(vectors, mine.column("chunk_id").to_pylist(), embedder.dimension(), fingerprint,
                                 fingerprints, project.config.quality.unit_norm_tolerance)
    return _check_result(context, result, project)


@_check(asset="search_index", blocking=True)
def index_quality(context: AssetCheckExecutionContext, search_index: IndexBuild, project: ProjectResource,
                  lancedb: LanceDBResource, staging: StagingResource, mlflow: MlflowResource) -> AssetCheckResult:
    """Index: the source's rows equal its staged chunks, no duplicate ids, one fingerprint, FTS and ANN indexes
    present where configured, unindexed rows below the threshold, ANN recall@10 against exact search above it."""
    if search_index.unchanged:
        return AssetCheckResult(passed=True, description=f"unchanged: tag {search_index.tag} was checked when built",
                                metadata={"tag": search_index.tag})
    from ragindex.quality import validate_index

    part = BuildPartition.of(context)
    store = lancedb.store(part.table)
    staged = staging.chunks(part.table, part.source).columns(["chunk_id"]).column("chunk_id").to_pylist()
    result = validate_index(store.open(search_index.version), store.config, project.config.quality,
                            search_index.source, search_index.rows, staged, [])
    run = (mlflow.tracker, search_index.mlflow_run_id) if search_index.mlflow_run_id else None
    return _check_result(context, result, project, run)
