"""Bad input through the CLI: exit code 2, one line on stderr, nothing written; and --groups end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ragindex.paths import DataLayout
from ragindex_app.cli.main import main

SECRET = "The Northwind merger closes on the ninth of March."


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One folder indexed through the CLI (a Dagster run): a public page, a finance page, an hr/ page."""
    root = tmp_path_factory.mktemp("strict")
    corpus = root / "corpus"
    _write(corpus / "public.md", "# Lighthouse\n\nThe keeper winds the brass clockwork every evening at dusk.\n")
    _write(corpus / "finance.md", f"---\naccess: [finance]\n---\n# Merger\n\n{SECRET}\n")
    _write(corpus / "hr" / "pay.md", "# Pay\n\nThe merger bonus is paid in March.\n")
    config = _write(root / "config.yaml", yaml.safe_dump({
        "sources": [{"name": "docs", "type": "directory", "path": str(corpus)}],
        "chunker": {"max_tokens": 64, "overlap_tokens": 8},
        "search": {"max_k": 50},
        "access": {"default": "public", "rules": [{"glob": "hr/*", "groups": ["hr"]}]},
    }))
    (root / "empty").mkdir()
    _write(root / "bad-eval" / "queries.jsonl", '{"_id": "q1", "text": "merger"}\n{"_id": "q2", "text": \n')
    _write(root / "bad-eval" / "qrels" / "test.tsv", "q1\tfinance.md\t1\n")
    _write(root / "bad-eval" / "corpus.jsonl", '{"_id": "d1", "text": "merger"}\n')
    good = root / "good-eval"
    _write(good / "queries.jsonl", '{"_id": "q1", "text": "merger"}\n')
    _write(good / "qrels" / "test.tsv", "q1\td1\t1\n")
    _write(good / "corpus.jsonl", '{"_id": "d1", "text": "The merger closes in March."}\n')
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAGINDEX_DATA_DIR", str(root / "data"))
        patch.setenv("DAGSTER_HOME", str(_write(root / "dagster" / "dagster.yaml", "{}\n").parent))
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        assert main(["--config", str(config), "index", "--source", "docs"]) == 0
    return {"root": root, "config": str(config), "corpus": corpus, "good": good}


@pytest.fixture()
def env(built, monkeypatch) -> dict:
    monkeypatch.setenv("RAGINDEX_DATA_DIR", str(built["root"] / "data"))
    monkeypatch.setenv("DAGSTER_HOME", str(built["root"] / "dagster"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return built


def _state(root: Path) -> list[tuple[str, int]]:
    """Every file under the test's folders with its size (the data directory, tables, registry, Dagster runs);
    not the champion cache, a copy of what the MLflow store already holds (ragindex/serving/champion_cache.py)."""
    cache = DataLayout.current().champion_cache
    return sorted((str(p.relative_to(root)), p.stat().st_size) for p in root.rglob("*") if p.is_file() and p != cache)


BAD = [  # (argv after --config, what the one line says)
    (["search", "   "], "query is empty"),
    (["search", ""], "query is empty"),
    (["search", "merger", "--k", "-5"], "--k: k must be between 1 and 50"),
    (["search", "merger", "--k", "0"], "--k: k must be between 1 and 50"),
    (["search", "merger", "--k", "1000000000"], "--k: k must be between 1 and 50"),
    (["search", "merger", "--name", "../escape"], "--name '../escape'"),
    (["index", "--source", "docs", "--name", "../escape"], "--name '../escape'"),
    (["dataset", "generate", "--source", "docs", "--name", "a/b"], "--name 'a/b'"),
    (["search", "merger", "--version", "99999"], "has no version or tag '99999'"),
    (["search", "merger", "--version", "no-such-tag"], "has no version or tag 'no-such-tag'"),
    (["search", "merger", "--name", "nosuchtable"], "index table 'nosuchtable' not found"),
    (["search", "merger", "--groups", ""], "--groups '': bad access group"),
    (["search", "merger", "--groups", "finance,,hr"], "bad access group"),
    (["search", "merger", "--filter", "groups=finance"], "unknown filter field 'groups'"),
    (["search", "merger", "--filter", "source"], "expected field=value"),
    (["ask", "  "], "query is empty"),
    (["ask", "merger", "--k", "0"], "--k: k must be between 1 and 50"),
    (["index", "--source", "{root}/empty"], "nothing to index"),
    (["index", "--source", "{root}/corpus/public.md"], "neither a configured source name nor an existing directory"),
    (["index", "--source", "no-such-source"], "unknown source 'no-such-source'"),
    (["evaluate", "--dataset", "{root}/bad-eval"], "queries.jsonl:2: not valid JSON"),
    (["evaluate", "--dataset", "{root}/good-eval", "--out", "{root}/corpus/public.md/m.json"], "--out"),
    (["evaluate", "--dataset", "{root}/good-eval", "--out", "{root}/corpus"], "is a folder"),
    (["dataset", "generate", "--source", "docs", "--out", "{root}/corpus/public.md/sets"], "not a writable folder"),
    (["dataset", "generate", "--source", "docs", "--generators", "heading,magic"], "unknown 'magic'"),
]


@pytest.mark.parametrize(("argv", "says"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_exits_2_with_one_line_and_changes_nothing(env, capsys, argv, says) -> None:
    root = env["root"]
    before = _state(root)
    code = main(["--config", env["config"], *[a.format(root=root) for a in argv]])
    captured = capsys.readouterr()
    assert code == 2, captured.err
    assert captured.err.count("\n") == 1 and captured.err.startswith("error: ") and says in captured.err
    assert "Traceback" not in captured.err + captured.out
    assert _state(root) == before


def _search(env, capsys, *extra: str) -> set[str]:
    assert main(["--config", env["config"], "search", "Northwind merger March bonus", "--json", "--mode", "fts",
                 *extra]) == 0
    return {hit["doc_id"] for hit in json.loads(capsys.readouterr().out)}


def test_groups_decide_what_search_and_ask_return(env, capsys) -> None:
    assert _search(env, capsys) & {"finance.md", "hr/pay.md"} == set()
    assert _search(env, capsys, "--groups", "eng") & {"finance.md", "hr/pay.md"} == set()
    assert "finance.md" in _search(env, capsys, "--groups", "finance")
    assert _search(env, capsys, "--groups", "finance,hr") >= {"finance.md", "hr/pay.md"}
    assert "finance.md" not in _search(env, capsys, "--groups", "eng", "--filter", "doc_id=x' OR '1'='1")
    assert main(["--config", env["config"], "ask", "When does the Northwind merger close?", "--json",
                 "--groups", "eng"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert SECRET not in json.dumps(answer) and "finance.md" not in {c["doc_id"] for c in answer["citations"]}

