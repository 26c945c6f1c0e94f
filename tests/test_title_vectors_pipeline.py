"""Title vectors end to end: `ragindex evaluate` builds a titled BEIR corpus through the assets (the embeddings step
embeds the titles), the evaluation records the weight (forced: `on`), MLflow and the registered serving config
carry it, and `ragindex search` serves it. How `auto` chooses it: tests/test_title_vectors.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance, instance_for_test
from test_title_vectors import BODY, ENTITIES

from ragindex.config import load_config
from ragindex.index_store import IndexStore
from ragindex.paths import DataLayout
from ragindex.search import Retriever
from ragindex.serving.resolve import serving_target
from ragindex.titles import TITLE_VECTOR
from ragindex.tracking import Tracker
from ragindex_app.cli.main import main


def _beir(root: Path) -> Path:
    """People whose names are only in their titles (generic bodies), one judged query each."""
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text("".join(
        json.dumps({"_id": f"p{i:02d}", "title": name, "text": f"{BODY} Entry {i}."}) + "\n"
        for i, name in enumerate(ENTITIES)))
    (root / "queries.jsonl").write_text("".join(
        json.dumps({"_id": f"q{i}", "text": f"{name} early life"}) + "\n" for i, name in enumerate(ENTITIES)))
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"q{i}\tp{i:02d}\t1\n" for i in range(len(ENTITIES))))
    return root


def test_on_records_and_serves_the_title_weight(tmp_path, monkeypatch, capsys, embedder) -> None:
    dataset = _beir(tmp_path / "people")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"sources": [], "index": {"title_vectors": "on", "title_weight": 0.25},
                                      "search": {"per_doc": 0}}))
    (tmp_path / "dagster").mkdir()
    with instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        monkeypatch.setattr(DagsterInstance, "get", classmethod(lambda cls: instance))
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
        assert main(["--config", str(config), "evaluate", "--dataset", str(dataset), "--name", "people",
                     "--json"]) == 0
        payload = json.loads(capsys.readouterr().out)
        project = load_config(config)
        table = IndexStore.at(project.index, "people").open().to_arrow()
        assert table.column(TITLE_VECTOR).null_count == 0  # embedded by the embeddings step, through the cache
        weight = payload["fusion"]["title_weight"]
        assert weight == 0.25
        assert payload["fusion"]["details"]["titles"]["evidence"] == "configured (index.title_vectors: on)"

        layout = DataLayout.current()
        tracker = Tracker(layout.mlflow_uri, layout.mlflow_artifacts.as_uri())
        assert tracker.client.get_run(payload["mlflow_run_id"]).data.metrics["dense.title_weight"] == weight
        served = serving_target(project, tracker, "people")
        assert served.fusion is not None and served.fusion.title_weight == weight  # the registered config

        assert main(["--config", str(config), "search", "Grace Hopper early life", "--name", "people", "--mode",
                     "dense", "--k", "1", "--json"]) == 0
        hit = json.loads(capsys.readouterr().out)[0]
        store = IndexStore.at(project.index, served.table)
        expected = Retriever(store, embedder, unrestricted=True).search("Grace Hopper early life", "dense", 1,
                                                                        title_weight=weight)[0]
        assert (hit["chunk_id"], hit["score"]) == (expected.chunk_id, pytest.approx(expected.score, abs=1e-3))
        body = Retriever(store, embedder, unrestricted=True).search("Grace Hopper early life", "dense", 1,
                                                                    title_weight=0.0)[0]
        assert hit["score"] > body.score + 0.1  # the title cosine, weighted, is in the served score
