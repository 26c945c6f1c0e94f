"""A picture of what an image sync added, for run metadata: a PNG grid of thumbnails and a Markdown table."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from ragindex.images import load_image

BACKGROUND = (255, 255, 255)
UNREADABLE = (200, 200, 200)  # a tile for an image that no longer decodes


def thumbnail_grid(paths: Sequence[str], max_pixels: int, size: int = 96, columns: int = 6,
                   limit: int = 36) -> bytes | None:
    """PNG bytes of the first `limit` images, each shrunk into a size x size tile; None when there are none."""
    paths = list(paths)[:limit]
    if not paths:
        return None
    columns = min(columns, len(paths))
    rows = -(-len(paths) // columns)
    grid = Image.new("RGB", (columns * size, rows * size), BACKGROUND)
    for index, path in enumerate(paths):
        try:
            tile = load_image(path, max_pixels, fit=size)
        except ValueError:
            tile = Image.new("RGB", (size, size), UNREADABLE)
        x, y = (index % columns) * size, (index // columns) * size
        grid.paste(tile, (x + (size - tile.width) // 2, y + (size - tile.height) // 2))
    out = io.BytesIO()
    grid.save(out, format="PNG", optimize=True)
    return out.getvalue()


def images_markdown(rows: Sequence[dict], limit: int = 20) -> str:
    """A Markdown table of image rows (path, doc_id, caption), at most `limit` of them."""
    lines = ["| image | document | caption |", "|---|---|---|"]
    for row in list(rows)[:limit]:
        caption = " ".join(str(row.get("caption") or "").split()).replace("|", "\\|")
        lines.append(f"| {Path(row['path']).name} | {row['doc_id']} | {caption[:100]} |")
    if len(rows) > limit:
        lines.append(f"\n… and {len(rows) - limit} more")
    return "\n".join(lines)
