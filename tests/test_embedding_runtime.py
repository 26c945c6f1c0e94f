"""Embedding backends: each one's vectors against the fp32 torch reference, and how precision is chosen."""

import numpy as np
import pytest

from ragindex.embedding import FINGERPRINT_MIN_COSINE, model_fingerprint, resolve_model_dir
from ragindex.embedding_runtime import (
    NATIVE_BF16_FLAGS,
    ONNX_MIN_COSINE,
    PooledModel,
    choose_precision,
    cpu_flags,
    export_onnx,
    low_precision_copy,
    min_cosine,
    onnx_runner,
    probe_batch,
    quantize_int8,
    torch_runner,
)

AVX2 = frozenset({"sse4_2", "avx", "avx2", "fma"})
ZEN4 = AVX2 | {"avx512f", "avx512_bf16"}
SAPPHIRE_RAPIDS = AVX2 | {"avx512f", "amx_tile", "amx_bf16"}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The fp32 torch module, a padded probe batch, its fp32 vectors and the model exported to ONNX."""
    from transformers import AutoModel

    model_dir = resolve_model_dir("all-MiniLM-L6-v2")
    fingerprint = model_fingerprint("all-MiniLM-L6-v2")
    model = PooledModel(AutoModel.from_pretrained(str(model_dir)).eval(), "mean", True).eval()
    batch = probe_batch(model_dir, fingerprint.max_length)
    onnx_path = export_onnx(model, tmp_path_factory.mktemp("onnx") / "m-fp32.onnx")
    return model, batch, torch_runner(model, "cpu", None)(*batch), onnx_path


def test_precision_selection_from_cpu_flags():
    for requested in ("auto", "bf16"):
        assert choose_precision(requested, "cpu", AVX2) == "fp32"  # never bf16 without native bf16
        assert choose_precision(requested, "cpu", ZEN4) == "bf16"
        assert choose_precision(requested, "cpu", SAPPHIRE_RAPIDS) == "bf16"
    for flags in (AVX2, ZEN4):
        assert choose_precision("fp32", "cpu", flags) == "fp32"
        assert choose_precision("int8", "cpu", flags) == "int8"  # int8 only when asked for
        assert choose_precision("auto", "cpu", flags) != "int8"
    assert choose_precision("auto", "cuda", frozenset(), cuda_bf16=True) == "bf16"
    assert choose_precision("auto", "cuda", frozenset(), cuda_bf16=False) == "fp16"
    assert choose_precision("fp32", "cuda", frozenset(), cuda_bf16=True) == "fp32"


def test_onnx_runtime_equals_torch_fp32(reference):
    model, batch, fp32, onnx_path = reference
    assert batch[1].min() == 0  # the probe batch is padded: the exported graph must honour the mask
    for threads in (1, 2):
        assert min_cosine(onnx_runner(onnx_path, threads)(*batch), fp32) >= ONNX_MIN_COSINE
    assert model.training is False  # the export left dropout off
    assert min_cosine(torch_runner(model, "cpu", None, threads=1)(*batch), fp32) >= 0.999999


@pytest.mark.skipif(not cpu_flags() & NATIVE_BF16_FLAGS, reason="needs a CPU with native bf16 (avx512_bf16/amx)")
def test_bf16_within_fingerprint_tolerance(reference):
    import torch

    model, batch, fp32, _ = reference
    autocast = torch_runner(model, "cpu", torch.bfloat16)(*batch)
    precast = torch_runner(low_precision_copy(model, torch.bfloat16), "cpu", torch.bfloat16)(*batch)
    assert min_cosine(precast, fp32) >= FINGERPRINT_MIN_COSINE
    assert np.abs(precast - autocast).max() < 1e-6  # weights cast once compute what autocast computes
    assert next(model.parameters()).dtype == torch.float32  # the fp32 reference is untouched


@pytest.mark.skipif(not cpu_flags() & NATIVE_BF16_FLAGS, reason="needs a CPU with native bf16 (avx512_bf16/amx)")
def test_native_bf16_embeds_in_bf16_without_a_race(tmp_path):
    from ragindex.embedding import Embedder

    embedder = Embedder(onnx_dir=tmp_path)
    embedder.embed(["a passage about tables", "x"] * 4)
    info = embedder.runtime_info()
    assert (info["precision"], info["backend"], info["query_backend"]) == ("bf16", "torch", "onnxruntime")
    assert info["backend_timings_s"] == {}  # ~2x either fp32 backend: nothing to time
    assert info["probe_min_cosine"] >= FINGERPRINT_MIN_COSINE


def test_int8_is_close_but_beyond_tolerance(reference, tmp_path):
    """Both graphs quantize: the traced one (fallback models) and the written one the embedder runs."""
    from ragindex.embedding import Embedder

    _, batch, fp32, onnx_path = reference
    cosine = min_cosine(onnx_runner(quantize_int8(onnx_path, tmp_path / "m-int8.onnx"), 2)(*batch), fp32)
    assert 0.95 <= cosine < FINGERPRINT_MIN_COSINE  # why int8 vectors carry their own fingerprint
    embedder = Embedder(precision="int8", onnx_dir=tmp_path / "embedder")
    texts = ["a passage about tables", "x", "Lists are mutable sequences. " * 40] * 2
    vectors = embedder.embed(texts)
    info = embedder.runtime_info()
    assert (info["precision"], info["backend"]) == ("int8", "onnxruntime")
    assert 0.95 <= info["probe_min_cosine"] < FINGERPRINT_MIN_COSINE
    assert min_cosine(vectors, Embedder(precision="fp32", onnx_dir=tmp_path / "embedder").embed(texts)) >= 0.95


def test_embedder_fp32_loads_and_reports(tmp_path):
    from ragindex.embedding import Embedder

    embedder = Embedder(precision="fp32", onnx_dir=tmp_path)
    assert (embedder.precision, embedder.backend, embedder.device) == (None, None, "auto")  # nothing loaded yet
    vectors = embedder.embed(["a query", "another query"] * 4)
    info = embedder.runtime_info()
    assert (embedder.precision, embedder.device, info["query_backend"]) == ("fp32", "cpu", "onnxruntime")
    assert set(info["backend_timings_s"]) == {"torch", "onnxruntime"}
    assert embedder.backend == next(iter(info["backend_timings_s"]))  # the faster one
    graph = f"{embedder.fingerprint.id}-fp32.onnx"
    assert sorted(p.name for p in tmp_path.iterdir()) == [graph, f"{graph}.weights"]
    np.testing.assert_allclose(vectors[0], embedder.embed(["a query"])[0], atol=1e-5)


def test_query_sessions_take_a_second_thread_only_where_a_core_is_idle(monkeypatch):
    import os

    from ragindex import onnx_session

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(onnx_session, "runnable_now", lambda: 1)  # this thread alone
    assert onnx_session.query_threads() == 2
    monkeypatch.setattr(onnx_session, "runnable_now", lambda: 3)  # two others want the cores
    assert onnx_session.query_threads() == 1
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    monkeypatch.setattr(onnx_session, "runnable_now", lambda: 1)
    assert onnx_session.query_threads() == 1
    assert onnx_session.runnable_now() >= 1  # the real count includes the thread that reads it
