"""HTML to text: markup and scripts gone, headings kept as Markdown headings for the chunker."""

from __future__ import annotations

from bs4 import BeautifulSoup

_BLOCKS = {"p", "div", "li", "pre", "table", "tr", "section", "article", "br", "blockquote", "dd", "dt"}


def html_to_markdown(html: str) -> str:
    """Extract the visible text; h1..h6 become '#'-headings so the structure survives."""
    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "head"]):
        tag.decompose()
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
