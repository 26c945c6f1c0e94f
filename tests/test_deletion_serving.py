"""Deletion reaches everything served: a document deleted from its source, and one erased with `ragindex forget`,
stop being returned by the CLI, by the registered champion (loaded in-process) and by `--version` of the champion's
tag; after `forget` no older version or tag holds it either, and no data file of the table contains its text."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
import yaml
from dagster import DagsterInstance, instance_for_test

from ragindex.config import load_config
from ragindex.index_store import IndexStore
from ragindex.paths import DataLayout
from ragindex.tracking import Tracker
from ragindex_app.cli.main import main

pytestmark = pytest.mark.slow
DELETED = "The quartermaster hides the amber ledger beneath the chapel floor."
ERASED = "The cartographer buried the violet compass under the old mill."
MODEL = "ragindex-retriever"


@pytest.fixture
def project(tmp_path, isolated_data_dir, monkeypatch):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    topics = ["harbours", "lanterns", "tides", "ropes", "sails", "anchors", "charts", "bells", "knots", "gulls"]
    for i, topic in enumerate(topics):
        (corpus / f"{topic}.md").write_text(f"# {topic.title()}\n\n## Notes\n\nRemark {i} about {topic} at sea.\n",
                                            encoding="utf-8")
    (corpus / "ledger.md").write_text(f"# Ledger\n\n## Hiding place\n\n{DELETED}\n", encoding="utf-8")
    (corpus / "compass.md").write_text(f"# Compass\n\n## Burial\n\n{ERASED}\n", encoding="utf-8")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "sources": [{"name": "docs", "type": "directory", "path": str(corpus)}],
        "index": {"uri": str(isolated_data_dir / "lancedb")},
        "quality": {"data_docs": False}, "datasets": {"n": 5}}))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "dagster").mkdir()
    with instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        monkeypatch.setattr(DagsterInstance, "get", classmethod(lambda cls: instance))
        yield str(config), corpus


def _cli_docs(config: str, query: str, capsys, *extra: str) -> set[str]:
    capsys.readouterr()
    assert main(["--config", config, "search", query, "--json", "--k", "20", *extra]) == 0
    return {hit["doc_id"] for hit in json.loads(capsys.readouterr().out)}


def _served_docs(query: str) -> set[str]:
    """The champion, loaded as MLflow serves it (models:/<name>@champion), in this process."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", DataLayout.current().mlflow_uri)
        patch.setenv("MLFLOW_REGISTRY_URI", DataLayout.current().mlflow_uri)
        model = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")
    docs = set()
    for mode in ("hybrid", "fts", "dense"):
        docs |= {hit["doc_id"] for hit in model.predict([{"query": query, "k": 20, "mode": mode}])[0]}
    return docs


def _champion_tag() -> str:
    layout = DataLayout.current()
    tracker = Tracker(layout.mlflow_uri, layout.mlflow_artifacts.as_uri())
    return tracker.serving_config(tracker.champion(MODEL))["tag"]


def _cached_tag() -> str:
    """The champion's tag as the champion cache holds it for the key of the store's current state."""
    from ragindex.serving.champion_cache import _state

    layout = DataLayout.current()
    tracker = Tracker.current(layout)
    held = json.loads(layout.champion_cache.read_text())
    assert held["key"] == [tracker.tracking_uri, _state(tracker.database)]  # the store as it is now: a hit
    return held["champions"][MODEL][1]["tag"]


def _everywhere(config: str, query: str, capsys) -> set[str]:
    """Documents returned for the query by the CLI (latest and the champion's tag) and the served champion."""
    docs = _served_docs(query)
    for mode in ("hybrid", "fts", "dense"):
        docs |= _cli_docs(config, query, capsys, "--mode", mode)
        docs |= _cli_docs(config, query, capsys, "--mode", mode, "--version", _champion_tag())
    return docs


def test_deleted_and_forgotten_documents_leave_everything_served(project, capsys):
    config, corpus = project
    assert main(["--config", config, "index", "--source", "docs"]) == 0
    first_tag = _champion_tag()
    assert _cached_tag() == first_tag  # the build warmed the champion cache: the next search imports no MLflow
    assert {"ledger.md", "compass.md"} <= _everywhere(config, DELETED, capsys) | _everywhere(config, ERASED, capsys)

    # a document deleted from the source: the build that sees it re-pins the champion (no judged queries here, so
    # the gate alone would have kept the old champion and its tag)
    (corpus / "ledger.md").unlink()
    assert main(["--config", config, "index", "--source", "docs"]) == 0
    assert _champion_tag() != first_tag and _cached_tag() == _champion_tag()
    assert "ledger.md" not in _everywhere(config, DELETED, capsys)
    assert "compass.md" in _everywhere(config, ERASED, capsys)

    # forget: a document still in the source, erased from every version that can be served
    store = IndexStore.at(load_config(config).index)
    old_tags = sorted(store.tags())
    data = Path(store.open().uri) / "data"
    assert any(ERASED.encode() in f.read_bytes() for f in data.glob("*.lance"))  # the text is on disk as is
    capsys.readouterr()
    assert main(["--config", config, "forget", "--doc", "compass.md"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("table chunks: 1 chunks of sources docs deleted") and "@champion" in out
    assert "note: source 'docs' still has compass.md" in out
    assert "compass.md" not in _everywhere(config, ERASED, capsys)
    for tag in old_tags:  # every older tag is gone: time travel cannot reach the document either
        assert main(["--config", config, "search", ERASED, "--version", tag]) == 2
    versions = store.open().list_versions()
    for entry in versions:
        assert not store.open(int(entry["version"])).count_rows("doc_id = 'compass.md'")
    assert not any(ERASED.encode() in f.read_bytes() for f in data.glob("*.lance"))
    assert main(["--config", config, "forget", "--doc", "compass.md"]) == 2  # nothing left to forget
    assert "harbours.md" in _cli_docs(config, "harbours at sea", capsys)
