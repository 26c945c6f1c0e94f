"""PDF files: one text per page with pypdf; encrypted, corrupt and text-less (scanned) files are refused."""

from __future__ import annotations

import io
import logging
import re

PAGE_BREAK = "\f"  # pages are joined with a form feed, as pdftotext does; the chunker splits there
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f]")  # also drops stray form feeds: they would fake a page


def pdf_pages(data: bytes) -> tuple[list[str], str | None]:
    """The text of every page (empty for a page without text) and the title in the PDF's metadata.

    Raises ValueError with the reason a person reads when the file cannot be used."""
    from pypdf import PdfReader

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # malformed files warn per object; the reason suffices
    try:
        reader = PdfReader(io.BytesIO(data))
        locked = reader.is_encrypted and not reader.decrypt("")
        pages = [] if locked else [_CONTROL.sub(" ", page.extract_text() or "").strip() for page in reader.pages]
        title = None if locked or not reader.metadata else reader.metadata.title
    except Exception as error:  # pypdf raises many types on damaged input; a bad file must never stop a run
        raise ValueError(f"corrupt PDF ({type(error).__name__}: {str(error)[:120]})") from None
    if locked:
        raise ValueError("encrypted PDF (it needs a password)")
    if not any(pages):
        raise ValueError(f"no extractable text in {len(pages)} page(s) (a scanned PDF needs OCR)")
    return pages, title.strip() if isinstance(title, str) and title.strip() else None
