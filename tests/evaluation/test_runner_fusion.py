"""evaluate() on a real tiny index: the served fusion, its evidence, and chunk-level judgements."""

from __future__ import annotations

import pytest

from ragindex.chunking import make_chunker
from ragindex.config import ChunkerConfig, IndexConfig
from ragindex.documents import Document, sha256_hex
from ragindex.evaluation.beir import EvalSet
from ragindex.evaluation.fusion import PRIOR, FusionChoice
from ragindex.evaluation.runner import evaluate, fusion_evidence
from ragindex.evaluation.tables import document_chunks, write_chunks
from ragindex.index_store import IndexStore
from ragindex.search import Retriever

TOPICS = {
    "tides.md": "Spring tides happen near the full and new moons; neap tides come between them.",
    "lamp.md": "The lamp burns paraffin oil stored in the cellar below the tower.",
    "ships.md": "Tankers pass the cape at night on their way to the refinery.",
    "radio.md": "Marine radios use channel sixteen for distress calls.",
    "fog.md": "The fog horn sounds twice a minute when the visibility drops below a mile.",
}
QUERIES = {"q-tides": ("when are tides strongest", "tides.md"), "q-lamp": ("what fuel does the lamp burn", "lamp.md"),
           "q-ships": ("tankers at night", "ships.md"), "q-radio": ("distress channel", "radio.md"),
           "q-fog": ("fog horn visibility", "fog.md")}


@pytest.fixture(scope="module")
def retriever(embedder, tmp_path_factory) -> Retriever:
    docs = [Document(d, "coast", t, sha256_hex(t), d, d, len(t), 0.0, "text") for d, t in TOPICS.items()]
    chunks = document_chunks(docs, make_chunker(ChunkerConfig(), embedder))
    store = IndexStore.at(IndexConfig(uri=str(tmp_path_factory.mktemp("lancedb"))))
    return Retriever(write_chunks(store, chunks, embedder), embedder)


def _evalset(generators: dict[str, str]) -> EvalSet:
    return EvalSet({q: text for q, (text, _) in QUERIES.items()}, {q: {doc: 1} for q, (_, doc) in QUERIES.items()},
                   generators=generators)


def test_lexical_only_set_serves_the_prior_and_says_why(retriever) -> None:
    evalset = _evalset({q: "cloze" for q in QUERIES})
    assert fusion_evidence(evalset) == (set(QUERIES), "none")
    result = evaluate(retriever, evalset, "coast", folds=2)
    assert (result.fusion.method, result.fusion.weight) == (PRIOR.method, PRIOR.weight)
    assert result.fusion.evidence.startswith("prior: 0 non-lexical queries")
    assert result.modes["dense"]["hit@10"] == 1.0  # every query finds its document
    payload = result.as_json(None, {})
    assert FusionChoice.from_dict(payload["fusion"]) == result.fusion


def test_evidence_names_non_lexical_generators_and_judged_queries(retriever) -> None:
    mixed = _evalset({"q-tides": "llm", "q-lamp": "heading"})
    lexical, evidence = fusion_evidence(mixed)
    assert lexical == {"q-lamp"} and evidence == "judged qrels (3 queries), llm (1 queries)"
    chunk_ids = {h.doc_id: h.chunk_id for h in retriever.search("x", "dense_exact", 10, per_doc=0)}
    by_chunk = EvalSet({q: t for q, (t, _) in QUERIES.items()}, {q: {chunk_ids[d]: 1} for q, (_, d) in QUERIES.items()})
    result = evaluate(retriever, by_chunk, "coast", folds=2, unit="chunk")
    assert set(result.runs["fts"]["q-lamp"]) <= set(chunk_ids.values())  # judged and ranked by chunk id
    assert result.modes["dense_exact"]["hit@10"] == 1.0


def test_served_hybrid_is_timed_on_a_spread_sample_and_the_rest_on_every_query(retriever, monkeypatch) -> None:
    from ragindex.evaluation import runner

    calls = []
    search = Retriever.search

    def counted(self, query, mode="hybrid", *args, **kwargs):
        calls.append((query, mode))
        return search(self, query, mode, *args, **kwargs)

    monkeypatch.setattr(runner, "LATENCY_QUERIES", 2)
    monkeypatch.setattr(Retriever, "search", counted)
    result = evaluate(retriever, _evalset({}), "coast", folds=2)
    texts = [QUERIES[q][0] for q in sorted(QUERIES)]
    assert [q for q, mode in calls if mode == "hybrid"] == texts[::3]  # 5 queries, 2 wanted: every 3rd
    assert result.latency_ms["hybrid"]["n"] == 2
    assert {result.latency_ms[m]["n"] for m in ("dense", "dense_exact", "fts")} == {5}
    assert set(result.per_query["hybrid"]) == set(QUERIES)  # hybrid's scores are its CV run on every query
