"""Data-quality asset checks (Great Expectations 1.x) guarding what is published.

One check per stage, each running that stage's expectation suite (ragindex/quality/suites.py) on the run's
staging files or on the committed table. The checks on `chunks`, `embeddings` and `search_index` are blocking:
when one fails, the assets downstream of it are not materialized in that run and the run fails. Great
Expectations is imported only when a check runs, never when the definitions load.
"""

import warnings

from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetIn, MetadataValue, PreviewWarning, asset_check

from assets.partitions import sources_partitions
from ragindex.build import ChunkBatch, DocumentBatch, EmbeddingBatch, IndexBuild
from ragindex.quality.suites import SuiteResult, quality_dir, write_artifacts
from resources.corpus import CorpusResource
from resources.embedder import EmbedderResource
from resources.lancedb_store import LanceStoreResource


def _check_result(context: AssetCheckExecutionContext, result: SuiteResult, staging: str,
                  corpus: CorpusResource) -> AssetCheckResult:
    """The suite's outcome as check metadata (a Markdown summary, counts, failures with examples) and its
    validation results written as JSON and HTML Data Docs under the run's staging folder."""
    paths = write_artifacts(result, quality_dir(staging), corpus.project().quality.data_docs)
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


def _source_check(**kwargs):
    """@asset_check partitioned by source like the assets, so each source's results show on its partition
    (partitioned checks are a Dagster preview feature: its warning is silenced here, once)."""

    def decorate(fn):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=PreviewWarning)
            return asset_check(partitions_def=sources_partitions, **kwargs)(fn)

    return decorate


def _read(path, columns=None):
    import pyarrow.parquet as pq

    return pq.read_table(path, columns=columns)


@_source_check(asset="documents", blocking=False)
def documents_quality(context: AssetCheckExecutionContext, documents: DocumentBatch,
                      corpus: CorpusResource) -> AssetCheckResult:
    """Documents: non-empty text, unique ids, cleanly decoded text, size within the source's limit."""
    from ragindex.quality.suites import validate_documents

    max_bytes = corpus.source(documents.source).max_file_bytes
    frame = _read(documents.documents_path, ["doc_id", "text", "size", "format"]).to_pandas()
    return _check_result(context, validate_documents(frame, max_bytes), documents.staging, corpus)


@_source_check(asset="chunks", blocking=True)
def chunks_quality(context: AssetCheckExecutionContext, chunks: ChunkBatch, corpus: CorpusResource,
                   embedder: EmbedderResource) -> AssetCheckResult:
    """Chunks: token count within [1, model max length], unique ids, every chunk's document exists, heading
    path present where the document has headings. Blocks embedding and indexing."""
    from ragindex.quality.suites import validate_chunks

    model = embedder.get()
    frame = _read(chunks.chunks_path, ["chunk_id", "doc_id", "heading_path", "n_tokens", "text"]).to_pandas()
    documents = _read(chunks.staging + "/documents.parquet", ["doc_id", "text", "title", "format"]).to_pandas()
    result = validate_chunks(frame, documents, model.max_length, model.count_tokens)
    return _check_result(context, result, chunks.staging, corpus)


@_source_check(asset="embeddings", blocking=True)
def embeddings_quality(context: AssetCheckExecutionContext, embeddings: EmbeddingBatch, corpus: CorpusResource,
                       embedder: EmbedderResource, lancedb: LanceStoreResource) -> AssetCheckResult:
    """Embeddings: the model's dimension, unit norm, no NaN or infinity, one vector per chunk in chunk order,
    and one model fingerprint per table. Blocks indexing."""
    from ragindex.quality.suites import validate_embeddings

    model = embedder.get()
    chunk_rows = _read(f"{embeddings.staging}/chunks.parquet", ["chunk_id", "fingerprint"])
    store = lancedb.store()
    table_fps: list[str] = []
    if store.exists():
        table = store.open()
        rows = table.count_rows()
        if rows:
            table_fps = table.search().select(["fingerprint"]).limit(rows).to_arrow().column(
                "fingerprint").unique().to_pylist()
    fingerprints = {"embedding batch": [embeddings.fingerprint.get("id", "")],
                    "chunk rows": chunk_rows.column("fingerprint").unique().to_pylist(),
                    f"table {store.name}": table_fps}
    result = validate_embeddings(_read(embeddings.vectors_path), chunk_rows.column("chunk_id").to_pylist(),
                                 model.dimension, model.fingerprint.id, fingerprints,
                                 corpus.project().quality.unit_norm_tolerance)
    return _check_result(context, result, embeddings.staging, corpus)


@_source_check(asset="search_index", blocking=True,
               additional_ins={"documents": AssetIn("documents"), "chunks": AssetIn("chunks")})
def index_quality(context: AssetCheckExecutionContext, search_index: IndexBuild, documents: DocumentBatch,
                  chunks: ChunkBatch, corpus: CorpusResource, lancedb: LanceStoreResource) -> AssetCheckResult:
    """Index: row count equals the manifest's chunk count, FTS and ANN indexes present where configured,
    unindexed rows below the threshold, ANN recall@10 against exact search above the threshold."""
    from ragindex.quality.suites import validate_index

    store = lancedb.store()
    table = store.open(search_index.version)
    staged = _read(chunks.chunks_path, ["chunk_id"]).column("chunk_id").to_pylist()
    kept = documents.changes.unchanged + documents.changes.kept_skipped
    result = validate_index(table, store.config, corpus.project().quality, search_index.source, search_index.rows,
                            staged, kept)
    return _check_result(context, result, documents.staging, corpus)
