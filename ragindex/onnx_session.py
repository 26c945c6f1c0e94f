"""ONNX Runtime sessions of an exported embedding model, without torch: what a single query needs to start fast."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

Runner = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (input ids, attention mask) -> pooled vectors


def fp32_export(onnx_dir: Path, fp32_fingerprint_id: str) -> Path:
    """Where the fp32 ONNX graph of a model is exported (kept only once it matched the torch reference)."""
    return onnx_dir / f"{fp32_fingerprint_id}-fp32.onnx"


def query_threads() -> int:
    """Threads for a single-query session, from the machine's state when it is created: two where a core is idle
    (2.9 ms against 4.5 ms on one thread for a short query, 2-core Zen 4), one on a busy machine (where two threads
    waited for each other: 7.0 ms against 4.5 ms with both cores taken)."""
    cores = os.cpu_count() or 1
    return 2 if cores >= 2 and runnable_now() + 1 <= cores else 1


def runnable_now() -> int:
    """Threads running or ready to run right now, this one included (/proc/loadavg; the 1-minute load average
    where it cannot be read, which lags: a build that ended a minute ago still counts)."""
    try:
        return int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
    except (OSError, IndexError, ValueError):
        return round(os.getloadavg()[0]) + 1


def onnx_runner(path: Path, threads: int, spin: bool = True) -> Runner:
    """An ONNX Runtime CPU session on `threads` threads (see query_threads for a query's); `spin=False` lets its
    idle threads sleep instead of spinning for the next call."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return session.run(None, {"input_ids": input_ids, "attention_mask": mask})[0]

    return run


def query_runner(path: Path) -> Runner:
    """The single-query runner: its session starts at the first query, with the threads the machine can give
    then (query_threads), not while a build's or the load-time race's threads still hold the cores. Its second
    thread sleeps between queries rather than spin: a hybrid query runs its keyword search in LanceDB's threads
    while the query embeds, and a spinning ONNX Runtime thread held the core they needed (2-core Zen 4, msmarco
    5k, 50 queries x 3, three alternated runs: hybrid p50 9.7-11.7 ms against 12.3-14.0 spinning; embedding
    2.5-2.6 ms against 2.0-2.2)."""
    session: list[Runner] = []

    def run(input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if not session:
            session.append(onnx_runner(path, query_threads(), spin=False))
        return session[0](input_ids, mask)

    return run
