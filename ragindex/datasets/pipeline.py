"""Generate an evaluation set from an index table's chunks and publish it as a versioned folder."""

from __future__ import annotations

from pathlib import Path

from ragindex.config import DatasetConfig, SourceConfig
from ragindex.datasets.generators import GenerationResult, generate, load_chunks
from ragindex.datasets.publish import PublishedDataset, publish_dataset
from ragindex.evaluation.beir import load_beir
from ragindex.lance_tables import quote
from ragindex.llm.client import LLMClient
from ragindex.paths import DataLayout


def generate_and_publish(table, source: SourceConfig, config: DatasetConfig, corpus_version: str,
                         generators: list[str] | None = None, n: int | None = None, out: Path | None = None
                         ) -> tuple[PublishedDataset, GenerationResult]:
    """Rows from the source's chunks (seeded, de-duplicated), published with the BEIR layout, Parquet and a card."""
    generators = generators or list(config.generators)
    chunks = load_chunks(table, where=f"source = {quote(source.name)}")
    eval_set = load_beir(source.resolved_path()) if "qrels" in generators else None
    client = LLMClient.from_env(cache_dir=DataLayout.current().llm_cache) if "llm" in generators else None
    result = generate(chunks, generators, n or config.n, config.seed, corpus_version=corpus_version,
                      eval_set=eval_set, llm_client=client)
    if not result.rows:  # say why each generator produced nothing (a dead LLM endpoint, too few chunks, ...)
        reasons = "; ".join(f"{name}: {', '.join(out.notes) or out.skipped or 'no candidates'}"
                            for name, out in result.outputs.items())
        raise ValueError(f"no rows to publish ({reasons})")
    published = publish_dataset(out or config.resolved_out(), source.name, result.rows, chunks,
                                source_license=source.licence(),
                                source_description=f"source '{source.name}' ({source.type})",
                                generation=result.summary())
    return published, result
