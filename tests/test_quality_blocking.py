"""Blocking data-quality checks stop a run: a corrupted input fails its check, downstream assets are skipped,
the LanceDB table is not written, and `dagster asset materialize` (what scripts/ci_materialize.sh runs)
exits non-zero."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from dagster import DagsterEventType, instance_for_test
from pipeline_helpers import run

from ragindex.chunking import Chunker
from ragindex.config import load_config
from ragindex.embedding import Embedder, resolve_model_dir
from ragindex.index_store import IndexStore
from ragindex_app.assets.partitions import BuildPartition
from ragindex_app.pipelines.runner import failure_message
from ragindex_app.resources.embedder import EmbedderResource

pytestmark = pytest.mark.slow  # materializes the asset graph

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_CORPUS = ROOT / "tests" / "fixtures" / "corpus"
LONG_PARAGRAPH = " ".join(f"Sentence {i} explains how the lighthouse keeper trims the wick of lamp {i}." for i in
                          range(60))


@pytest.fixture
def project(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "long.md").write_text(f"# Lamps\n\n## Wicks\n\n{LONG_PARAGRAPH}\n", encoding="utf-8")
    (corpus / "short.md").write_text("# Fog\n\nThe fog horn sounds every thirty seconds.\n", encoding="utf-8")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "sources": [{"name": "docs", "type": "directory", "path": str(corpus)}],
        "chunker": {"max_tokens": 1024, "overlap_tokens": 8},
        "index": {"uri": str(tmp_path / "lancedb"), "table": "chunks"},
    }))
    (tmp_path / "dagster").mkdir()
    with instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        yield config, instance


def _checks(result) -> dict:
    return {e.event_specific_data.check_name: e.event_specific_data for e in result.all_events
            if e.event_type == DagsterEventType.ASSET_CHECK_EVALUATION}


def _assert_blocked(result, config, check: str, expectation: str, column: str, not_run: list[str]):
    assert not result.success
    evaluation = _checks(result)[check]
    assert not evaluation.passed and evaluation.blocking and evaluation.partition == "docs|chunks"
    failed = evaluation.metadata["failed_expectations"].value
    assert any(f["expectation"] == expectation and f["column"] == column and f["unexpected_count"] >= 1
               and f["examples"] for f in failed), failed
    assert expectation in evaluation.metadata["summary"].value
    assert Path(evaluation.metadata["results_json"].value).is_file()
    # downstream assets never started: skipped, not materialized
    started = {e.step_key for e in result.all_events if e.event_type == DagsterEventType.STEP_START}
    for asset in not_run:
        assert asset not in started and not result.asset_materializations_for_node(asset), asset
    failures = [e.step_key for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
    assert failures and all(key.endswith(check) for key in failures), failures
    assert not IndexStore.at(load_config(config).index).exists()  # nothing published
    return evaluation


def test_over_length_chunks_block_embedding_and_indexing(project, monkeypatch):
    config, instance = project

    def broken_chunker(self, chunker_config):  # a chunker that ignores the model's maximum length
        return Chunker(chunker_config, self.embedder().tokenizer, 100_000, "broken")

    monkeypatch.setattr(EmbedderResource, "chunker", broken_chunker)
    result = run(config, instance)
    evaluation = _assert_blocked(result, config, "chunks_quality", "expect_column_values_to_be_between",
                                 "model_tokens", ["embeddings", "search_index"])
    assert evaluation.metadata["expectations_failed"].value == 2  # recorded and recounted token counts
    results = Path(evaluation.metadata["results_json"].value)
    assert {p.name for p in results.parent.iterdir()} >= {"chunks.json", "chunks.chunks.html"}
    report = json.loads(results.read_text())
    assert report["summary"]["success"] is False and report["great_expectations"]["validations"]["chunks"]


def test_nan_vectors_never_reach_the_cache_or_the_index(project, monkeypatch):
    config, instance = project

    embed_batches = Embedder.embed_batches

    def nan_vectors(self, texts):  # a model whose first batch has a NaN: the vectors reach the cache as they are
        for number, (positions, vectors) in enumerate(embed_batches(self, texts)):
            if number == 0:
                vectors = vectors.copy()
                vectors[0, 3] = np.nan
            yield positions, vectors

    monkeypatch.setattr(Embedder, "embed_batches", nan_vectors)
    result = run(config, instance)
    assert not result.success and _checks(result)["chunks_quality"].passed
    assert "non-finite vectors" in failure_message(result)
    started = {e.step_key for e in result.all_events if e.event_type == DagsterEventType.STEP_START}
    assert "search_index" not in started
    assert not IndexStore.at(load_config(config).index).exists()  # nothing published


def broken_ci_config(root: Path) -> Path:
    """configs/ci.yaml with a corrupted model: the packaged one exported without its Normalize layer, so its
    vectors are not unit length."""
    model = root / "minilm-no-normalize"
    model.mkdir()
    source = resolve_model_dir("all-MiniLM-L6-v2")
    for item in source.iterdir():
        if item.name != "modules.json":
            (model / item.name).symlink_to(item)
    modules = json.loads((source / "modules.json").read_text())
    (model / "modules.json").write_text(json.dumps([m for m in modules if "Normalize" not in m["type"]]))
    ci = yaml.safe_load((ROOT / "configs" / "ci.yaml").read_text())
    ci["sources"][0]["path"] = str(FIXTURE_CORPUS)
    ci["embedder"]["model"] = str(model)
    config = root / "broken.yaml"
    config.write_text(yaml.safe_dump(ci))
    return config


def test_dagster_cli_exits_non_zero_when_a_blocking_check_fails(tmp_path, monkeypatch):
    """`dagster asset materialize -m ragindex_app.pipelines.definitions --select '*' --partition 'ci|ci_chunks'`,
    as CI runs it (scripts/ci_materialize.sh), invoked in this process so the model and GE are loaded once: the blocking
    embeddings check fails, the index and everything after it are skipped, and the command exits non-zero."""
    from dagster._cli import cli as dagster_cli

    config = broken_ci_config(tmp_path)
    home = tmp_path / "dagster_home"
    home.mkdir()
    with instance_for_test(temp_dir=str(home)) as instance:
        partition = BuildPartition("ci", "ci_chunks")
        partition.register(instance)
        monkeypatch.delitem(sys.modules, "ragindex_app.pipelines.definitions", raising=False)  # from RAGINDEX_CONFIG
        env = {"DAGSTER_HOME": str(home), "RAGINDEX_CONFIG": str(config),
               "RAGINDEX_DATA_DIR": str(tmp_path / "data")}
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        # the in-process executor keeps the steps in this process, as the docstring says (the CLI would otherwise
        # run a process per step, forked from a server it starts first); the blocking check, the skipped steps
        # and the exit code are the executor's plan either way. The per-step processes of the same command run in
        # test_multiprocess_s3.py and in `make test` (scripts/ci_materialize.sh).
        in_process = json.dumps({"execution": {"config": {"in_process": {}}}})
        done = CliRunner().invoke(dagster_cli, ["asset", "materialize", "-m", "ragindex_app.pipelines.definitions",
                                                "--select", "*", "--partition", str(partition.key),
                                                "--config-json", in_process], env=env)
        assert done.exit_code != 0 and "Materialization failed" in done.output, done.output[-3000:]
        run = instance.get_runs(limit=1)[0]
        checks = {e.dagster_event.event_specific_data.check_name: e.dagster_event.event_specific_data
                  for e in instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION)}
        started = {e.dagster_event.step_key for e in instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_START)}
    failed = checks["embeddings_quality"]
    assert not failed.passed and failed.blocking
    assert "expect_column_values_to_be_between(vector_norm)" in failed.description
    assert checks["chunks_quality"].passed and "index_quality" not in checks
    assert "embeddings" in started and "search_index" not in started
    assert not list((tmp_path / "data").glob("lancedb/*.lance"))  # the index table was never written
