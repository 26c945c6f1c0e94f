"""The loaded model: precision and backend chosen at load time from the hardware and a probe.

The torch module is the lean `BertEncoder` for plain BERT checkpoints (all-MiniLM-L6-v2 and most sentence
encoders), else transformers' model with pooling.

Precision (`embedder.precision`): `auto` considers bf16 (the encoder's GEMMs in bf16, or torch autocast for the
transformers fallback) only where the CPU has native bf16 (avx512_bf16 or amx_bf16 in /proc/cpuinfo) or on CUDA
(bf16 where supported, else fp16), and keeps it only if a probe batch embeds within FINGERPRINT_MIN_COSINE of fp32;
everywhere else fp32. int8 (ONNX Runtime dynamic quantization) is used only when asked for. On a CPU bulk
embedding runs in torch bf16 where it is allowed (about twice either fp32 backend), else in the faster, timed at
load on one batch, of ONNX Runtime fp32 (the model's graph written once into `onnx_dir`: by bert_onnx for a
BertEncoder, else traced by torch.onnx) and torch fp32.
Queries (a few texts) run fp32 on their own ONNX Runtime session: a short query is bound by reading the weights;
it gets two threads where a core is idle and one on a busy machine (onnx_session.query_threads).
"""

from __future__ import annotations

import copy
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path

import numpy as np
import torch

from ragindex.bert_encoder import BertEncoder, bulk_copy, load_bert
from ragindex.bert_onnx import weights_file, write_bert_onnx
from ragindex.embedding import FINGERPRINT_MIN_COSINE, PADDING_FLOOR, ModelFingerprint
from ragindex.errors import ConfigError
from ragindex.onnx_session import fp32_export, onnx_runner, query_runner

log = logging.getLogger(__name__)

NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
REPORTED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile")
ONNX_MIN_COSINE = 0.99999  # the exported graph computes the fp32 function: anything less is an export bug
PROBE_TEXTS = (
    "how does the with statement work",
    "x",
    "Daniel Gabriel Fahrenheit was the German physicist who invented the alcohol thermometer in 1709 and the "
    "mercury thermometer in 1714; in 1724 he introduced the temperature scale that bears his name. " * 3,
    "A table stores rows of vectors, and an index over them answers nearest-neighbour queries quickly.",
    "monotonic increasing (of a function): always increasing or remaining constant, and never decreasing",
    "Caching embeddings by the hash of their text means an unchanged chunk is never embedded twice.",
)
Runner = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (input_ids, attention_mask) int64 -> float32 vectors


def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of /proc/cpuinfo (empty where it cannot be read)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def choose_precision(requested: str, device: str, flags: frozenset[str], cuda_bf16: bool = False) -> str:
    """The precision to try before the probe: never bf16 on a CPU without native bf16, int8 only on request."""
    if requested == "int8":
        return "int8"
    if requested == "fp32":
        return "fp32"
    if device == "cuda":
        return "bf16" if cuda_bf16 else "fp16"
    return "bf16" if flags & NATIVE_BF16_FLAGS else "fp32"


class PooledModel(torch.nn.Module):
    """The transformer plus pooling and normalisation, so torch and the ONNX graph return final vectors."""

    def __init__(self, model: torch.nn.Module, pooling: str, normalize: bool):
        super().__init__()
        self.model, self.pooling, self.normalize = model, pooling, normalize

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        pooled = pooled.float()
        return torch.nn.functional.normalize(pooled, p=2, dim=1) if self.normalize else pooled


def fp32_model(model_dir: Path, fingerprint: ModelFingerprint) -> torch.nn.Module:
    """The fp32 reference: the lean BertEncoder where the checkpoint is a plain BERT, else transformers' model
    with pooling (slower to import and to run, same function)."""
    model = load_bert(model_dir, fingerprint.pooling, fingerprint.normalize)
    if model is not None:
        return model
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    hf_model = AutoModel.from_pretrained(str(model_dir), local_files_only=True).eval()
    if getattr(hf_model, "pooler", None) is not None:
        hf_model.pooler = None  # BERT's CLS pooler feeds nothing we return
    return PooledModel(hf_model, fingerprint.pooling, fingerprint.normalize).eval()


def low_precision_copy(model: PooledModel, dtype: torch.dtype) -> PooledModel:
    """A copy whose Linear weights are cast to `dtype` once. Autocast would cast every fp32 weight again on each
    call (its cast cache works only for tensors that require grad); pre-cast weights give the same numbers, since
    autocast runs those matmuls in `dtype` anyway. Norms stay fp32. Measured: +1.5% on an idle 2-core CPU, more
    under load, where the casts' memory traffic waits for the cores."""
    low = copy.deepcopy(model)
    for module in low.modules():
        if isinstance(module, torch.nn.Linear):
            module.to(dtype)
    return low.eval()


def torch_runner(model: torch.nn.Module, device: str, autocast: torch.dtype | None,
                 threads: int | None = None) -> Runner:
    """Run the torch module (autocast to bf16/fp16 when given); `threads` pins the thread count per call."""

    def run(input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        previous = torch.get_num_threads()
        if threads:
            torch.set_num_threads(threads)
        try:
            with torch.inference_mode(), torch.autocast(device, dtype=autocast) if autocast else nullcontext():
                ids, attention = torch.from_numpy(input_ids).to(device), torch.from_numpy(mask).to(device)
                return model(ids, attention).float().cpu().numpy()
        finally:
            if threads:
                torch.set_num_threads(previous)

    return run


def export_onnx(model: torch.nn.Module, path: Path) -> Path:
    """Export once (fp32, dynamic batch and length); an existing file for this fingerprint is reused. A
    BertEncoder is written node by node (bert_onnx: 0.15 s, and faster to run), any other model traced by
    torch.onnx (~0.8 s for MiniLM)."""
    if path.is_file():
        return path
    if isinstance(model, BertEncoder):
        return write_bert_onnx(model, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ids = torch.ones(2, 16, dtype=torch.int64)
    mask = torch.ones(2, 16, dtype=torch.int64)
    mask[1, 8:] = 0  # traced with padding, else the tracer drops the attention mask as all-ones
    axes = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
            "embedding": {0: "batch"}}
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (ids, mask), str(tmp), input_names=["input_ids", "attention_mask"],
                          output_names=["embedding"], dynamic_axes=axes, opset_version=17, dynamo=False)
    model.eval()  # the exporter restores the mode it found; make sure dropout stays off
    os.replace(tmp, path)
    return path


def quantize_int8(fp32_path: Path, path: Path) -> Path:
    """ONNX Runtime dynamic quantization (int8 weights per channel, activations quantized at run time)."""
    if path.is_file():
        return path
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))  # its pre-processing advice
    quantize_dynamic(str(fp32_path), str(tmp), weight_type=QuantType.QInt8, per_channel=True)
    os.replace(tmp, path)
    return path


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float((a * b).sum(1).min())


def fastest(runners: dict[str, Runner], batch: tuple[np.ndarray, np.ndarray], rounds: int = 2) -> dict[str, float]:
    """Best-of seconds of each runner on `batch`, fastest first. The runners take turns, round by round, so a
    burst of load from other processes slows every contender alike rather than the one that ran during it; the
    first round also pays each runner's one-off cost of a new shape (no separate warm-up call)."""
    times = dict.fromkeys(runners, float("inf"))
    for _ in range(rounds):
        for name, run in runners.items():
            start = time.perf_counter()
            run(*batch)
            times[name] = min(times[name], time.perf_counter() - start)
    log.info("embedding backend timings (s): %s", times)
    return dict(sorted(times.items(), key=lambda item: item[1]))


@dataclass
class Runtime:
    """The chosen runners: `bulk` for embedding corpora, `query` for a few texts."""

    device: str
    precision: str
    backend: str
    query_backend: str
    bulk: Runner
    query: Runner
    probe_min_cosine: float
    flags: frozenset[str] = field(default_factory=frozenset)
    timings: dict[str, float] = field(default_factory=dict)  # the load-time race of the fp32 backends

    def info(self) -> dict:
        """What to record with a build (MLflow params, table metadata)."""
        return {"device": self.device, "precision": self.precision, "backend": self.backend,
                "query_backend": self.query_backend, "probe_min_cosine": round(self.probe_min_cosine, 7),
                "cpu_flags": sorted(self.flags & set(REPORTED_FLAGS)),
                "backend_timings_s": {name: round(t, 4) for name, t in self.timings.items()}}


def probe_batch(model_dir: Path, max_length: int, rows: int = 0, width: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The probe texts padded into one batch (mixed lengths exercise the mask); or a timing batch of `rows` texts
    from `width` tokens down to PADDING_FLOOR of it, the shape of a CPU bulk batch (embedding._batches), so a
    backend that skips padding is timed on the padding it will meet."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    ids = [e.ids[:max_length] for e in tokenizer.encode_batch(list(PROBE_TEXTS))]
    if rows:
        flat = [i for row in ids for i in row[1:-1]]
        text = [ids[0][0], *(flat * (width // len(flat) + 1))[: width - 2]]
        shortest = PADDING_FLOOR * width
        ids = [text[: round(width - (width - shortest) * row / rows) - 1] + [ids[0][-1]] for row in range(rows)]
    longest = max(map(len, ids))
    input_ids = np.zeros((len(ids), longest), dtype=np.int64)
    mask = np.zeros_like(input_ids)
    for row, token_ids in enumerate(ids):
        input_ids[row, : len(token_ids)] = token_ids
        mask[row, : len(token_ids)] = 1
    return input_ids, mask


def load_runtime(model_dir: Path, fingerprint: ModelFingerprint, device: str, precision: str,
                 onnx_dir: Path | None) -> Runtime:
    """Load the weights, pick precision and backends, and verify each against the fp32 torch reference."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and precision == "int8":
        raise ConfigError("embedder.precision: int8 runs on the CPU (ONNX Runtime); use device: cpu")
    flags = cpu_flags()
    candidate = choose_precision(precision, device, flags, device == "cuda" and torch.cuda.is_bf16_supported())
    model = fp32_model(model_dir, fingerprint).to(device).eval()
    probe = probe_batch(model_dir, fingerprint.max_length)
    fp32 = torch_runner(model, device, None)
    reference = fp32(*probe)
    low, low_cosine = None, 1.0
    if candidate in ("bf16", "fp16"):
        dtype = torch.bfloat16 if candidate == "bf16" else torch.float16
        if isinstance(model, BertEncoder):  # casts where its GEMMs need them, no autocast
            low = torch_runner(bulk_copy(model, dtype, device), device, None)
        else:
            low = torch_runner(low_precision_copy(model, dtype), device, dtype)
        low_cosine = min_cosine(low(*probe), reference)
        if low_cosine < FINGERPRINT_MIN_COSINE:
            log.warning("%s probe min cosine %.6f < %s: embedding in fp32", candidate, low_cosine,
                        FINGERPRINT_MIN_COSINE)
            low, low_cosine = None, 1.0
    if device == "cuda":  # one code path: the torch module, autocast when the probe allowed it
        run = low or fp32
        return Runtime(device, candidate if low else "fp32", "torch", "torch", run, run, low_cosine, flags)

    cache_dir = onnx_dir or Path(_process_tmp().name)
    fp32_id = replace(fingerprint, quantization="none").id  # the exported graph is the fp32 model's
    onnx_path = export_onnx(model, fp32_export(cache_dir, fp32_id))
    threads = torch.get_num_threads()
    if candidate == "int8":
        int8_path = quantize_int8(onnx_path, cache_dir / f"{fingerprint.id}-int8.onnx")
        bulk = onnx_runner(int8_path, threads)
        return Runtime(device, "int8", "onnxruntime", "onnxruntime", bulk, query_runner(int8_path),
                       min_cosine(bulk(*probe), reference), flags)
    onnx_bulk = onnx_runner(onnx_path, threads)
    onnx_cosine = min_cosine(onnx_bulk(*probe), reference)
    if onnx_cosine >= ONNX_MIN_COSINE:
        query, query_backend = query_runner(onnx_path), "onnxruntime"
    else:
        log.warning("ONNX export differs from torch (min cosine %.7f): embedding with torch", onnx_cosine)
        onnx_path.unlink(missing_ok=True)  # never picked up by a later process's query path
        weights_file(onnx_path).unlink(missing_ok=True)
        onnx_bulk, query, query_backend = None, torch_runner(model, device, None, threads=1), "torch"
    if low:  # native bf16 within tolerance: ~2x either fp32 backend on real batches (docs/benchmarks.md), no race
        return Runtime(device, candidate, "torch", query_backend, low, query, low_cosine, flags)
    # the race of the fp32 backends: torch (unpadded) against ONNX Runtime where its export is right. torch ties
    # ONNX Runtime at 16 rows of 128 tokens and leads by 13% at 32, as on real 64-row batches: 32 rows
    contenders = {"torch": torch_runner(bulk_copy(model, torch.float32, device), device, None)
                  if isinstance(model, BertEncoder) else fp32}
    if onnx_bulk:
        contenders["onnxruntime"] = onnx_bulk
    race = probe_batch(model_dir, fingerprint.max_length, rows=32, width=128)
    timings = fastest(contenders, race) if len(contenders) > 1 else {}
    winner = next(iter(timings), "torch")
    return Runtime(device, "fp32", winner, query_backend, contenders[winner], query, 1.0, flags, timings)


@cache
def _process_tmp() -> tempfile.TemporaryDirectory:
    """Where exports go when the caller gave no `onnx_dir`: one temporary directory per process, removed at exit."""
    return tempfile.TemporaryDirectory(prefix="ragindex-onnx-")
