"""Evaluation end to end on a slice of msmarco-5k: CLI JSON, pytrec_eval agreement on the real run,
MLflow run + registered retriever + champion gate + rollback, and the served model over HTTP."""

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import SHARED
from dagster import DagsterInstance, instance_for_test

from ragindex.paths import DataLayout
from ragindex.tracking import Tracker
from ragindex_app.cli.main import main

MSMARCO = SHARED / "datasets" / "msmarco-5k"
pytestmark = pytest.mark.skipif(not MSMARCO.is_dir(), reason="../shared/datasets/msmarco-5k not present")


def _slice(out: Path, n_queries: int = 12, distractors: int = 120) -> Path:
    """Judged passages of a few queries plus seeded random distractors, in BEIR layout."""
    qrels = [line.split("\t") for line in (MSMARCO / "qrels" / "test.tsv").read_text().split("\n") if line]
    corpus = {json.loads(line)["_id"]: line for line in (MSMARCO / "corpus.jsonl").read_text().split("\n") if line}
    queries = sorted({q for q, d, r in qrels if d in corpus})[:n_queries]
    keep = {d for q, d, r in qrels if q in queries and d in corpus}
    keep = set(sorted(keep)[:15 * n_queries]) | set(random.Random(0).sample(sorted(corpus), distractors))
    (out / "qrels").mkdir(parents=True)
    (out / "corpus.jsonl").write_text("\n".join(corpus[d] for d in sorted(keep)) + "\n")
    all_queries = [q for q in (MSMARCO / "queries.jsonl").read_text().split("\n") if q]
    (out / "queries.jsonl").write_text("\n".join(q for q in all_queries if json.loads(q)["_id"] in queries) + "\n")
    (out / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(
        "\t".join(row) for row in qrels if row[0] in queries) + "\n")
    return out


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, model_cache):
    root = tmp_path_factory.mktemp("eval")
    dataset = _slice(root / "slice")
    (root / "data").mkdir()
    (root / "data" / "models").symlink_to(model_cache, target_is_directory=True)  # the session's (conftest.py)
    with pytest.MonkeyPatch.context() as patch, instance_for_test(temp_dir=str(root)) as instance:
        patch.setenv("RAGINDEX_DATA_DIR", str(root / "data"))
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        patch.setattr(DagsterInstance, "get", classmethod(lambda cls: instance))
        out = root / "m.json"
        assert main(["evaluate", "--dataset", str(dataset), "--out", str(out)]) == 0
        yield {"root": root, "dataset": dataset, "payload": json.loads(out.read_text()), "patch": patch,
               "instance": instance}


@pytest.fixture(autouse=True)
def isolated_data_dir(evaluated, monkeypatch):
    """These tests share the module's data directory (its index, MLflow store and registry)."""
    monkeypatch.setenv("RAGINDEX_DATA_DIR", str(evaluated["root"] / "data"))


def _tracker() -> Tracker:
    layout = DataLayout.current()
    return Tracker(layout.mlflow_uri, layout.mlflow_artifacts.as_uri())


def test_metrics_json_shape_and_floors(evaluated):
    payload = evaluated["payload"]
    assert set(payload["modes"]) == {"dense", "dense_exact", "fts", "hybrid"}
    for metrics in payload["modes"].values():
        assert set(metrics) == {"ndcg@10", "recall@10", "recall@100", "mrr@10", "map@100", "hit@10"}
    from ragindex.evaluation.beir import load_beir

    corpus_ids = {json.loads(line)["_id"] for line in (evaluated["dataset"] / "corpus.jsonl").open()}
    expected = load_beir(evaluated["dataset"], known_doc_ids=corpus_ids).scored_query_ids
    assert payload["n_queries"] == len(expected) >= 10 and payload["mlflow_run_id"]
    assert set(payload["index"]) == {"uri", "table", "version", "tag"}
    assert payload["latency_ms"]["fts"].keys() == {"p50", "p95", "n"}
    assert payload["latency_ms"]["fts"]["n"] == payload["n_queries"]
    assert payload["ann_recall@10"] == 1.0  # a small table is searched exactly
    assert payload["modes"]["dense"] == payload["modes"]["dense_exact"]
    assert payload["modes"]["dense_exact"]["ndcg@10"] > 0.6
    fusion = payload["fusion"]
    assert fusion["details"]["folds"] == 5 and len(fusion["details"]["fold_choices"]) == 5
    assert fusion["method"] in ("dense", "fts", "minmax", "zscore", "rrf") and fusion["evidence"]
    assert set(payload["per_query"]["hybrid"]) == set(payload["per_query"]["dense"])


def test_metrics_match_pytrec_eval_on_the_real_run(evaluated):
    import pytrec_eval

    from ragindex.config import load_config
    from ragindex.embedding import load_embedder
    from ragindex.evaluation.beir import load_beir
    from ragindex.evaluation.runner import evaluate
    from ragindex.index_store import IndexStore
    from ragindex.search import Retriever

    table = evaluated["payload"]["index"]["table"]
    config = load_config()
    retriever = Retriever(IndexStore.at(config.index, table), load_embedder(), config.search)
    result = evaluate(retriever, load_beir(evaluated["dataset"]), "slice")
    qrels = {q: j for q, j in load_beir(evaluated["dataset"]).qrels.items() if q in result.per_query["fts"]}
    measures = {"ndcg_cut_10", "recall_10", "recall_100", "map_cut_100"}
    for mode in ("dense_exact", "fts", "hybrid"):
        reference = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(result.runs[mode])
        for qid, ours in result.per_query[mode].items():
            assert ours["ndcg@10"] == pytest.approx(reference[qid]["ndcg_cut_10"], abs=1e-6)
            assert ours["recall@10"] == pytest.approx(reference[qid]["recall_10"], abs=1e-6)
            assert ours["recall@100"] == pytest.approx(reference[qid]["recall_100"], abs=1e-6)
            assert ours["map@100"] == pytest.approx(reference[qid]["map_cut_100"], abs=1e-6)


def test_mlflow_run_registry_gate_and_rollback(evaluated):
    tracker = _tracker()
    client = tracker.client
    payload = evaluated["payload"]
    run = client.get_run(payload["mlflow_run_id"])
    assert run.data.tags["lancedb.tag"] == payload["index"]["tag"]
    assert run.data.params["model.name"] == "all-MiniLM-L6-v2" and "chunker.max_tokens" in run.data.params
    assert run.data.metrics["dense_exact.ndcg_at_10"] == pytest.approx(payload["modes"]["dense_exact"]["ndcg@10"])
    assert run.inputs.dataset_inputs and run.inputs.dataset_inputs[0].dataset.digest == run.data.tags["corpus.digest"]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    assert {"evaluation/metrics.json", "evaluation/report.md", "evaluation/per_query_ndcg.png"} <= artifacts
    name = f"ragindex-retriever-{payload['index']['table']}"
    first = tracker.champion(name)
    assert first is not None and str(first.version) == "1"
    assert tracker.serving_config(first)["tag"] == payload["index"]["tag"]

    # a second evaluation of the same data is a no-op: nothing embedded, no new version, tag or model version
    assert main(["evaluate", "--dataset", str(evaluated["dataset"]), "--json"]) == 0
    assert len(client.search_model_versions(f"name = '{name}'")) == 1
    assert str(tracker.champion(name).version) == "1"
    # a build measured equal passes the gate; a worse one is refused and recorded why
    digest = first.tags["eval.digest"]
    score = float(first.tags["ndcg_at_10"])
    equal = client.create_model_version(name, source=first.source, run_id=first.run_id)
    assert tracker.promote(name, str(equal.version), score, digest, margin=0.01).promoted
    second = tracker.champion(name)
    assert str(second.version) == "2" and second.tags["previous_champion"] == "1"
    worse = client.create_model_version(name, source=first.source, run_id=first.run_id)
    refused = tracker.promote(name, str(worse.version), 0.0, digest, margin=0.01)
    assert not refused.promoted and "margin" in refused.reason
    assert str(tracker.champion(name).version) == "2"
    assert main(["rollback", "--model", name]) == 0
    assert str(tracker.champion(name).version) == "1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_served_champion_answers_like_the_cli(evaluated, capsys):
    payload = evaluated["payload"]
    table = payload["index"]["table"]
    query = "what is the fahrenheit scale"
    assert main(["search", query, "--name", table, "--k", "5", "--json"]) == 0
    cli = [h["chunk_id"] for h in json.loads(capsys.readouterr().out)]
    port = _free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": DataLayout.current().mlflow_uri,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m",
                               f"models:/ragindex-retriever-{table}@champion", "--env-manager", "local",
                               "-h", "127.0.0.1", "-p", str(port)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
                break
            except OSError:
                time.sleep(1)
        body = json.dumps({"dataframe_records": [{"query": query, "k": 5, "mode": "hybrid"}]}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", body,
                                         {"Content-Type": "application/json"})
        served = json.loads(urllib.request.urlopen(request, timeout=60).read())["predictions"][0]
    finally:  # the CLI and the web server it starts share a session: stop both, killing what ignores SIGTERM
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
    assert [h["chunk_id"] for h in served] == cli


def _search_in_a_new_process(query: str, table: str) -> tuple[list[dict], list[str]]:
    """`ragindex search --json` in a fresh interpreter: its hits, and which of the heavy packages it imported."""
    heavy = ("mlflow", "dagster", "torch", "great_expectations")
    code = ("import json, sys; from ragindex_app.cli.main import main; "
            f"main(['search', {query!r}, '--name', {table!r}, '--k', '5', '--json']); "
            f"print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)), file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout), json.loads(done.stderr.strip().splitlines()[-1])


def test_a_search_process_imports_only_what_the_query_needs(evaluated):
    """A new `ragindex search` process imports no Dagster, torch or Great Expectations, and no MLflow once the
    champion's serving config is cached, and answers like the champion's Retriever built through MLflow."""
    from ragindex.config import load_config
    from ragindex.embedding import configured_embedder
    from ragindex.index_store import IndexStore
    from ragindex.search import Retriever
    from ragindex.serving.champion_cache import SETTLE_NS
    from ragindex.serving.resolve import serving_target

    table, query = evaluated["payload"]["index"]["table"], "what is the fahrenheit scale"
    project = load_config(None)
    target = serving_target(project, _tracker(), table)  # MLflow itself, no cache
    assert target.origin.startswith("champion") and target.fusion is not None
    retriever = Retriever(IndexStore.at(project.index, target.table), configured_embedder(project.embedder),
                          project.search, fusion=target.fusion)
    expected = [(h.chunk_id, h.score) for h in retriever.search(query, "hybrid", 5)]
    time.sleep(SETTLE_NS / 1e9 + 0.1)  # the store's last write is old enough to be cached
    first, _ = _search_in_a_new_process(query, table)  # reads MLflow once and caches the serving config
    second, imported = _search_in_a_new_process(query, table)
    assert imported == []
    for hits in (first, second):
        assert [h["chunk_id"] for h in hits] == [c for c, _ in expected]
        assert [h["score"] for h in hits] == pytest.approx([s for _, s in expected], abs=1e-6)


def test_a_search_whose_reader_has_left_ends_quietly(evaluated):
    """`ragindex search ... | head -1`: the pipe closes before the search prints; no traceback, exit 141."""
    table = evaluated["payload"]["index"]["table"]
    code = ("import sys; from ragindex_app.cli.main import main; "
            f"sys.exit(main(['search', 'fahrenheit', '--name', {table!r}, '--k', '20']))")
    search = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    search.stdout.close()  # the reader leaves at once; the search needs its imports (~1 s) before printing
    stderr = search.stderr.read().decode()
    assert search.wait(timeout=120) == 141, stderr
    assert stderr == ""
