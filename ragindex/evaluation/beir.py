"""Load and validate BEIR-layout evaluation sets (queries.jsonl + qrels/<split>.tsv)."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

EXAMPLES = 5  # ids quoted per aggregated problem message


class EvalDataError(ValueError):
    """The evaluation data set is missing or malformed (`path:line: why` for a bad line)."""


@dataclass
class EvalSet:
    """Queries, graded qrels and the validation problems found while loading them."""

    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    problems: list[str] = field(default_factory=list)
    generators: dict[str, str] = field(default_factory=dict)  # query id -> generator, for generated sets

    @property
    def scored_query_ids(self) -> list[str]:
        """Query ids (sorted) that have at least one positive judgement and so receive metrics."""
        return sorted(q for q in self.queries if any(r > 0 for r in self.qrels.get(q, {}).values()))


def _examples(ids: list[str] | set[str]) -> str:
    shown = sorted(ids)[:EXAMPLES]
    more = ", ..." if len(ids) > EXAMPLES else ""
    return ", ".join(shown) + more


def _layout(folder: Path, split: str) -> str:
    return (
        f'expected BEIR layout {folder}/queries.jsonl (JSON lines with "_id" and "text") '
        f"and {folder}/qrels/{split}.tsv"
    )


def load_queries(path: Path, problems: list[str], generators: dict[str, str] | None = None) -> dict[str, str]:
    """Read queries.jsonl: empty texts are dropped, for duplicate ids the first is kept; `generators` receives
    each query's metadata.generator when the set was generated (ragindex.datasets)."""
    queries: dict[str, str] = {}
    empty: list[str] = []
    dupes: list[str] = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            row = _json_line(path, lineno, line)
            qid, text = str(row["_id"]).strip(), row.get("text")
            if not isinstance(text, str) or not text.strip():
                empty.append(qid)
            elif qid in queries:
                dupes.append(qid)
            else:
                queries[qid] = text.strip()
                meta = row.get("metadata")
                generator = meta.get("generator") if isinstance(meta, dict) else None
                if generators is not None and isinstance(generator, str):
                    generators[qid] = generator
    if empty:
        problems.append(f"{len(empty)} queries with empty text dropped: {_examples(empty)}")
    if dupes:
        problems.append(f"{len(dupes)} duplicate query ids (first occurrence kept): {_examples(set(dupes))}")
    return queries


def _json_line(path: Path, lineno: int, line: str | bytes) -> dict:
    """One JSON-lines record with a non-empty `_id`, or EvalDataError naming the file and line."""
    try:
        row = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise EvalDataError(f"{path}:{lineno}: not valid JSON ({getattr(error, 'msg', error)})") from None
    if not isinstance(row, dict) or not str(row.get("_id", "")).strip():
        raise EvalDataError(f'{path}:{lineno}: expected a JSON object with a non-empty "_id"')
    return row


def validate_corpus(folder: str | Path) -> int:
    """Check every line of a BEIR folder's corpus.jsonl (JSON objects with `_id` and a string `text`) before it is
    indexed; returns the number of documents."""
    path = Path(folder) / "corpus.jsonl"
    if not path.is_file():
        raise EvalDataError(f"evaluation data missing: {path} does not exist; a BEIR folder needs corpus.jsonl")
    count = 0
    with path.open("rb") as fh:
        for lineno, line in enumerate(fh, start=1):
            if line.strip():
                row = _json_line(path, lineno, line)
                if not isinstance(row.get("text"), str):
                    raise EvalDataError(f'{path}:{lineno}: "text" must be a string')
                count += 1
    return count


def load_qrels(path: Path, problems: list[str]) -> dict[str, dict[str, int]]:
    """Read BEIR `qid docid rel` (optional header) or TREC `qid 0 docid rel` qrels; first judgement wins."""
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    dupes = 0
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            cols = line.split()
            if not cols:
                continue
            if len(cols) not in (3, 4):
                raise EvalDataError(f"{path}:{lineno}: expected 3 (BEIR) or 4 (TREC) columns, got {len(cols)}")
            qid, doc_id, rel_text = cols if len(cols) == 3 else (cols[0], cols[2], cols[3])
            try:
                rel = int(rel_text)
            except ValueError:
                if lineno != 1:  # a non-numeric first line is a header such as `query-id corpus-id score`
                    raise EvalDataError(f"{path}:{lineno}: relevance {rel_text!r} is not an integer") from None
                continue
            if doc_id in qrels[qid]:
                dupes += 1
                continue
            qrels[qid][doc_id] = rel
    if dupes:
        problems.append(f"{dupes} duplicate (query, document) judgements ignored (first kept)")
    return dict(qrels)


def load_beir(folder: str | Path, split: str = "test", known_doc_ids: set[str] | None = None) -> EvalSet:
    """Load a BEIR folder, dropping bad queries/qrels and recording every problem in EvalSet.problems."""
    folder = Path(folder)
    queries_path, qrels_path = folder / "queries.jsonl", folder / "qrels" / f"{split}.tsv"
    for path in (folder, queries_path, qrels_path):
        if not path.exists():
            raise EvalDataError(f"evaluation data missing: {path} does not exist; {_layout(folder, split)}")
    problems: list[str] = []
    generators: dict[str, str] = {}
    queries = load_queries(queries_path, problems, generators)
    raw = load_qrels(qrels_path, problems)

    unknown_q = sorted(set(raw) - set(queries))
    if unknown_q:
        n_lines = sum(len(raw[q]) for q in unknown_q)
        problems.append(
            f"{n_lines} qrels for {len(unknown_q)} query ids not in queries.jsonl dropped: "
            f"{_examples(unknown_q)}"
        )
    qrels = {q: judged for q, judged in raw.items() if q in queries}

    if known_doc_ids is not None:
        unknown_d = {d for judged in qrels.values() for d in judged if d not in known_doc_ids}
        if unknown_d:
            n_lines = sum(d in unknown_d for judged in qrels.values() for d in judged)
            problems.append(
                f"{n_lines} qrels naming {len(unknown_d)} documents not in the corpus dropped: "
                f"{_examples(unknown_d)}"
            )
            qrels = {q: {d: r for d, r in j.items() if d not in unknown_d} for q, j in qrels.items()}
            qrels = {q: j for q, j in qrels.items() if j}

    result = EvalSet(queries=queries, qrels=qrels, problems=problems, generators=generators)
    unscored = sorted(set(queries) - set(result.scored_query_ids))
    if unscored:
        problems.append(
            f"{len(unscored)} of {len(queries)} queries have no positive judgement and are not scored: "
            f"{_examples(unscored)}"
        )
    return result
