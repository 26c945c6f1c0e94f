"""Group embed: a cached vector for every chunk text; only texts never embedded with this model are embedded."""

from dagster import AssetExecutionContext, MetadataValue, Output, asset

from ragindex.build import ChunksResult, EmbeddingsResult, embed_chunks
from ragindex_app.assets.metadata import Progress
from ragindex_app.assets.partitions import BuildPartition, build_partitions
from ragindex_app.resources.compute import RayResource
from ragindex_app.resources.embedder import EmbedderResource
from ragindex_app.resources.lancedb import LanceDBResource
from ragindex_app.resources.staging import StagingResource


@asset(group_name="embed", partitions_def=build_partitions, kinds={"pytorch"})
def embeddings(context: AssetExecutionContext, chunks: ChunksResult, embedder: EmbedderResource,
               lancedb: LanceDBResource, staging: StagingResource, compute: RayResource) -> Output[EmbeddingsResult]:
    """Vectors keyed by (model fingerprint, text hash) in the embedding cache; the model loads only when a text
    is missing from it, in this process or on the Ray cluster's actors (`compute:`)."""
    part = BuildPartition.of(context)
    result = embed_chunks(chunks, staging.chunks(part.table, part.source), lancedb.cache(),
                          compute.embedder_factory(embedder), embedder.fingerprint(),
                          progress=Progress(context.log, "embedding"), titles=lancedb.index.title_vectors != "off")
    rate = result.embedded / result.seconds if result.seconds and result.embedded else 0.0
    return Output(result, metadata={
        "embedded": result.embedded,
        "reused": result.reused,
        "texts_per_second": round(rate, 1),
        "model_fingerprint": MetadataValue.json(result.fingerprint),
        "precision": result.precision or "not loaded",
        "runtime": MetadataValue.json(result.runtime),
        "compute": compute.describe(),
        "seconds": round(result.seconds, 2),
    })
