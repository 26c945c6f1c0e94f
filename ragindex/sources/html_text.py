"""HTML to text: markup and scripts gone, headings and images kept as Markdown for the chunker."""

from __future__ import annotations

from bs4 import BeautifulSoup

_BLOCKS = {"p", "div", "li", "pre", "table", "tr", "section", "article", "br", "blockquote", "dd", "dt"}


def _image_markdown(src: str, alt: str, title: str) -> str:
    target = f"<{src}>" if any(c in src for c in " ()<>") else src
    alt = " ".join(alt.split()).replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")
    title = " ".join(title.split()).replace('"', "'")
    suffix = f' "{title}"' if title else ""
    return f"\n\n![{alt}]({target}{suffix})\n\n"


def _images_to_markdown(soup: BeautifulSoup) -> None:
    """`<img alt title>` becomes `![alt](src "title")`; inside a `<figure>` the caption is the title."""
    for figure in soup.find_all("figure"):
        caption = figure.find("figcaption")
        text = caption.get_text(" ", strip=True) if caption else ""
        for img in figure.find_all("img"):
            if text and not img.get("title"):
                img["title"] = text
    for img in soup.find_all("img"):
        src = (img.get("src") or "").strip()
        img.replace_with(_image_markdown(src, img.get("alt") or "", img.get("title") or "") if src else "")


def html_to_markdown(html: str) -> str:
    """Extract the visible text; h1..h6 become '#'-headings and images `![alt](src "title")` so the structure
    survives."""
    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "head"]):
        tag.decompose()
    _images_to_markdown(soup)
    for level in range(1, 7):
        for heading in soup.find_all(f"h{level}"):
            heading.replace_with(f"\n\n{'#' * level} {heading.get_text(' ', strip=True)}\n\n")
    for tag in soup.find_all(_BLOCKS):
        tag.insert_after("\n")
    lines = [" ".join(line.split()) for line in soup.get_text().splitlines()]
    text = "\n".join(lines)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.strip()
