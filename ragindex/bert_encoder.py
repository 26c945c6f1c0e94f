"""A lean BERT sentence encoder: the checkpoint's weights in a few plain torch modules.

It computes what `transformers`' BertModel plus mean/CLS pooling computes (cosine >= 0.99999 to it and to
sentence-transformers in fp32, tests/test_bert_encoder.py) with less in the way: Q, K and V are one fused GEMM,
attention is `scaled_dot_product_attention`, and there is no per-call mask building or output bookkeeping.
Its low-precision copy (`with_matmul_dtype`) runs only the GEMMs and attention in bf16/fp16 and keeps the
residual stream, the layer norms and the pooling in fp32, which is what autocast computes, without autocast's
casts of every activation at every op: 1.9x the autocast path's bulk throughput on an AVX512-BF16 CPU (measured,
docs/benchmarks.md). Loading needs `safetensors` (or torch for a .bin checkpoint), not `transformers`, so the
model loads in a fraction of the time. Checkpoints it does not cover (another architecture, relative positions,
another activation) return None from `load_bert`, and the caller falls back to transformers.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {"gelu": "none", "gelu_new": "tanh", "gelu_pytorch_tanh": "tanh"}  # name -> F.gelu approximate
PREFIXES = ("bert.", "model.")  # checkpoints saved from a wrapper carry the BertModel under one of these


class EncoderLayer(nn.Module):
    """Self-attention and feed-forward, each with a post-norm residual (BERT's layout)."""

    def __init__(self, hidden: int, intermediate: int, heads: int, eps: float, approximate: str):
        super().__init__()
        self.heads, self.approximate = heads, approximate
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.attention_out = nn.Linear(hidden, hidden)
        self.attention_norm = nn.LayerNorm(hidden, eps=eps)
        self.up = nn.Linear(hidden, intermediate)
        self.down = nn.Linear(intermediate, hidden)
        self.output_norm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: (batch, tokens, hidden) in fp32; mask: (batch, 1, 1, tokens), True where a token may be attended."""
        batch, tokens, hidden = x.shape
        dtype = self.qkv.weight.dtype  # the GEMMs' dtype: fp32, or bf16/fp16 in a low-precision copy
        qkv = self.qkv(x.to(dtype)).view(batch, tokens, 3, self.heads, hidden // self.heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=mask)
        attended = self.attention_out(attended.transpose(1, 2).reshape(batch, tokens, hidden))
        x = self.attention_norm(x + attended.to(x.dtype))
        inner = F.gelu(self.up(x.to(dtype)), approximate=self.approximate)
        return self.output_norm(x + self.down(inner).to(x.dtype))


class BertEncoder(nn.Module):
    """Token ids and attention mask (int64) in, pooled (and normalised) fp32 sentence vectors out."""

    def __init__(self, config: dict, pooling: str, normalize: bool):
        super().__init__()
        hidden, eps = config["hidden_size"], config.get("layer_norm_eps", 1e-12)
        self.pooling, self.normalize = pooling, normalize
        self.word_embeddings = nn.Embedding(config["vocab_size"], hidden)
        self.position_embeddings = nn.Embedding(config["max_position_embeddings"], hidden)
        self.token_type_embeddings = nn.Embedding(config.get("type_vocab_size", 2), hidden)
        self.embedding_norm = nn.LayerNorm(hidden, eps=eps)
        self.layers = nn.ModuleList(
            EncoderLayer(hidden, config["intermediate_size"], config["num_attention_heads"], eps,
                         ACTIVATIONS[config.get("hidden_act", "gelu")])
            for _ in range(config["num_hidden_layers"]))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        tokens = input_ids.shape[1]
        positions = torch.arange(tokens, device=input_ids.device)
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions) + self.token_type_embeddings.weight[0]
        x = self.embedding_norm(x)
        mask = attention_mask.bool()[:, None, None, :]
        for layer in self.layers:
            x = layer(x, mask)
        if self.pooling == "cls":
            pooled = x[:, 0]
        else:
            weights = attention_mask.unsqueeze(-1).to(x.dtype)
            pooled = (x * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, p=2, dim=1) if self.normalize else pooled


def with_matmul_dtype(encoder: BertEncoder, dtype: torch.dtype) -> BertEncoder:
    """A copy whose GEMM weights (and so its GEMMs and attention) are in `dtype`; norms, residuals, embeddings
    and pooling stay fp32. The original is untouched."""
    low = copy.deepcopy(encoder)
    for layer in low.layers:
        for linear in (layer.qkv, layer.attention_out, layer.up, layer.down):
            linear.to(dtype)
    return low.eval()


def supported(config: dict) -> bool:
    """A plain BERT: absolute positions and a GELU activation (MiniLM, BGE, E5, GTE-base and the like)."""
    return (config.get("model_type") == "bert"
            and config.get("position_embedding_type", "absolute") == "absolute"
            and config.get("hidden_act", "gelu") in ACTIVATIONS
            and not config.get("is_decoder", False))


def load_bert(model_dir: Path, pooling: str, normalize: bool) -> BertEncoder | None:
    """The checkpoint as a BertEncoder (fp32, eval), or None where it is not a plain BERT or its weights do not
    map one to one onto the encoder's."""
    config = json.loads((model_dir / "config.json").read_text())
    if not supported(config):
        return None
    encoder = BertEncoder(config, pooling, normalize)
    state = _renamed(_read_weights(model_dir), config["num_hidden_layers"])
    if state is None:
        return None
    wanted = encoder.state_dict()
    if set(state) != set(wanted) or any(state[k].shape != wanted[k].shape for k in wanted):
        return None
    encoder.load_state_dict({k: v.float() for k, v in state.items()})
    return encoder.eval()


def _read_weights(model_dir: Path) -> dict[str, torch.Tensor]:
    files = sorted(model_dir.glob("*.safetensors"))
    if files:
        from safetensors.torch import load_file

        return {k: v for f in files for k, v in load_file(str(f)).items()}
    return {k: v for f in sorted(model_dir.glob("pytorch_model*.bin"))
            for k, v in torch.load(f, map_location="cpu", weights_only=True).items()}


def _renamed(weights: dict[str, torch.Tensor], layers: int) -> dict[str, torch.Tensor] | None:
    """The checkpoint's BertModel names mapped onto the encoder's (Q, K, V concatenated); pooler and task heads
    dropped. None when a tensor the encoder needs is missing."""
    for prefix in PREFIXES:
        if f"{prefix}embeddings.word_embeddings.weight" in weights:
            weights = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
            break
    names = {"word_embeddings.weight": "embeddings.word_embeddings.weight",
             "position_embeddings.weight": "embeddings.position_embeddings.weight",
             "token_type_embeddings.weight": "embeddings.token_type_embeddings.weight",
             "embedding_norm.weight": "embeddings.LayerNorm.weight", "embedding_norm.bias": "embeddings.LayerNorm.bias"}
    for i in range(layers):
        ours, theirs = f"layers.{i}.", f"encoder.layer.{i}."
        for part in ("weight", "bias"):
            names |= {f"{ours}attention_out.{part}": f"{theirs}attention.output.dense.{part}",
                      f"{ours}attention_norm.{part}": f"{theirs}attention.output.LayerNorm.{part}",
                      f"{ours}up.{part}": f"{theirs}intermediate.dense.{part}",
                      f"{ours}down.{part}": f"{theirs}output.dense.{part}",
                      f"{ours}output_norm.{part}": f"{theirs}output.LayerNorm.{part}"}
    try:
        state = {ours: weights[theirs] for ours, theirs in names.items()}
        for i in range(layers):
            for part in ("weight", "bias"):
                state[f"layers.{i}.qkv.{part}"] = torch.cat(
                    [weights[f"encoder.layer.{i}.attention.self.{p}.{part}"] for p in ("query", "key", "value")])
    except KeyError:
        return None
    return state
