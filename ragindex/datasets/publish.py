"""Publish a generated dataset as a versioned folder (BEIR files, Parquet rows, card) and write its metrics."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragindex.datasets.generators import GENERATORS, chunk_body, cloze_masks, sorted_chunks
from ragindex.datasets.rows import DatasetRow, read_rows, write_rows
from ragindex.evaluation.metrics import METRICS, rank_docs
from ragindex.evaluation.statistics import bootstrap_ci

FORMAT_VERSION = 1
ROWS_FILE = "rows.parquet"
MANIFEST_FILE = "dataset.json"
METRICS_FILE = "metrics.json"
CARD_FILE = "README.md"
LATEST_FILE = "LATEST"
METRICS_MARKER = "<!-- metrics -->"
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class PublishedDataset:
    folder: Path
    name: str
    version: str
    manifest: dict


def _canonical(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def corpus_records(chunks: Sequence[Mapping], rows: Sequence[DatasetRow]) -> list[dict]:
    """BEIR corpus lines, one per chunk: `_id` = chunk id, `title` = heading path, `text` = body.

    The body is the chunk text without its heading-path line, so indexing this corpus with the BEIR source
    (which prefixes the title) reproduces the chunk text. Cloze query sentences are removed from their chunk.
    """
    masks = cloze_masks(chunks, rows)
    records = []
    for chunk in sorted_chunks(chunks):
        prefix, body = chunk_body(chunk)
        records.append({
            "_id": chunk["chunk_id"],
            "title": prefix.strip(),
            "text": masks.get(chunk["chunk_id"], body),
            "metadata": {"doc_id": chunk.get("doc_id"), "source": chunk.get("source"),
                         "doc_title": chunk.get("title") or "", "heading_path": chunk.get("heading_path") or "",
                         "position": chunk.get("position"), "masked": chunk["chunk_id"] in masks},
        })
    return records


def dataset_version(rows: Sequence[DatasetRow], corpus: Sequence[Mapping]) -> str:
    """A content version: the same rows over the same corpus always publish to the same folder."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(_canonical(row.as_dict()))
    for record in corpus:
        digest.update(_canonical(record))
    return "v-" + digest.hexdigest()[:12]


def _write_jsonl(path: Path, records: Sequence[Mapping]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def write_beir(folder: str | Path, corpus: Sequence[Mapping], rows: Sequence[DatasetRow], split: str = "test") -> None:
    """corpus.jsonl, queries.jsonl and qrels/<split>.tsv (with the BEIR header line)."""
    folder = Path(folder)
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    _write_jsonl(folder / "corpus.jsonl", corpus)
    _write_jsonl(folder / "queries.jsonl", [
        {"_id": r.query_id, "text": r.query,
         "metadata": {"generator": r.generator, "lexical": r.lexical, "source_doc_id": r.source_doc_id,
                      "reference_answer": r.reference_answer}} for r in rows])
    with (folder / "qrels" / f"{split}.tsv").open("w", encoding="utf-8") as handle:
        handle.write("query-id\tcorpus-id\tscore\n")
        for row in rows:
            for chunk_id, grade in zip(row.reference_chunk_ids, row.reference_grades, strict=True):
                handle.write(f"{row.query_id}\t{chunk_id}\t{int(grade)}\n")


def _generator_counts(rows: Sequence[DatasetRow]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.generator] = counts.get(row.generator, 0) + 1
    return counts


def build_manifest(name: str, version: str, rows: Sequence[DatasetRow], corpus: Sequence[Mapping],
                   source_license: str, source_description: str, generation: Mapping | None) -> dict:
    counts = _generator_counts(rows)
    generators = {}
    for gen, n in counts.items():
        info = GENERATORS.get(gen)
        versions = sorted({r.generator_version for r in rows if r.generator == gen})
        generators[gen] = {"rows": n, "versions": versions, "lexical": info.lexical if info else None,
                           "description": info.description if info else "",
                           "models": sorted({r.generator_model for r in rows if r.generator == gen
                                             and r.generator_model})}
    return {
        "name": name,
        "version": version,
        "format_version": FORMAT_VERSION,
        "source": {"description": source_description, "license": source_license},
        "counts": {"queries": len(rows), "corpus": len(corpus),
                   "qrels": sum(len(r.reference_chunk_ids) for r in rows),
                   "source_documents": len({r.source_doc_id for r in rows}),
                   "corpus_documents": len({(c.get("metadata") or {}).get("doc_id") for c in corpus}),
                   "masked_passages": sum(bool((c.get("metadata") or {}).get("masked")) for c in corpus),
                   "by_generator": counts},
        "generators": generators,
        "seeds": sorted({r.seed for r in rows}),
        "corpus_versions": sorted({r.corpus_version for r in rows}),
        "chunker_hashes": sorted({r.chunker_hash for r in rows}),
        "model_fingerprints": sorted({r.model_fingerprint for r in rows}),
        "generation": dict(generation) if generation else None,
        "files": ["corpus.jsonl", "queries.jsonl", "qrels/test.tsv", ROWS_FILE, CARD_FILE, MANIFEST_FILE],
    }


def dataset_card(manifest: Mapping) -> str:
    """The README.md dataset card: what, how it was generated, counts, source licence, how to load."""
    c = manifest["counts"]
    name, version = manifest["name"], manifest["version"]
    lines = [
        f"# {name} ({version})",
        "",
        "## What",
        "",
        f"A retrieval evaluation set of {c['queries']} queries over {c['corpus']} passages (index chunks) from "
        f"{c['corpus_documents']} documents, with graded relevance judgements. Source: "
        f"{manifest['source']['description'] or 'see below'}.",
        "",
        "## How it was generated",
        "",
        "| generator | version | lexical | queries | how |",
        "|---|---|---|---|---|",
    ]
    for gen, info in sorted(manifest["generators"].items()):
        models = f" Model: {', '.join(info['models'])}." if info["models"] else ""
        lines.append(f"| {gen} | {', '.join(map(str, info['versions']))} | {'yes' if info['lexical'] else 'no'} "
                     f"| {info['rows']} | {info['description']}{models} |")
    lines += [
        "",
        "Generators marked *lexical* reuse the words of the relevant passage in the query, so they favour "
        "keyword (BM25/FTS) search over dense search; compare retrieval modes per generator, never on the pooled "
        "numbers alone.",
        "",
        f"- seed(s): {', '.join(map(str, manifest['seeds'])) or '-'}",
        f"- corpus version (LanceDB tag): {', '.join(manifest['corpus_versions']) or '-'}",
        f"- chunker config hash: {', '.join(manifest['chunker_hashes']) or '-'}",
        f"- embedding model fingerprint: {', '.join(manifest['model_fingerprints']) or '-'}",
        "- corpus `_id` is the index chunk id; `title` is the chunk's heading path and `text` its body, so "
        "indexing `corpus.jsonl` as a BEIR source rebuilds the chunk texts.",
    ]
    if c.get("masked_passages"):
        lines.append(f"- **cloze masking**: for each cloze query, the query sentence is removed from its relevant "
                     f"passage in `corpus.jsonl` ({c['masked_passages']} passages, flagged `metadata.masked`), "
                     "so the query cannot match itself. Evaluate against an index built from this corpus, not "
                     "the original index.")
    if "qrels" in manifest["generators"]:
        lines.append("- qrels: a judged document's grade is given to every chunk of that document.")
    if "heading" in manifest["generators"]:
        lines.append("- heading: the heading's own chunks have grade 2, chunks of its sub-sections grade 1.")
    lines += [
        "",
        "## Counts",
        "",
        f"- queries: {c['queries']} ({', '.join(f'{g}: {n}' for g, n in sorted(c['by_generator'].items()))})",
        f"- passages: {c['corpus']} from {c['corpus_documents']} documents; queries drawn from "
        f"{c['source_documents']} documents",
        f"- judgements (qrels lines): {c['qrels']}",
        "",
        *filtering_lines(manifest.get("generation")),
        "## Source and licence",
        "",
        f"The passages are copied from the source corpus and keep its licence: **{manifest['source']['license']}**. "
        "Generated queries and answers are derived from it.",
        "",
        "## Files",
        "",
        "- `corpus.jsonl`, `queries.jsonl`, `qrels/test.tsv`: BEIR layout",
        f"- `{ROWS_FILE}`: one row per query (ids, query, reference chunk ids with grades, reference contexts, "
        "reference answer, generator and version, seed, source document, corpus version, chunker hash, model "
        "fingerprint)",
        f"- `{MANIFEST_FILE}`: counts and provenance; `{METRICS_FILE}` and `runs/*.trec` once evaluated",
        "",
        "## How to load",
        "",
        "```python",
        "from ragindex.evaluation.beir import load_beir",
        "eval_set = load_beir(\"path/to/this/folder\")  # queries + qrels",
        "",
        "import pandas as pd",
        f"rows = pd.read_parquet(\"path/to/this/folder/{ROWS_FILE}\")",
        "",
        "from beir.datasets.data_loader import GenericDataLoader  # the beir package",
        "corpus, queries, qrels = GenericDataLoader(\"path/to/this/folder\").load(split=\"test\")",
        "```",
        "",
        "## Results",
        "",
        METRICS_MARKER,
        "Not evaluated yet.",
        "",
    ]
    return "\n".join(lines)


def filtering_lines(generation: Mapping | None) -> list[str]:
    """The card's account of what each generator left out, with counts and reasons."""
    if not generation:
        return []
    lines = ["## Filtering", "", "Candidates left out as uninformative or unusable, by generator and reason:", ""]
    for name, info in sorted((generation.get("generators") or {}).items()):
        skipped = "; ".join(f"{reason}: {n}" for reason, n in info.get("skipped", {}).items()) or "none"
        lines.append(f"- {name}: {info.get('rows', 0)} rows from {info.get('candidates', 0)} candidates; "
                     f"skipped {skipped}")
        if info.get("filtered"):
            rejected = "; ".join(f"{reason}: {n}" for reason, n in info["filtered"].items())
            lines.append(f"  - candidate sentences rejected: {rejected}")
        lines += [f"  - {note}" for note in info.get("notes", [])]
    return [*lines, ""]


def publish_dataset(out_dir: str | Path, name: str, rows: Sequence[DatasetRow], chunks: Sequence[Mapping], *,
                    source_license: str = "unknown", source_description: str = "", version: str | None = None,
                    generation: Mapping | None = None) -> PublishedDataset:
    """Write `out_dir/<name>/<version>/` atomically and point `out_dir/<name>/LATEST` at it.

    `chunks` is the whole corpus (index chunk dicts); `version` defaults to a content hash, so publishing the
    same rows twice rewrites the same folder. `generation` (e.g. GenerationResult.summary()) goes into the
    manifest. Any metrics.json and runs/ of an earlier publication of this version are removed.
    """
    if not rows:
        raise ValueError("no rows to publish")
    ids = [r.query_id for r in rows]
    if len(set(ids)) != len(ids):
        raise ValueError("query ids must be unique within a dataset")
    corpus = corpus_records(chunks, rows)
    known = {c["_id"] for c in corpus}
    missing = sorted({cid for r in rows for cid in r.reference_chunk_ids} - known)
    if missing:
        raise ValueError(f"{len(missing)} reference chunk ids are not in the corpus, e.g. {missing[:3]}")
    name = _SAFE.sub("-", name).strip("-.") or "dataset"
    version = _SAFE.sub("-", version).strip("-.") if version else dataset_version(rows, corpus)
    parent = Path(out_dir) / name
    parent.mkdir(parents=True, exist_ok=True)
    manifest = build_manifest(name, version, rows, corpus, source_license, source_description, generation)
    staging = Path(tempfile.mkdtemp(dir=parent, prefix=".staging-"))
    try:
        write_beir(staging, corpus, rows)
        write_rows(staging / ROWS_FILE, rows)
        (staging / CARD_FILE).write_text(dataset_card(manifest), encoding="utf-8")
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n",
                                             encoding="utf-8")
        target = parent / version
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    (parent / LATEST_FILE).write_text(version + "\n", encoding="utf-8")
    return PublishedDataset(target, name, version, manifest)


def latest_version(out_dir: str | Path, name: str) -> Path:
    parent = Path(out_dir) / name
    return parent / (parent / LATEST_FILE).read_text(encoding="utf-8").strip()


def load_rows(folder: str | Path) -> list[DatasetRow]:
    return read_rows(Path(folder) / ROWS_FILE)


# -- evaluation -------------------------------------------------------------------------------------------------
def write_trec_run(path: str | Path, run: Mapping[str, Mapping[str, float]], tag: str) -> Path:
    """`qid Q0 docid rank score tag` lines, ranked as trec_eval ranks (score desc, doc id desc on ties)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tag = _SAFE.sub("_", tag) or "run"
    with path.open("w", encoding="utf-8") as handle:
        for qid in sorted(run):
            scores = run[qid]
            for rank, doc in enumerate(rank_docs(scores), start=1):
                handle.write(f"{qid} Q0 {doc} {rank} {float(scores[doc])!r} {tag}\n")
    return path


def read_trec_run(path: str | Path) -> dict[str, dict[str, float]]:
    run: dict[str, dict[str, float]] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        cols = line.split()
        if len(cols) == 6:
            run.setdefault(cols[0], {})[cols[2]] = float(cols[4])
    return run


def summarize(values: Sequence[float], n_boot: int, seed: int, level: float) -> dict[str, float]:
    mean, lo, hi = bootstrap_ci(values, n_boot=n_boot, seed=seed, level=level)
    return {"mean": mean, "ci_low": lo, "ci_high": hi}


def metrics_summary(per_query: Mapping[str, Mapping[str, float]], query_generator: Mapping[str, str],
                    n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict[str, dict]:
    """{"all" | generator: {"n", "lexical", "metrics": {metric: {mean, ci_low, ci_high}}}} for one mode."""
    groups: dict[str, list[str]] = {"all": sorted(per_query)}
    for qid in sorted(per_query):
        groups.setdefault(query_generator.get(qid, "unknown"), []).append(qid)
    out: dict[str, dict] = {}
    for group, qids in groups.items():
        names = [m for m in METRICS if qids and all(m in per_query[q] for q in qids)]
        names += sorted({m for q in qids for m in per_query[q]} - set(names) - set(METRICS))
        info = GENERATORS.get(group)
        out[group] = {
            "n": len(qids),
            "lexical": None if info is None else info.lexical,
            "metrics": {m: summarize([per_query[q].get(m, 0.0) for q in qids], n_boot, seed, level)
                        for m in names} if qids else {},
        }
    return out


def write_metrics(folder: str | Path, per_query_by_mode: Mapping[str, Mapping[str, Mapping[str, float]]],
                  runs_by_mode: Mapping[str, Mapping[str, Mapping[str, float]]], rows: Sequence[DatasetRow], *,
                  n_boot: int = 2000, seed: int = 0, level: float = 0.95, extra: Mapping | None = None) -> dict:
    """metrics.json (per mode x generator: mean, bootstrap CI, n; per-query scores) and runs/<mode>.trec.

    Also replaces the Results section of the folder's README.md card, when it has one.
    """
    folder = Path(folder)
    query_generator = {r.query_id: r.generator for r in rows}
    run_files = {}
    for mode, run in runs_by_mode.items():
        file = f"runs/{_SAFE.sub('_', mode)}.trec"
        write_trec_run(folder / file, run, f"ragindex-{mode}")
        run_files[mode] = file
    data = {
        "format_version": FORMAT_VERSION,
        "level": level,
        "n_boot": n_boot,
        "seed": seed,
        "metrics": list(METRICS),
        "modes": list(per_query_by_mode),
        "generators": {g: {"lexical": GENERATORS[g].lexical if g in GENERATORS else None,
                           "queries": sum(1 for r in rows if r.generator == g)}
                       for g in sorted({r.generator for r in rows})},
        "summary": {mode: metrics_summary(pq, query_generator, n_boot, seed, level)
                    for mode, pq in per_query_by_mode.items()},
        "per_query": {mode: {q: dict(v) for q, v in sorted(pq.items())} for mode, pq in per_query_by_mode.items()},
        "query_generator": dict(sorted(query_generator.items())),
        "runs": run_files,
        **({"extra": dict(extra)} if extra else {}),
    }
    (folder / METRICS_FILE).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    card = folder / CARD_FILE
    if card.exists():
        text = card.read_text(encoding="utf-8")
        if METRICS_MARKER in text:
            head = text.split(METRICS_MARKER, 1)[0]
            card.write_text(head + METRICS_MARKER + "\n" + results_markdown(data), encoding="utf-8")
    return data


def results_markdown(data: Mapping, metrics: Sequence[str] = ("ndcg@10", "recall@10", "mrr@10")) -> str:
    """A table per mode: each generator's mean [95% CI] and number of queries."""
    pct = round(100 * float(data.get("level", 0.95)))
    lines = [f"Means with {pct}% bootstrap confidence intervals ({data['n_boot']} resamples, seed {data['seed']}); "
             "n = number of queries.", ""]
    for mode, groups in data["summary"].items():
        lines += [f"### {mode}", "", "| generator | lexical | n | " + " | ".join(metrics) + " |",
                  "|---|---|---|" + "---|" * len(metrics)]
        for group, info in groups.items():
            cells = []
            for m in metrics:
                s = info["metrics"].get(m)
                cells.append(f"{s['mean']:.3f} [{s['ci_low']:.3f}, {s['ci_high']:.3f}]" if s else "-")
            lexical = "-" if info["lexical"] is None else ("yes" if info["lexical"] else "no")
            lines.append(f"| {group} | {lexical} | {info['n']} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)
