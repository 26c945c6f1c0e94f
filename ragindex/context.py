"""A hit widened with its neighbouring chunks (same document, same section) within a token budget, for `ask`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ragindex.access import combine
from ragindex.datasets.generators import chunk_body
from ragindex.index_store import quote, scan_columns
from ragindex.search import Hit

_NEIGHBOUR_COLUMNS = ["chunk_id", "doc_id", "position", "heading_path", "n_tokens", "text"]


@dataclass(frozen=True)
class Context:
    """Shaped like a Hit (answer.py cites it by `chunk_id`): the hit's section text around it, in document order."""

    chunk_id: str  # the hit's chunk
    doc_id: str
    source: str
    title: str
    heading_path: str
    score: float
    text: str  # heading path once, then the chunks' bodies joined with their overlaps removed
    chunk_ids: tuple[str, ...]  # every chunk joined, in document order
    n_tokens: int  # sum of the chunks' token counts (an overlap counts twice: a bound, never an underestimate)
    citation: str = ""  # where a reader finds it: path, with `p.N` for a PDF page, or the image


def join_overlapping(first: str, second: str) -> str:
    """`first` then `second`, the text they share removed: token windows of one section overlap, the next
    window starting inside the previous one's end (possibly mid-word). The shared text is the longest end of
    `first` that starts `second`; windows that do not overlap share nothing unless the text repeats at the seam."""
    for size in range(min(len(first), len(second)), 1, -1):
        if first.endswith(second[:size]):
            return first + second[size:]
    return f"{first}\n{second}"


def _neighbours(table, doc_ids: Sequence[str], visible: str | None) -> dict[str, list[dict]]:
    """Chunks of these documents in document order, among those the `visible` access prefilter lets through."""
    if not doc_ids:
        return {}
    where = combine(visible, f"doc_id IN ({', '.join(quote(d) for d in sorted(set(doc_ids)))})")
    by_doc: dict[str, list[dict]] = {}
    for row in scan_columns(table, _NEIGHBOUR_COLUMNS, where).to_pylist():
        by_doc.setdefault(row["doc_id"], []).append(row)
    return {doc: sorted(rows, key=lambda r: r["position"]) for doc, rows in by_doc.items()}


def widen(table, hits: Sequence[Hit], max_tokens: int, visible: str | None) -> list[Context]:
    """Each hit with the next and previous chunks of its section added in turn while the total stays within
    `max_tokens`; a hit already inside an earlier hit's context is dropped and no context takes in another's
    chunks, so one passage is cited once. Neighbours come only from chunks the `visible` prefilter admits (the
    caller's: Retriever.visible(); None only for an unrestricted caller)."""
    by_doc = _neighbours(table, [h.doc_id for h in hits], visible)
    out: list[Context] = []
    covered: set[str] = set()
    for hit in hits:
        if hit.chunk_id in covered:
            continue
        section = [r for r in by_doc.get(hit.doc_id, []) if (r["heading_path"] or "") == hit.heading_path]
        index = next((i for i, r in enumerate(section) if r["chunk_id"] == hit.chunk_id), None)
        if index is None:  # the table moved on since the search: the hit alone
            section, index = [{"chunk_id": hit.chunk_id, "n_tokens": hit.n_tokens, "text": hit.text}], 0
        low = high = index
        used = section[index]["n_tokens"] or 0
        grew = True
        while grew:
            grew = False
            for side in (high + 1, low - 1):  # next first: a hit's explanation usually continues after it
                if 0 <= side < len(section) and section[side]["chunk_id"] not in covered \
                        and used + (section[side]["n_tokens"] or 0) <= max_tokens:
                    used += section[side]["n_tokens"] or 0
                    low, high = min(low, side), max(high, side)
                    grew = True
        rows = section[low: high + 1]
        prefix, body = chunk_body({"text": rows[0]["text"], "heading_path": hit.heading_path})
        for row in rows[1:]:
            body = join_overlapping(body, chunk_body({"text": row["text"], "heading_path": hit.heading_path})[1])
        ids = tuple(r["chunk_id"] for r in rows)
        covered.update(ids)
        out.append(Context(hit.chunk_id, hit.doc_id, hit.source, hit.title, hit.heading_path, hit.score,
                           prefix + body, ids, used, getattr(hit, "citation", "") or hit.doc_id))
    return out
