"""Group embed: vectors for every chunk, embedding only texts the cache has never seen for this model."""

from dagster import AssetExecutionContext, MetadataValue, Output, asset

from assets.partitions import sources_partitions
from ragindex.build import ChunkBatch, EmbeddingBatch, embed_chunks
from resources.embedder import EmbedderResource
from resources.lancedb_store import LanceStoreResource


@asset(group_name="embed", partitions_def=sources_partitions, kinds={"pytorch"})
def embeddings(context: AssetExecutionContext, chunks: ChunkBatch, embedder: EmbedderResource,
               lancedb: LanceStoreResource) -> Output[EmbeddingBatch]:
    """Embeddings keyed by (model fingerprint, text hash); each vector carries the fingerprint id."""
    model = embedder.get()
    cache = lancedb.cache(model.fingerprint.id, model.dimension)
    batch = embed_chunks(chunks, model, cache, progress=context.log.info)
    rate = batch.embedded / batch.seconds if batch.seconds and batch.embedded else 0.0
    return Output(batch, metadata={
        "chunks": batch.chunks,
        "embedded": batch.embedded,
        "reused": batch.reused,
        "texts_per_second": round(rate, 1),
        "model_fingerprint": MetadataValue.json(batch.fingerprint),
        "device": str(model.device),
        "seconds": round(batch.seconds, 2),
    })
