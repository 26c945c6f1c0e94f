"""Tests for the offline dataset generators: qrels, heading and cloze, seeding and de-duplication."""

from __future__ import annotations

import random

import pytest

from ragindex.datasets.generators import (
    GENERATOR_VERSIONS,
    GENERATORS,
    LEXICAL_GENERATORS,
    chunk_body,
    cloze_reject_reason,
    cloze_rows,
    generate,
    heading_rows,
    normalize_query,
    qrels_rows,
    remove_span,
    sentence_spans,
)
from ragindex.datasets.rows import DatasetRow, read_rows, write_rows
from ragindex.evaluation.beir import EvalSet

KEEPER = "The lighthouse keeper winds the brass clockwork every evening at dusk."
OVERLAP = "Fishing boats return to harbour before the evening tide turns rough near the rocks."


def chunk(cid: str, doc: str, heading: str, body: str, position: int, title: str = "") -> dict:
    text = f"{heading}\n\n{body}" if heading else body
    return {"chunk_id": cid, "doc_id": doc, "source": "test", "text": text, "heading_path": heading,
            "title": title, "position": position, "chunker_hash": "chunkhash1", "fingerprint": "fp-model-1"}


def corpus() -> list[dict]:
    """Two Markdown documents with nested headings, two overlapping windows, code, lists, and a BEIR doc."""
    return [
        chunk("c-keepers", "guide/lighthouse.md", "Coastal notes > Keepers",
              f"{KEEPER} Keepers record the wind direction in a leather logbook twice a day. "
              "The lamp burns paraffin oil that is stored in the cellar below the tower.", 0, "Coastal notes"),
        chunk("c-ships-1", "guide/lighthouse.md", "Coastal notes > Ships",
              "Tankers pass the cape at night. Coastguard radio operators track every vessel that rounds the "
              f"headland during storms. {OVERLAP}", 1, "Coastal notes"),
        chunk("c-ships-2", "guide/lighthouse.md", "Coastal notes > Ships",
              f"{OVERLAP} Harbour masters assign moorings by draught and by the length of each hull.", 2,
              "Coastal notes"),
        chunk("c-ships-radio", "guide/lighthouse.md", "Coastal notes > Ships > Radio",
              "Marine radios use channel sixteen for distress calls and for hailing other ships nearby. "
              "Operators switch to a working channel once contact with the other station is made.", 3,
              "Coastal notes"),
        chunk("c-install", "guide/install.md", "Installing",
              "Use pip to install the package into a fresh virtual environment on your machine. "
              "The installer downloads compiled wheels for every supported platform automatically.\n\n"
              "```\npip install ragindex --upgrade and then run the build script.\n```\n\n"
              "- Run the test suite after installing the package to check the build.\n"
              "- Short item.", 0, "Installing"),
        chunk("c-source", "guide/install.md", "Installing > From source",
              "Clone the repository and run the build script from the project root directory. "
              "Building from source requires a working compiler toolchain and the Python headers.", 1,
              "Installing"),
        chunk("c-other-source", "guide/other.md", "Other > From source",
              "Another project also documents building everything from source with its own makefile targets. "
              "Its makefile compiles the extension modules and copies them next to the pure Python files.", 0,
              "Other"),
        chunk("c-beir", "doc-17", "Vector tables",
              "A vector table stores rows of embeddings next to their metadata columns for filtering. "
              "Approximate indexes trade a little recall for much faster nearest neighbour search.", 0,
              "Vector tables"),
    ]


def test_registry_labels_versions_and_lexical() -> None:
    assert set(GENERATORS) == {"qrels", "heading", "cloze", "llm"}
    assert GENERATOR_VERSIONS == {name: info.version for name, info in GENERATORS.items()}
    assert LEXICAL_GENERATORS == {"heading", "cloze"}


def test_sentence_spans_skip_code_and_split_list_items() -> None:
    _, body = chunk_body(corpus()[4])
    sentences = [" ".join(body[a:b].split()) for a, b in sentence_spans(body)]
    assert "Use pip to install the package into a fresh virtual environment on your machine." in sentences
    assert not any("pip install ragindex" in s for s in sentences)  # inside a code fence
    assert "- Run the test suite after installing the package to check the build." in sentences
    assert "- Short item." in sentences


def test_remove_span_tidies_whitespace() -> None:
    text = "First sentence here. Second one goes. Third.\n\nNext paragraph."
    spans = sentence_spans(text)
    assert remove_span(text, spans[1]) == "First sentence here. Third.\n\nNext paragraph."
    assert remove_span(text, spans[3]) == "First sentence here. Second one goes. Third."


@pytest.mark.parametrize(("sentence", "reason"), [
    ("Tankers pass the cape at night.", "too short"),
    ("Use the `--upgrade` flag to replace an older version of the package on disk.", "markup or code"),
    ("- Run the test suite after installing the package to check the build.", "markup or code"),
    ("See https://example.org/docs for the complete list of the options we support.", "markup or code"),
    ("It is what it is and that is all there is to it now.", "trivial"),
    ("Clone the repository and run the build script from the project root directory", "not a full sentence"),
    ("x = foo(bar) + baz[qux] * 2 if flag else other_value; return x.", "markup or code"),
    (KEEPER, None),
])
def test_cloze_sentence_filters(sentence: str, reason: str | None) -> None:
    assert cloze_reject_reason(sentence) == reason


def test_heading_grades_own_section_above_subsections() -> None:
    out = heading_rows(corpus(), n=50, seed=0, corpus_version="tag-1", min_content_words=1)
    by_query = {r.query: r for r in out.rows}
    ships = by_query["Ships"]
    assert ships.judgements == {"c-ships-1": 2, "c-ships-2": 2, "c-ships-radio": 1}
    assert ships.lexical and ships.generator == "heading" and ships.source_doc_id == "guide/lighthouse.md"
    assert by_query["Keepers"].judgements == {"c-keepers": 2}
    assert by_query["Installing"].judgements == {"c-install": 2, "c-source": 1}
    assert by_query["Vector tables"].judgements == {"c-beir": 2}  # a title-only (BEIR) document
    # "From source" is the leaf of two headings: each falls back to its unambiguous full path
    assert by_query["Installing From source"].judgements == {"c-source": 2}
    assert by_query["Other From source"].judgements == {"c-other-source": 2}
    assert "From source" not in by_query


def test_short_or_repeated_headings_use_their_path_or_are_left_out() -> None:
    out = heading_rows(corpus(), n=50, seed=0)  # at least three content words by default
    queries = {r.query for r in out.rows}
    assert {"Coastal notes Ships", "Coastal notes Keepers", "Coastal notes Ships Radio"} <= queries
    assert not {"Ships", "Keepers", "Vector tables", "Installing", "Installing From source"} & queries
    assert out.skipped["heading under 3 content words"] == 4  # even as paths: "Other From source" has one
    repeated = [chunk(f"c-ex{i}", f"doc{i}.md", "Examples", "Some example text for this page.", 0) for i in range(2)]
    out = heading_rows(repeated, n=10, min_content_words=1)
    assert not out.rows and out.skipped == {"heading repeated across documents or sections": 2}


def test_cloze_leaves_out_uninformative_sentences_and_counts_why() -> None:
    shared = "Every release of the toolkit ships with signed installers for each supported platform."
    template = "This page was generated automatically from the reference sources of project number {}."
    common = ["keeper", "harbour", "engine", "signal", "weather", "river", "station", "market"]

    def generic(i: int) -> str:  # only words every chunk has, in an order no other chunk has
        words = random.Random(i).sample(common, len(common))
        return f"The {words[0]} and {' and '.join(words[1:])} were there."

    chunks = [chunk(f"c{i}", f"doc{i}.md", f"Doc {i}",
                    f"{shared if i < 2 else KEEPER if i == 2 else OVERLAP} {template.format(i)} {generic(i)}", 0)
              for i in range(4)]
    out = cloze_rows(chunks, n=10, seed=0, low_idf_quantile=0.75)
    queries = {r.query for r in out.rows}
    assert queries and not any(q == shared or "generated automatically" in q or "were there" in q for q in queries)
    assert out.filtered["sentence found in several documents"] == 2  # the shared sentence, in both chunks
    assert out.filtered["boilerplate"] == 4  # the template, found in every document
    assert out.filtered["low IDF mass"] >= 1  # the generic sentences: common words only
    assert any("low IDF mass: below" in note for note in out.notes)


def test_heading_skips_sections_with_too_many_relevant_chunks() -> None:
    out = heading_rows(corpus(), n=50, max_relevant=2)
    assert "Ships" not in {r.query for r in out.rows}
    assert out.skipped["too many relevant chunks"] == 1


def test_cloze_query_absent_from_relevant_context_and_unique() -> None:
    chunks = corpus()
    out = cloze_rows(chunks, n=50, seed=3, corpus_version="tag-1")
    assert out.rows
    texts = {c["chunk_id"]: c["text"] for c in chunks}
    for row in out.rows:
        (cid,) = row.reference_chunk_ids
        assert row.query in " ".join(texts[cid].split())  # taken from that chunk ...
        assert normalize_query(row.query) not in normalize_query(row.reference_contexts[0])  # ... and removed
        assert row.reference_contexts[0].startswith(chunks[[c["chunk_id"] for c in chunks].index(cid)]
                                                    ["heading_path"] + "\n\n")
        others = [t for c, t in texts.items() if c != cid]
        assert not any(normalize_query(row.query) in normalize_query(t) for t in others)
        assert cloze_reject_reason(row.query) is None
    assert OVERLAP not in {r.query for r in out.rows}  # shared by two overlapping windows
    assert len({r.reference_chunk_ids[0] for r in out.rows}) == len(out.rows)  # one sentence per chunk


def test_generators_are_seeded_and_independent_of_input_order() -> None:
    chunks = corpus()
    first = generate(chunks, ["heading", "cloze"], n=3, seed=7, corpus_version="t")
    shuffled = list(chunks)
    random.Random(1).shuffle(shuffled)
    again = generate(shuffled, ["heading", "cloze"], n=3, seed=7, corpus_version="t")
    assert [r.as_dict() for r in first.rows] == [r.as_dict() for r in again.rows]
    picks = {tuple(r.query for r in generate(chunks, ["heading", "cloze"], n=3, seed=s).rows) for s in range(6)}
    assert len(picks) > 1  # the seed changes which queries are drawn


def test_every_row_records_its_provenance() -> None:
    rows = generate(corpus(), ["heading", "cloze"], n=4, seed=11, corpus_version="docs-20260101-v3").rows
    assert {r.generator for r in rows} == {"heading", "cloze"}
    for row in rows:
        assert row.query_id.startswith(row.generator + "-")
        assert row.generator_version == GENERATOR_VERSIONS[row.generator]
        assert row.lexical is GENERATORS[row.generator].lexical
        assert (row.seed, row.corpus_version) == (11, "docs-20260101-v3")
        assert (row.chunker_hash, row.model_fingerprint) == ("chunkhash1", "fp-model-1")
        assert row.reference_answer is None and row.source_doc_id
    assert len({r.query_id for r in rows}) == len(rows)


def test_heading_contexts_show_cloze_masked_text() -> None:
    result = generate(corpus(), ["heading", "cloze"], n=50, seed=2)
    masked = {r.reference_chunk_ids[0]: r.reference_contexts[0] for r in result.rows if r.generator == "cloze"}
    for row in result.rows:
        for cid, context in zip(row.reference_chunk_ids, row.reference_contexts, strict=True):
            if cid in masked:
                assert context == masked[cid]


def test_qrels_generator_maps_document_judgements_to_chunks() -> None:
    eval_set = EvalSet(
        queries={"q1": "how are moorings assigned", "q2": "unknown doc", "q3": "installing with pip",
                 "q4": "Keepers"},
        qrels={"q1": {"guide/lighthouse.md": 1, "missing.md": 2}, "q2": {"nowhere": 1},
               "q3": {"guide/install.md": 2, "guide/other.md": 1}, "q4": {"guide/lighthouse.md": 1}})
    out = qrels_rows(corpus(), eval_set, n=None, seed=0, corpus_version="v")
    rows = {r.query_id: r for r in out.rows}
    assert set(rows) == {"qrels-q1", "qrels-q3", "qrels-q4"}
    assert out.skipped == {"judged documents not in the corpus": 1}
    assert rows["qrels-q3"].judgements == {"c-install": 2, "c-source": 2, "c-other-source": 1}
    assert rows["qrels-q3"].source_doc_id == "guide/install.md"
    assert set(rows["qrels-q1"].judgements) == {"c-keepers", "c-ships-1", "c-ships-2", "c-ships-radio"}
    assert not rows["qrels-q1"].lexical
    assert out.notes  # q1 lost the judged document that is not in the corpus
    two = qrels_rows(corpus(), eval_set, n=2, seed=5)
    assert len(two.rows) == 2 and two.rows == qrels_rows(corpus(), eval_set, n=2, seed=5).rows


def test_duplicates_across_generators_are_dropped_first_generator_wins() -> None:
    eval_set = EvalSet(queries={"q4": "keepers!"}, qrels={"q4": {"guide/lighthouse.md": 1}})
    result = generate(corpus(), ["qrels", "heading"], n=50, seed=0, eval_set=eval_set,
                      options={"heading": {"min_content_words": 1}})
    keepers = [r for r in result.rows if normalize_query(r.query) == "keepers"]
    assert [r.generator for r in keepers] == ["qrels"]
    assert result.duplicates == 1
    assert result.outputs["heading"].skipped["duplicate of an earlier generator's query"] == 1


def test_generate_rejects_unknown_and_skips_unconfigured_llm() -> None:
    with pytest.raises(ValueError, match="unknown generator"):
        generate(corpus(), ["heading", "bogus"])
    with pytest.raises(ValueError, match="eval_set"):
        generate(corpus(), ["qrels"])
    result = generate(corpus(), ["heading", "llm"], n=2)
    assert result.outputs["llm"].rows == [] and "no LLM endpoint" in result.outputs["llm"].notes[0]
    assert result.counts() == {"heading": 2}


def test_rows_validate_and_round_trip_parquet(tmp_path) -> None:
    rows = generate(corpus(), ["heading", "cloze"], n=3, seed=1).rows
    path = write_rows(tmp_path / "rows.parquet", rows)
    assert read_rows(path) == rows
    with pytest.raises(ValueError, match="positive"):
        DatasetRow("q", "query", ("c",), (0,), ("t",), None, "heading", 1, True, 0, "d", "v", "h", "f")
    with pytest.raises(ValueError, match="length"):
        DatasetRow("q", "query", ("c", "d"), (1,), ("t",), None, "heading", 1, True, 0, "d", "v", "h", "f")
