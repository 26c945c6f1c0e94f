"""Seeded, de-duplicated query generators over index chunks: qrels (BEIR judgements), heading, cloze, llm."""

from __future__ import annotations

import hashlib
import math
import random
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from ragindex.datasets.rows import DatasetRow
from ragindex.documents import HEADING_SEPARATOR
from ragindex.evaluation.beir import EvalSet

CHUNK_COLUMNS: tuple[str, ...] = ("chunk_id", "doc_id", "source", "text", "heading_path", "title", "position",
                                  "chunker_hash", "fingerprint")
GRADE_OWN = 2  # heading: chunks of the heading's own section
GRADE_NESTED = 1  # heading: chunks of its sub-sections


@dataclass(frozen=True)
class GeneratorInfo:
    """What a generator is; `lexical` marks generators whose queries reuse the chunk's words verbatim."""

    name: str
    version: int
    lexical: bool
    description: str


GENERATORS: dict[str, GeneratorInfo] = {
    "qrels": GeneratorInfo(
        "qrels", 1, False,
        "Known human judgements of a BEIR-layout data set; each judged document's grade is given to all of "
        "its chunks."),
    "heading": GeneratorInfo(
        "heading", 2, True,
        "A section heading (or document title) as the query, its full path when the heading alone is short or "
        "repeated; headings of under three content words or repeated across documents are left out. The "
        "section's own chunks are relevant with grade 2, chunks of its sub-sections with grade 1. The heading "
        "text is part of every chunk, so this favours keyword search."),
    "cloze": GeneratorInfo(
        "cloze", 2, True,
        "Inverse cloze: a sentence of a chunk is the query and that chunk is relevant; the sentence is removed "
        "from the chunk in the published corpus. Boilerplate sentences, sentences found in several documents and "
        "sentences of low IDF mass are left out. Its words remain lexically close to the rest of the chunk, so "
        "this favours keyword search."),
    "llm": GeneratorInfo(
        "llm", 1, False,
        "A question and a reference answer written by an LLM (temperature 0, JSON output) from one sampled "
        "chunk, which is relevant."),
}
GENERATOR_VERSIONS: dict[str, int] = {name: info.version for name, info in GENERATORS.items()}
LEXICAL_GENERATORS: frozenset[str] = frozenset(name for name, info in GENERATORS.items() if info.lexical)

STOPWORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before being below between
both but by can could did do does doing down during each few for from further had has have having he her here
hers him his how i if in into is it its itself just me more most my no nor not now of off on once only or other
our ours out over own same she should so some such than that the their theirs them then there these they this
those through to too under until up very was we were what when where which while who whom why will with would
you your yours use used using may might must shall one two also e g ie eg etc
""".split())

_WORD = re.compile(r"[A-Za-z0-9]+")
_SENTENCE_END = re.compile(r"""(?<=[.!?])["')\]]*\s+(?=["'(\[]?[A-Z0-9])""")
_MARKUP_LINE = re.compile(r"^\s*(?:[-*+>|#]|\d+[.)]\s|\.\.\s|:\w+:)")
_FENCE = re.compile(r"^\s*(```|~~~)")
_URL = re.compile(r"https?://|www\.")
_PLAIN = re.compile(r"""[A-Za-z0-9\s.,;:'"!?()\-’‘“”]""")
_ALPHA_TOKEN = re.compile(r"""^["'(‘“]?[A-Za-z][A-Za-z'’\-]*[.,;:!?)"'’”]*$""")
_BOILERPLATE = re.compile(r"\b(copyright|all rights reserved|licen[cs]ed under|click here|edit this page|"
                          r"table of contents|cookies?)\b", re.IGNORECASE)
MIN_HEADING_TERMS = 3  # a heading query with fewer distinct content words is uninformative
BOILERPLATE_DOCS = 3  # a 6-word run found in this many documents is template text
LOW_IDF_QUANTILE = 0.1  # cloze sentences below this quantile of the corpus's sentence IDF mass are left out


# -- text helpers (also used by ragindex.llm.answer) ------------------------------------------------------------
def normalize_query(text: str) -> str:
    """Casefolded words without punctuation, single-spaced: the key for de-duplication."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


def collapse(text: str) -> str:
    return " ".join(text.split())


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def stem(word: str) -> str:
    """A deliberately crude suffix stripper: enough to match 'stores'/'stored'/'storing' with 'store'."""
    for suffix in ("ing", "edly", "ed", "ies", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def content_terms(text: str) -> list[str]:
    """Stemmed words of length >= 3 that are not stopwords."""
    return [stem(w) for w in words(text) if len(w) >= 3 and w not in STOPWORDS]


def chunk_body(chunk: Mapping) -> tuple[str, str]:
    """(prefix, body): a chunk's text starts with its heading path and a blank line when it has a heading."""
    text = chunk.get("text") or ""
    heading = chunk.get("heading_path") or ""
    if heading and text.startswith(heading + "\n\n"):
        return text[: len(heading) + 2], text[len(heading) + 2:]
    return "", text


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of prose sentences: paragraphs outside code fences, cut after . ! ? and at list items."""
    spans: list[tuple[int, int]] = []
    block: list[tuple[int, int]] = []  # line spans of the current paragraph
    in_fence = False

    def flush() -> None:
        if not block:
            return
        start, end = block[0][0], block[-1][1]
        cuts = [start]
        for line_start, _ in block[1:]:
            if _MARKUP_LINE.match(text[line_start:end]):
                cuts.append(line_start)
        for m in _SENTENCE_END.finditer(text, start, end):
            cuts.append(m.end())
        cuts = sorted(set(cuts)) + [end]
        for a, b in zip(cuts, cuts[1:], strict=False):
            piece = text[a:b]
            lead = len(piece) - len(piece.lstrip())
            trail = len(piece.rstrip())
            if trail > lead:
                spans.append((a + lead, a + trail))
        block.clear()

    offset = 0
    for line in text.splitlines(keepends=True):
        start, end = offset, offset + len(line.rstrip("\r\n"))
        offset += len(line)
        if _FENCE.match(line):
            flush()
            in_fence = not in_fence
        elif in_fence:
            continue
        elif not line.strip():
            flush()
        else:
            block.append((start, end))
    flush()
    return spans


def remove_span(text: str, span: tuple[int, int]) -> str:
    """`text` without `span`, whitespace around the hole tidied so no double spaces or blank runs remain."""
    left, right = text[: span[0]], text[span[1]:]
    left_stripped, right_stripped = left.rstrip(" \t"), right.lstrip(" \t")
    if left_stripped and right_stripped and not left_stripped.endswith("\n") and not right_stripped.startswith("\n"):
        joined = left_stripped + " " + right_stripped
    else:
        joined = left_stripped + right_stripped
    joined = re.sub(r"\n[ \t]*\n(?:[ \t]*\n)+", "\n\n", joined)
    return joined.strip()


def make_query_id(generator: str, query: str) -> str:
    return f"{generator}-{hashlib.sha256(normalize_query(query).encode()).hexdigest()[:12]}"


def load_chunks(table, where: str | None = None, columns: Sequence[str] = CHUNK_COLUMNS) -> list[dict]:
    """Chunk dicts from a LanceDB table (vectors not read) or a pyarrow Table, sorted by doc and position."""
    if hasattr(table, "search"):
        query = table.search().select(list(columns))
        if where:
            query = query.where(where)
        rows = query.limit(max(table.count_rows(), 1)).to_arrow().to_pylist()
    else:
        rows = table.select([c for c in columns if c in table.column_names]).to_pylist()
    return sorted_chunks(rows)


def sorted_chunks(chunks: Iterable[Mapping]) -> list[dict]:
    """A deterministic order independent of how the table returned them."""
    return sorted((dict(c) for c in chunks),
                  key=lambda c: (str(c.get("doc_id", "")), int(c.get("position") or 0), str(c["chunk_id"])))


# -- results ----------------------------------------------------------------------------------------------------
@dataclass
class GeneratorOutput:
    """The rows one generator produced, with how many candidates it saw and why others were skipped."""

    generator: str
    rows: list[DatasetRow] = field(default_factory=list)
    candidates: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)  # llm: endpoint or validation failures, one per chunk
    filtered: dict[str, int] = field(default_factory=dict)  # cloze: candidate sentences rejected, by reason

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def summary(self) -> dict:
        info = GENERATORS[self.generator]
        return {"generator": self.generator, "version": info.version, "lexical": info.lexical,
                "rows": len(self.rows), "candidates": self.candidates, "skipped": dict(sorted(self.skipped.items())),
                "filtered": dict(sorted(self.filtered.items())), "notes": list(self.notes),
                "failures": len(self.failures)}


@dataclass
class GenerationResult:
    rows: list[DatasetRow]
    outputs: dict[str, GeneratorOutput]
    duplicates: int = 0  # rows dropped because an earlier generator produced the same normalized query

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for row in self.rows:
            out[row.generator] = out.get(row.generator, 0) + 1
        return out

    def summary(self) -> dict:
        return {"rows": len(self.rows), "by_generator": self.counts(), "duplicates_across_generators":
                self.duplicates, "generators": {n: o.summary() for n, o in self.outputs.items()}}


@dataclass(frozen=True)
class RowContext:
    """Fields every row of one generation run shares."""

    seed: int
    corpus_version: str


def seeded_rng(generator: str, seed: int) -> random.Random:
    return random.Random(f"ragindex-datasets:{generator}:{seed}")  # str seeds are stable across processes


def make_row(generator: str, query: str, refs: Sequence[tuple[Mapping, int]], context: RowContext, source_doc_id: str,
         contexts: Sequence[str] | None = None, answer: str | None = None, generator_model: str | None = None,
         query_id: str | None = None) -> DatasetRow:
    info = GENERATORS[generator]
    first = refs[0][0]
    return DatasetRow(
        query_id=query_id or make_query_id(generator, query),
        query=query,
        reference_chunk_ids=tuple(c["chunk_id"] for c, _ in refs),
        reference_grades=tuple(int(g) for _, g in refs),
        reference_contexts=tuple(contexts if contexts is not None else (c.get("text") or "" for c, _ in refs)),
        reference_answer=answer,
        generator=generator,
        generator_version=info.version,
        lexical=info.lexical,
        seed=context.seed,
        source_doc_id=source_doc_id,
        corpus_version=context.corpus_version,
        chunker_hash=str(first.get("chunker_hash") or ""),
        model_fingerprint=str(first.get("fingerprint") or ""),
        generator_model=generator_model,
    )


# -- qrels ------------------------------------------------------------------------------------------------------
def qrels_rows(chunks: Sequence[Mapping], eval_set: EvalSet, n: int | None, seed: int = 0,
               corpus_version: str = "") -> GeneratorOutput:
    """Judged queries of a BEIR set mapped onto chunks: every chunk of a judged document carries its grade."""
    out = GeneratorOutput("qrels")
    context = RowContext(seed, corpus_version)
    by_doc: dict[str, list[dict]] = defaultdict(list)
    for chunk in sorted_chunks(chunks):
        by_doc[str(chunk["doc_id"])].append(chunk)
    qids = list(eval_set.scored_query_ids)
    out.candidates = len(qids)
    seeded_rng("qrels", seed).shuffle(qids)
    seen: set[str] = set()
    partial = 0
    for qid in qids:
        if n is not None and len(out.rows) >= n:
            break
        query = eval_set.queries[qid]
        judged = sorted(((d, r) for d, r in eval_set.qrels[qid].items() if r > 0), key=lambda dr: (-dr[1], dr[0]))
        present = [(d, r) for d, r in judged if by_doc.get(d)]
        if not present:
            out.skip("judged documents not in the corpus")
            continue
        key = normalize_query(query)
        if key in seen:
            out.skip("duplicate query")
            continue
        seen.add(key)
        partial += len(present) < len(judged)
        refs = [(c, r) for d, r in present for c in by_doc[d]]
        out.rows.append(make_row("qrels", query, refs, context, present[0][0], query_id=f"qrels-{qid}"))
    if partial:
        out.notes.append(f"{partial} queries keep only the judged documents present in the corpus")
    out.rows.sort(key=lambda r: r.query_id)
    return out


# -- heading ----------------------------------------------------------------------------------------------------
def _heading_ok(text: str) -> bool:
    ws = text.split()
    return 1 <= len(ws) <= 20 and sum(ch.isalpha() for ch in text) >= 3 and bool(content_terms(text))


def heading_rows(chunks: Sequence[Mapping], n: int, seed: int = 0, corpus_version: str = "",
                 max_relevant: int = 20, min_content_words: int = MIN_HEADING_TERMS) -> GeneratorOutput:
    """Headings (or titles of heading-less chunks) as queries; own section grade 2, sub-sections grade 1.

    A heading that is repeated or has under `min_content_words` distinct content words is replaced by its full
    path; if that is still repeated across documents or still that short, the section is left out."""
    out = GeneratorOutput("heading")
    context = RowContext(seed, corpus_version)
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)  # (doc, path) -> the section's own chunks
    by_doc: dict[str, list[dict]] = defaultdict(list)
    for chunk in sorted_chunks(chunks):
        doc = str(chunk["doc_id"])
        by_doc[doc].append(chunk)
        path = chunk.get("heading_path") or ""
        if path:
            groups[(doc, path)].append(chunk)
        elif chunk.get("title"):
            groups[(doc, "")].append(chunk)

    def leaf(doc: str, path: str) -> str:
        if not path:
            return str(by_doc[doc][0].get("title") or "")
        return path.split(HEADING_SEPARATOR)[-1]

    def full(doc: str, path: str) -> str:
        return " ".join(path.split(HEADING_SEPARATOR)) if path else leaf(doc, path)

    leaf_count: dict[str, int] = defaultdict(int)
    full_count: dict[str, int] = defaultdict(int)
    for doc, path in groups:
        leaf_count[normalize_query(leaf(doc, path))] += 1
        full_count[normalize_query(full(doc, path))] += 1
    keys = sorted(groups)
    out.candidates = len(keys)
    seeded_rng("heading", seed).shuffle(keys)
    seen: set[str] = set()
    for doc, path in keys:
        if len(out.rows) >= n:
            break
        query = collapse(leaf(doc, path))
        if leaf_count[normalize_query(query)] > 1 or len(set(content_terms(query))) < min_content_words:
            query = collapse(full(doc, path))
            if full_count[normalize_query(query)] > 1:
                out.skip("heading repeated across documents or sections")
                continue
        if not _heading_ok(query):
            out.skip("trivial heading")
            continue
        if len(set(content_terms(query))) < min_content_words:
            out.skip(f"heading under {min_content_words} content words")
            continue
        own = groups[(doc, path)]
        nested = [c for c in by_doc[doc] if path and (c.get("heading_path") or "").startswith(path + HEADING_SEPARATOR)]
        if len(own) + len(nested) > max_relevant:
            out.skip("too many relevant chunks")
            continue
        key = normalize_query(query)
        if key in seen:
            out.skip("duplicate query")
            continue
        seen.add(key)
        refs = [(c, GRADE_OWN) for c in own] + [(c, GRADE_NESTED) for c in nested]
        out.rows.append(make_row("heading", query, refs, context, doc))
    return out


# -- cloze ------------------------------------------------------------------------------------------------------
def cloze_reject_reason(sentence: str, min_words: int = 8, max_words: int = 50) -> str | None:
    """Why a sentence makes a poor cloze query (None when it is fine)."""
    tokens = sentence.split()
    if len(tokens) < min_words:
        return "too short"
    if len(tokens) > max_words:
        return "too long"
    if not re.search(r"""[.!?]["')\]]*$""", sentence):
        return "not a full sentence"
    if _MARKUP_LINE.match(sentence) or _URL.search(sentence) or "`" in sentence:
        return "markup or code"
    odd = sum(1 for ch in sentence if not _PLAIN.match(ch))
    alpha = sum(1 for t in tokens if _ALPHA_TOKEN.match(t))
    if odd > 0.05 * len(sentence) or alpha < 0.75 * len(tokens):
        return "markup or code"
    if len(set(content_terms(sentence))) < 4:
        return "trivial"
    return None


def _shingles(text: str, size: int = 6) -> set[tuple[str, ...]]:
    ws = words(text)
    if len(ws) < size:
        return {tuple(ws)} if ws else set()
    return {tuple(ws[i: i + size]) for i in range(len(ws) - size + 1)}


def cloze_masks(chunks: Sequence[Mapping], rows: Iterable[DatasetRow]) -> dict[str, str]:
    """chunk id -> body text with every cloze query sentence of `rows` removed (only for chunks that change)."""
    by_id = {c["chunk_id"]: c for c in chunks}
    bodies: dict[str, str] = {}
    for row in rows:
        if row.generator != "cloze":
            continue
        chunk_id = row.reference_chunk_ids[0]
        if chunk_id not in by_id:
            continue
        body = bodies.get(chunk_id, chunk_body(by_id[chunk_id])[1])
        target = collapse(row.query)
        for span in sentence_spans(body):
            if collapse(body[span[0]: span[1]]) == target:
                body = remove_span(body, span)
                break
        bodies[chunk_id] = body
    return bodies


@dataclass
class _SentenceStats:
    """Corpus statistics a cloze sentence is judged against."""

    chunks: dict[str, int]  # normalized sentence -> chunks holding it
    docs: dict[str, set[str]]  # normalized sentence -> documents holding it
    shingle_docs: dict[tuple[str, ...], int]  # 6-word run -> documents holding it
    idf: dict[str, float]  # content term -> idf over chunks
    low_mass: float  # IDF mass below which a sentence is too generic

    def mass(self, sentence: str) -> float:
        return sum(self.idf.get(t, 0.0) for t in set(content_terms(sentence)))

    def boilerplate(self, sentence: str) -> bool:
        runs = _shingles(sentence)
        common = sum(self.shingle_docs.get(r, 0) >= BOILERPLATE_DOCS for r in runs)
        return bool(_BOILERPLATE.search(sentence)) or (bool(runs) and common >= len(runs) / 2)


def _sentence_stats(chunks: Sequence[Mapping], min_words: int, max_words: int, quantile: float) -> _SentenceStats:
    chunk_count: dict[str, int] = defaultdict(int)
    docs: dict[str, set[str]] = defaultdict(set)
    shingle_docs: dict[tuple[str, ...], set[str]] = defaultdict(set)
    candidates: list[str] = []
    for chunk in chunks:
        doc = str(chunk["doc_id"])
        body = chunk_body(chunk)[1]
        for run in _shingles(body):
            shingle_docs[run].add(doc)
        sentences = {collapse(body[a:b]) for a, b in sentence_spans(body)}
        for sentence in sentences:
            key = normalize_query(sentence)
            chunk_count[key] += 1
            docs[key].add(doc)
            if cloze_reject_reason(sentence, min_words, max_words) is None:
                candidates.append(sentence)
    weights = idf([content_terms(c.get("text") or "") for c in chunks])
    stats = _SentenceStats(chunk_count, docs, {r: len(d) for r, d in shingle_docs.items()}, weights, 0.0)
    masses = [stats.mass(s) for s in candidates]
    stats.low_mass = float(sorted(masses)[int(quantile * (len(masses) - 1))]) if masses and quantile > 0 else 0.0
    return stats


def cloze_rows(chunks: Sequence[Mapping], n: int, seed: int = 0, corpus_version: str = "", min_words: int = 8,
               max_words: int = 50, min_remaining_words: int = 12, low_idf_quantile: float = LOW_IDF_QUANTILE
               ) -> GeneratorOutput:
    """One prose sentence per sampled chunk as the query; it must occur nowhere else, carry enough rare words
    (IDF mass above the corpus's `low_idf_quantile`), not be template text, and leave the chunk usable."""
    out = GeneratorOutput("cloze")
    context = RowContext(seed, corpus_version)
    ordered = sorted_chunks(chunks)
    by_doc: dict[str, list[dict]] = defaultdict(list)
    for chunk in ordered:
        by_doc[str(chunk["doc_id"])].append(chunk)
    stats = _sentence_stats(ordered, min_words, max_words, low_idf_quantile)
    out.notes.append(f"low IDF mass: below {stats.low_mass:.2f} (quantile {low_idf_quantile} of the corpus's "
                     f"candidate sentences); boilerplate: half its 6-word runs in >= {BOILERPLATE_DOCS} documents")
    doc_shingles: dict[str, dict[tuple[str, ...], set[str]]] = {}

    def shared_with_neighbour(doc: str, chunk_id: str, sentence: str) -> bool:
        """Overlapping windows repeat text: a 6-word run of the sentence in another chunk would give it away."""
        if doc not in doc_shingles:
            index: dict[tuple[str, ...], set[str]] = defaultdict(set)
            for other in by_doc[doc]:
                for s in _shingles(other.get("text") or ""):
                    index[s].add(other["chunk_id"])
            doc_shingles[doc] = index
        index = doc_shingles[doc]
        return any(index.get(s, set()) - {chunk_id} for s in _shingles(sentence))

    def reject(chunk: Mapping, sentence: str, key: str) -> str | None:
        reason = cloze_reject_reason(sentence, min_words, max_words)
        if reason is None and len(stats.docs[key]) > 1:
            reason = "sentence found in several documents"
        if reason is None and stats.boilerplate(sentence):
            reason = "boilerplate"
        if reason is None and stats.mass(sentence) < stats.low_mass:
            reason = "low IDF mass"
        if reason is None and stats.chunks[key] > 1:
            reason = "sentence repeated in another chunk"
        if reason is None and shared_with_neighbour(str(chunk["doc_id"]), chunk["chunk_id"], sentence):
            reason = "sentence overlaps another chunk"
        return reason

    rng = seeded_rng("cloze", seed)
    order = list(ordered)
    rng.shuffle(order)
    out.candidates = len(order)
    seen: set[str] = set()
    for chunk in order:
        if len(out.rows) >= n:
            break
        prefix, body = chunk_body(chunk)
        spans = sentence_spans(body)
        rng.shuffle(spans)
        reasons: list[str] = []
        for span in spans:
            sentence = collapse(body[span[0]: span[1]])
            key = normalize_query(sentence)
            reason = reject(chunk, sentence, key)
            masked = remove_span(body, span) if reason is None else ""
            if reason is None and len(masked.split()) < min_remaining_words:
                reason = "too little text left in the chunk"
            if reason is None and key in normalize_query(masked):
                reason = "sentence repeated within the chunk"
            if reason is None and key in seen:
                reason = "duplicate query"
            if reason is not None:
                reasons.append(reason)
                out.filtered[reason] = out.filtered.get(reason, 0) + 1
                continue
            seen.add(key)
            out.rows.append(make_row("cloze", sentence, [(chunk, 1)], context, str(chunk["doc_id"]),
                                 contexts=[prefix + masked]))
            break
        else:
            out.skip("no usable sentence" if not reasons else f"no usable sentence ({_most_common(reasons)})")
    return out


def _most_common(reasons: list[str]) -> str:
    return max(sorted(set(reasons)), key=reasons.count)


# -- all together -----------------------------------------------------------------------------------------------
def generate(chunks: Sequence[Mapping], generators: Sequence[str] = ("heading", "cloze"), n: int = 100,
             seed: int = 0, corpus_version: str = "", eval_set: EvalSet | None = None, llm_client=None,
             options: Mapping[str, Mapping] | None = None) -> GenerationResult:
    """Run generators in order (up to `n` rows each), drop queries an earlier generator already produced, and
    make every row's reference contexts match the published corpus (cloze sentences removed).

    `llm` without a client is skipped with a note; `qrels` without an eval set is an error.
    `options` passes extra keyword arguments per generator, e.g. {"heading": {"max_relevant": 10}}.
    """
    unknown = [g for g in generators if g not in GENERATORS]
    if unknown:
        raise ValueError(f"unknown generator(s) {', '.join(unknown)}; use {', '.join(GENERATORS)}")
    if n < 0:
        raise ValueError("n must be >= 0")
    options = options or {}
    chunks = sorted_chunks(chunks)
    outputs: dict[str, GeneratorOutput] = {}
    for name in dict.fromkeys(generators):
        extra = dict(options.get(name, {}))
        if name == "qrels":
            if eval_set is None:
                raise ValueError("the qrels generator needs a BEIR evaluation set (eval_set)")
            outputs[name] = qrels_rows(chunks, eval_set, n, seed, corpus_version, **extra)
        elif name == "heading":
            outputs[name] = heading_rows(chunks, n, seed, corpus_version, **extra)
        elif name == "cloze":
            outputs[name] = cloze_rows(chunks, n, seed, corpus_version, **extra)
        elif llm_client is None:
            outputs[name] = GeneratorOutput(name, notes=["skipped: no LLM endpoint configured"])
        else:
            from ragindex.datasets.llm_generator import llm_rows

            outputs[name] = llm_rows(chunks, llm_client, n, seed, corpus_version, **extra)
    rows: list[DatasetRow] = []
    seen: set[str] = set()
    ids: set[str] = set()
    duplicates = 0
    for output in outputs.values():
        kept = []
        for row in output.rows:
            key = normalize_query(row.query)
            if key in seen or row.query_id in ids:
                duplicates += 1
                output.skip("duplicate of an earlier generator's query")
                continue
            seen.add(key)
            ids.add(row.query_id)
            kept.append(row)
        output.rows = kept
        rows.extend(kept)
    return GenerationResult(rows=apply_masks(chunks, rows), outputs=outputs, duplicates=duplicates)


def masked_texts(chunks: Sequence[Mapping], rows: Iterable[DatasetRow]) -> dict[str, str]:
    """chunk id -> full chunk text (heading prefix kept) as published, for chunks a cloze row changes."""
    by_id = {c["chunk_id"]: c for c in chunks}
    return {cid: chunk_body(by_id[cid])[0] + body for cid, body in cloze_masks(chunks, rows).items()}


def apply_masks(chunks: Sequence[Mapping], rows: Sequence[DatasetRow]) -> list[DatasetRow]:
    """Rows whose reference contexts show the published (cloze-masked) chunk texts."""
    texts = masked_texts(chunks, rows)
    if not texts:
        return list(rows)
    out = []
    for row in rows:
        if any(c in texts for c in row.reference_chunk_ids):
            contexts = tuple(texts.get(c, ctx) for c, ctx in zip(row.reference_chunk_ids, row.reference_contexts,
                                                                   strict=True))
            row = replace(row, reference_contexts=contexts)
        out.append(row)
    return out


def idf(documents: Sequence[Iterable[str]]) -> dict[str, float]:
    """Smoothed inverse document frequency over term collections."""
    df: dict[str, int] = defaultdict(int)
    for terms in documents:
        for t in set(terms):
            df[t] += 1
    total = len(documents)
    return {t: math.log(1.0 + total / d) for t, d in df.items()}
