"""Group index: one LanceDB commit per source, indexes kept current, every build tagged and tracked in MLflow."""

from dataclasses import replace
from datetime import timedelta

from dagster import AssetExecutionContext, MetadataValue, Output, asset

from ragindex import cache_gc
from ragindex.build import ChunksResult, EmbeddingsResult, IndexBuild, write_index
from ragindex.index_store import IndexStore
from ragindex.retention import cleanup_versions, tag_versions
from ragindex.tracking import Tracker
from ragindex_app.assets.locking import step_lock
from ragindex_app.assets.metadata import previous_metadata
from ragindex_app.assets.partitions import BuildPartition, build_partitions
from ragindex_app.resources.lancedb import LanceDBResource
from ragindex_app.resources.mlflow import MlflowResource
from ragindex_app.resources.project import ProjectResource
from ragindex_app.resources.staging import StagingResource


def apply_retention(context: AssetExecutionContext, store: IndexStore, tracker: Tracker, build: IndexBuild) -> dict:
    """Delete old table versions by the configured policy, never one an MLflow alias pins nor this build's.
    A failure here never fails the build (it is committed and tagged already): nothing is deleted, it is logged."""
    policy = store.config.retention
    try:
        table = store.open()
        pinned = tracker.protected_tags(table=store.name, uri=store.uri)
        result = cleanup_versions(table, policy.keep_last_tags, timedelta(days=policy.older_than_days),
                                  tag_versions(table, pinned) | {build.version})
    except Exception as error:  # noqa: BLE001 - e.g. MLflow unreachable: keep every version
        context.log.warning(f"retention skipped, nothing deleted: {error}")
        return {"skipped": str(error).splitlines()[0] if str(error) else type(error).__name__}
    context.log.info(f"retention: {result['removed_versions']} old versions removed, tags deleted "
                     f"{result['deleted_tags'] or 'none'}, protected versions {result['protected_versions']}")
    return {**result, "pinned_tags": sorted(pinned)}


def collect_cache_garbage(context: AssetExecutionContext, lancedb: LanceDBResource, staging: StagingResource,
                          retention: dict, rows: int) -> dict:
    """After a retention that removed versions, drop cached vectors no kept version or staged chunk uses, once the
    cache has grown GC_SLACK times past the table (ragindex/cache_gc.py)."""
    cache = lancedb.cache()
    if not retention.get("removed_versions") or not cache_gc.due(cache, rows):
        return {}
    result = cache_gc.collect_after_retention(cache, lancedb.db, staging.store.db)
    context.log.info(f"embedding cache: {result['deleted']} unused vectors removed, {result['rows_after']} kept")
    return result


def track_build(context: AssetExecutionContext, build: IndexBuild, store: IndexStore, embeddings: EmbeddingsResult,
                project: ProjectResource, tracker: Tracker) -> str:
    """The build's MLflow run: model, chunker and index parameters, LanceDB identity, the chunk table as input."""
    index = store.config
    params = {**{f"model.{k}": v for k, v in embeddings.fingerprint.items()},
              **{f"model.runtime.{k}": v for k, v in embeddings.runtime.items()},
              "model.precision": embeddings.precision or "not loaded (nothing embedded)",
              **{f"chunker.{k}": v for k, v in project.config.chunker.model_dump().items()},
              "index.fts": index.fts, "index.fts_title_boost": index.fts_title_boost,
              **{f"index.ann.{k}": v for k, v in index.ann.model_dump().items()},
              "index.ann": "yes" if store.has_ann() else f"exact below {index.ann.min_rows} rows"}
    digest = store.digest(build.version)
    tags = {"lancedb.uri": build.uri, "lancedb.table": build.table, "lancedb.version": build.version,
            "lancedb.tag": build.tag, "source": build.source, "dagster.run_id": context.run.run_id,
            "corpus.digest": digest}
    frame = store.source_rows(build.source, ["chunk_id", "doc_id", "source", "heading_path", "n_tokens"]).to_pandas()
    return tracker.start_build_run(f"{build.table}:{build.tag}", params, tags,
                                   {"rows": build.rows, "inserted": build.inserted, "deleted": build.deleted},
                                   (frame, build.table, f"{build.uri}/{build.table}", digest, "index"))


@asset(group_name="index", partitions_def=build_partitions, kinds={"lancedb"})
def search_index(context: AssetExecutionContext, chunks: ChunksResult, embeddings: EmbeddingsResult,
                 project: ProjectResource, lancedb: LanceDBResource, staging: StagingResource,
                 mlflow: MlflowResource) -> Output[IndexBuild]:
    """The LanceDB table: vector, text and metadata columns, FTS + ANN + chunk-id indexes, a version tag and an
    MLflow run. A source with nothing new makes no commit, no tag and no MLflow run: it links its last build."""
    part = BuildPartition.of(context)
    store = lancedb.store(part.table)
    with step_lock(context, project):
        build = write_index(chunks, staging.chunks(part.table, part.source), store, lancedb.cache(),
                            embeddings.fingerprint["id"])
    if build.unchanged:
        previous = previous_metadata(context)
        build = replace(build, mlflow_run_id=previous.get("mlflow_run_id") or None)
        context.log.info(f"source unchanged: table {build.table} stays at tag {build.tag}")
        return Output(build, metadata={"unchanged": True, "table": build.table, "tag": build.tag,
                                       "version": build.version, "rows": build.rows,
                                       "mlflow_run_id": build.mlflow_run_id or ""})
    context.log.info(f"table {build.table} version {build.version} tagged {build.tag}")
    retention = apply_retention(context, store, mlflow.tracker, build)
    garbage = collect_cache_garbage(context, lancedb, staging, retention, build.rows)
    build = replace(build, mlflow_run_id=track_build(context, build, store, embeddings, project, mlflow.tracker))
    return Output(build, metadata={
        "unchanged": False,
        "table": build.table,
        "uri": build.uri,
        "version": build.version,
        "tag": build.tag,
        "rows": build.rows,
        "source_rows": build.source_rows,
        "inserted": build.inserted,
        "updated": build.updated,
        "deleted": build.deleted,
        "indexes": MetadataValue.json(build.indexes),
        "seconds": round(build.seconds, 2),
        "mlflow_run_id": build.mlflow_run_id,
        "mlflow_run": MetadataValue.url(mlflow.tracker.run_url(build.mlflow_run_id)),
        "retention": MetadataValue.json(retention),
        "cache_gc": MetadataValue.json(garbage),
    })
