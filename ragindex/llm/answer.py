"""Grounded answers with numbered citations: an LLM prompt, an extractive fallback, and LLM-judge metrics."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ragindex.context import widen
from ragindex.datasets.generators import chunk_body, collapse, content_terms, idf, normalize_query, sentence_spans
from ragindex.llm.client import LLMClient
from ragindex.search import Retriever

Embed = Callable[[list[str]], Any]  # texts -> array of shape (n, dim)
_MARKER = re.compile(r"\[(\d+)\]")
NO_SOURCES = "No passages were retrieved, so there is nothing to answer from."
NO_SUPPORT = "None of the retrieved passages contains a sentence that matches the question."

ANSWER_SYSTEM = (
    "You answer questions using only the numbered sources you are given. Cite the sources that support each "
    "statement with their numbers in square brackets, like [1] or [2][3]. If the sources do not contain the "
    "answer, say that the sources do not answer the question. "
    'Reply with a JSON object: {"answer": "<answer with [n] citations>", "citations": [<cited numbers>]}.'
)
FAITHFULNESS_SYSTEM = (
    "You are a strict grader (evaluation pass {repeat} of {repeats}). Split the ANSWER into its factual claims and "
    "decide for each whether the CONTEXTS support it. Citation markers like [1] are not claims. "
    'Reply with a JSON object: {{"claims": [{{"claim": "...", "supported": true}}]}}.'
)
RELEVANCY_SYSTEM = (
    "You are a strict grader (evaluation pass {repeat} of {repeats}). Rate how directly and completely the ANSWER "
    "addresses the QUESTION, ignoring whether it is true: 1 = fully addresses it, 0 = unrelated or evasive. "
    'Reply with a JSON object: {{"relevancy": <number between 0 and 1>, "reason": "..."}}.'
)


def _field(hit: Any, name: str, default: Any = "") -> Any:
    """A hit may be a ragindex.search.Hit, any object with the same attributes, or a dict."""
    if isinstance(hit, Mapping):
        return hit.get(name, default)
    return getattr(hit, name, default)


@dataclass(frozen=True)
class Citation:
    number: int  # the [n] in the prompt and the answer
    chunk_id: str
    doc_id: str
    title: str
    heading_path: str
    text: str
    source: str = ""  # where a reader finds it: path, with `p.N` for a PDF page, or the image

    @property
    def label(self) -> str:
        where = self.heading_path or self.title
        origin = self.source or self.doc_id
        return f"{origin} :: {where}" if where else origin


@dataclass(frozen=True)
class Prompt:
    messages: list[dict[str, str]]
    citations: list[Citation]


@dataclass
class Answer:
    """An answer whose [n] markers refer to `citations` (only the sources actually cited)."""

    question: str
    text: str
    citations: list[Citation]
    mode: str  # "llm" or "extractive"
    sentences: list[dict] = field(default_factory=list)  # extractive: sentence, citation number, score
    error: str | None = None  # why the endpoint answer was not used, when it was configured but failed
    model: str | None = None

    @property
    def cited_chunk_ids(self) -> list[str]:
        return [c.chunk_id for c in self.citations]

    def as_dict(self) -> dict:
        out = asdict(self)
        out["cited_chunk_ids"] = self.cited_chunk_ids
        return out


def citations_for(hits: Sequence[Any], max_chars: int | None = None) -> list[Citation]:
    """Number the hits [1]..[n] in rank order."""
    out = []
    for number, hit in enumerate(hits, start=1):
        text = str(_field(hit, "text"))
        if max_chars is not None and len(text) > max_chars:
            text = text[:max_chars].rstrip() + " …"
        out.append(Citation(number, str(_field(hit, "chunk_id")), str(_field(hit, "doc_id")),
                            str(_field(hit, "title") or ""), str(_field(hit, "heading_path") or ""), text,
                            str(_field(hit, "citation") or "")))
    return out


def build_prompt(question: str, hits: Sequence[Any], max_chars: int | None = None) -> Prompt:
    """Chat messages that list the hits as numbered sources [1]..[n] and ask for a cited JSON answer."""
    citations = citations_for(hits, max_chars)
    sources = "\n\n".join(f"[{c.number}] {c.label}\n{c.text.strip()}" for c in citations)
    user = f"Sources:\n\n{sources}\n\nQuestion: {question.strip()}"
    return Prompt([{"role": "system", "content": ANSWER_SYSTEM}, {"role": "user", "content": user}], citations)


def _candidate_sentences(citations: Sequence[Citation]) -> list[tuple[int, int, str]]:
    """(citation number, position, sentence) of every prose sentence in the hits, heading lines left out."""
    out = []
    for citation in citations:
        _, body = chunk_body({"text": citation.text, "heading_path": citation.heading_path})
        for position, (a, b) in enumerate(sentence_spans(body)):
            sentence = collapse(body[a:b])
            if len(sentence.split()) >= 3 and any(ch.isalpha() for ch in sentence):
                out.append((citation.number, position, sentence))
    return out


def extractive_answer(question: str, hits: Sequence[Any], max_sentences: int = 3, embed: Embed | None = None,
                      min_similarity: float = 0.0) -> Answer:
    """The best-supported sentences of the hits, each followed by its [n] citation.

    Sentences are scored by the idf-weighted overlap of their stemmed content words with the question, or by
    cosine similarity to the question when `embed` is given; ties go to the higher-ranked hit, then the earlier
    sentence. A sentence repeated by overlapping chunks is used once.
    """
    citations = citations_for(hits)
    if not citations:
        return Answer(question, NO_SOURCES, [], "extractive")
    candidates = _candidate_sentences(citations)
    if embed is not None and candidates:
        vectors = np.asarray(embed([question] + [s for _, _, s in candidates]), dtype=float)
        norms = np.linalg.norm(vectors, axis=1)
        norms[norms == 0] = 1.0
        unit = vectors / norms[:, None]
        scores = (unit[1:] @ unit[0]).tolist()
    else:
        weights = idf([content_terms(s) for _, _, s in candidates])
        q_terms = set(content_terms(question))
        scores = [sum(weights.get(t, 0.0) for t in q_terms & set(content_terms(s))) for _, _, s in candidates]
    ranked = sorted(range(len(candidates)), key=lambda i: (-scores[i], candidates[i][0], candidates[i][1]))
    chosen: list[int] = []
    used: set[str] = set()
    for i in ranked:
        if len(chosen) >= max_sentences:
            break
        key = normalize_query(candidates[i][2])
        if scores[i] <= min_similarity or key in used or math.isnan(scores[i]):
            continue
        used.add(key)
        chosen.append(i)
    if not chosen:
        return Answer(question, NO_SUPPORT, [], "extractive")
    parts = [f"{candidates[i][2]} [{candidates[i][0]}]" for i in chosen]
    numbers = list(dict.fromkeys(candidates[i][0] for i in chosen))
    by_number = {c.number: c for c in citations}
    sentences = [{"sentence": candidates[i][2], "citation": candidates[i][0], "score": float(scores[i])}
                 for i in chosen]
    return Answer(question, " ".join(parts), [by_number[n] for n in numbers], "extractive", sentences)


def cited_numbers(text: str, listed: Any, n_sources: int) -> list[int]:
    """Valid citation numbers: [n] markers in the text first, then any extra ones the reply listed."""
    numbers = [int(m) for m in _MARKER.findall(text)]
    if isinstance(listed, list):
        numbers += [int(x) for x in listed if isinstance(x, int | float) and not isinstance(x, bool)]
    return [n for n in dict.fromkeys(numbers) if 1 <= n <= n_sources]


def llm_answer(question: str, hits: Sequence[Any], client: LLMClient, max_sentences: int = 3,
               max_chars: int | None = None, embed: Embed | None = None) -> Answer:
    """An endpoint answer citing the numbered hits; falls back to the extractive answer (with `error` set)."""
    if not hits:
        return Answer(question, NO_SOURCES, [], "llm", model=client.model)
    prompt = build_prompt(question, hits, max_chars)
    result = client.chat_json(prompt.messages)
    error = result.error
    if result.ok:
        text = (result.data or {}).get("answer")
        if isinstance(text, str) and text.strip():
            numbers = cited_numbers(text, (result.data or {}).get("citations"), len(prompt.citations))
            by_number = {c.number: c for c in prompt.citations}
            return Answer(question, text.strip(), [by_number[n] for n in numbers], "llm", model=client.model)
        error = "endpoint reply has no 'answer' text"
    fallback = extractive_answer(question, hits, max_sentences, embed)
    fallback.error = error
    return fallback


def answer_question(question: str, hits: Sequence[Any], client: LLMClient | None = None, max_sentences: int = 3,
                    embed: Embed | None = None) -> Answer:
    """Through the endpoint when one is configured, otherwise extractive; the same citations either way."""
    if client is None:
        return extractive_answer(question, hits, max_sentences, embed)
    return llm_answer(question, hits, client, max_sentences, embed=embed)


def ask(retriever: Retriever, question: str, k: int = 5, client: LLMClient | None = None, mode: str = "hybrid",
        max_sentences: int = 3, embed: Embed | None = None) -> Answer:
    """`ask`: search capped at search.per_doc chunks of one document, each hit widened with the neighbouring
    chunks of its section up to search.context_tokens, then an answer citing the widened passages."""
    hits = retriever.search(question, mode, k)  # type: ignore[arg-type]
    contexts = widen(retriever.table, hits, retriever.config.context_tokens, retriever.visible())
    return answer_question(question, contexts, client, max_sentences, embed)


# -- judge metrics ----------------------------------------------------------------------------------------------
@dataclass
class JudgeResult:
    """Judge metrics averaged over the repeats that returned a usable verdict; raw verdicts kept."""

    faithfulness: float | None
    answer_relevancy: float | None
    repeats: int
    valid: dict[str, int]
    verdicts: list[dict]
    model: str

    def as_dict(self) -> dict:
        return asdict(self)


def _contexts_block(contexts: Sequence[str]) -> str:
    return "\n\n".join(f"[{i}] {c.strip()}" for i, c in enumerate(contexts, start=1))


def faithfulness_messages(question: str, answer: str, contexts: Sequence[str], repeat: int,
                          repeats: int) -> list[dict[str, str]]:
    user = f"CONTEXTS:\n{_contexts_block(contexts)}\n\nQUESTION: {question}\n\nANSWER: {answer}"
    return [{"role": "system", "content": FAITHFULNESS_SYSTEM.format(repeat=repeat, repeats=repeats)},
            {"role": "user", "content": user}]


def relevancy_messages(question: str, answer: str, repeat: int, repeats: int) -> list[dict[str, str]]:
    return [{"role": "system", "content": RELEVANCY_SYSTEM.format(repeat=repeat, repeats=repeats)},
            {"role": "user", "content": f"QUESTION: {question}\n\nANSWER: {answer}"}]


def faithfulness_score(data: Mapping) -> float | str:
    """Share of claims marked supported, or why the verdict is unusable."""
    claims = data.get("claims")
    if not isinstance(claims, list) or not all(isinstance(c, Mapping) for c in claims):
        return "verdict lacks a 'claims' list"
    if not claims:
        return "no claims"
    flags = [c.get("supported") for c in claims]
    if not all(isinstance(f, bool) for f in flags):
        return "a claim lacks a boolean 'supported'"
    return sum(flags) / len(flags)


def relevancy_score(data: Mapping) -> float | str:
    value = data.get("relevancy")
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return "verdict lacks a numeric 'relevancy'"
    return min(1.0, max(0.0, float(value)))


def judge(question: str, answer: str, contexts: Sequence[str], client: LLMClient, repeats: int = 3) -> JudgeResult:
    """Faithfulness (supported claims / claims) and answer relevancy (0..1), each asked `repeats` >= 3 times.

    Each repeat is a distinct prompt (it names its pass), so repeats are separate cached requests; a re-run
    costs nothing and a failed repeat is not cached. Means are over usable verdicts; None when there are none.
    """
    if repeats < 3:
        raise ValueError("judge metrics need at least 3 repeats")
    verdicts: list[dict] = []
    scores: dict[str, list[float]] = {"faithfulness": [], "answer_relevancy": []}
    for repeat in range(1, repeats + 1):
        asks = (("faithfulness", faithfulness_messages(question, answer, contexts, repeat, repeats),
                 faithfulness_score),
                ("answer_relevancy", relevancy_messages(question, answer, repeat, repeats), relevancy_score))
        for metric, messages, score_of in asks:
            result = client.chat_json(messages)
            verdict = {"metric": metric, "repeat": repeat, "ok": False, "score": None, "data": result.data,
                       "error": result.error, "cached": result.cached}
            if result.ok:
                score = score_of(result.data or {})
                if isinstance(score, str):
                    verdict["error"] = score
                else:
                    verdict.update(ok=True, score=score)
                    scores[metric].append(score)
            verdicts.append(verdict)
    means = {m: (sum(v) / len(v) if v else None) for m, v in scores.items()}
    return JudgeResult(means["faithfulness"], means["answer_relevancy"], repeats,
                       {m: len(v) for m, v in scores.items()}, verdicts, client.model)
