"""Directory trees of Markdown, plain text, reStructuredText, HTML, PDF and image files, read recursively."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator
from pathlib import Path

from ragindex.access import split_front_matter
from ragindex.config import SourceConfig
from ragindex.documents import Document, Skipped, sha256_hex
from ragindex.images import IMAGE_SUFFIXES, image_description, image_refs, inside, load_image, resolve_ref
from ragindex.sources.html_text import html_to_markdown
from ragindex.sources.pdf import PAGE_BREAK, pdf_pages

FORMATS = {".md": "markdown", ".markdown": "markdown", ".rst": "rst", ".txt": "text",
           ".html": "html", ".htm": "html", ".pdf": "pdf", **dict.fromkeys(IMAGE_SUFFIXES, "image")}
CHECK_FIT = 256  # referenced images are checked by decoding at most this size (JPEGs decode scaled down)


def _walk(root: Path, skipped: list[Skipped]) -> Iterator[Path]:
    """Files under root in sorted order, following symlinks but never entering a directory twice."""
    seen: set[str] = set()

    def visit(directory: Path) -> Iterator[Path]:
        real = os.path.realpath(directory)
        if real in seen:
            skipped.append(Skipped(str(directory), "symlink loop (directory already visited)"))
            return
        seen.add(real)
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as error:
            skipped.append(Skipped(str(directory), f"unreadable directory ({error.strerror})"))
            return
        for entry in entries:
            path = Path(entry.path)
            try:
                is_dir = entry.is_dir(follow_symlinks=True)
            except OSError as error:
                skipped.append(Skipped(str(path), f"broken link ({error.strerror})"))
                continue
            if is_dir:
                if not entry.name.startswith("."):
                    yield from visit(path)
            elif entry.is_file(follow_symlinks=True):
                yield path
            elif entry.is_symlink():
                skipped.append(Skipped(str(path), "broken or looping symlink"))

    yield from visit(root)


def _decode(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise ValueError("binary file (NUL bytes)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(f"not valid UTF-8 (byte {error.start})") from None


def _title(text: str, fallback: str) -> str:
    for line in text.splitlines():
        stripped = line.strip().lstrip("#").strip()
        if stripped and not stripped.startswith("!["):
            return stripped[:200]
    return fallback


def _content(path: Path, fmt: str, data: bytes, source: SourceConfig
             ) -> tuple[str, str, str, tuple[str, ...] | None, str | None]:
    """Text, title, format, the access groups a Markdown front matter declares (stripped from the text) and a
    problem with that front matter; ValueError says why the file cannot be indexed."""
    if fmt == "pdf":
        pages, title = pdf_pages(data)
        return PAGE_BREAK.join(pages), title or path.stem, fmt, None, None
    if fmt == "image":  # the file name and any text the image carries; alt text comes from referring documents
        description = image_description(path, source.max_image_pixels)
        title = description.splitlines()[0][:200] if description else path.stem
        return "\n".join(filter(None, [description, path.name])), title, fmt, None, None
    text, declared, problem = split_front_matter(_decode(data)) if fmt == "markdown" else (_decode(data), None, None)
    if fmt == "html":
        text, fmt = html_to_markdown(text), "markdown"
    if not text.strip():
        raise ValueError("no text content")
    return text, _title(text, path.stem), fmt, declared, problem


def _image_problem(image: Path, root: Path, max_pixels: int) -> str | None:
    if not inside(image, root):
        return "outside the source folder"
    if not image.is_file():
        return "file not found"
    try:
        load_image(image, max_pixels, fit=CHECK_FIT)
    except ValueError as error:
        return str(error)
    return None


def _referenced_images(text: str, path: Path, doc_id: str, root: Path, max_pixels: int,
                       checked: dict[Path, str | None]) -> tuple[tuple[str, ...], list[Skipped]]:
    """The local images a Markdown text shows that decode cleanly, and a Skipped per broken reference."""
    images: list[str] = []
    skipped: list[Skipped] = []
    for ref in image_refs(text):
        image = resolve_ref(ref.target, str(path), doc_id)
        if image is None:
            continue
        if image not in checked:
            checked[image] = _image_problem(image, root, max_pixels)
        if checked[image]:
            skipped.append(Skipped(str(path), f"image reference '{ref.target}': {checked[image]}"))
        else:
            images.append(str(image))
    return tuple(dict.fromkeys(images)), skipped


def has_files(source: SourceConfig, root: Path) -> bool:
    """Whether any file under root matches the source's include patterns (stops at the first)."""
    return any(any(fnmatch.fnmatch(path.name.lower(), p) for p in source.include) for path in _walk(root, []))


def read_directory(
    source: SourceConfig, root: Path, known: dict[str, tuple[str, int, float]]
) -> Iterator[Document | Skipped | str]:
    """Yield documents; ids whose size and mtime match `known` are yielded as plain str (not re-read)."""
    skipped: list[Skipped] = []
    checked: dict[Path, str | None] = {}  # referenced image -> problem (None: fine), each checked once per run
    for path in _walk(root, skipped):
        yield from skipped
        skipped.clear()
        if not any(fnmatch.fnmatch(path.name.lower(), pattern) for pattern in source.include):
            continue
        doc_id = path.relative_to(root).as_posix()
        fmt = FORMATS.get(path.suffix.lower(), "text")
        try:
            stat = path.stat()
            previous = known.get(doc_id)
            if previous and previous[1] == stat.st_size and previous[2] == stat.st_mtime:
                yield doc_id
                continue
            if stat.st_size == 0:
                raise ValueError("empty file")
            if stat.st_size > source.max_file_bytes:
                raise ValueError(f"over-size file ({stat.st_size} bytes > max_file_bytes {source.max_file_bytes})")
            data = path.read_bytes()
            text, title, fmt, declared, problem = _content(path, fmt, data, source)
        except PermissionError:
            yield Skipped(str(path), "unreadable (permission denied)", doc_id)
            continue
        except OSError as error:
            yield Skipped(str(path), f"unreadable ({error.strerror or error})", doc_id)
            continue
        except ValueError as error:
            yield Skipped(str(path), str(error), doc_id)
            continue
        if problem:  # a notice, not a skip: the document is indexed, visible to no caller
            yield Skipped(str(path), f"{problem}; indexed with no access group (no caller sees it)")
        images: tuple[str, ...] = ()
        if fmt == "markdown":
            images, broken = _referenced_images(text, path, doc_id, root, source.max_image_pixels, checked)
            yield from broken
        yield Document(
            doc_id=doc_id,
            source=source.name,
            text=text,
            content_hash=sha256_hex(data),
            title=title,
            path=str(path),
            size=stat.st_size,
            mtime=stat.st_mtime,
            format=fmt,
            images=images,
            groups=declared,
        )
    yield from skipped
