"""PDF pages and images through chunking and the index: page numbers, image chunks, search hits, incremental ids."""

import pyarrow as pa
from media_corpus import ALT_TEXT, PAGE_TWO, index_rows, minimal_pdf, write_media_corpus

from ragindex.chunking import make_chunker
from ragindex.config import ChunkerConfig, IndexConfig, SearchConfig, SourceConfig
from ragindex.documents import Document
from ragindex.index_store import IndexStore, index_schema
from ragindex.search import Retriever
from ragindex.sources import read_source


def _documents(root) -> dict[str, Document]:
    source = SourceConfig(name="media", type="directory", path=str(root))
    return {d.doc_id: d for d in read_source(source) if isinstance(d, Document)}


def test_pdf_pages_and_image_chunks(tmp_path, embedder):
    root = write_media_corpus(tmp_path)
    chunker = make_chunker(ChunkerConfig(), embedder)
    chunks = {doc_id: chunker.chunk(doc) for doc_id, doc in _documents(root).items()}
    report = chunks["report.pdf"]
    assert [(c.page, c.kind) for c in report] == [(1, "text"), (2, "text")]
    assert report[1].text == f"report\n\n{PAGE_TWO}" and report[1].heading_path == "report"
    lighthouse = [c for c in chunks["guide/lighthouse.md"] if c.kind == "image"]
    assert len(lighthouse) == 1 and lighthouse[0].image_path == str(root / "img" / "lantern.png")
    assert lighthouse[0].text == f"Lighthouses > Lantern\n\n{ALT_TEXT} — The lamp and its lens\nlantern.png"
    assert lighthouse[0].heading_path == "Lighthouses > Lantern" and lighthouse[0].page is None
    figure = [c for c in chunks["harbour.html"] if c.kind == "image"]
    assert [c.text for c in figure] == ["Harbour\n\naerial view — The harbour at high tide\nharbour.png"]
    gull = chunks["photos/gull.png"]
    assert [(c.kind, c.image_path, c.text) for c in gull] == [
        ("image", str(root / "photos" / "gull.png"), "A herring gull on a bollard\n\nA herring gull on a bollard\n"
                                                     "gull.png")]
    text_kinds = {c.kind for c in chunks["guide/lighthouse.md"] if c.image_path is None}
    assert text_kinds == {"text"}


def test_search_hits_pdf_page_and_image_alt_text(tmp_path, embedder):
    root = write_media_corpus(tmp_path)
    chunker = make_chunker(ChunkerConfig(), embedder)
    store = IndexStore.at(IndexConfig(uri=str(tmp_path / "lancedb"), table="media"))
    rows = index_rows(_documents(root).values(), chunker, embedder)
    store.commit_source("media", rows, embedder.dimension, [])
    store.ensure_indexes()
    retriever = Retriever(store, embedder, SearchConfig())
    by_id = {r["chunk_id"]: r for r in store.open().to_arrow().drop_columns(["vector"]).to_pylist()}
    for mode in ("dense_exact", "fts"):
        top = by_id[retriever.search("turbine spins slower when the estuary freezes", mode, k=3)[0].chunk_id]
        assert (top["doc_id"], top["page"], top["kind"]) == ("report.pdf", 2, "text")
    top = by_id[retriever.search("cross-section of the lantern room", "dense_exact", k=3)[0].chunk_id]
    assert (top["kind"], top["image_path"], top["page"]) == ("image", str(root / "img" / "lantern.png"), None)
    images = retriever.search("harbour", "fts", k=10, filters={"kind": "image"})
    assert images and {by_id[h.chunk_id]["kind"] for h in images} == {"image"}


def test_edited_pdf_page_changes_only_its_chunks(tmp_path, embedder):
    root = tmp_path / "pdfs"
    root.mkdir()
    pages = ["Page one keeps its words.", "Page two before the edit.", "Page three keeps its words too."]
    (root / "r.pdf").write_bytes(minimal_pdf(pages))
    chunker = make_chunker(ChunkerConfig(), embedder)
    store = IndexStore.at(IndexConfig(uri=str(tmp_path / "lancedb"), table="pdf"))
    store.commit_source("media", index_rows(_documents(root).values(), chunker, embedder), embedder.dimension, [])
    before = {r["chunk_id"]: r["page"] for r in store.open().to_arrow().to_pylist()}
    (root / "r.pdf").write_bytes(minimal_pdf([pages[0], "Page two after the edit.", pages[2]]))
    edited = _documents(root)["r.pdf"]
    result = store.commit_source("media", index_rows([edited], chunker, embedder), embedder.dimension, ["r.pdf"])
    after = {r["chunk_id"]: r["page"] for r in store.open().to_arrow().to_pylist()}
    assert sorted(after.values()) == [1, 2, 3]
    assert {p for c, p in after.items() if c in before} == {1, 3}  # unchanged pages keep their chunk ids
    assert {p for c, p in before.items() if c not in after} == {2}
    assert (result.inserted, result.deleted) == (1, 1)


def test_table_without_media_columns_gains_them(tmp_path):
    store = IndexStore.at(IndexConfig(uri=str(tmp_path / "lancedb"), table="old"))
    old = pa.schema([f for f in index_schema(4) if f.name not in ("page", "kind", "image_path")])
    store.db.create_table("old", schema=old)
    assert {"page", "kind", "image_path"} <= set(store.open_or_create(4).schema.names)
