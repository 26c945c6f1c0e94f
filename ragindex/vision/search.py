"""Search across modalities: images by a query through the text tower, and text and image hits fused by rank."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Literal

from ragindex.evaluation.fusion import rrf
from ragindex.lance_tables import in_list, quote
from ragindex.vision.embedder import ImageEmbedder
from ragindex.vision.store import ImageStore

Modality = Literal["text", "image", "all"]
MODALITIES: tuple[str, ...] = ("text", "image", "all")


@dataclass(frozen=True)
class ImageHit:
    """An image of the image table: where it is, who shows it, with which words, and its cosine to the query."""

    image_id: str
    doc_id: str
    source: str
    caption: str
    image_path: str
    score: float
    kind: str = "image"

    def as_dict(self) -> dict:
        return asdict(self)


def search_images(store: ImageStore, embedder: ImageEmbedder, query: str, k: int = 10,
                  source: str | None = None, doc_ids: set[str] | None = None) -> list[ImageHit]:
    """The k images nearest the query's text-tower vector (exact cosine), among vectors of this model only and,
    when `doc_ids` is given, among images of those documents (the ones the caller may see)."""
    vector = embedder.embed_texts([query])[0]
    where = f"fingerprint = {quote(embedder.fingerprint.id)}" + (f" AND source = {quote(source)}" if source else "")
    if doc_ids is not None:
        where += f" AND {in_list('doc_id', sorted(doc_ids))}" if doc_ids else " AND false"
    rows = (store.open().search(vector, vector_column_name="vector").distance_type("cosine")
            .bypass_vector_index().where(where, prefilter=True)
            .select(["image_id", "doc_id", "source", "caption", "path", "_distance"]).limit(k).to_list())
    return [ImageHit(r["image_id"], r["doc_id"], r["source"], r["caption"], r["path"], 1.0 - r["_distance"])
            for r in rows]


def fuse_modalities(text_hits: Sequence, image_hits: Sequence[ImageHit], k: int = 10, rrf_k: int = 60) -> list:
    """`--modality all`: reciprocal rank fusion of a text-table ranking (hits with chunk_id and score) and an
    image-table ranking, whose scores live on different scales; each hit keeps its fields, score = fused."""
    by_key = {f"chunk:{h.chunk_id}": h for h in text_hits} | {f"image:{h.image_id}": h for h in image_hits}
    fused = rrf([{f"chunk:{h.chunk_id}": h.score for h in text_hits},
                 {f"image:{h.image_id}": h.score for h in image_hits}], k=rrf_k)
    ranked = sorted(fused.items(), key=lambda item: (-item[1], item[0]))[:k]
    return [replace(by_key[key], score=score) for key, score in ranked]
