"""`ragindex drift`: folders of two topics drift, a folder against itself does not, tables are read at a
version, and vectors of two models are refused (or compared on a probe set with --probe)."""

import json
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest
import yaml
from test_drift_assets import GARDEN, NETWORK, write_topic

from ragindex.config import load_config
from ragindex.index_store import IndexStore, index_schema
from ragindex_app.cli.main import main


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "sources": [{"name": "docs", "type": "directory", "path": str(tmp_path)}],
        "chunker": {"max_tokens": 64, "overlap_tokens": 8},
        "index": {"uri": str(tmp_path / "lancedb"), "table": "chunks"},
        "drift": {"alpha": 0.01},
    }))
    return path


def _table(config, name: str, fingerprint: str, vectors: np.ndarray, start: int = 0) -> None:
    """Add rows to a table of the configured LanceDB (a new version per call)."""
    store = IndexStore.at(load_config(config).index, name)
    rows = [{"chunk_id": f"{name}-{start + i}", "doc_id": f"{name}-d{start + i}", "source": "docs",
             "text": f"probe text number {start + i} about topic {(start + i) % 5}", "fingerprint": fingerprint,
             "vector": v.tolist()} for i, v in enumerate(vectors)]
    store.open_or_create(vectors.shape[1]).add(pa.Table.from_pylist(rows, index_schema(vectors.shape[1])))


def _unit(rng: np.random.Generator, n: int, d: int, shift: float = 0.0) -> np.ndarray:
    A = rng.standard_normal((n, d)) + shift
    return (A / np.linalg.norm(A, axis=1, keepdims=True)).astype(np.float32)


def test_folders_of_two_topics_drift_and_a_folder_against_itself_does_not(tmp_path, config, capsys):
    write_topic(tmp_path / "garden", GARDEN, "garden")
    write_topic(tmp_path / "network", NETWORK, "network")
    assert main(["--config", str(config), "drift", "--reference", str(tmp_path / "garden"),
                 "--current", str(tmp_path / "network"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["drifted"] is True and out["combined"] == {
        "p_value": out["p_value"], "alpha": 0.01, "drifted": True, "decision": "drift", "correction": "holm"}
    assert out["reference"]["rows"] == out["current"]["rows"] == 32  # documents (mean of their two chunks)
    assert out["reference"]["unit"] == "document" and out["reference"]["total"] == 32
    assert out["reference"]["fingerprint"] == out["current"]["fingerprint"]
    assert [t["name"] for t in out["tests"]] == ["classifier", "mmd_rff", "pca_ks"]
    for test in out["tests"]:
        assert {"statistic", "p_value", "p_holm", "effect_size", "effect_label", "decision"} <= set(test)
        assert test["p_holm"] >= test["p_value"]
    assert out["tests"][0]["effect_size"] > 0.9  # held-out AUC: the topics are told apart

    # the same folder again, chunk rows: embedded from the cache, no drift; human-readable output
    plot = tmp_path / "same.png"
    assert main(["--config", str(config), "drift", "--reference", str(tmp_path / "garden"),
                 "--current", str(tmp_path / "garden"), "--unit", "chunk", "--plot", str(plot)]) == 0
    text = capsys.readouterr().out
    assert "(64 chunk rows of 64" in text and plot.stat().st_size > 0
    assert "combined" in text and "no drift" in text.splitlines()[-2]


def test_table_versions_and_model_mismatch(tmp_path, config, capsys, monkeypatch):
    rng = np.random.default_rng(0)
    _table(config, "same", "fpA", _unit(rng, 40, 16))
    _table(config, "same", "fpA", _unit(rng, 40, 16, shift=1.5), start=40)  # version 3: a shifted half added
    assert main(["--config", str(config), "drift", "--reference", "same@2", "--current", "same", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["reference"]["rows"], out["current"]["rows"]) == (40, 80) and out["drifted"] is True

    _table(config, "other", "fpB", _unit(rng, 40, 16))
    assert main(["--config", str(config), "drift", "--reference", "same", "--current", "other", "--json"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "never compared" in err and "--probe" in err and "fpA" in err and "fpB" in err

    # --probe: the models are compared on probe texts from the reference table instead
    def fake_model(name: str, fingerprint: str, seed: int):
        projection = np.random.default_rng(seed).standard_normal((64, 8))

        def embed(texts):
            counts = np.zeros((len(texts), 64))
            for row, text in enumerate(texts):
                for word in text.split():
                    counts[row, sum(map(ord, word)) % 64] += 1
            return counts @ projection

        return SimpleNamespace(embed=embed, fingerprint=SimpleNamespace(
            id=fingerprint, name=name, as_dict=lambda: {"name": name, "id": fingerprint}))

    models = {"fpA": fake_model("a", "fpA", 1), "fpB": fake_model("b", "fpB", 2)}
    monkeypatch.setattr("ragindex_app.cli.drift._embedder_for", lambda fp, candidates, project: models[fp])
    assert main(["--config", str(config), "drift", "--reference", "same", "--current", "other", "--probe",
                 "--json"]) == 0
    probe = json.loads(capsys.readouterr().out)
    assert probe["mode"] == "probe" and probe["probe"]["n_probes"] == 80 and probe["probe"]["k"] == 10
    assert 0.0 <= probe["probe"]["knn_jaccard_mean"] <= 1.0
    assert -1.0 <= probe["probe"]["spearman_pairwise_cosine"] <= 1.0
    assert probe["evaluation"] == {"reference": None, "current": None}

    assert main(["--config", str(config), "drift", "--reference", "missing", "--current", "same"]) == 2
    assert "not found" in capsys.readouterr().err
