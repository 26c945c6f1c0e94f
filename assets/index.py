"""Group index: one LanceDB commit per source, indexes kept current, every build tagged."""

from dataclasses import replace
from datetime import timedelta

from dagster import AssetExecutionContext, MetadataValue, Output, asset

from assets.partitions import sources_partitions
from ragindex import tracking
from ragindex.build import ChunkBatch, DocumentBatch, EmbeddingBatch, IndexBuild, check_model, write_index
from ragindex.index_store import IndexStore
from ragindex.retention import cleanup_versions, protected_tags, tag_versions
from resources.corpus import CorpusResource
from resources.embedder import EmbedderResource
from resources.lancedb_store import LanceStoreResource
from resources.mlflow_tracker import MlflowResource


def apply_retention(context: AssetExecutionContext, store: IndexStore, build: IndexBuild) -> dict:
    """Delete old table versions by the configured policy, never one an MLflow alias pins nor this build's.
    A failure here never fails the build (it is committed and tagged already): nothing is deleted, it is logged."""
    policy = store.config.retention
    try:
        table = store.open()
        pinned = protected_tags(None, table=store.name, uri=store.uri)
        result = cleanup_versions(table, policy.keep_last_tags, timedelta(days=policy.older_than_days),
                                  tag_versions(table, pinned) | {build.version})
    except Exception as error:  # noqa: BLE001 - e.g. MLflow unreachable: keep every version
        context.log.warning(f"retention skipped, nothing deleted: {error}")
        return {"skipped": str(error).splitlines()[0] if str(error) else type(error).__name__}
    context.log.info(f"retention: {result['removed_versions']} old versions removed, tags deleted "
                     f"{result['deleted_tags'] or 'none'}, protected versions {result['protected_versions']}")
    return {**result, "pinned_tags": sorted(pinned)}


@asset(group_name="index", partitions_def=sources_partitions, kinds={"lancedb"})
def search_index(context: AssetExecutionContext, documents: DocumentBatch, chunks: ChunkBatch,
                 embeddings: EmbeddingBatch, embedder: EmbedderResource, corpus: CorpusResource,
                 lancedb: LanceStoreResource, mlflow: MlflowResource) -> Output[IndexBuild]:
    """The LanceDB table: vector, text and metadata columns, FTS + ANN + chunk-id indexes, a version tag."""
    model = embedder.get()
    store = lancedb.store()
    check_model(store, model.fingerprint.id)
    build = write_index(documents, chunks, embeddings, store, model.dimension)
    context.log.info(f"table {build.table} version {build.version} tagged {build.tag}")
    retention = apply_retention(context, store, build)
    index_params = {"fts": store.config.fts, "fts_title_boost": store.config.fts_title_boost,
                    "ann": "yes" if store.has_ann() else f"exact below {store.config.ann.min_rows} rows",
                    **{f"ann.{k}": v for k, v in store.config.ann.model_dump().items()}}
    run_id = tracking.start_build_run(build.as_dict(), embeddings.fingerprint, corpus.chunker().model_dump(),
                                      index_params, context.run.run_id, store.open())
    build = replace(build, mlflow_run_id=run_id)
    return Output(build, metadata={
        "table": build.table,
        "uri": build.uri,
        "version": build.version,
        "tag": build.tag,
        "rows": build.rows,
        "inserted": build.inserted,
        "updated": build.updated,
        "deleted": build.deleted,
        "indexes": MetadataValue.json(build.indexes),
        "seconds": round(build.seconds, 2),
        "mlflow_run_id": run_id,
        "mlflow_run": MetadataValue.url(tracking.run_url(run_id)),
        "retention": MetadataValue.json(retention),
    })
