"""The whole graph through `dagster asset materialize` with Dagster's multiprocess executor (a process per step),
its intermediate data only on an S3-compatible endpoint: no step reads another's local disk. Then single assets
re-materialized alone, each in a new run, from their parents' data stored there."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import WITH_SENTENCE, write_small_corpus
from dagster import DagsterEventType, DagsterInstance
from pipeline_helpers import store
from services import s3_server

from ragindex.build import StepOutput
from ragindex.storage import JsonStore

pytestmark = pytest.mark.slow
DAGSTER = str(Path(sys.executable).parent / "dagster")
PARTITION = "docs|chunks"


@pytest.fixture
def s3_project(tmp_path, model_cache):
    corpus = write_small_corpus(tmp_path)
    with s3_server() as s3:
        config = tmp_path / "config.yaml"
        config.write_text(yaml.safe_dump({
            "sources": [{"name": "docs", "type": "directory", "path": str(corpus), "max_file_bytes": 1_000_000}],
            "chunker": {"max_tokens": 64, "overlap_tokens": 8},
            "index": {"uri": str(tmp_path / "lancedb"), "table": "chunks"},
            "storage": {"uri": f"s3://{s3.bucket}/staging"},
            "quality": {"data_docs": False},
            "datasets": {"n": 5},
        }))
        home = tmp_path / "dagster_home"
        home.mkdir()
        (tmp_path / "data").mkdir()
        (tmp_path / "data" / "models").symlink_to(model_cache, target_is_directory=True)  # the session's (conftest)
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        env = {**{k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_"))}, **s3.env,
               "DAGSTER_HOME": str(home), "RAGINDEX_CONFIG": str(config),
               "RAGINDEX_DATA_DIR": str(tmp_path / "data"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        yield config, corpus, s3, env


def materialize(env: dict, select: str) -> str:
    """`dagster asset materialize` in a new process, as a user or CI runs it, with the project's executor (a process
    per step, forked from the step server: pipelines/executor.py)."""
    done = subprocess.run([DAGSTER, "asset", "materialize", "-m", "ragindex_app.pipelines.definitions",
                           "--select", select, "--partition", PARTITION], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def stored(s3, asset: str):
    data = JsonStore(f"s3://{s3.bucket}/staging").read(f"_outputs/{asset}/docs/chunks.json")
    return data["value"] if data["kind"] == "json" else StepOutput.from_json(data)


def register(env: dict) -> None:
    code = ("from dagster import DagsterInstance; from ragindex_app.assets.partitions import BuildPartition; "
            "BuildPartition('docs', 'chunks').register(DagsterInstance.get())")
    subprocess.run([sys.executable, "-c", code], env=env, check=True)


def alone(config, instance, *assets: str) -> None:
    """Materialize only these assets of the partition in a new (in-process) run: inputs come from the store."""
    from dagster import AssetKey

    from ragindex_app.assets.partitions import BuildPartition
    from ragindex_app.pipelines.factory import build_definitions

    job = build_definitions(config).resolve_job_def("index_job")
    result = job.execute_in_process(instance=instance, partition_key=BuildPartition("docs", "chunks").key,
                                    asset_selection=[AssetKey(a) for a in assets], raise_on_error=False)
    assert result.success
    ran = {e.step_key for e in result.all_events if e.event_type == DagsterEventType.STEP_START}
    assert {s for s in ran if "_" not in s or s in assets} == set(assets)  # nothing upstream was re-run


def test_multiprocess_graph_on_s3_then_single_assets_alone(s3_project, monkeypatch):
    config, corpus, s3, env = s3_project
    register(env)
    materialize(env, "*")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    instance = DagsterInstance.get()
    run = instance.get_runs(limit=1)[0]
    starts = instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_START)
    pids = {e.dagster_event.pid for e in starts}
    assert len(starts) >= 10 and len(pids) == len(starts)  # every step in a process of its own

    # intermediate data lives only on the endpoint; nothing staged on the local disk
    keys = s3.keys("staging/")
    assert any(k.startswith("staging/chunks__docs__documents.lance/") for k in keys)
    assert any(k.startswith("staging/chunks__docs__chunks.lance/") for k in keys)
    assert "staging/_outputs/search_index/docs/chunks.json" in keys
    assert not (Path(env["RAGINDEX_DATA_DIR"]) / "staging").exists()
    build = stored(s3, "search_index")
    table = store(config).open()
    assert build.rows == table.count_rows() == stored(s3, "chunks").total > 0
    assert any(WITH_SENTENCE in t for t in table.to_arrow().column("text").to_pylist())

    # an edit, then each asset alone in its own run: documents, then chunks, then embeddings and the index
    page = corpus / "guide" / "lighthouse.md"
    page.write_text(page.read_text().replace("brass clockwork", "copper clockwork"), encoding="utf-8")
    alone(config, instance, "documents")
    assert stored(s3, "documents").modified == 1
    assert stored(s3, "chunks").chunks == build.source_rows  # not re-run yet: the first run cut every chunk
    alone(config, instance, "chunks")
    chunks = stored(s3, "chunks")
    assert chunks.chunked_documents == 1 and chunks.chunks >= 1
    alone(config, instance, "embeddings", "search_index")
    assert stored(s3, "embeddings").embedded >= 1
    texts = store(config).open().to_arrow().column("text").to_pylist()
    assert any("copper clockwork" in t for t in texts) and not any("brass clockwork" in t for t in texts)

    # chunks alone again with nothing new upstream: the source's chunks are all there, nothing re-cut
    alone(config, instance, "chunks")
    again = stored(s3, "chunks")
    assert (again.chunks, again.total) == (0, chunks.total)
    assert not (Path(env["RAGINDEX_DATA_DIR"]) / "staging").exists()
