"""The embed step on a Ray cluster: Ray Data streams texts through an actor pool, each actor holding one model.

The driver (the Dagster step) sends the texts the cache lacks as blocks of `batch_size`; every actor loads the
model once, on a CPU or on a GPU (`num_gpus`), and returns (text_hash, vector) rows that stream back as they finish,
so the step commits them to the embedding cache batch by batch. A killed actor is restarted and its task retried
(Ray Data's actor pools default to max_restarts=-1, max_task_retries=-1); a row that comes back twice is written
once (`fill_cache`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ragindex.config import ComputeConfig, EmbedderConfig

LOCAL_HOST = "127.0.0.1"
STREAM_ROWS = 1024  # rows per batch handed back to the driver (one cache commit each)
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
LOOPBACK_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": Ray keeps every node address on 127.0.0.1 (read on import)


def is_loopback(address: str | None) -> bool:
    """No address (a local head is started) or one on this machine's loopback interface."""
    host = (address or "127.0.0.1").split("://")[-1].rsplit(":", 1)[0]
    return host in ("127.0.0.1", "localhost")


def connect(compute: ComputeConfig) -> str:
    """Join the configured cluster (else $RAY_ADDRESS), or start a local head on 127.0.0.1; once per process.
    Returns how, in words. A local or loopback cluster stays on 127.0.0.1 (else Ray advertises the host's IP)."""
    address = compute.address or os.environ.get("RAY_ADDRESS")
    if is_loopback(address):
        os.environ.setdefault(LOOPBACK_ONLY, "0")
    import ray
    import ray.data

    if not ray.is_initialized():
        options = {"logging_level": logging.WARNING, "log_to_driver": False,
                   "runtime_env": {"env_vars": OFFLINE_ENV}}
        if address:
            ray.init(address=address, **options)
        else:
            # "local": always a new head, never a stale one named in /tmp/ray/ray_current_cluster
            ray.init(address="local", include_dashboard=False, _node_ip_address=LOCAL_HOST, **options)
        ray.data.DataContext.get_current().enable_progress_bars = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
    cpus = int(ray.cluster_resources().get("CPU", 0))
    gpus = int(ray.cluster_resources().get("GPU", 0))
    how = f"joined the Ray cluster at {address}" if address else f"started a local Ray head on {LOCAL_HOST}"
    return f"{how} ({cpus} CPUs, {gpus} GPUs)"


class EmbedActor:
    """One model replica: loaded when the actor starts, then called with blocks of texts."""

    def __init__(self, model: str, batch_size: int, device: str, precision: str):
        from ragindex.embedding import load_embedder

        self.embedder = load_embedder(model, batch_size, device, precision)

    def __call__(self, batch: pa.Table) -> pa.Table:
        vectors = self.embedder.embed(batch.column("text").to_pylist())
        flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).ravel())
        return pa.table({"text_hash": batch.column("text_hash"),
                         "vector": pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])})


@dataclass(frozen=True)
class RayEmbedder:
    """`embed_stream` for `fill_cache`: the texts fanned out over an actor pool of the connected cluster."""

    compute: ComputeConfig
    embedder: EmbedderConfig

    def dataset(self, hashes: Sequence[str], texts_by_hash: dict[str, str]):
        """The lazy Ray Data pipeline: blocks of texts -> actor pool -> (text_hash, vector)."""
        import ray.data

        size = self.compute.batch_size
        blocks = [pa.table({"text_hash": pa.array(hashes[i : i + size], pa.string()),
                            "text": pa.array([texts_by_hash[h] for h in hashes[i : i + size]], pa.string())})
                  for i in range(0, len(hashes), size)]
        device = "cuda" if self.compute.num_gpus else "cpu"
        return ray.data.from_arrow(blocks).map_batches(
            EmbedActor, fn_constructor_kwargs={"model": self.embedder.model, "batch_size": self.embedder.batch_size,
                                               "device": device, "precision": self.embedder.precision},
            batch_size=size, batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=self.compute.num_actors),
            num_cpus=self.compute.cpus_per_actor, num_gpus=self.compute.num_gpus or None)

    def runtime_info(self) -> dict:
        """What embedded, for the build's record: the engine, its actors and the precision they were asked for."""
        return {"backend": "ray", "actors": self.compute.num_actors, "precision": self.embedder.precision,
                "num_gpus": self.compute.num_gpus}

    def embed_stream(self, hashes: Sequence[str], texts_by_hash: dict[str, str]
                     ) -> Iterator[tuple[list[str], np.ndarray]]:
        """(hashes, vectors) as the actors finish them, STREAM_ROWS at a time."""
        for batch in self.dataset(hashes, texts_by_hash).iter_batches(batch_size=STREAM_ROWS,
                                                                       batch_format="pyarrow"):
            vectors = np.asarray(batch.column("vector").combine_chunks().flatten(), dtype=np.float32)
            yield batch.column("text_hash").to_pylist(), vectors.reshape(batch.num_rows, -1)
