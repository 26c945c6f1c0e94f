"""Shared fixtures: an isolated data directory, one loaded model, a small corpus with bad files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
WITH_SENTENCE = "The lighthouse keeper winds the brass clockwork every evening at dusk."


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> Path:
    """One model cache (weights hashes, ONNX exports) for the session's data directories, as one data directory
    keeps it across runs: both are keyed by the weights' stats and the model fingerprint, and written atomically.
    Without it every test's first model load hashes the weights and exports the ONNX graph again.
    A cold cache (the export made on first load) is tested with directories of their own: test_embedding.py,
    test_embedding_runtime.py, test_strict_input.py and test_quality_blocking.py's CLI test."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture(autouse=True)
def isolated_data_dir(tmp_path_factory, monkeypatch, model_cache):
    """Every test writes its state (tables, caches, Dagster instance) under a temporary directory; its model
    cache is the session's."""
    root = tmp_path_factory.mktemp("data")
    (root / "models").symlink_to(model_cache, target_is_directory=True)
    monkeypatch.setenv("RAGINDEX_DATA_DIR", str(root))
    return root


@pytest.fixture(scope="session")
def embedder():
    from ragindex.embedding import load_embedder

    return load_embedder(precision="fp32")  # deterministic: the fp32 reference the tests compare with


def write_small_corpus(root: Path) -> Path:
    """A small real-looking corpus: Markdown, reST, text and HTML, plus every kind of bad file."""
    docs = root / "corpus"
    (docs / "guide").mkdir(parents=True)
    (docs / "guide" / "install.md").write_text(
        "# Installing\n\nUse pip to install the package into a virtual environment.\n\n"
        "## From source\n\nClone the repository and run the build script.\n\n"
        "```\n# not a heading inside a code fence\npip install -e .\n```\n", encoding="utf-8")
    (docs / "guide" / "lighthouse.md").write_text(
        f"# Coastal notes\n\n## Keepers\n\n{WITH_SENTENCE}\n\n## Ships\n\nTankers pass the cape at night.\n",
        encoding="utf-8")
    (docs / "reference.rst").write_text(
        "Reference\n=========\n\nThe reference manual.\n\nTables\n------\n\nA table stores rows of vectors.\n",
        encoding="utf-8")
    (docs / "notes.txt").write_text("Plain notes about caching embeddings by text hash.\n", encoding="utf-8")
    (docs / "page.html").write_text(
        "<html><head><style>p {color: red}</style><script>var x = 1;</script></head><body>"
        "<h1>Search page</h1><p>Hybrid search fuses dense and keyword scores.</p></body></html>",
        encoding="utf-8")
    (docs / "empty.md").write_text("", encoding="utf-8")
    (docs / "binary.txt").write_bytes(b"\x00\x01\x02binary\x00")
    (docs / "latin1.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    (docs / "huge.md").write_text("word " * 400_000, encoding="utf-8")
    (docs / "diagram.bmp").write_bytes(b"BM not indexed")
    os.symlink(docs, docs / "guide" / "loop")
    return docs
