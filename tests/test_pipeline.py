"""The whole graph materialized in-process against a real Dagster instance, on a small corpus."""

import json
import shutil

import pytest
import yaml
from conftest import WITH_SENTENCE, write_small_corpus
from dagster import DagsterInstance, instance_for_test
from pipeline_helpers import metadata, output, run, store

from ragindex.config import load_config
from ragindex.embedding import Embedder, load_embedder
from ragindex.search import Retriever
from ragindex_app.cli.main import main
from ragindex_app.pipelines.runner import failure_message


@pytest.fixture
def project(tmp_path):
    corpus = write_small_corpus(tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "sources": [{"name": "docs", "type": "directory", "path": str(corpus), "max_file_bytes": 1_000_000}],
        "chunker": {"max_tokens": 64, "overlap_tokens": 8},
        "index": {"uri": str(tmp_path / "lancedb"), "table": "chunks"},
    }))
    (tmp_path / "dagster").mkdir()
    with instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        yield config, corpus, instance


def _table_ids(config) -> list[str]:
    return store(config).open().to_arrow().column("chunk_id").to_pylist()


def _refuse_to_load(self):
    raise AssertionError("a no-op run loaded the model")


def _model_versions() -> int:
    from ragindex.paths import DataLayout
    from ragindex.tracking import Tracker

    layout = DataLayout.current()
    client = Tracker(layout.mlflow_uri, layout.mlflow_artifacts.as_uri()).client
    return len(client.search_model_versions("name = 'ragindex-retriever'"))


def test_build_rerun_search_and_change(project, monkeypatch):
    config, corpus, instance = project
    first = run(config, instance)
    assert first.success
    docs = metadata(instance, "documents")
    assert (docs["documents_added"], docs["skipped"]) == (5, 5)
    for reason in ("empty file", "binary file", "not valid UTF-8", "over-size file", "symlink loop"):
        assert reason in docs["skipped_files"]
    build = output(config, "search_index")
    ids = _table_ids(config)
    assert len(ids) == len(set(ids)) == build.rows == output(config, "chunks").chunks
    assert build.tag.startswith("docs-") and store(config).open().tags.list()[build.tag]

    # the same corpus again, in a process whose model was never loaded: it stays unloaded; nothing embedded, same
    # ids, no duplicate rows, no new table version, tag or MLflow model version
    versions_before = _model_versions()
    load_embedder.cache_clear()
    with monkeypatch.context() as patch:
        patch.setattr(Embedder, "load", _refuse_to_load)
        second = run(config, instance)
    assert second.success
    assert _model_versions() == versions_before == 1
    assert metadata(instance, "search_index")["unchanged"] is True
    assert output(config, "documents").counts()["unchanged"] == 5
    assert output(config, "embeddings").embedded == 0
    assert sorted(_table_ids(config)) == sorted(ids)
    assert output(config, "search_index").tag == build.tag and store(config).open().version == build.version

    # search finds the chunk that holds the sentence, in every mode, with its heading path
    project_config = load_config(config)
    retriever = Retriever(store(config), load_embedder(), project_config.search)
    for mode in ("dense", "dense_exact", "fts", "hybrid"):
        top = retriever.search("who winds the clockwork of the lighthouse at dusk?", mode, 3)[0]
        assert (top.doc_id, top.heading_path) == ("guide/lighthouse.md", "Coastal notes > Keepers"), mode
        assert WITH_SENTENCE in top.text
    assert {h.doc_id for h in retriever.search("vectors", "hybrid", 10, {"format": "rst"})} == {"reference.rst"}

    # a real change: one file edited, one deleted, one added
    (corpus / "guide" / "lighthouse.md").write_text("# Coastal notes\n\n## Keepers\n\nThe keeper retired.\n")
    (corpus / "notes.txt").unlink()
    (corpus / "new.md").write_text("# New\n\nA brand new page about fog horns.\n")
    third = run(config, instance)
    assert third.success
    assert output(config, "documents").counts() == {"added": 1, "modified": 1, "deleted": 1, "unchanged": 3}
    rows = store(config).open().to_arrow().to_pylist()
    assert "notes.txt" not in {r["doc_id"] for r in rows}
    assert not any(WITH_SENTENCE in r["text"] for r in rows)
    assert len(rows) == len({r["chunk_id"] for r in rows})


def test_deletion_guard_stops_an_emptied_source(project, capsys, monkeypatch):
    config, corpus, instance = project
    assert run(config, instance).success
    before = sorted(_table_ids(config))
    shutil.rmtree(corpus / "guide")
    for name in ("notes.txt", "page.html"):
        (corpus / name).unlink()
    failed = run(config, instance)
    assert not failed.success
    message = failure_message(failed)
    assert "would delete" in message and "confirm_deletions" in message
    assert sorted(_table_ids(config)) == before  # nothing was lost


def test_cli_index_and_search_json(project, capsys, monkeypatch):
    config, _, instance = project
    monkeypatch.setenv("DAGSTER_HOME", instance.root_directory)
    monkeypatch.setattr(DagsterInstance, "get", classmethod(lambda cls: instance))
    assert main(["--config", str(config), "index", "--source", "docs", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["documents"]["added"] == 5 and summary["chunks"]["embedded"] > 0
    assert summary["chunks"]["total"] == summary["rows"] and summary["tag"].startswith("docs-")
    assert len(summary["skipped"]) == 5
    assert main(["--config", str(config), "search", "lighthouse keeper clockwork", "--json", "--k", "2",
                 "--filter", "source=docs"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert hits[0]["doc_id"] == "guide/lighthouse.md" and hits[0]["heading_path"] == "Coastal notes > Keepers"
    assert set(hits[0]) >= {"chunk_id", "doc_id", "heading_path", "score", "text"}
    # ask answers offline, extractively, citing the chunk that holds the sentence
    monkeypatch.delenv("RAGINDEX_LLM_BASE_URL", raising=False)
    assert main(["--config", str(config), "ask", "Who winds the brass clockwork of the lighthouse?", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["mode"] == "extractive" and "brass clockwork" in answer["text"]
    assert answer["citations"][0]["doc_id"] == "guide/lighthouse.md" and "[1]" in answer["text"]
    assert main(["--config", str(config), "index", "--source", "nope"]) == 2
    assert "unknown source 'nope'" in capsys.readouterr().err
