"""Title vectors: each chunk's heading path (else its document title) embedded apart from its text.

With `index.title_vectors` not off the build embeds these texts through the embedding cache (keyed by their hash,
like chunk texts: a title shared by many chunks is embedded once, an unchanged one never again) and stores them
in the index table's `title_vector` column, with `title_hash`. Dense search then scores a chunk
cos(query, vector) + weight · cos(query, title_vector); a chunk without a title vector adds 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from ragindex.documents import sha256_hex

if TYPE_CHECKING:
    from ragindex.config import IndexConfig

TITLE_VECTOR = "title_vector"
TITLE_HASH = "title_hash"


def title_text(heading_path: str | None, title: str | None) -> str:
    """What a chunk's title vector embeds: its heading path, else its document's title ("" for neither)."""
    return (heading_path or "").strip() or (title or "").strip()


def title_texts(rows: pa.Table) -> list[str]:
    """The title text of every row of a table with heading_path and title columns."""
    return [title_text(h, t) for h, t in zip(rows.column("heading_path").to_pylist(),
                                             rows.column("title").to_pylist(), strict=True)]


def title_hash(text: str) -> str | None:
    """The cache key of a title text (None for an empty one: no title vector)."""
    return sha256_hex(text) if text else None


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)


def title_column(hashes: list[str | None], vectors: dict[str, np.ndarray], dimension: int) -> pa.Array:
    """The title_vector column of rows with these title hashes (null where a row has none)."""
    values = np.zeros((len(hashes), dimension), np.float32)
    for i, h in enumerate(hashes):
        if h is not None:
            values[i] = vectors[h]
    mask = pa.array([h is None for h in hashes])
    return pa.FixedSizeListArray.from_arrays(pa.array(values.ravel()), dimension, mask=mask)


def configured_weight(index: IndexConfig) -> float:
    """The title weight a configuration serves without an evaluation: title_weight when forced on, else 0."""
    return index.title_weight if index.title_vectors == "on" else 0.0
