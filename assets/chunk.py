"""Group chunk: cut changed documents into heading-aware, token-bounded chunks."""

from dagster import AssetExecutionContext, Output, asset

from assets.metadata import md
from assets.partitions import sources_partitions
from ragindex.build import ChunkBatch, DocumentBatch, chunk_documents
from ragindex.chunking import make_chunker
from resources.corpus import CorpusResource
from resources.embedder import EmbedderResource


@asset(group_name="chunk", partitions_def=sources_partitions, kinds={"python"})
def chunks(context: AssetExecutionContext, documents: DocumentBatch, corpus: CorpusResource,
           embedder: EmbedderResource) -> Output[ChunkBatch]:
    """Chunks with content-addressed ids: hash(document id, chunk text, chunker config)."""
    model = embedder.get()
    chunker = make_chunker(corpus.chunker(), model)
    batch = chunk_documents(documents, chunker, model.fingerprint.id)
    context.log.info(f"{batch.chunks} chunks, {batch.tokens} tokens from {documents.documents_path}")
    return Output(batch, metadata={
        "chunks": batch.chunks,
        "tokens": batch.tokens,
        "chunker_hash": batch.chunker_hash,
        "chunker_config": corpus.chunker().model_dump(),
        "sample": md(batch.sample, ["chunk_id", "doc_id", "heading_path", "n_tokens", "text"], limit=10),
        "seconds": round(batch.seconds, 2),
    })
