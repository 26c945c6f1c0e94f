"""Tests for grounded answers: prompt numbering and the extractive answer's citations."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from ragindex.datasets.generators import content_terms
from ragindex.llm.answer import NO_SOURCES, NO_SUPPORT, answer_question, build_prompt, extractive_answer


def hit(chunk_id: str, doc_id: str, heading: str, body: str, score: float = 1.0) -> SimpleNamespace:
    """Shaped like ragindex.search.Hit."""
    return SimpleNamespace(chunk_id=chunk_id, doc_id=doc_id, source="s", title="Coast", heading_path=heading,
                           score=score, text=f"{heading}\n\n{body}" if heading else body)


HITS = [
    hit("c-tides", "tides.md", "Coast > Tides",
        "Spring tides happen near the full and new moons. Neap tides are weaker and come between them."),
    hit("c-lamp", "lamp.md", "Coast > Lighthouse lamp",
        "The keeper trims the wick each morning. The lamp burns paraffin oil stored in the cellar below the tower."),
    hit("c-ships", "ships.md", "Coast > Ships", "Tankers pass the cape at night."),
]


def test_prompt_numbers_sources_in_rank_order() -> None:
    prompt = build_prompt("What fuel does the lamp burn?", HITS)
    system, user = prompt.messages[0]["content"], prompt.messages[1]["content"]
    assert "JSON" in system and "[1]" in system
    assert [c.number for c in prompt.citations] == [1, 2, 3]
    assert [c.chunk_id for c in prompt.citations] == ["c-tides", "c-lamp", "c-ships"]
    positions = [user.index(f"[{n}] ") for n in (1, 2, 3)]
    assert positions == sorted(positions)
    assert "[2] lamp.md :: Coast > Lighthouse lamp\nCoast > Lighthouse lamp\n\nThe keeper" in user
    assert user.rstrip().endswith("Question: What fuel does the lamp burn?")
    short = build_prompt("q", HITS, max_chars=20)
    assert all(len(c.text) <= 22 for c in short.citations)


def test_extractive_answer_cites_the_chunk_holding_the_answer_sentence() -> None:
    answer = extractive_answer("What fuel does the lamp burn?", HITS, max_sentences=1)
    assert answer.mode == "extractive"
    assert answer.text == "The lamp burns paraffin oil stored in the cellar below the tower. [2]"
    assert answer.cited_chunk_ids == ["c-lamp"]
    assert [c.number for c in answer.citations] == [2]
    assert answer.sentences[0]["citation"] == 2


def test_extractive_answer_orders_by_support_and_skips_repeats_and_headings() -> None:
    overlapping = [*HITS, hit("c-lamp-2", "lamp.md", "Coast > Lighthouse lamp",
                              "The lamp burns paraffin oil stored in the cellar below the tower. Spare wicks too.")]
    answer = extractive_answer("When do spring tides and neap tides happen?", overlapping, max_sentences=3)
    assert answer.text.startswith("Spring tides happen near the full and new moons. [1]")
    assert answer.cited_chunk_ids == ["c-tides"]
    assert "Coast > Tides" not in answer.text  # heading lines are not sentences
    lamp = extractive_answer("paraffin oil lamp", overlapping, max_sentences=3)
    assert lamp.text.count("paraffin") == 1  # the sentence repeated by the overlapping chunk is used once
    assert lamp.cited_chunk_ids[0] == "c-lamp"


def test_extractive_answer_without_sources_or_support() -> None:
    assert extractive_answer("anything", []).text == NO_SOURCES
    none = extractive_answer("quantum chromodynamics lattice", HITS)
    assert none.text == NO_SUPPORT and none.citations == []


def test_extractive_answer_with_an_embedding_function() -> None:
    vocabulary = sorted({t for h in HITS for t in content_terms(h.text)} | set(content_terms("fuel paraffin")))

    def embed(texts: list[str]) -> np.ndarray:
        return np.array([[float(t in set(content_terms(text))) for t in vocabulary] for text in texts])

    answer = extractive_answer("paraffin fuel", HITS, max_sentences=1, embed=embed)
    assert answer.cited_chunk_ids == ["c-lamp"] and "[2]" in answer.text


def test_answer_question_without_endpoint_is_extractive_and_accepts_dicts() -> None:
    dict_hits = [vars(h) for h in HITS]
    answer = answer_question("What fuel does the lamp burn?", dict_hits)
    assert answer.mode == "extractive" and answer.cited_chunk_ids[0] == "c-lamp"
    assert answer.as_dict()["cited_chunk_ids"] == answer.cited_chunk_ids
