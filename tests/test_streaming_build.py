"""The build steps hold bounded batches, not the whole source: staged rows past SPOOL_ROWS go to a pending table,
texts are read and embedded TEXT_PART at a time, and each step still makes one commit per source."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from ragindex import build as build_module
from ragindex import staging
from ragindex.build import build_source
from ragindex.chunking import make_chunker
from ragindex.config import ChunkerConfig, IndexConfig, SourceConfig
from ragindex.embedding_cache import EmbeddingCache
from ragindex.index_store import IndexStore
from ragindex.lance_tables import scan_columns, table_names
from ragindex.staging import StageStore
from ragindex.storage import connect


def _corpus(root: Path, edition: int) -> Path:
    for i in range(24):
        text = f"# Harbour log {i}\n\nThe ferry {i} left the quay at {i % 12 + 1} o'clock carrying {i * 3} crates."
        if edition and i % 4 == 0:
            text += f"\n\nAmended in edition {edition}: the cargo was oranges."
        (root / f"log{i:02d}.md").parent.mkdir(parents=True, exist_ok=True)
        (root / f"log{i:02d}.md").write_text(text, encoding="utf-8")
    return root


def _build(root: Path, corpus: Path, embedder, run_id: str) -> dict:
    """One build of the corpus; the versions it left and the index's rows (vectors included)."""
    config = IndexConfig(uri=str(root / "lancedb"), confirm_deletions=True)
    stages = StageStore(str(root / "staging"))
    store = IndexStore(connect(config.resolved_uri()), config)
    cache = EmbeddingCache(str(root / "cache"), embedder.fingerprint.id, embedder.dimension)
    chunker = make_chunker(ChunkerConfig(max_tokens=16, overlap_tokens=4), embedder)
    source = SourceConfig(name="logs", type="directory", path=str(corpus))
    build_source(source, stages, store, chunker, cache, lambda: embedder, embedder.fingerprint.as_dict(), run_id)
    rows = scan_columns(store.open(), ["chunk_id", "doc_id", "text", "vector"]).sort_by("chunk_id")
    return {"versions": (stages.documents(store.name, "logs").version(), stages.chunks(store.name, "logs").version(),
                         store.open().version),
            "staging_tables": sorted(table_names(stages.db)), "rows": rows}


def test_spool_streams_rows_through_a_pending_table(tmp_path, monkeypatch, capfd):
    monkeypatch.setattr(staging, "SPOOL_ROWS", 3)
    stage = StageStore(str(tmp_path)).documents("chunks", "logs")
    rows = [{"doc_id": f"d{i}", "source": "logs", "text": f"text {i}", "content_hash": str(i), "title": "",
             "path": f"d{i}.md", "size": i, "mtime": 0.0, "format": "md", "images": [], "run_id": "r",
             "groups": None, "access_hash": ""} for i in range(10)]
    spool = stage.spool()
    for row in rows:
        spool.add(row)
    assert table_names(stage.db) == {spool.pending_name}  # 9 rows spooled, the 10th still in memory
    assert stage.db.open_table(spool.pending_name).count_rows() == 9
    assert spool.reader().read_all().to_pylist() == rows
    spool.close()
    assert table_names(stage.db) == set()
    assert "No existing dataset" not in capfd.readouterr().err  # Lance's warning for overwriting a missing table

    stage.db.create_table(spool.pending_name, pa.Table.from_pylist(rows[:2], stage.schema))  # a killed run's
    again = stage.spool()
    for row in rows:
        again.add(row)
    assert again.reader().read_all().to_pylist() == rows  # the leftover replaced, not appended to


def test_streamed_build_equals_one_batch_build_with_one_commit_per_step(tmp_path, embedder, monkeypatch):
    corpus = tmp_path / "corpus"
    whole = [_build(tmp_path / "whole", _corpus(corpus, edition), embedder, f"run{edition}") for edition in (0, 1)]
    monkeypatch.setattr(staging, "SPOOL_ROWS", 5)  # 24 documents and ~50 chunks: several spooled batches
    monkeypatch.setattr(staging, "SCAN_ROWS", 7)
    monkeypatch.setattr(build_module, "TEXT_PART", 6)
    streamed = [_build(tmp_path / "streamed", _corpus(corpus, edition), embedder, f"run{edition}")
                for edition in (0, 1)]
    for one, other in zip(whole, streamed, strict=True):
        assert other["versions"] == one["versions"]  # the same commits: one per step and source
        assert other["staging_tables"] == one["staging_tables"]  # no pending table left behind
        assert other["rows"].num_rows == one["rows"].num_rows > 24
        for name in ("chunk_id", "doc_id", "text"):
            assert other["rows"].column(name).to_pylist() == one["rows"].column(name).to_pylist()
        vectors = [np.stack(r["rows"].column("vector").to_numpy(zero_copy_only=False)) for r in (one, other)]
        np.testing.assert_allclose(vectors[1], vectors[0], atol=1e-5)
    assert streamed[1]["versions"][0] == streamed[0]["versions"][0] + 1  # the edition's changes: one commit each
    assert streamed[1]["versions"][1] == streamed[0]["versions"][1] + 1
