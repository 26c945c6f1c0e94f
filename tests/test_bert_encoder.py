"""The lean BERT encoder computes transformers' function, in fp32 and within tolerance in bf16."""

import json
import shutil

import numpy as np
import pytest
import torch

from ragindex.bert_encoder import BertEncoder, PackedLinear, Unpadded, bulk_copy, load_bert
from ragindex.embedding import FINGERPRINT_MIN_COSINE, model_fingerprint, resolve_model_dir
from ragindex.embedding_runtime import (
    NATIVE_BF16_FLAGS,
    ONNX_MIN_COSINE,
    PooledModel,
    cpu_flags,
    export_onnx,
    fp32_model,
    min_cosine,
    onnx_runner,
    probe_batch,
    torch_runner,
)

MODEL = "all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def transformers_model():
    from transformers import AutoModel

    return AutoModel.from_pretrained(str(resolve_model_dir(MODEL))).eval()


@pytest.fixture(scope="module")
def batch():
    batch = probe_batch(resolve_model_dir(MODEL), model_fingerprint(MODEL).max_length)
    assert batch[1].min() == 0  # padded rows: the mask must be honoured
    return batch


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_fp32_equals_transformers(transformers_model, batch, pooling):
    encoder = load_bert(resolve_model_dir(MODEL), pooling, True)
    assert isinstance(encoder, BertEncoder)
    reference = torch_runner(PooledModel(transformers_model, pooling, True).eval(), "cpu", None)(*batch)
    ours = torch_runner(encoder, "cpu", None)(*batch)
    assert np.abs(ours - reference).max() < 1e-5
    assert min_cosine(ours, reference) >= 0.999999
    unpadded = bulk_copy(encoder, torch.float32, "cpu")  # the CPU bulk module: real tokens only, same weights
    assert isinstance(unpadded, Unpadded) and unpadded.encoder is encoder
    assert np.abs(torch_runner(unpadded, "cpu", None)(*batch) - reference).max() < 1e-5


def test_embedder_vectors_equal_sentence_transformers(tmp_path):
    from sentence_transformers import SentenceTransformer

    from ragindex.embedding import Embedder

    texts = ["how does the with statement work", "x", "Lists are mutable sequences. " * 60]
    embedder = Embedder(MODEL, precision="fp32", onnx_dir=tmp_path)
    expected = SentenceTransformer(str(resolve_model_dir(MODEL)), device="cpu").encode(texts)
    assert isinstance(fp32_model(embedder.model_dir, embedder.fingerprint), BertEncoder)
    assert min_cosine(embedder.embed(texts), expected) >= 0.99999


@pytest.mark.parametrize(("pooling", "normalize", "activation"),
                         [("mean", True, "gelu"), ("cls", False, "gelu"), ("mean", True, "gelu_new")])
def test_onnx_graph_of_the_encoder(tmp_path, batch, pooling, normalize, activation):
    """bert_onnx writes the graph from the weights: the encoder's function for each pooling, with and without
    normalisation, exact and tanh GELU; the weights sit beside the graph."""
    encoder = load_bert(_variant(tmp_path, "variant", {"hidden_act": activation}), pooling, normalize)
    assert encoder.layers[0].activation.approximate == ("tanh" if activation == "gelu_new" else "none")
    reference = torch_runner(encoder, "cpu", None)(*batch)
    path = export_onnx(encoder, tmp_path / "encoder.onnx")
    assert sorted(p.name for p in path.parent.glob("encoder*")) == ["encoder.onnx", "encoder.onnx.weights"]
    vectors = onnx_runner(path, 1)(*batch)
    assert np.abs(vectors - reference).max() < 1e-5
    assert min_cosine(vectors, reference) >= ONNX_MIN_COSINE
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5) == normalize


def test_onnx_export_of_a_transformers_model(tmp_path, batch):
    """A model the graph writer does not cover is traced by torch.onnx into one file."""
    relu = _variant(tmp_path, "relu", {"hidden_act": "relu"})
    fallback = fp32_model(relu, model_fingerprint(str(relu)))
    assert isinstance(fallback, PooledModel)
    path = export_onnx(fallback, tmp_path / "traced.onnx")
    assert sorted(p.name for p in tmp_path.glob("traced*")) == ["traced.onnx"]
    assert min_cosine(onnx_runner(path, 1)(*batch), torch_runner(fallback, "cpu", None)(*batch)) >= ONNX_MIN_COSINE


@pytest.mark.skipif(not cpu_flags() & NATIVE_BF16_FLAGS, reason="needs a CPU with native bf16 (avx512_bf16/amx)")
@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_bf16_bulk_copy_within_tolerance_and_original_untouched(batch, pooling):
    encoder = load_bert(resolve_model_dir(MODEL), pooling, True)
    bulk = bulk_copy(encoder, torch.bfloat16, "cpu")
    layer = bulk.encoder.layers[0]
    assert isinstance(layer.up, PackedLinear) and layer.up.attr == "gelu"  # oneDNN GEMM with the GELU fused
    assert layer.attention_norm.weight.dtype == torch.float32  # norms and residuals stay fp32
    assert encoder.layers[0].qkv.weight.dtype == torch.float32 and isinstance(encoder.layers[0].up, torch.nn.Linear)
    fp32 = torch_runner(encoder, "cpu", None)(*batch)
    assert min_cosine(torch_runner(bulk, "cpu", None)(*batch), fp32) >= FINGERPRINT_MIN_COSINE


def test_padded_low_precision_copy_within_tolerance(batch):
    """The copy CUDA runs (padded, plain Linear modules), computed here in bf16 on the CPU."""
    encoder = load_bert(resolve_model_dir(MODEL), "mean", True)
    low = bulk_copy(encoder, torch.bfloat16, "cuda")
    assert isinstance(low, BertEncoder) and low.layers[0].qkv.weight.dtype == torch.bfloat16
    fp32 = torch_runner(encoder, "cpu", None)(*batch)
    assert min_cosine(torch_runner(low, "cpu", None)(*batch), fp32) >= FINGERPRINT_MIN_COSINE


def _variant(tmp_path, name: str, config_changes: dict):
    """The packaged checkpoint under another config: every file linked but config.json."""
    source, folder = resolve_model_dir(MODEL), tmp_path / name
    folder.mkdir()
    for item in source.iterdir():
        if item.name != "config.json":
            (folder / item.name).symlink_to(item)
    config = json.loads((source / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **config_changes}))
    return folder


def test_other_checkpoints_fall_back_to_transformers(tmp_path, batch):
    relu = _variant(tmp_path, "relu", {"hidden_act": "relu"})  # a BERT the lean encoder does not compute
    assert load_bert(relu, "mean", True) is None
    fingerprint = model_fingerprint(str(relu))
    fallback = fp32_model(relu, fingerprint)
    assert isinstance(fallback, PooledModel)  # transformers' model, which honours the config
    lean = torch_runner(load_bert(resolve_model_dir(MODEL), "mean", True), "cpu", None)(*batch)
    assert min_cosine(torch_runner(fallback, "cpu", None)(*batch), lean) < 0.99  # relu, not the gelu encoder
    assert load_bert(_variant(tmp_path, "relative", {"position_embedding_type": "relative_key"}), "mean",
                     True) is None

    partial = tmp_path / "partial"
    shutil.copytree(resolve_model_dir(MODEL), partial)
    from safetensors.torch import load_file, save_file

    weights = load_file(str(partial / "model.safetensors"))
    del weights["encoder.layer.5.output.dense.bias"]
    save_file(weights, str(partial / "model.safetensors"))
    assert load_bert(partial, "mean", True) is None  # a missing tensor is never filled in silently
