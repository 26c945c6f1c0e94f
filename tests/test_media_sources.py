"""Directory sources beyond text: PDF pages, image files, images shown by Markdown and HTML, and bad inputs."""

from media_corpus import ALT_TEXT, PAGE_TWO, write_media_corpus

from ragindex.config import SourceConfig
from ragindex.documents import Document, Skipped
from ragindex.images import image_refs, resolve_ref
from ragindex.sources import read_source
from ragindex.sources.html_text import html_to_markdown


def _read(root, **options):
    items = list(read_source(SourceConfig(name="media", type="directory", path=str(root), **options)))
    docs = {i.doc_id: i for i in items if isinstance(i, Document)}
    skipped = [(i.path.removeprefix(str(root) + "/"), i.reason) for i in items if isinstance(i, Skipped)]
    return docs, dict(skipped), skipped


def test_media_folder_documents_and_skips(tmp_path):
    root = write_media_corpus(tmp_path)
    docs, skipped, listed = _read(root, max_image_pixels=100_000)
    assert sorted(docs) == ["guide/lighthouse.md", "harbour.html", "img/harbour.png", "img/lantern.png",
                            "photos/gull.png", "photos/moss.jpg", "report.pdf"]
    assert docs["report.pdf"].format == "pdf" and docs["report.pdf"].text.split("\f")[1] == PAGE_TWO
    assert docs["report.pdf"].title == "report"  # no metadata title: the file name, never a page's first line
    assert skipped["broken.pdf"].startswith("corrupt PDF")
    assert skipped["locked.pdf"] == "encrypted PDF (it needs a password)"
    assert skipped["scanned.pdf"].startswith("no extractable text in 2 page(s)")
    assert skipped["photos/truncated.png"] == "undecodable image (image file is truncated)"
    assert skipped["photos/huge.png"].startswith("image too large (400x300 = 120000 pixels")
    # the broken reference is listed with the referring document; remote, SVG and fenced ones are text only
    assert [r for p, r in listed if p == "guide/lighthouse.md"] == [
        "image reference '../img/plan.png': file not found"]
    assert docs["guide/lighthouse.md"].images == (str(root / "img" / "lantern.png"),)
    assert docs["harbour.html"].images == (str(root / "img" / "harbour.png"),)  # '/img/...' = source root
    assert docs["photos/gull.png"].format == "image"
    assert docs["photos/gull.png"].text == "A herring gull on a bollard\ngull.png"  # PNG text chunk, file name
    assert docs["photos/moss.jpg"].text == "moss.jpg" and docs["photos/moss.jpg"].title == "moss"


def test_html_figure_and_img_become_markdown_images():
    text = html_to_markdown('<h1>T</h1><img src="a b.png" alt="x [1]"><figure><img src="c.png" alt="c">'
                            '<figcaption>Caption "here"</figcaption></figure><img alt="no source">')
    refs = image_refs(text)
    assert [(r.target, r.alt, r.title) for r in refs] == [("a b.png", "x [1]", ""),
                                                          ("c.png", "c", "Caption 'here'")]
    assert refs[1].caption == "c — Caption 'here'"


def test_references_resolve_inside_the_source(tmp_path):
    doc = str(tmp_path / "a" / "b.md")
    assert resolve_ref("../img/x%20y.PNG#frag", doc, "a/b.md") == tmp_path / "img" / "x y.PNG"
    assert resolve_ref("/img/x.png", doc, "a/b.md") == tmp_path / "img" / "x.png"
    assert resolve_ref("data:image/png;base64,AAAA", doc, "a/b.md") is None
    assert resolve_ref("x.svg", doc, "a/b.md") is None
    assert [r.alt for r in image_refs(f'<img src="p.gif" alt="{ALT_TEXT}"> and ![a\\]b](<q r.webp>)')] == [
        ALT_TEXT, "a]b"]


def test_referenced_image_outside_the_source_is_skipped(tmp_path):
    root = tmp_path / "docs"
    root.mkdir()
    (root / "x.md").write_text("# X\n\n![escape](../../outside.png)\n", encoding="utf-8")
    docs, skipped, _ = _read(root)
    assert docs["x.md"].images == () and skipped["x.md"] == "image reference '../../outside.png': outside the " \
                                                            "source folder"
