"""Tests for the BEIR evaluation-set loader and a sanity pass over the shared msmarco-5k set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragindex.evaluation.beir import EvalDataError, EvalSet, load_beir, validate_corpus
from ragindex.evaluation.metrics import METRICS, mean_metrics, per_query_metrics

MSMARCO_5K = Path(__file__).parents[2].parent / "shared/datasets/msmarco-5k"


def _write(folder: Path, queries: list[dict], qrels_text: str) -> Path:
    (folder / "qrels").mkdir(parents=True)
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries), encoding="utf-8")
    (folder / "qrels" / "test.tsv").write_text(qrels_text, encoding="utf-8")
    return folder


def test_loads_beir_layout_with_header(tmp_path: Path) -> None:
    folder = _write(
        tmp_path / "ds",
        [{"_id": "1", "text": "what is rrf"}, {"_id": 2, "text": " bm25 "}],
        "query-id\tcorpus-id\tscore\n1\tdA\t2\n1\tdB\t0\n2\tdC\t1\n",
    )
    ev = load_beir(folder)
    assert isinstance(ev, EvalSet)
    assert ev.queries == {"1": "what is rrf", "2": "bm25"}  # ids become strings, text is stripped
    assert ev.qrels == {"1": {"dA": 2, "dB": 0}, "2": {"dC": 1}}
    assert ev.problems == []
    assert ev.scored_query_ids == ["1", "2"]


def test_accepts_trec_four_column_qrels(tmp_path: Path) -> None:
    folder = _write(tmp_path / "ds", [{"_id": "q1", "text": "x"}], "q1 0 d1 1\nq1 0 d2 3\n")
    assert load_beir(folder).qrels == {"q1": {"d1": 1, "d2": 3}}


def test_validation_problems_are_collected(tmp_path: Path) -> None:
    queries = [
        {"_id": "q1", "text": "first"},
        {"_id": "q1", "text": "duplicate"},
        {"_id": "q2", "text": "   "},
        {"_id": "q3", "text": "only negatives"},
        {"_id": "q4", "text": "doc outside corpus"},
    ]
    qrels = "q1\td1\t1\nq1\td1\t2\nq2\td1\t1\nq3\td2\t0\nghost\td1\t1\nq4\tmissing\t1\n"
    ev = load_beir(_write(tmp_path / "ds", queries, qrels), known_doc_ids={"d1", "d2", "d3"})
    assert ev.queries == {"q1": "first", "q3": "only negatives", "q4": "doc outside corpus"}
    assert ev.qrels == {"q1": {"d1": 1}, "q3": {"d2": 0}}
    assert ev.scored_query_ids == ["q1"]
    text = "\n".join(ev.problems)
    assert "1 queries with empty text dropped: q2" in text
    assert "1 duplicate query ids (first occurrence kept): q1" in text
    assert "1 duplicate (query, document) judgements" in text
    assert "qrels for 2 query ids not in queries.jsonl dropped: ghost, q2" in text
    assert "1 qrels naming 1 documents not in the corpus dropped: missing" in text
    assert "2 of 3 queries have no positive judgement and are not scored: q3, q4" in text
    assert len(ev.problems) == 6


@pytest.mark.parametrize(("file", "content", "where", "why"), [
    ("queries.jsonl", '{"_id": "q1", "text": "ok"}\n{"_id": "q2", "text": \n', "queries.jsonl:2", "not valid JSON"),
    ("queries.jsonl", '{"_id": "q1", "text": "ok"}\n\n["q3"]\n', "queries.jsonl:3", 'non-empty "_id"'),
    ("qrels/test.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td3\tx\n", "test.tsv:3", "'x' is not an integer"),
    ("qrels/test.tsv", "q1\td1\t1\nq1 d2\n", "test.tsv:2", "got 2"),
    ("corpus.jsonl", '{"_id": "d1", "text": "a"}\n{"_id": "d2", "text": 5}\n', "corpus.jsonl:2", '"text" must'),
    ("corpus.jsonl", '{"_id": "d1", "text": "a"}\n{"_id": "", "text": "b"}\n', "corpus.jsonl:2", '"_id"'),
])
def test_malformed_lines_stop_with_file_and_line(tmp_path: Path, file: str, content: str, where: str,
                                                 why: str) -> None:
    folder = _write(tmp_path / "ds", [{"_id": "q1", "text": "ok"}], "q1\td1\t1\n")
    (folder / "corpus.jsonl").write_text('{"_id": "d1", "text": "a"}\n', encoding="utf-8")
    (folder / file).write_text(content, encoding="utf-8")
    with pytest.raises(EvalDataError) as err:
        load_beir(folder)
        validate_corpus(folder)
    message = str(err.value)
    assert where in message and why in message and "\n" not in message


@pytest.mark.parametrize("missing", ["folder", "queries.jsonl", "qrels/test.tsv"])
def test_missing_paths_raise_one_line_error(tmp_path: Path, missing: str) -> None:
    folder = _write(tmp_path / "ds", [{"_id": "q", "text": "t"}], "q\td\t1\n")
    target = tmp_path / "nope" if missing == "folder" else folder
    if missing != "folder":
        (folder / missing).unlink()
    with pytest.raises(EvalDataError) as err:
        load_beir(target)
    msg = str(err.value)
    assert "\n" not in msg and "expected BEIR layout" in msg
    assert str(target if missing == "folder" else folder / missing) in msg
    assert isinstance(err.value, ValueError)


@pytest.mark.skipif(not MSMARCO_5K.is_dir(), reason="shared msmarco-5k data set not present")
def test_shared_msmarco_5k() -> None:
    corpus_ids = {
        json.loads(line)["_id"]
        for line in (MSMARCO_5K / "corpus.jsonl").open(encoding="utf-8")
        if line.strip()
    }
    ev = load_beir(MSMARCO_5K, known_doc_ids=corpus_ids)
    assert len(corpus_ids) == 5000
    assert len(ev.queries) == 50
    # 43 of the 50 queries carry judgements (grades 1-3, 4102 lines); the other 7 are reported, not scored.
    assert len(ev.scored_query_ids) == 43
    assert sum(len(j) for j in ev.qrels.values()) == 4102
    assert ev.problems == [p for p in ev.problems if "no positive judgement" in p] and len(ev.problems) == 1
    # A run that ranks exactly the judged docs by grade is ideal: nDCG@10 = MRR@10 = hit@10 = 1.
    oracle = {q: {d: float(r) for d, r in judged.items()} for q, judged in ev.qrels.items()}
    per_query = per_query_metrics(oracle, ev.qrels)
    assert sorted(per_query) == ev.scored_query_ids
    means = mean_metrics(per_query)
    assert means["ndcg@10"] == pytest.approx(1.0)
    assert means["mrr@10"] == 1.0 and means["hit@10"] == 1.0
    assert set(means) == set(METRICS)
    # A reversed oracle must score strictly worse.
    reverse = {q: {d: -s for d, s in scores.items()} for q, scores in oracle.items()}
    assert mean_metrics(per_query_metrics(reverse, ev.qrels))["ndcg@10"] < 1.0
