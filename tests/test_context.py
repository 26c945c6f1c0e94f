"""Neighbour context: a hit widened within its section and a token budget, overlaps removed, used by `ask`."""

from __future__ import annotations

from collections import Counter

import pytest

from ragindex.chunking import make_chunker
from ragindex.config import ChunkerConfig, IndexConfig, SearchConfig
from ragindex.context import join_overlapping, widen
from ragindex.datasets.generators import chunk_body
from ragindex.documents import Document, sha256_hex
from ragindex.evaluation.tables import document_chunks, write_chunks
from ragindex.index_store import IndexStore
from ragindex.llm.answer import ask
from ragindex.search import Retriever

ITEMS = ["anchor", "barrel", "compass", "drum", "ensign", "flare", "gaff", "hawser", "lantern", "marlin",
         "oar", "pennant", "quadrant", "rudder", "sextant", "tiller"]
LOG = " ".join(f"On day {i + 1} the keeper counted the {item} stock and wrote it down." for i, item in
               enumerate(ITEMS))
FUEL = "The lamp burns paraffin oil stored in the cellar below the tower."


def _doc(doc_id: str, text: str) -> Document:
    return Document(doc_id, "coast", text, sha256_hex(text), doc_id, doc_id, len(text), 0.0, "markdown")


@pytest.fixture(scope="module")
def store(embedder, tmp_path_factory) -> IndexStore:
    chunker = make_chunker(ChunkerConfig(max_tokens=48, overlap_tokens=12), embedder)
    docs = [_doc("log.md", f"# Keeper\n\n## Stores log\n\n{LOG}\n\n## Lamp\n\n{FUEL}"),
            _doc("other.md", f"# Other\n\n{LOG}")]
    store = IndexStore.at(IndexConfig(uri=str(tmp_path_factory.mktemp("lancedb"))))
    return write_chunks(store, document_chunks(docs, chunker), embedder)


def _section(store: IndexStore, doc: str, heading: str) -> list[dict]:
    rows = store.open().to_arrow().select(["chunk_id", "doc_id", "heading_path", "position", "n_tokens",
                                           "text"]).to_pylist()
    return sorted((r for r in rows if r["doc_id"] == doc and r["heading_path"] == heading),
                  key=lambda r: r["position"])


def test_widened_context_rebuilds_the_section_without_repeating_overlaps(store, embedder) -> None:
    section = _section(store, "log.md", "Keeper > Stores log")
    assert len(section) >= 4  # overlapping windows of one long section
    bodies = [chunk_body(r)[1] for r in section]
    assert any(join_overlapping(a, b) != f"{a}\n{b}" for a, b in zip(bodies, bodies[1:], strict=False))
    retriever = Retriever(store, embedder)
    hit = next(h for h in retriever.search("counted the hawser stock", "fts", k=10) if h.doc_id == "log.md")
    [context] = widen(store.open(), [hit], max_tokens=10_000, visible=None)
    assert context.chunk_ids == tuple(r["chunk_id"] for r in section)  # the whole section, never another one
    assert context.text == "Keeper > Stores log\n\n" + LOG  # every sentence exactly once, in order
    assert FUEL not in context.text and context.chunk_id == hit.chunk_id


def test_budget_and_one_citation_per_passage(store, embedder) -> None:
    section = _section(store, "log.md", "Keeper > Stores log")
    middle = section[1]
    hits = Retriever(store, embedder, SearchConfig(per_doc=0)).search("keeper counted stock", "dense_exact", k=20)
    hit = next(h for h in hits if h.chunk_id == middle["chunk_id"])
    [alone] = widen(store.open(), [hit], max_tokens=middle["n_tokens"], visible=None)
    assert alone.chunk_ids == (hit.chunk_id,) and alone.text == hit.text
    [two] = widen(store.open(), [hit], max_tokens=middle["n_tokens"] + section[2]["n_tokens"], visible=None)
    assert two.chunk_ids == (middle["chunk_id"], section[2]["chunk_id"])  # the next chunk first
    assert two.n_tokens <= middle["n_tokens"] + section[2]["n_tokens"]
    neighbour = next(h for h in hits if h.chunk_id == section[2]["chunk_id"])
    contexts = widen(store.open(), [hit, neighbour], max_tokens=10_000, visible=None)
    assert len(contexts) == 1  # the second hit is inside the first one's context


def test_ask_answers_from_the_widened_context_and_caps_documents(store, embedder) -> None:
    retriever = Retriever(store, embedder, SearchConfig(per_doc=1, context_tokens=400))
    answer = ask(retriever, "On which day did the keeper count the sextant stock?", k=3)
    assert answer.mode == "extractive" and "sextant" in answer.text
    cited_docs = Counter(c.doc_id for c in answer.citations)
    assert max(cited_docs.values()) == 1  # per_doc=1: one passage per document
    assert all(len(c.text) > 2 * 48 for c in answer.citations)  # widened beyond one 48-token window
