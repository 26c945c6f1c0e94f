"""Chunking: heading paths, token limits counted with the model's tokenizer, stable ids."""

from ragindex.chunking import make_chunker, markdown_sections, rst_sections
from ragindex.config import ChunkerConfig
from ragindex.documents import Document, sha256_hex


def _doc(text: str, fmt: str = "markdown", doc_id: str = "d") -> Document:
    return Document(doc_id, "s", text, sha256_hex(text), "T", doc_id, len(text), 0.0, fmt)


def test_markdown_sections_keep_heading_path_and_ignore_fences():
    text = "intro\n# A\na text\n## B\n```\n# not heading\n```\nb text\n# C\nc text\n"
    sections = markdown_sections(text)
    assert [(s.heading_path, s.text.splitlines()[0]) for s in sections] == [
        ((), "intro"), (("A",), "a text"), (("A", "B"), "```"), (("C",), "c text")]
    assert "# not heading" in sections[2].text


def test_rst_sections_levels_by_underline_style():
    text = "Top\n===\n\nintro\n\nSub\n---\n\nsub text\n\nOther\n=====\n\nother text\n"
    assert [(s.heading_path, s.text) for s in rst_sections(text)] == [
        (("Top",), "intro"), (("Top", "Sub"), "sub text"), (("Other",), "other text")]


def test_windows_never_exceed_limit_and_overlap(embedder):
    config = ChunkerConfig(max_tokens=64, overlap_tokens=16)
    chunker = make_chunker(config, embedder)
    body = " ".join(f"Sentence number {i} talks about vectors and tables." for i in range(120))
    chunks = chunker.chunk(_doc(f"# Title\n\n{body}"))
    assert len(chunks) > 5
    counts = embedder.count_tokens([c.text for c in chunks])
    assert max(counts) <= 64 and [c.n_tokens for c in chunks] == counts
    assert all(c.text.startswith("Title\n\n") and c.heading_path == "Title" for c in chunks)
    # consecutive windows share text (the overlap) and start at a sentence
    assert all(c.text[len("Title\n\n"):].startswith("Sentence") for c in chunks)
    first_tail = chunks[0].text.split(". ")[-2]
    assert first_tail in chunks[1].text


def test_ids_are_content_addressed(embedder):
    chunker = make_chunker(ChunkerConfig(), embedder)
    doc = _doc("# A\n\nalpha text\n\n# B\n\nbeta text")
    first, again = chunker.chunk(doc), chunker.chunk(doc)
    assert [c.chunk_id for c in first] == [c.chunk_id for c in again] and len(first) == 2
    other_doc = chunker.chunk(_doc("# A\n\nalpha text\n\n# B\n\nbeta text", doc_id="e"))
    assert {c.chunk_id for c in other_doc}.isdisjoint(c.chunk_id for c in first)
    assert [c.text_hash for c in other_doc] == [c.text_hash for c in first]
    smaller = make_chunker(ChunkerConfig(max_tokens=128), embedder)
    assert smaller.config_hash != chunker.config_hash
    assert {c.chunk_id for c in smaller.chunk(doc)}.isdisjoint(c.chunk_id for c in first)


def test_pydoc_with_topic_chunks(embedder):
    from ragindex.config import SourceConfig
    from ragindex.sources import read_source

    chunker = make_chunker(ChunkerConfig(), embedder)
    docs = list(read_source(SourceConfig(name="pydoc", type="pydoc_topics")))
    chunks = [c for d in docs for c in chunker.chunk(d)]
    assert len(chunks) > 79 and max(c.n_tokens for c in chunks) <= 256
    assert len({c.chunk_id for c in chunks}) == len(chunks)
    with_chunks = [c for c in chunks if c.doc_id == "with"]
    assert with_chunks[0].heading_path == 'The "with" statement'


def test_token_counts_equal_the_tokenizers_without_a_second_encode(embedder, monkeypatch):
    """Windows of whole words take their count from the body's encoding; windows cut inside a word (no sentence
    start in the overlap) are encoded. Either way the count is what the tokenizer says, on real corpora too."""
    from pathlib import Path

    from ragindex.chunking import Chunker
    from ragindex.config import SourceConfig
    from ragindex.sources import read_source

    counted = {"known": 0, "encoded": 0}
    fits = Chunker._fits

    def tally(self, text, n_tokens):
        counted["known" if n_tokens else "encoded"] += 1
        return fits(self, text, n_tokens)

    monkeypatch.setattr(Chunker, "_fits", tally)
    docs = list(read_source(SourceConfig(name="pydoc", type="pydoc_topics")))
    snapshot = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "lancedb-docs" / "2025-05-31"
    docs += [_doc(p.read_text(encoding="utf-8"), doc_id=str(p)) for p in sorted(snapshot.rglob("*.md"))[:60]]
    docs.append(_doc("# Words\n\n" + "antidisestablishmentarianism " * 300))  # windows cut mid-word
    for config in (ChunkerConfig(), ChunkerConfig(max_tokens=64, overlap_tokens=16)):
        chunker = make_chunker(config, embedder)
        chunks = [c for d in docs for c in chunker.chunk(d)]
        assert [c.n_tokens for c in chunks] == embedder.count_tokens([c.text for c in chunks])
        assert max(c.n_tokens for c in chunks) <= config.max_tokens
    assert counted["encoded"] > 0 and counted["known"] > 3 * counted["encoded"]  # most windows: one encode
