"""Structure-aware chunking: split at headings, then token windows counted with the model's tokenizer."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

from ragindex.config import ChunkerConfig
from ragindex.documents import HEADING_SEPARATOR, Document, sha256_hex
from ragindex.images import image_refs, resolve_ref
from ragindex.sources.pdf import PAGE_BREAK

CHUNKER_VERSION = 2  # 2: PDF pages, image chunks (kind, page, image_path)
_MD_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_RST_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+:.])\1{2,}\s*$")


@dataclass(frozen=True)
class Section:
    heading_path: tuple[str, ...]
    text: str
    page: int | None = None  # 1-based PDF page; a section never spans pages


@dataclass(frozen=True)
class Chunk:
    """A piece of a document small enough to embed; its id is content-addressed."""

    chunk_id: str
    doc_id: str
    source: str
    text: str
    text_hash: str
    heading_path: str
    position: int
    n_tokens: int
    page: int | None = None  # PDF page the text is on
    kind: str = "text"  # text | image (alt text, caption or description of the image at image_path)
    image_path: str | None = None


def chunker_hash(config: ChunkerConfig, tokenizer_id: str) -> str:
    """Hash of everything that changes how text is cut: the config, the code version, the tokenizer."""
    payload = {**config.model_dump(), "version": CHUNKER_VERSION, "tokenizer": tokenizer_id}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def chunk_id(doc_id: str, text: str, config_hash: str, groups: tuple[str, ...]) -> str:
    """Content-addressed: a new text, chunker or access (groups) is a new chunk id, so the index re-commits it."""
    key = f"{doc_id}\x1f{config_hash}\x1f{text}\x1f{','.join(groups)}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def markdown_sections(text: str) -> list[Section]:
    """Split at ATX headings ('#'..'######'), ignoring fenced code blocks."""
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    body: list[str] = []
    in_fence = False

    def flush() -> None:
        sections.append(Section(tuple(t for _, t in path), "\n".join(body).strip()))
        body.clear()

    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        match = None if in_fence else _MD_HEADING.match(line)
        if match:
            flush()
            level = len(match.group(1))
            path[:] = [(lvl, t) for lvl, t in path if lvl < level] + [(level, match.group(2).strip())]
        else:
            body.append(line)
    flush()
    return [s for s in sections if s.text]


def rst_sections(text: str) -> list[Section]:
    """Split at reST-style headings: a title line underlined (optionally overlined) by punctuation."""
    lines = text.splitlines()
    sections: list[Section] = []
    levels: list[str] = []
    path: list[tuple[int, str]] = []
    body: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        title = line.strip()
        underline = _RST_UNDERLINE.match(nxt)
        if title and not line.startswith(" ") and underline and len(nxt.strip()) >= len(title) * 0.6:
            overline = bool(body) and _RST_UNDERLINE.match(body[-1] or "") is not None
            if overline:
                body.pop()
            style = ("o" if overline else "") + nxt.strip()[0]
            if style not in levels:
                levels.append(style)
            level = levels.index(style)
            sections.append(Section(tuple(t for _, t in path), "\n".join(body).strip()))
            body = []
            path[:] = [(lvl, t) for lvl, t in path if lvl < level] + [(level, title)]
            i += 2
            continue
        body.append(line)
        i += 1
    sections.append(Section(tuple(t for _, t in path), "\n".join(body).strip()))
    return [s for s in sections if s.text]


def pdf_sections(text: str, title: str) -> list[Section]:
    """One section per PDF page under the document's title, numbered from 1; pages without text are dropped."""
    heading = (title,) if title else ()
    return [Section(heading, page.strip(), number) for number, page in enumerate(text.split(PAGE_BREAK), 1)
            if page.strip()]


def document_sections(document: Document) -> list[Section]:
    """Sections of a document by its format; plain text (and an image's description) is one section under its
    title."""
    if document.format == "markdown":
        sections = markdown_sections(document.text)
    elif document.format == "rst":
        sections = rst_sections(document.text)
    elif document.format == "pdf":
        sections = pdf_sections(document.text, document.title)
    else:
        sections = [Section((document.title,) if document.title else (), document.text.strip())]
    return sections


class Chunker:
    """Cuts documents into chunks of at most `max_tokens` model tokens (special tokens included)."""

    def __init__(self, config: ChunkerConfig, tokenizer, model_max_length: int, tokenizer_id: str):
        self.config = config
        self.tokenizer = tokenizer  # a `tokenizers.Tokenizer` without truncation
        self.max_tokens = min(config.max_tokens, model_max_length)
        self.config_hash = chunker_hash(config, tokenizer_id)
        self._special = len(tokenizer.encode("", add_special_tokens=True).ids)
        # words split at whitespace and punctuation: a window of whole words keeps its tokens when re-encoded
        self._words_stable = type(getattr(tokenizer, "pre_tokenizer", None)).__name__ == "BertPreTokenizer"

    def _windows(self, prefix: str, body: str) -> Iterator[tuple[str, int | None]]:
        """(text, its token count where known) of each token window over `body`, under `prefix`. With BERT's
        pre-tokenizer (words split at whitespace and punctuation; the prefix ends in a blank line) a window from a
        word's first token to a word's last re-encodes to exactly its tokens, so its count needs no second encode
        (half the chunk stage's tokenizing); other windows, and other tokenizers, get None and are encoded."""
        prefix_tokens = len(self.tokenizer.encode(prefix, add_special_tokens=False).ids) if prefix else 0
        budget = self.max_tokens - self._special - prefix_tokens
        if budget < 16:  # an absurdly long heading path: drop it rather than starve the body
            prefix, prefix_tokens, budget = "", 0, self.max_tokens - self._special
        encoding = self.tokenizer.encode(body, add_special_tokens=False)
        offsets, words = encoding.offsets, encoding.word_ids
        if not offsets:
            return
        overlap = min(self.config.overlap_tokens, budget // 2)
        start = 0
        while True:
            end = min(start + budget, len(offsets))
            piece = body[offsets[start][0] : offsets[end - 1][1]].strip()
            if piece:
                starts_word = start == 0 or words[start] != words[start - 1]
                ends_word = end == len(words) or words[end] != words[end - 1]
                exact = self._words_stable and starts_word and ends_word
                yield f"{prefix}{piece}", prefix_tokens + end - start + self._special if exact else None
            if end >= len(offsets):
                break
            start = self._next_start(body, offsets, start, end, overlap)

    @staticmethod
    def _next_start(body: str, offsets: list[tuple[int, int]], start: int, end: int, overlap: int) -> int:
        """Start the next window at a line or sentence start inside the overlap, so chunks read well."""
        first = max(start + 1, end - overlap)
        for j in range(first, end):
            before = body[max(0, offsets[j][0] - 2) : offsets[j][0]]
            if before.endswith("\n") or before.endswith(". "):
                return j
        return first

    def _fits(self, text: str, n_tokens: int | None) -> tuple[str, int]:
        """The text and its token count (encoded unless known), cut until it fits even where re-tokenising a
        joined text merges differently."""
        n_tokens = n_tokens or len(self.tokenizer.encode(text, add_special_tokens=True).ids)
        while n_tokens > self.max_tokens:
            text = text[: int(len(text) * 0.95)]
            n_tokens = len(self.tokenizer.encode(text, add_special_tokens=True).ids)
        return text, n_tokens

    def _chunk(self, document: Document, text: str, n_tokens: int | None, heading: str, position: int,
               page: int | None = None, image_path: str | None = None) -> Chunk | None:
        text, n_tokens = self._fits(text, n_tokens)
        if n_tokens - self._special < self.config.min_tokens:
            return None
        return Chunk(
            chunk_id=chunk_id(document.doc_id, text, self.config_hash, document.visible_to),
            doc_id=document.doc_id,
            source=document.source,
            text=text,
            text_hash=sha256_hex(text),
            heading_path=heading,
            position=position,
            n_tokens=n_tokens,
            page=page,
            kind="image" if image_path else "text",
            image_path=image_path,
        )

    def chunk(self, document: Document) -> list[Chunk]:
        """Token windows of every section, then one image chunk per image the section shows; an image
        document's own text (its file name and description) is an image chunk of that image."""
        chunks: list[Chunk] = []
        own_image = document.path if document.format == "image" else None
        for section in document_sections(document):
            heading = HEADING_SEPARATOR.join(section.heading_path)
            prefix = f"{heading}\n\n" if heading else ""
            texts = [(text, n_tokens, own_image) for text, n_tokens in self._windows(prefix, section.text)]
            texts += [(f"{prefix}{caption}", None, path) for caption, path in section_images(section.text, document)]
            for text, n_tokens, image_path in texts:
                chunk = self._chunk(document, text, n_tokens, heading, len(chunks), section.page, image_path)
                if chunk:
                    chunks.append(chunk)
        return _unique(chunks)


def section_images(text: str, document: Document) -> list[tuple[str, str]]:
    """(text, resolved path) of each image a section shows, among the document's images that decoded: the alt
    text and title, then the file name."""
    usable = set(document.images)
    found = []
    for ref in image_refs(text):
        path = resolve_ref(ref.target, document.path, document.doc_id) if usable else None
        if path is not None and str(path) in usable:
            found.append(("\n".join(filter(None, [ref.caption, path.name])), str(path)))
    return found


def _unique(chunks: list[Chunk]) -> list[Chunk]:
    """A document that repeats a passage verbatim yields one chunk for it (ids are content-addressed)."""
    seen: set[str] = set()
    return [c for c in chunks if not (c.chunk_id in seen or seen.add(c.chunk_id))]


def make_chunker(config: ChunkerConfig, embedder) -> Chunker:
    """A chunker bound to an embedder's tokenizer and maximum sequence length."""
    return Chunker(config, embedder.tokenizer, embedder.max_length, embedder.fingerprint.weights_sha256[:12])

