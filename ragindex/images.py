"""Images in a corpus: references in Markdown, their resolution to local files, safe decoding and descriptions."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from PIL import Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif")
_MD_IMAGE = re.compile(r"!\[(?P<alt>(?:\\.|[^\]\\])*)\]\(\s*(?:<(?P<angle>[^>]+)>|(?P<plain>[^\s)]+))"
                       r"(?:\s+(?:\"(?P<dq>[^\"]*)\"|'(?P<sq>[^']*)'))?\s*\)")
_HTML_IMG = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
_ATTR = re.compile(r"([\w-]+)\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s>]+))")
_FENCE = re.compile(r"^\s*(```|~~~)")
_ESCAPE = re.compile(r"\\(.)")
# text chunks that Pillow stores from PNG tEXt/iTXt, GIF and JPEG comments: cheap to read, no OCR
_INFO_KEYS = ("Title", "Description", "Comment", "comment")
_EXIF_DESCRIPTION = 270


@dataclass(frozen=True)
class ImageRef:
    """An image a document shows: where it points and the words the author gave it."""

    target: str
    alt: str = ""
    title: str = ""

    @property
    def caption(self) -> str:
        return " — ".join(dict.fromkeys(t for t in (self.alt.strip(), self.title.strip()) if t))


def _html_ref(tag: str) -> ImageRef | None:
    attrs = {m.group(1).lower(): next(g for g in m.groups()[1:] if g is not None) for m in _ATTR.finditer(tag)}
    return ImageRef(attrs["src"], attrs.get("alt", ""), attrs.get("title", "")) if attrs.get("src") else None


def image_refs(markdown: str) -> list[ImageRef]:
    """`![alt](path "title")` and raw `<img src alt title>` references, in order, outside code fences."""
    refs: list[ImageRef] = []
    in_fence = False
    for line in markdown.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        if in_fence:
            continue
        found = [(m.start(), _html_ref(m.group())) for m in _HTML_IMG.finditer(line)]
        for match in _MD_IMAGE.finditer(line):
            title = match.group("dq") if match.group("dq") is not None else match.group("sq") or ""
            found.append((match.start(), ImageRef(match.group("angle") or match.group("plain"),
                                                  _ESCAPE.sub(r"\1", match.group("alt")), title)))
        refs += [ref for _, ref in sorted(found, key=lambda item: item[0]) if ref]
    return refs


def source_root(document_path: str, doc_id: str) -> Path:
    """The folder a directory source was read from: the document's path without its doc id's parts."""
    return Path(document_path).parents[len(PurePosixPath(doc_id).parts) - 1]


def resolve_ref(target: str, document_path: str, doc_id: str) -> Path | None:
    """The local raster image a reference points to: relative to the referring document, or to the source
    root when it starts with '/'. None for remote (http:, data:) and vector (SVG) references: they stay text."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path:
        return None
    relative = unquote(parts.path)
    base = source_root(document_path, doc_id) if relative.startswith("/") else Path(document_path).parent
    path = Path(os.path.normpath(base / relative.lstrip("/")))
    return path if path.suffix.lower() in IMAGE_SUFFIXES else None


def inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def load_image(path: str | Path, max_pixels: int, fit: int | None = None) -> Image.Image:
    """Decode an image into RGB; refuses more than max_pixels before decoding, and truncated or corrupt data.

    With `fit`, JPEGs are decoded at a reduced scale and the result is shrunk to fit a fit x fit box."""
    try:
        with Image.open(path) as image:  # reads the header only
            width, height = image.size
            if width * height > max_pixels:
                raise ValueError(f"image too large ({width}x{height} = {width * height} pixels > "
                                 f"max_image_pixels {max_pixels})")
            if fit:
                image.draft("RGB", (fit, fit))
            rgb = image.convert("RGB")  # decodes every byte: a truncated file fails here
    except (OSError, SyntaxError, Image.DecompressionBombError) as error:
        raise ValueError(f"undecodable image ({error})") from None
    if fit:
        rgb.thumbnail((fit, fit))
    return rgb


def _text(value) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return " ".join(str(value).replace("\x00", " ").split()) if isinstance(value, str) else ""


def image_description(path: str | Path, max_pixels: int) -> str:
    """Check that the image decodes, and return the text it carries (PNG text, GIF/JPEG comment, EXIF
    ImageDescription), one line per distinct value; '' when it carries none."""
    load_image(path, max_pixels)
    with Image.open(path) as image:
        values = [_text(image.info.get(key)) for key in _INFO_KEYS]
        values.append(_text(image.getexif().get(_EXIF_DESCRIPTION)))
    return "\n".join(dict.fromkeys(v for v in values if v))
