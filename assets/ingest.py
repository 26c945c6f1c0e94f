"""Group ingest: read a source and find what changed since the last indexed version."""

from dataclasses import asdict

from dagster import AssetExecutionContext, MetadataValue, Output, asset

from assets.metadata import md
from assets.partitions import sources_partitions
from ragindex.build import DocumentBatch, collect_documents, staging_dir
from ragindex.chunking import make_chunker
from ragindex.paths import data_dir
from resources.corpus import CorpusResource
from resources.embedder import EmbedderResource
from resources.lancedb_store import LanceStoreResource


@asset(group_name="ingest", partitions_def=sources_partitions, kinds={"python"})
def documents(context: AssetExecutionContext, corpus: CorpusResource, embedder: EmbedderResource,
              lancedb: LanceStoreResource) -> Output[DocumentBatch]:
    """Documents of one source: added, modified, deleted, unchanged, and skipped inputs with reasons."""
    source = corpus.source(context.partition_key)
    if context.run.tags.get("verify") == "full":  # the verification schedule: re-hash every file, trust no mtime
        source = source.model_copy(update={"always_hash": True})
    model = embedder.get()
    chunker = make_chunker(corpus.chunker(), model)
    store = lancedb.store()
    staging = staging_dir(data_dir(), store.name, source.name, context.run.run_id)
    batch = collect_documents(source, store, chunker.config_hash, model.fingerprint.id, staging)
    for item in batch.skipped:
        context.log.warning(f"skipped {item.path}: {item.reason}")
    counts = batch.changes.counts()
    return Output(batch, metadata={
        **{f"documents_{k}": v for k, v in counts.items()},
        "documents_total": batch.total,
        "skipped": len(batch.skipped),
        "skipped_files": md([asdict(s) for s in batch.skipped], ["path", "reason"], limit=50),
        "source": MetadataValue.json(source.model_dump()),
        "seconds": round(batch.seconds, 2),
    })
