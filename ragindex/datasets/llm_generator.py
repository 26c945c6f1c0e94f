"""The `llm` generator: a question and reference answer per sampled chunk from an OpenAI-compatible endpoint."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ragindex.datasets.generators import (
    GeneratorOutput,
    RowContext,
    chunk_body,
    collapse,
    make_row,
    normalize_query,
    seeded_rng,
    sorted_chunks,
)
from ragindex.llm.client import LLMClient

SYSTEM_PROMPT = (
    "You write evaluation data for a search engine. Given one passage, write ONE question that a user could ask "
    "without having seen the passage and that the passage answers, plus a short reference answer taken only from "
    "the passage. Do not refer to 'the passage', 'the text' or 'the document' in the question. "
    'Reply with a JSON object: {"question": "...", "answer": "..."}.'
)


def question_messages(chunk: Mapping) -> list[dict[str, str]]:
    """The chat messages asking for a question about one chunk (their hash is the cache key)."""
    heading, body = chunk_body(chunk)
    lines = []
    if chunk.get("title"):
        lines.append(f"Document title: {chunk['title']}")
    if heading.strip():
        lines.append(f"Section: {heading.strip()}")
    lines.append("Passage:\n<<<\n" + body.strip() + "\n>>>")
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": "\n".join(lines)}]


def parse_question(data: Mapping) -> tuple[str, str] | str:
    """(question, answer) from a reply, or the reason it is unusable."""
    question, answer = data.get("question"), data.get("answer")
    if not isinstance(question, str) or not isinstance(answer, str):
        return "reply lacks string 'question' and 'answer'"
    question, answer = collapse(question), collapse(answer)
    if not 3 <= len(question.split()) <= 60:
        return "question too short or too long"
    if not answer:
        return "empty answer"
    return question, answer


def llm_rows(chunks: Sequence[Mapping], client: LLMClient, n: int, seed: int = 0, corpus_version: str = "",
             min_words: int = 30, max_attempts: int | None = None,
             max_consecutive_failures: int = 3) -> GeneratorOutput:
    """Ask for a question about each sampled chunk until `n` rows; failures are recorded, never raised.

    Chunks are sampled in a seeded order from those whose body has >= `min_words` words. At most
    `max_attempts` chunks are tried (default 2 n + 5); after `max_consecutive_failures` endpoint failures in a
    row the generator stops, so a dead endpoint costs a bounded number of requests.
    """
    out = GeneratorOutput("llm")
    context = RowContext(seed, corpus_version)
    eligible = [c for c in sorted_chunks(chunks) if len(chunk_body(c)[1].split()) >= min_words]
    out.candidates = len(eligible)
    seeded_rng("llm", seed).shuffle(eligible)
    limit = 2 * n + 5 if max_attempts is None else max_attempts
    seen: set[str] = set()
    consecutive = 0
    attempts = 0
    for chunk in eligible:
        if len(out.rows) >= n or attempts >= limit:
            break
        attempts += 1
        result = client.chat_json(question_messages(chunk))
        if not result.ok:
            consecutive += 1
            out.skip("endpoint failure")
            out.failures.append({"chunk_id": chunk["chunk_id"], "error": result.error, "attempts": result.attempts})
            if consecutive >= max_consecutive_failures:
                out.notes.append(f"stopped after {consecutive} consecutive endpoint failures: {result.error}")
                break
            continue
        consecutive = 0
        parsed = parse_question(result.data or {})
        if isinstance(parsed, str):
            out.skip("unusable reply")
            out.failures.append({"chunk_id": chunk["chunk_id"], "error": parsed, "attempts": result.attempts})
            continue
        question, answer = parsed
        key = normalize_query(question)
        if key in seen:
            out.skip("duplicate query")
            continue
        seen.add(key)
        out.rows.append(make_row("llm", question, [(chunk, 1)], context, str(chunk["doc_id"]), answer=answer,
                             generator_model=client.model))
    if not eligible:
        out.notes.append(f"no chunk has at least {min_words} words to ask about")
    elif len(out.rows) < n:
        last = f"; last failure: {out.failures[-1]['error']}" if out.failures else ""
        out.notes.append(f"{len(out.rows)} of {n} questions after {attempts} chunk(s) tried{last}")
    return out
