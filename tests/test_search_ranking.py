"""Ranking on a tiny real index: a title counts once per document, per-document caps, group_by='doc', fusion."""

from __future__ import annotations

from collections import Counter

import pytest
from lancedb.query import MultiMatchQuery

from ragindex.chunking import make_chunker
from ragindex.config import ChunkerConfig, IndexConfig, SearchConfig
from ragindex.documents import Document, sha256_hex
from ragindex.evaluation.fusion import FusionChoice
from ragindex.evaluation.tables import document_chunks, write_chunks
from ragindex.index_store import IndexStore
from ragindex.search import DocumentHit, Retriever

QUERY = "lighthouse lamp"
STEPS = [
    "Wipe the glass with a dry cloth before sunset.",
    "Check that the clockwork is wound and the weights hang free of the floor.",
    "Trim the wick so the flame burns evenly and without smoke.",
    "Fill the reservoir with paraffin and close the valve tightly after filling.",
    "Polish the brass fittings once a week with a soft rag and a little oil.",
    "Record the hours of burning in the keeper's log book every night.",
    "Replace a cracked chimney glass at once; keep two spares in the store room.",
    "Light the lamp from the gallery side so the wind does not blow the match out.",
    "Open the vents a little in warm weather so the lamp room does not overheat.",
]


def _doc(doc_id: str, title: str, text: str) -> Document:
    return Document(doc_id, "coast", text, sha256_hex(text), title, doc_id, len(text), 0.0, "markdown")


def _corpus() -> list[Document]:
    """One long document whose title matches the query (its chunk text mostly does not), two short ones with
    matching titles, one that mentions the lamp in its text, and unrelated ones."""
    manual = "\n\n".join(f"## Step {i + 1}\n\n{text}" for i, text in enumerate(STEPS))
    return [
        _doc("manual.md", "Lighthouse lamp manual", manual),
        _doc("history.md", "Lighthouse lamp history", "## Origins\n\nThe first keepers burned whale oil in "
             "open pans.\n\n## Argand burner\n\nA hollow wick gave a brighter and steadier flame."),
        _doc("fuel.md", "Lighthouse lamp fuel", "Paraffin replaced colza oil because it was cheaper."),
        _doc("lens.md", "Fresnel lens", "The lens gathers the light of the lamp into a narrow beam."),
        _doc("tides.md", "Tides", "Spring tides happen near the full and new moons."),
        _doc("ships.md", "Ships", "Tankers pass the cape at night on their way to the refinery."),
    ]


@pytest.fixture(scope="module")
def store(embedder, tmp_path_factory) -> IndexStore:
    chunker = make_chunker(ChunkerConfig(max_tokens=40, overlap_tokens=4), embedder)
    chunks = document_chunks(_corpus(), chunker)
    assert Counter(c["doc_id"] for c in chunks)["manual.md"] == len(STEPS)
    config = IndexConfig(uri=str(tmp_path_factory.mktemp("lancedb")), fts_title_boost=2.0)
    return write_chunks(IndexStore.at(config), chunks, embedder)


def test_the_corpus_reproduces_the_title_flood_of_a_boosted_multi_field_match(store) -> None:
    rows = (store.open().search(MultiMatchQuery(QUERY, ["text", "title"], boosts=[1.0, 2.0]), query_type="fts")
            .select(["doc_id", "_score"]).limit(10).to_list())
    manual = [round(r["_score"], 4) for r in rows if r["doc_id"] == "manual.md"]
    assert len(manual) >= 5  # one document floods the top 10 ...
    assert Counter(manual).most_common(1)[0][1] >= 3  # ... with chunks that tie on the title alone


def test_fts_counts_a_title_once_per_document(store, embedder) -> None:
    retriever = Retriever(store, embedder, SearchConfig(per_doc=0))
    hits = retriever.search(QUERY, "fts", k=10)
    scores = Counter((h.doc_id, round(h.score, 4)) for h in hits)
    assert max(scores.values()) == 1  # no two chunks of one document tie
    docs = [h.doc_id for h in hits]
    assert {"manual.md", "history.md", "fuel.md", "lens.md"} <= set(docs)
    assert docs.count("manual.md") <= 3  # only the chunks whose own text matches, plus the titled one


def test_default_cap_keeps_two_chunks_per_document_in_every_mode(store, embedder) -> None:
    retriever = Retriever(store, embedder)  # SearchConfig defaults
    assert retriever.config.per_doc == 2
    for mode in ("dense", "dense_exact", "fts", "hybrid"):
        hits = retriever.search(QUERY, mode, k=10)
        counts = Counter(h.doc_id for h in hits)
        assert max(counts.values()) <= 2, (mode, counts)
        if mode == "fts":  # only matching chunks; every document whose title matches is there
            assert {"manual.md", "history.md", "fuel.md", "lens.md"} <= set(counts)
        else:  # the candidate list was widened until the cap still left k chunks (or the table ran out)
            assert len(hits) == min(10, sum(min(2, n) for n in _chunks_per_doc(store).values())), mode
    uncapped = retriever.search("keeper wick lamp glass", "dense", k=10, per_doc=0)
    assert Counter(h.doc_id for h in uncapped)["manual.md"] > 2  # the cap, not the corpus, keeps it at two


def test_group_by_doc_returns_documents_with_their_best_chunks(store, embedder) -> None:
    retriever = Retriever(store, embedder)
    docs = retriever.search(QUERY, "hybrid", k=4, group_by="doc")
    assert len(docs) == 4 and all(isinstance(d, DocumentHit) for d in docs)
    assert len({d.doc_id for d in docs}) == 4
    assert [d.score for d in docs] == sorted((d.score for d in docs), reverse=True)
    for doc in docs:
        assert doc.score == doc.chunks[0].score and 1 <= len(doc.chunks) <= 2
        assert all(c.doc_id == doc.doc_id for c in doc.chunks)
        assert [c.score for c in doc.chunks] == sorted((c.score for c in doc.chunks), reverse=True)
    every = retriever.search("keeper wick lamp glass", "dense_exact", k=6, per_doc=0, group_by="doc")
    manual = next(d for d in every if d.doc_id == "manual.md")
    assert len(manual.chunks) == len(STEPS)  # per_doc=0: every chunk of the document, best first
    assert manual.as_dict()["chunks"][0]["chunk_id"] == manual.chunks[0].chunk_id


def test_hybrid_serves_the_single_mode_a_fusion_choice_names(store, embedder) -> None:
    dense = Retriever(store, embedder, fusion=FusionChoice("dense"))
    assert [h.chunk_id for h in dense.search(QUERY, "hybrid")] == [h.chunk_id for h in dense.search(QUERY, "dense")]
    fts = Retriever(store, embedder, fusion=FusionChoice("fts"))
    assert [h.chunk_id for h in fts.search(QUERY, "hybrid")] == [h.chunk_id for h in fts.search(QUERY, "fts")]
    rrf = Retriever(store, embedder, fusion=FusionChoice("rrf", rrf_k=10))
    assert len(rrf.search(QUERY, "hybrid", per_doc=0)) == 10
    with pytest.raises(ValueError, match="group_by"):
        rrf.search(QUERY, group_by="section")  # type: ignore[arg-type]


def _chunks_per_doc(store: IndexStore) -> Counter:
    return Counter(store.open().to_arrow().column("doc_id").to_pylist())


def test_concurrent_searches_share_one_retriever_and_rank_as_alone(store, embedder) -> None:
    """Hybrid and fts queries start their keyword queries in the retriever's pool: many callers at once (a
    served model's threads) neither wait on each other forever nor mix results."""
    from concurrent.futures import ThreadPoolExecutor

    retriever = Retriever(store, embedder)
    queries = [(q, mode) for q in (QUERY, "keeper wick lamp glass", "fuel oil", "lens") for mode in ("fts", "hybrid")]
    alone = [[(h.chunk_id, round(h.score, 6)) for h in retriever.search(q, mode, k=5)] for q, mode in queries]
    with ThreadPoolExecutor(8) as callers:
        together = list(callers.map(lambda qm: [(h.chunk_id, round(h.score, 6))
                                                for h in retriever.search(qm[0], qm[1], k=5)], queries * 3))
    assert together == alone * 3
