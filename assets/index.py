"""Group index: one LanceDB commit per source, indexes kept current, every build tagged."""

from dagster import AssetExecutionContext, MetadataValue, Output, asset

from assets.partitions import sources_partitions
from ragindex.build import ChunkBatch, DocumentBatch, EmbeddingBatch, IndexBuild, check_model, write_index
from resources.embedder import EmbedderResource
from resources.lancedb_store import LanceStoreResource


@asset(group_name="index", partitions_def=sources_partitions, kinds={"lancedb"})
def search_index(context: AssetExecutionContext, documents: DocumentBatch, chunks: ChunkBatch,
                 embeddings: EmbeddingBatch, embedder: EmbedderResource,
                 lancedb: LanceStoreResource) -> Output[IndexBuild]:
    """The LanceDB table: vector, text and metadata columns, FTS + ANN + chunk-id indexes, a version tag."""
    model = embedder.get()
    store = lancedb.store()
    check_model(store, model.fingerprint.id)
    build = write_index(documents, chunks, embeddings, store, model.dimension)
    context.log.info(f"table {build.table} version {build.version} tagged {build.tag}")
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
    })
