"""Group index: one LanceDB commit per source, indexes kept current, every build tagged."""

from dataclasses import replace

from dagster import AssetExecutionContext, MetadataValue, Output, asset

from assets.partitions import sources_partitions
from ragindex import tracking
from ragindex.build import ChunkBatch, DocumentBatch, EmbeddingBatch, IndexBuild, check_model, write_index
from resources.corpus import CorpusResource
from resources.embedder import EmbedderResource
from resources.lancedb_store import LanceStoreResource
from resources.mlflow_tracker import MlflowResource


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
    })
