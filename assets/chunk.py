"""Group chunk: cut the documents whose content (or the chunker) changed into token-bounded chunks."""

from dagster import AssetExecutionContext, Output, asset

from ragindex.build import ChunksResult, DocumentsResult, chunk_documents
from ragindex_app.assets.locking import step_lock
from ragindex_app.assets.metadata import md
from ragindex_app.assets.partitions import BuildPartition, build_partitions
from ragindex_app.resources.embedder import EmbedderResource
from ragindex_app.resources.project import ProjectResource
from ragindex_app.resources.staging import StagingResource


@asset(group_name="chunk", partitions_def=build_partitions, kinds={"python"})
def chunks(context: AssetExecutionContext, documents: DocumentsResult, project: ProjectResource,
           embedder: EmbedderResource, staging: StagingResource) -> Output[ChunksResult]:
    """Every chunk of the source, with content-addressed ids: hash(document id, chunk text, chunker config).
    Only documents whose chunks are missing or stale are cut; the model's tokenizer counts, its weights stay
    unloaded."""
    part = BuildPartition.of(context)
    with step_lock(context, project):
        result = chunk_documents(documents, staging.documents(part.table, part.source),
                                 staging.chunks(part.table, part.source), embedder.chunker(project.config.chunker),
                                 context.run.run_id)
    context.log.info(f"{result.chunks} chunks ({result.tokens} tokens) from {result.chunked_documents} documents; "
                     f"{result.total} chunks in the source")
    return Output(result, metadata={
        "chunks_written": result.chunks,
        "chunks_total": result.total,
        "documents_chunked": result.chunked_documents,
        "documents_dropped": result.dropped_documents,
        "tokens": result.tokens,
        "staging_version": result.version,
        "chunker_hash": result.chunker_hash,
        "chunker_config": project.config.chunker.model_dump(),
        "sample": md(result.sample, ["chunk_id", "doc_id", "heading_path", "n_tokens", "text"], limit=10),
        "seconds": round(result.seconds, 2),
    })
