"""The embed step on a real Ray head (127.0.0.1, 2 CPUs): the table equals an in-process build, an actor killed
mid-run is restarted and its task retried with no row duplicated, and `ragindex index --config configs/ray.yaml`
indexes through the cluster."""

from __future__ import annotations

import json
import os
import random
import signal

import numpy as np
import pyarrow as pa
import pytest
from services import ray_head

from ragindex.build import build_source
from ragindex.chunking import make_chunker
from ragindex.compute import ray_embed
from ragindex.config import ComputeConfig, EmbedderConfig, IndexConfig, load_config
from ragindex.embedding_cache import EmbeddingCache
from ragindex.index_store import IndexStore
from ragindex.paths import PROJECT_ROOT, DataLayout
from ragindex.source_registry import adhoc_source
from ragindex.staging import StageStore
from ragindex.storage import connect

pytestmark = pytest.mark.slow
RAY_CONFIG = PROJECT_ROOT / "configs" / "ray.yaml"
WORDS = ("lighthouse keeper tanker cape harbour beacon lantern clockwork brass tide reef storm fog signal chart "
         "compass anchor hull mast sail ferry pier quay buoy current").split()


@pytest.fixture(scope="module")
def head():
    with ray_head(num_cpus=2) as running:
        yield running
        import ray

        ray.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """40 Markdown pages of seeded prose: about 160 short chunks with the Ray config's chunker."""
    root = tmp_path_factory.mktemp("ray") / "harbour-notes"
    root.mkdir()
    rng = random.Random(7)
    for page in range(40):
        sections = [f"## Part {s}\n\n" + " ".join(rng.choice(WORDS) for _ in range(rng.randint(40, 120))) + "."
                    for s in range(4)]
        (root / f"page{page:02d}.md").write_text(f"# Page {page}\n\n" + "\n\n".join(sections), encoding="utf-8")
    return root


def build(root, work, embedder, factory, progress=None) -> tuple[IndexStore, EmbeddingCache]:
    """All four build steps for the folder, the configs/ray.yaml chunker, its own storage under `work`."""
    index = IndexConfig(uri=str(work / "lancedb"), fts=False)
    store = IndexStore(connect(index.resolved_uri()), index)
    cache = EmbeddingCache(str(work / "cache"), embedder.fingerprint.id, embedder.dimension)
    chunker = make_chunker(load_config(RAY_CONFIG).chunker, embedder)
    build_source(adhoc_source(root), StageStore(str(work / "staging")), store, chunker, cache, factory,
                 embedder.fingerprint.as_dict(), "run-1", progress)
    return store, cache


def rows(store: IndexStore) -> pa.Table:
    return store.open().to_arrow().sort_by("chunk_id")


def assert_same_table(table: pa.Table, reference: pa.Table) -> None:
    assert table.num_rows == reference.num_rows > 100
    assert table.column("chunk_id").to_pylist() == reference.column("chunk_id").to_pylist()
    assert len(set(table.column("chunk_id").to_pylist())) == table.num_rows  # no row twice
    assert table.column("text").to_pylist() == reference.column("text").to_pylist()
    got, want = (np.stack(t.column("vector").to_numpy(zero_copy_only=False)) for t in (table, reference))
    assert np.abs(got - want).max() < 1e-5


@pytest.fixture(scope="module")
def in_process(corpus, tmp_path_factory, embedder):
    store, _ = build(corpus, tmp_path_factory.mktemp("local"), embedder, lambda: embedder)
    return rows(store)


def test_ray_build_equals_in_process_and_survives_a_killed_actor(head, corpus, in_process, embedder, tmp_path,
                                                                 monkeypatch):
    compute = ComputeConfig(engine="ray", address=head.address, num_actors=2, batch_size=8)
    assert ray_embed.connect(compute).startswith(f"joined the Ray cluster at {head.address} (2 CPUs")
    monkeypatch.setattr(ray_embed, "STREAM_ROWS", 16)  # small commits, so the kill lands mid-run
    killed: list[int] = []

    def kill_one_actor(done: int, total: int) -> None:
        if not killed:
            pids = head.actor_pids("EmbedActor")
            assert len(pids) == 2 and done < total
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    engine = ray_embed.RayEmbedder(compute, EmbedderConfig(device="cpu", precision="fp32"))
    store, cache = build(corpus, tmp_path, embedder, lambda: engine, kill_one_actor)
    assert killed and killed[0] not in head.actor_pids("EmbedActor")
    table = rows(store)
    assert_same_table(table, in_process)
    distinct = set(table.column("text_hash").to_pylist())
    assert cache.rows() == len(distinct)  # every text embedded once: the killed actor's task was retried, once


def test_cli_index_through_the_ray_cluster(head, corpus, in_process, monkeypatch, capsys):
    from ragindex_app.cli.main import main

    monkeypatch.setenv("RAY_ADDRESS", head.address)
    monkeypatch.setenv("DAGSTER_HOME", str(DataLayout.current().root))
    assert main(["index", "--source", str(corpus), "--config", str(RAY_CONFIG), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["compute"].startswith(f"ray: joined the Ray cluster at {head.address}")
    assert summary["chunks"]["embedded"] == summary["rows"] == in_process.num_rows
    project = load_config(RAY_CONFIG)
    store = IndexStore(connect(project.index.resolved_uri()), project.index, summary["table"])
    assert_same_table(rows(store), in_process)
