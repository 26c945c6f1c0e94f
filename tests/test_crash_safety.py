"""Crash safety: SIGKILL a real `ragindex index` process while it embeds and while it writes; the next run finishes
the build with every chunk exactly once, every vector right, and no text embedded twice."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import lancedb
import numpy as np
import pytest
import yaml
from dagster import AssetKey, DagsterInstance

from ragindex.chunking import make_chunker
from ragindex.config import load_config
from ragindex.documents import Document
from ragindex.embedding import FINGERPRINT_MIN_COSINE
from ragindex.index_store import IndexStore
from ragindex.sources import read_source

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
N_FILES = 150
BATCH_ROWS = 16  # texts per embedding-cache commit in the killed runs (the default 1024 commits too rarely here)
WORDS = ("vector index table column query chunk embed cache model token lance arrow schema batch commit version "
         "manifest source document heading section search hybrid dense sparse score rank recall filter partition "
         "sensor schedule cursor asset job run merge insert delete update optimize compact fragment row").split()
SHARED = "This page is published under the same license as every other page of the guide."
# The killed runs lower ragindex.embedding_cache.EMBED_BATCH so that the embedding cache commits every few seconds;
# the final run is the plain command line.
# They also wait 5 s before building the indexes, so the kill can land between the commit and the tag.
PATCHED = ("import sys, time, ragindex.embedding_cache as c, ragindex.index_store as s; "
           "c.EMBED_BATCH = int(sys.argv[1]); build = s.IndexStore.ensure_indexes; "
           "s.IndexStore.ensure_indexes = lambda self: (time.sleep(5), build(self))[1]; "
           "from ragindex_app.cli.main import main; sys.exit(main(sys.argv[2:]))")


def write_corpus(root: Path) -> None:
    """150 Markdown files: two short sections each (one chunk apiece) and one passage they all share."""
    rng = random.Random(11)
    for i in range(N_FILES):
        body = [f"# Guide {i}"]
        for s in range(2):
            words = " ".join(rng.choice(WORDS) for _ in range(14))
            body.append(f"## Part {i}.{s}\n\n{words.capitalize()}.")
        body.append(f"# License\n\n{SHARED}")  # a top-level heading: the same chunk text in every file
        folder = root / f"section{i % 5}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"page{i:03d}.md").write_text("\n\n".join(body) + "\n", encoding="utf-8")


@pytest.fixture
def project(tmp_path, isolated_data_dir):
    corpus = tmp_path / "corpus"
    write_corpus(corpus)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "sources": [{"name": "docs", "type": "directory", "path": str(corpus)}],
        "chunker": {"max_tokens": 32, "overlap_tokens": 4},
        "embedder": {"batch_size": 8},
        "index": {"uri": str(isolated_data_dir / "lancedb"), "table": "chunks"},
        "quality": {"data_docs": False},
        "datasets": {"n": 5},
    }))
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(RAGINDEX_DATA_DIR=str(isolated_data_dir), DAGSTER_HOME=str(dagster_home), PYTHONPATH=str(ROOT))
    return config, isolated_data_dir, dagster_home, env


def _cache_hashes(data: Path) -> list[str]:
    """Every text hash in the embedding cache, duplicates included."""
    db = lancedb.connect(str(data / "cache"))
    names = [n for n in db.list_tables().tables if n.startswith("embeddings_")]
    if not names:
        return []
    return db.open_table(names[0]).to_arrow().column("text_hash").to_pylist()


def _cache_rows(data: Path) -> int:
    try:
        db = lancedb.connect(str(data / "cache"))
        names = [n for n in db.list_tables().tables if n.startswith("embeddings_")]
        return db.open_table(names[0]).count_rows() if names else 0
    except Exception:  # noqa: BLE001 - the table is being created right now
        return 0


def _table_versions(data: Path) -> int:
    return len(list((data / "lancedb" / "chunks.lance" / "_versions").glob("*.manifest")))


def _kill_when(argv: list[str], env: dict, ready, timeout: float = 400) -> dict:
    """Start the command, SIGKILL it as soon as `ready()` holds; fail if it exits first."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        while not ready():
            if proc.poll() is not None:
                raise AssertionError(f"run ended (rc {proc.returncode}) before the kill point: "
                                     f"{proc.stderr.read().decode()[-2000:]}")
            if time.perf_counter() - start > timeout:
                raise AssertionError("kill point never reached")
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    return {"seconds": round(time.perf_counter() - start, 1)}


def _fresh_chunks(config: Path, embedder) -> dict[str, tuple[str, str]]:
    """chunk id -> (text hash, text), cut independently of the build from the files on disk."""
    project = load_config(config)
    chunker = make_chunker(project.chunker, embedder)
    chunks = {}
    for item in read_source(project.source("docs")):
        if isinstance(item, Document):
            for chunk in chunker.chunk(item):
                chunks[chunk.chunk_id] = (chunk.text_hash, chunk.text)
    return chunks


def test_sigkill_while_embedding_and_while_writing_then_finish(project, embedder, monkeypatch):
    config, data, dagster_home, env = project
    fresh = _fresh_chunks(config, embedder)
    distinct = {h for h, _ in fresh.values()}
    assert len(fresh) >= 3 * N_FILES and len(distinct) == len(fresh) - (N_FILES - 1)  # one text in every file
    args = ["--config", str(config), "index", "--source", "docs", "--json"]
    patched = [sys.executable, "-c", PATCHED, str(BATCH_ROWS), *args]

    # (a) killed while embedding: some cache batches are committed, the table was never written
    run_a = _kill_when(patched, env, lambda: _cache_rows(data) >= len(distinct) // 3)
    cached_a = _cache_hashes(data)
    assert 0 < len(cached_a) < len(distinct), "the kill should land in the middle of the embedding"
    assert IndexStore.at(load_config(config).index).count() == 0

    # (b) killed while writing: right after the source's commit (version 1 is the empty table, 2 the merge),
    # while the indexes are being built, before the build is tagged
    run_b = _kill_when(patched, env, lambda: _table_versions(data) >= 2)
    store = IndexStore.at(load_config(config).index)
    state_b = {"versions": _table_versions(data), "rows": store.count(), "tags": len(store.open().tags.list())}
    assert state_b["rows"] == len(fresh) and state_b["tags"] == 0, f"the kill should land before the tag: {state_b}"
    cached_b = _cache_hashes(data)
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    instance = DagsterInstance.get()  # the killed run's own instance: what it recorded before it died
    events = instance.fetch_materializations(AssetKey("embeddings"), limit=10).records
    embedded_b = [e.asset_materialization.metadata["embedded"].value for e in events]
    instance.dispose()
    assert embedded_b and embedded_b[0] + len(cached_a) == len(distinct), (embedded_b, len(cached_a))

    # (c) the same command, uninterrupted
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "ragindex_app.cli.main", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    run_c = round(time.perf_counter() - start, 1)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["chunks"]["embedded"] + len(set(cached_b)) == len(distinct)
    assert summary["chunks"]["embedded"] == 0 and summary["rows"] == len(fresh)
    # the commit of run B stood: every document is unchanged, nothing re-cut, indexes completed, build tagged
    assert summary["documents"]["unchanged"] == N_FILES and summary["chunks"]["new"] == 0
    indexed = {tuple(i.columns) for i in IndexStore.at(load_config(config).index).open().list_indices()}
    assert {("chunk_id",), ("text",), ("title",)} <= indexed

    # every text embedded exactly once over the three runs; the cache holds exactly this corpus's texts
    hashes = _cache_hashes(data)
    assert len(hashes) == len(set(hashes)) == len(distinct) and set(hashes) == distinct

    # the table: one row per fresh chunk, no duplicate, none missing, no stray row; manifest agrees
    store = IndexStore.at(load_config(config).index)
    table = store.open().to_arrow()
    ids = table.column("chunk_id").to_pylist()
    assert len(ids) == len(set(ids)) == len(fresh) and set(ids) == set(fresh)
    texts = dict(zip(ids, table.column("text").to_pylist(), strict=True))
    assert all(texts[i] == fresh[i][1] for i in ids)
    assert len(set(store.source_rows("docs", ["doc_id"]).column("doc_id").to_pylist())) == N_FILES
    assert summary["tag"] in store.open().tags.list()

    # every vector present, unit length, and equal to embedding its text afresh (a sample of 25) within the
    # tolerance its fingerprint promises (bulk runs bf16 on CPUs with native bf16; a single text runs fp32)
    vectors = np.asarray(table.column("vector").combine_chunks().values, dtype=np.float32).reshape(len(ids), -1)
    assert np.all(np.abs(np.linalg.norm(vectors, axis=1) - 1) < 1e-4)
    sample = random.Random(0).sample(range(len(ids)), 25)
    for row in sample:
        expected = embedder.embed([texts[ids[row]]])[0]
        assert float(vectors[row] @ expected) >= FINGERPRINT_MIN_COSINE, ids[row]
    print(f"\nchunks {len(fresh)}, distinct texts {len(distinct)}; run A killed after {run_a['seconds']} s with "
          f"{len(cached_a)} texts cached; run B embedded {embedded_b[0]}, killed after {run_b['seconds']} s with the "
          f"table at {state_b}; run C: {run_c} s, embedded {summary['chunks']['embedded']}, rows {summary['rows']}")
