"""A lean BERT sentence encoder: the checkpoint's weights in a few plain torch modules.

It computes what `transformers`' BertModel plus mean/CLS pooling computes (cosine >= 0.99999 to it and to
sentence-transformers in fp32, tests/test_bert_encoder.py) with less in the way: Q, K and V are one fused GEMM,
attention is `scaled_dot_product_attention`, and there is no per-call mask building or output bookkeeping.
`bulk_copy` makes the copy that embeds corpora: on a CPU it drops the padding (the GEMMs, norms and GELU see only
real tokens; only attention runs padded), and in bf16 its GEMMs use weights oneDNN has reordered once, with the
GELU fused into the up-projection, while the residual stream, the layer norms and the pooling stay fp32 (what
autocast computes, without autocast's casts at every op). Measured on an AVX512-BF16 CPU: 1.26x the padded bf16
copy on MS MARCO passages (docs/benchmarks.md). Loading needs `safetensors` (or torch for a .bin checkpoint),
not `transformers`, so the model loads in a fraction of the time. Checkpoints it does not cover (another
architecture, relative positions, another activation) return None from `load_bert`, and the caller falls back
to transformers.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {"gelu": "none", "gelu_new": "tanh", "gelu_pytorch_tanh": "tanh"}  # name -> F.gelu approximate
PREFIXES = ("bert.", "model.")  # checkpoints saved from a wrapper carry the BertModel under one of these
ROWS_HINT = 4096  # tokens per GEMM oneDNN lays the packed weights out for (any count runs; a bulk batch is ~6k)
TOKEN_STEP = 256  # unpadded GEMMs get a multiple of this many rows: few shapes, so the heap and oneDNN's
# primitive cache reuse their buffers (exact counts: +240 MiB RSS after 24k passages, docs/benchmarks.md)


Attend = Callable[[torch.Tensor, int], torch.Tensor]  # (fused Q/K/V rows, heads) -> attended rows


class EncoderLayer(nn.Module):
    """Self-attention and feed-forward, each with a post-norm residual (BERT's layout)."""

    def __init__(self, hidden: int, intermediate: int, heads: int, eps: float, approximate: str):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.attention_out = nn.Linear(hidden, hidden)
        self.attention_norm = nn.LayerNorm(hidden, eps=eps)
        self.up = nn.Linear(hidden, intermediate)
        self.activation: nn.Module = nn.GELU(approximate)
        self.down = nn.Linear(intermediate, hidden)
        self.output_norm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor, attend: Attend) -> torch.Tensor:
        """x: (..., hidden) fp32 token states, padded (batch, tokens, hidden) or unpadded (tokens, hidden);
        `attend` runs attention over them in their layout."""
        dtype = self.attention_out.bias.dtype  # the GEMMs' dtype: fp32, or bf16/fp16 in a low-precision copy
        attended = self.attention_out(attend(self.qkv(x.to(dtype)), self.heads))
        x = self.attention_norm(x + attended.to(x.dtype))
        inner = self.activation(self.up(x.to(dtype)))
        return self.output_norm(x + self.down(inner).to(x.dtype))


class PackedLinear(nn.Module):
    """A bf16 Linear whose weight oneDNN reordered once into its GEMM layout (what torch.compile's CPU freezing
    does), optionally with the GELU fused into the GEMM's epilogue."""

    def __init__(self, linear: nn.Linear, gelu: str | None = None):
        super().__init__()
        weight = linear.weight.detach().to(torch.bfloat16)
        self.weight = torch.ops.mkldnn._reorder_linear_weight(weight, ROWS_HINT)
        self.bias = linear.bias.detach().to(torch.bfloat16)
        self.attr, self.algorithm = ("gelu", gelu) if gelu else ("none", "")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, self.attr, [], self.algorithm)


class BertEncoder(nn.Module):
    """Token ids and attention mask (int64) in, pooled (and normalised) fp32 sentence vectors out."""

    def __init__(self, config: dict, pooling: str, normalize: bool):
        super().__init__()
        hidden, eps = config["hidden_size"], config.get("layer_norm_eps", 1e-12)
        self.pooling, self.normalize = pooling, normalize
        # the tables are allocated, not randomly initialised (the checkpoint overwrites them): 0.06 s saved at load
        self.word_embeddings = _embedding(config["vocab_size"], hidden)
        self.position_embeddings = _embedding(config["max_position_embeddings"], hidden)
        self.token_type_embeddings = _embedding(config.get("type_vocab_size", 2), hidden)
        self.embedding_norm = nn.LayerNorm(hidden, eps=eps)
        self.layers = nn.ModuleList(
            EncoderLayer(hidden, config["intermediate_size"], config["num_attention_heads"], eps,
                         ACTIVATIONS[config.get("hidden_act", "gelu")])
            for _ in range(config["num_hidden_layers"]))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        batch, tokens = input_ids.shape
        mask = attention_mask.bool()[:, None, None, :]

        def attend(qkv: torch.Tensor, heads: int) -> torch.Tensor:
            return _attention(qkv, mask, batch, tokens, heads)

        x = self._embed(input_ids, torch.arange(tokens, device=input_ids.device))
        for layer in self.layers:
            x = layer(x, attend)
        if self.pooling == "cls":
            pooled = x[:, 0]
        else:
            weights = attention_mask.unsqueeze(-1).to(x.dtype)
            pooled = (x * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, p=2, dim=1) if self.normalize else pooled

    def forward_unpadded(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The same function over the real tokens only, (tokens, hidden): the GEMMs, norms and GELU skip the
        padding; attention scatters the tokens into the padded layout and gathers its output back. The token count
        is rounded up to a multiple of TOKEN_STEP with padding positions (computed, then left out of the pooling),
        so GEMMs come in few shapes."""
        batch, tokens = input_ids.shape
        flat = attention_mask.reshape(-1)
        kept = flat.nonzero().squeeze(1)  # flat (row * tokens + position) of the tokens computed
        fill = min(-len(kept) % TOKEN_STEP, flat.numel() - len(kept))
        if fill:
            kept = torch.cat([kept, (flat == 0).nonzero().squeeze(1)[:fill]]).sort().values
        mask = attention_mask.bool()[:, None, None, :]

        def attend(qkv: torch.Tensor, heads: int) -> torch.Tensor:
            padded = qkv.new_zeros(batch * tokens, qkv.shape[1]).index_copy_(0, kept, qkv)
            return _attention(padded, mask, batch, tokens, heads).reshape(batch * tokens, -1).index_select(0, kept)

        x = self._embed(input_ids.reshape(-1).index_select(0, kept), kept % tokens)
        for layer in self.layers:
            x = layer(x, attend)
        if self.pooling == "cls":
            pooled = x.index_select(0, torch.searchsorted(kept, torch.arange(batch) * tokens))
        else:
            real = flat.index_select(0, kept).unsqueeze(1).to(x.dtype)
            counts = attention_mask.sum(1, keepdim=True).clamp(min=1).to(x.dtype)
            pooled = x.new_zeros(batch, x.shape[1]).index_add_(0, kept // tokens, x * real) / counts
        return F.normalize(pooled, p=2, dim=1) if self.normalize else pooled

    def _embed(self, input_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions) + self.token_type_embeddings.weight[0]
        return self.embedding_norm(x)


def _embedding(rows: int, hidden: int) -> nn.Embedding:
    return nn.Embedding(rows, hidden, _weight=torch.empty(rows, hidden))


def _attention(qkv: torch.Tensor, mask: torch.Tensor, batch: int, tokens: int, heads: int) -> torch.Tensor:
    """Fused Q/K/V rows of a padded batch -> attended rows, (batch, tokens, hidden)."""
    hidden = qkv.shape[-1] // 3
    q, k, v = qkv.view(batch, tokens, 3, heads, hidden // heads).permute(2, 0, 3, 1, 4).unbind(0)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2).reshape(batch, tokens, hidden)


class Unpadded(nn.Module):
    """An encoder run over real tokens only (`BertEncoder.forward_unpadded`): bulk embedding on a CPU, where
    padding costs compute."""

    def __init__(self, encoder: BertEncoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.encoder.forward_unpadded(input_ids, attention_mask)


def bulk_copy(encoder: BertEncoder, dtype: torch.dtype, device: str) -> nn.Module:
    """The module that embeds corpora with GEMMs in `dtype` (fp32, bf16 or fp16); norms, residuals, embeddings
    and pooling stay fp32. A low-precision dtype makes a copy (the original is untouched); bf16 GEMMs on a CPU use
    oneDNN-packed weights with the GELU fused where this torch build has those kernels. On a CPU it computes real
    tokens only."""
    bulk = encoder
    if dtype != torch.float32:
        bulk = copy.deepcopy(encoder)
        for layer in bulk.layers:
            for name in ("qkv", "attention_out", "up", "down"):
                getattr(layer, name).to(dtype)
        if device == "cpu" and dtype == torch.bfloat16 and _onednn_packing():
            for layer in bulk.layers:
                layer.qkv, layer.attention_out, layer.down = (
                    PackedLinear(layer.qkv), PackedLinear(layer.attention_out), PackedLinear(layer.down))
                layer.up, layer.activation = PackedLinear(layer.up, gelu=layer.activation.approximate), nn.Identity()
    return (Unpadded(bulk) if device == "cpu" else bulk).eval()


def _onednn_packing() -> bool:
    """Whether this torch build has oneDNN's packed-weight linear (inductor's CPU kernels use the same ops)."""
    try:
        return torch.backends.mkldnn.is_available() and bool(torch.ops.mkldnn._linear_pointwise.default)
    except (AttributeError, RuntimeError):
        return False


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
