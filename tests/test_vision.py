"""The vision path with a random-weights CLIP: image table, incremental sync by content hash, search, quality."""

import io

import numpy as np
import pytest
import torch
from media_corpus import ALT_TEXT, index_rows, write_media_corpus, write_png, write_tiny_clip
from PIL import Image

from ragindex.chunking import make_chunker
from ragindex.config import ChunkerConfig, IndexConfig, SearchConfig, SourceConfig
from ragindex.documents import Document
from ragindex.drift.two_sample import detect_drift
from ragindex.index_store import IndexStore
from ragindex.quality.images import validate_images
from ragindex.search import Retriever
from ragindex.sources import read_source
from ragindex.vision.embedder import load_image_embedder
from ragindex.vision.search import fuse_modalities, search_images
from ragindex.vision.store import ImageRecord, ImageStore, image_records
from ragindex.vision.thumbnails import images_markdown, thumbnail_grid

PIXELS = 1_000_000


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return write_tiny_clip(tmp_path_factory.mktemp("clip"))


@pytest.fixture(scope="module")
def clip(clip_dir):
    return load_image_embedder(str(clip_dir), batch_size=3)


def _model_ranking(clip_dir, paths: list[str], query: str) -> tuple[list[str], np.ndarray]:
    """The ranking by the model's own cosine, computed without ragindex."""
    from transformers import AutoTokenizer, CLIPImageProcessorPil, CLIPModel

    model = CLIPModel.from_pretrained(clip_dir).eval()
    pixels = CLIPImageProcessorPil.from_pretrained(clip_dir)(
        images=[Image.open(p).convert("RGB") for p in paths], return_tensors="pt")
    tokens = AutoTokenizer.from_pretrained(clip_dir)([query], return_tensors="pt", return_token_type_ids=False)
    with torch.no_grad():
        images = model.get_image_features(**pixels).pooler_output
        text = model.get_text_features(**tokens).pooler_output
    cosine = torch.nn.functional.cosine_similarity(images, text).numpy()
    order = np.argsort(-cosine, kind="stable")
    return [paths[i] for i in order], cosine[order]


def _text_index(root, tmp_path, embedder) -> IndexStore:
    docs = [d for d in read_source(SourceConfig(name="media", type="directory", path=str(root)))
            if isinstance(d, Document)]
    store = IndexStore.at(IndexConfig(uri=str(tmp_path / "lancedb"), table="media"))
    store.commit_source("media", index_rows(docs, make_chunker(ChunkerConfig(), embedder), embedder),
                        embedder.dimension, [])
    store.ensure_indexes()
    return store


def test_image_table_sync_search_and_fusion(tmp_path, embedder, clip, clip_dir):
    root = write_media_corpus(tmp_path)
    index = _text_index(root, tmp_path, embedder)
    records = image_records(index, "media")
    assert [r.path.removeprefix(str(root)) for r in records] == [
        "/img/harbour.png", "/img/lantern.png", "/photos/gull.png", "/photos/huge.png", "/photos/moss.jpg"]
    lantern = next(r for r in records if r.path.endswith("lantern.png"))
    assert lantern.doc_id == "guide/lighthouse.md" and ALT_TEXT in lantern.caption  # the alt text wins
    images = ImageStore(index.config, "media")
    first = images.sync("media", records, clip, PIXELS)
    assert (first.images, first.embedded, first.reused, first.deleted, first.skipped) == (5, 5, 0, 0, [])
    assert sorted(first.added) == sorted(r.path for r in records) and images.name == "media_images"
    again = images.sync("media", records, clip, PIXELS)
    assert (again.embedded, again.reused, again.deleted, again.version) == (0, 0, 0, first.version)

    query = "a yellow lantern"
    hits = search_images(images, clip, query, k=5)
    expected, cosines = _model_ranking(clip_dir, [r.path for r in records], query)
    assert [h.image_path for h in hits] == expected and {h.kind for h in hits} == {"image"}
    assert np.allclose([h.score for h in hits], cosines, atol=1e-4)

    text_hits = Retriever(index, embedder, SearchConfig()).search(query, "dense_exact", k=5)
    fused = fuse_modalities(text_hits, hits, k=6)
    assert len(fused) == 6 and {getattr(h, "kind", "text") for h in fused} == {"text", "image"}
    assert [h.score for h in fused] == sorted((h.score for h in fused), reverse=True)

    write_png(root / "img" / "lantern.png", (255, 0, 255))  # new content at the same path
    edited = images.sync("media", records, clip, PIXELS)
    assert (edited.images, edited.embedded, edited.deleted, edited.added) == (5, 1, 1, [lantern.path])
    gone = images.sync("media", [r for r in records if not r.path.endswith("moss.jpg")], clip, PIXELS)
    assert (gone.images, gone.embedded, gone.deleted) == (4, 0, 1)
    other = images.sync("other", [ImageRecord(lantern.path, "x.md", "other", "same picture")], clip, PIXELS)
    assert (other.embedded, other.reused) == (0, 1)  # same content, same model: the vector is reused

    matrix = images.matrix()
    assert matrix.shape == (5, clip.dimension) and matrix.dtype == np.float32
    assert np.allclose(np.linalg.norm(matrix, axis=1), 1, atol=1e-5)
    assert validate_images(images.rows(), clip.dimension, clip.fingerprint.id).success


def test_image_quality_flags_bad_vectors_and_two_models(tmp_path, clip):
    write_png(tmp_path / "a.png", (1, 2, 3))
    images = ImageStore(IndexConfig(uri=str(tmp_path / "lancedb"), table="q"))
    images.sync("s", [ImageRecord(str(tmp_path / "a.png"), "a.png", "s", "a")], clip, PIXELS)
    rows = images.rows()
    doubled = rows.set_column(rows.schema.get_field_index("vector"), "vector",
                              [[[2 * v for v in rows.column("vector")[0].as_py()]]])
    result = validate_images(doubled, clip.dimension, "another-model")
    failed = {(o.batch, o.expectation, o.column) for o in result.failed}
    assert failed == {("images", "expect_column_values_to_be_between", "vector_norm"),
                      ("fingerprints", "expect_column_values_to_be_in_set", "fingerprint")}


def test_image_vectors_feed_the_drift_tests(tmp_path, clip):
    rng = np.random.default_rng(0)
    images = ImageStore(IndexConfig(uri=str(tmp_path / "lancedb"), table="d"))
    for source, base in (("warm", (200, 80, 20)), ("cold", (20, 80, 200))):
        records = []
        for i in range(24):
            color = tuple(int(c) for c in np.clip(np.array(base) + rng.integers(-30, 30, 3), 0, 255))
            path = write_png(tmp_path / source / f"{i}.png", color)
            records.append(ImageRecord(str(path), path.name, source, ""))
        images.sync(source, records, clip, PIXELS)
    decision = detect_drift(images.matrix("warm"), images.matrix("cold"), alpha=0.01, n_permutations=200,
                            reference_fingerprint=clip.fingerprint.id, current_fingerprint=clip.fingerprint.id)
    assert decision.drifted and decision.n_reference == decision.n_current == 24


def test_thumbnail_grid_and_table(tmp_path):
    paths = [str(write_png(tmp_path / f"{i}.png", (40 * i, 0, 0), size=(300, 150))) for i in range(5)]
    (tmp_path / "bad.png").write_bytes(b"not a png")
    grid = Image.open(io.BytesIO(thumbnail_grid([*paths, str(tmp_path / "bad.png")], PIXELS, size=64, columns=4)))
    assert grid.format == "PNG" and grid.size == (4 * 64, 2 * 64)
    assert grid.getpixel((96, 96)) == (200, 200, 200)  # the undecodable tile
    assert thumbnail_grid([], PIXELS) is None
    table = images_markdown([{"path": p, "doc_id": "d.md", "caption": "a | b"} for p in paths], limit=2)
    assert "| 0.png | d.md | a \\| b |" in table and "… and 3 more" in table
