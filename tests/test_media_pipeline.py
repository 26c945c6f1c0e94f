"""PDFs and images through the whole pipeline and the CLI: page citations, image hits, skipped files with
reasons, and, with a (random-weights) CLIP model configured, the image table searched by `--modality image`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from dagster import DagsterInstance, instance_for_test
from media_corpus import ALT_TEXT, PAGE_TWO, write_media_corpus, write_tiny_clip
from pipeline_helpers import metadata

from ragindex_app.cli.main import main

pytestmark = pytest.mark.slow


@pytest.fixture
def media_project(tmp_path, monkeypatch):
    corpus = write_media_corpus(tmp_path)
    clip = write_tiny_clip(tmp_path / "clip")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "sources": [{"name": "media", "type": "directory", "path": str(corpus), "max_image_pixels": 100_000}],
        "chunker": {"max_tokens": 64, "overlap_tokens": 8},
        "embedder": {"image_model": str(clip)},
        "index": {"uri": str(tmp_path / "lancedb"), "table": "chunks"},
        "quality": {"data_docs": False},
        "datasets": {"n": 5},
    }))
    (tmp_path / "dagster").mkdir()
    with instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        monkeypatch.setattr(DagsterInstance, "get", classmethod(lambda cls: instance))
        yield config, corpus, clip, instance


def test_pdf_pages_images_and_the_vision_path_end_to_end(media_project, capsys):
    config, corpus, clip, instance = media_project
    assert main(["--config", str(config), "index", "--source", "media", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    skipped = {item["path"].split("/")[-1]: item["reason"] for item in summary["skipped"]}
    assert "broken.pdf" in skipped and "locked.pdf" in skipped and "scanned.pdf" in skipped
    assert any("plan.png" in reason and "not found" in reason for reason in skipped.values())

    # a phrase on page 2 of the PDF, cited with its page
    assert main(["--config", str(config), "search", PAGE_TWO, "--mode", "fts", "--k", "3", "--json"]) == 0
    top = json.loads(capsys.readouterr().out)[0]
    assert top["doc_id"] == "report.pdf" and top["page"] == 2 and top["citation"].endswith("report.pdf p.2")

    # an image's alt text, found by the text model, says it is an image
    assert main(["--config", str(config), "search", ALT_TEXT, "--mode", "dense_exact", "--k", "3", "--json"]) == 0
    top = json.loads(capsys.readouterr().out)[0]
    assert top["kind"] == "image" and top["image_path"] == str(corpus / "img" / "lantern.png")

    # the image table: pixels embedded by the configured CLIP, ranked by that model's cosine
    images = metadata(instance, "image_index")
    assert images["status"] == "synced" and images["images"] >= 4 and images["embedded"] == images["images"]
    assert main(["--config", str(config), "search", "a yellow lamp", "--modality", "image", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert hits and all(h["kind"] == "image" for h in hits)
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    from ragindex.vision.embedder import load_image_embedder

    model = load_image_embedder(str(clip))
    query = model.embed_texts(["a yellow lamp"])[0]
    from PIL import Image

    expected = [float(np.dot(query, model.embed_images([Image.open(h["image_path"]).convert("RGB")])[0]))
                for h in hits]
    assert np.allclose([h["score"] for h in hits], expected, atol=1e-4)

    # nothing changed: the images are not embedded again
    assert main(["--config", str(config), "index", "--source", "media", "--json"]) == 0
    capsys.readouterr()
    assert metadata(instance, "image_index")["embedded"] == 0
