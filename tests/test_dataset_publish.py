"""Tests for publishing a dataset folder (BEIR files, Parquet rows, card) and its metrics and TREC runs."""

from __future__ import annotations

import json

import pytest
from test_dataset_generators import corpus

from ragindex.chunking import document_sections
from ragindex.datasets.generators import content_terms, generate, normalize_query
from ragindex.datasets.publish import (
    METRICS_MARKER,
    latest_version,
    load_rows,
    publish_dataset,
    read_trec_run,
    write_metrics,
)
from ragindex.datasets.rows import rows_qrels
from ragindex.documents import Document
from ragindex.evaluation.beir import load_beir
from ragindex.evaluation.metrics import METRICS, doc_scores_from_chunks, per_query_metrics


@pytest.fixture()
def generated():
    chunks = corpus()
    return chunks, generate(chunks, ["heading", "cloze"], n=4, seed=5, corpus_version="docs-20260101-v7")


def _corpus_lines(folder) -> dict[str, dict]:
    lines = (folder / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    return {r["_id"]: r for r in map(json.loads, lines)}


def test_publish_writes_beir_parquet_card_and_manifest(tmp_path, generated) -> None:
    chunks, result = generated
    published = publish_dataset(tmp_path, "coastal docs", result.rows, chunks, source_license="CC-BY-4.0",
                                source_description="hand-made test notes", generation=result.summary())
    folder = published.folder
    assert folder.parent.name == "coastal-docs" and folder.name == published.version.strip()
    assert latest_version(tmp_path, "coastal-docs") == folder
    for name in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv", "rows.parquet", "README.md", "dataset.json"):
        assert (folder / name).is_file(), name

    corpus_lines = _corpus_lines(folder)
    assert set(corpus_lines) == {c["chunk_id"] for c in chunks}  # corpus _id = chunk id
    eval_set = load_beir(folder, known_doc_ids=set(corpus_lines))
    assert eval_set.problems == []
    assert eval_set.generators == {r.query_id: r.generator for r in result.rows}
    assert eval_set.queries == {r.query_id: r.query for r in result.rows}
    assert eval_set.qrels == {r.query_id: r.judgements for r in result.rows}
    assert load_rows(folder) == result.rows

    manifest = json.loads((folder / "dataset.json").read_text())
    assert manifest["counts"]["by_generator"] == result.counts()
    assert manifest["corpus_versions"] == ["docs-20260101-v7"]
    assert manifest["generators"]["cloze"]["lexical"] is True
    card = (folder / "README.md").read_text()
    for needle in ("## What", "## How it was generated", "## Counts", "CC-BY-4.0", "## How to load", "load_beir",
                   "cloze masking", "lexical", "docs-20260101-v7", "chunkhash1", "fp-model-1", METRICS_MARKER):
        assert needle in card, needle
    heading = result.outputs["heading"]
    assert "## Filtering" in card and "low IDF mass: below" in card
    assert f"- heading: {len(heading.rows)} rows from {heading.candidates} candidates; skipped " in card
    for reason, count in {**heading.skipped, **result.outputs["cloze"].filtered}.items():
        assert f"{reason}: {count}" in card, reason


def test_cloze_sentences_are_removed_from_the_published_corpus(tmp_path, generated) -> None:
    chunks, result = generated
    folder = publish_dataset(tmp_path, "d", result.rows, chunks).folder
    corpus_lines = _corpus_lines(folder)
    cloze = [r for r in result.rows if r.generator == "cloze"]
    assert cloze
    for row in cloze:
        record = corpus_lines[row.reference_chunk_ids[0]]
        assert record["metadata"]["masked"]
        assert normalize_query(row.query) not in normalize_query(record["text"])
        assert row.reference_contexts[0] == f"{record['title']}\n\n{record['text']}"
    unmasked = [c for c in chunks if c["chunk_id"] not in {r.reference_chunk_ids[0] for r in cloze}]
    for c in unmasked:  # the BEIR source prefixes the title, which rebuilds the chunk text exactly
        record = corpus_lines[c["chunk_id"]]
        doc = Document(record["_id"], "x", record["text"], "h", record["title"], record["_id"], 1, 0.0, "text")
        (section,) = document_sections(doc)
        assert f"{' > '.join(section.heading_path)}\n\n{section.text}" == c["text"]


def test_publish_is_idempotent_and_versioned_by_content(tmp_path, generated) -> None:
    chunks, result = generated
    first = publish_dataset(tmp_path, "d", result.rows, chunks)
    (first.folder / "metrics.json").write_text("{}")
    again = publish_dataset(tmp_path, "d", result.rows, chunks)
    assert again.version == first.version and not (again.folder / "metrics.json").exists()
    other = publish_dataset(tmp_path, "d", result.rows[:-1], chunks)
    assert other.version != first.version and latest_version(tmp_path, "d") == other.folder
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == sorted(["LATEST", first.version, other.version])
    with pytest.raises(ValueError, match="not in the corpus"):
        publish_dataset(tmp_path, "d", result.rows, chunks[:1])


def _overlap_search(folder):
    """A toy keyword retriever over the published corpus: score = shared content words."""
    docs = {d: set(content_terms(r["title"] + " " + r["text"])) for d, r in _corpus_lines(folder).items()}

    def search(query: str, mode: str, k: int) -> list[dict]:
        terms = set(content_terms(query))
        scored = [(len(terms & words) + (0.5 if mode == "fts" else 0.0), d) for d, words in docs.items()]
        scored = [(s, d) for s, d in scored if s > 0]
        return [{"doc_id": d, "chunk_id": d + "-0", "score": float(s)} for s, d in sorted(scored, reverse=True)[:k]]

    return search


def _evaluate(search, rows, modes: list[str]) -> tuple[dict, dict]:
    """Per-query metrics and runs of the toy retriever on the published rows, per mode."""
    qrels = rows_qrels(rows)
    runs = {mode: {r.query_id: doc_scores_from_chunks((h["doc_id"], h["score"]) for h in search(r.query, mode, 10))
                   for r in rows} for mode in modes}
    return {mode: per_query_metrics(run, qrels) for mode, run in runs.items()}, runs


def test_write_metrics_per_generator_and_mode_with_ci_and_trec_runs(tmp_path, generated) -> None:
    chunks, result = generated
    folder = publish_dataset(tmp_path, "d", result.rows, chunks).folder
    per_query, runs = _evaluate(_overlap_search(folder), result.rows, ["fts", "dense"])
    assert set(per_query["fts"]) == {r.query_id for r in result.rows}
    data = write_metrics(folder, per_query, runs, result.rows, n_boot=500, seed=3)
    on_disk = json.loads((folder / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(data))
    for mode in ("fts", "dense"):
        groups = data["summary"][mode]
        assert set(groups) == {"all", "heading", "cloze"}
        assert groups["all"]["n"] == len(result.rows)
        assert groups["heading"]["n"] + groups["cloze"]["n"] == len(result.rows)
        assert groups["cloze"]["lexical"] is True and groups["all"]["lexical"] is None
        for group in groups.values():
            assert set(group["metrics"]) == set(METRICS)
            for stats in group["metrics"].values():
                assert stats["ci_low"] <= stats["mean"] <= stats["ci_high"]
        assert data["per_query"][mode] == per_query[mode]
        assert read_trec_run(folder / data["runs"][mode]) == {q: pytest.approx(r) for q, r in runs[mode].items()}
    line = (folder / "runs" / "fts.trec").read_text().splitlines()[0].split()
    assert line[1] == "Q0" and line[3] == "1" and line[5] == "ragindex-fts"
    assert write_metrics(folder, per_query, runs, result.rows, n_boot=500, seed=3) == data  # seeded
    card = (folder / "README.md").read_text()
    assert "### fts" in card and "Not evaluated yet." not in card and card.count(METRICS_MARKER) == 1
