"""Incremental re-embedding on real history: lancedb-docs 2024-12-31, 2025-02-28, 2025-05-31, then 2025-05-31 again,
indexed into ONE table through the real Dagster index job (in-process), one directory source `docs` whose folder is
a symlink re-pointed at each snapshot (document ids are paths relative to it, so they line up across snapshots).

The benchmark counts on its own, from the files, what each step must do: documents added / modified / deleted /
unchanged (content hashes against the previous snapshot), the chunks of a fresh chunking, and the distinct chunk
texts never seen before with this model (= what must be embedded), plus the document-level baseline (every chunk of
every added or modified document). It then checks the pipeline against those counts, that the unchanged re-run embeds
nothing in under 10% of the first build's time, and that the table finally equals a fresh build of 2025-05-31
(made through the build stages into another table with its own, empty embedding cache): same chunk ids and texts,
vectors within 1e-5.

    .venv/bin/python benchmarks/bench_incremental.py [--corpus ../shared/corpora/lancedb-docs] [--work DIR] \
        [--precision fp32]
    .venv/bin/python benchmarks/bench_incremental.py --limit-docs 8     # smoke run: 8 paths of each snapshot

`--limit-docs N` copies the same N relative paths (an even sample of all snapshots' paths) of each snapshot into the
working folder and runs on those; the time check (< 10%) is not made then, Dagster's fixed cost dominates.

Writes benchmarks/out/incremental.md and prints it; exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from machine_info import cpu_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
STEPS = ["2024-12-31", "2025-02-28", "2025-05-31", "2025-05-31"]
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass
class Snapshot:
    """What the files of one snapshot are, counted without the pipeline."""

    docs: dict[str, str]  # doc id -> content hash
    chunks: dict[str, list[tuple[str, str]]]  # doc id -> [(chunk id, text hash)]
    texts: set[str] = field(default_factory=set)

    @property
    def chunk_ids(self) -> set[str]:
        return {c for chunks in self.chunks.values() for c, _ in chunks}


def read_snapshot(folder: Path, chunker) -> Snapshot:
    from ragindex.config import SourceConfig
    from ragindex.documents import Document
    from ragindex.sources import read_source

    snap = Snapshot({}, {})
    for item in read_source(SourceConfig(name="docs", type="directory", path=str(folder))):
        if isinstance(item, Document):
            snap.docs[item.doc_id] = item.content_hash
            snap.chunks[item.doc_id] = [(c.chunk_id, c.text_hash) for c in chunker.chunk(item)]
    snap.texts = {h for chunks in snap.chunks.values() for _, h in chunks}
    return snap


def expected_step(previous: Snapshot | None, current: Snapshot, seen_texts: set[str]) -> dict:
    before = previous.docs if previous else {}
    added = sorted(set(current.docs) - set(before))
    deleted = sorted(set(before) - set(current.docs))
    common = set(current.docs) & set(before)
    modified = sorted(d for d in common if current.docs[d] != before[d])
    changed = added + modified
    return {
        "added": len(added), "modified": len(modified), "deleted": len(deleted),
        "unchanged": len(common) - len(modified),
        "chunks_total": len(current.chunk_ids),
        "embedded": len(current.texts - seen_texts),
        "deleted_chunks": len((previous.chunk_ids if previous else set()) - current.chunk_ids),
        "doc_level": sum(len(current.chunks[d]) for d in changed),
    }


def machine() -> str:
    cpu = cpu_model()
    import torch

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return (f"{cpu}, {os.cpu_count()} cores (shared; load average {load:.1f} at start), {device}, "
            f"torch {torch.__version__} with {torch.get_num_threads()} threads, Python {platform.python_version()}")


def sample_snapshots(corpus: Path, work: Path, limit: int) -> Path:
    """A copy of each snapshot holding only `limit` relative paths, the same ones in every snapshot (an even
    sample of the sorted union of their paths, so additions, deletions and modifications can all occur)."""
    paths = sorted({p.relative_to(corpus / name) for name in dict.fromkeys(STEPS)
                    for p in (corpus / name).rglob("*") if p.is_file()})
    chosen = paths[:: max(1, len(paths) // limit)][:limit]
    root = work / "snapshots"
    for name in dict.fromkeys(STEPS):
        for rel in chosen:
            if (corpus / name / rel).is_file():
                (root / name / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(corpus / name / rel, root / name / rel)
        (root / name).mkdir(parents=True, exist_ok=True)
    return root


def run_job(config: Path, instance, partition) -> tuple[dict, float]:
    from ragindex_app.pipelines.factory import build_definitions

    job = build_definitions(config).resolve_job_def("index_job")
    start = time.perf_counter()
    result = job.execute_in_process(instance=instance, partition_key=partition.key, raise_on_error=False,
                                    tags={"trigger": "benchmark"}, run_config=QUIET)
    seconds = time.perf_counter() - start
    if not result.success:
        from ragindex_app.pipelines.runner import failure_message

        raise SystemExit(f"index run failed: {failure_message(result)}")
    nodes = {name: result.output_for_node(name) for name in ("documents", "chunks", "embeddings", "search_index")}
    return nodes, seconds


def fresh_build(folder: Path, work: Path, project, embedder, chunker):
    """2025-05-31 from scratch through the build stages: another table, another (empty) embedding cache and
    staging database."""
    from ragindex.build import chunk_documents, collect_documents, embed_chunks, write_index
    from ragindex.config import SourceConfig
    from ragindex.embedding_cache import EmbeddingCache
    from ragindex.index_store import IndexStore
    from ragindex.staging import StageStore

    index = project.index.model_copy(update={"uri": str(work / "fresh" / "lancedb"), "table": "fresh"})
    store = IndexStore.at(index)
    cache = EmbeddingCache(str(work / "fresh" / "cache"), embedder.fingerprint.id, embedder.dimension)
    stages = StageStore(str(work / "fresh" / "staging"))
    source = SourceConfig(name="docs", type="directory", path=str(folder))
    docs_stage, chunk_stage = stages.documents(store.name, source.name), stages.chunks(store.name, source.name)
    start = time.perf_counter()
    docs = collect_documents(source, docs_stage, store.name, "fresh")
    chunks = chunk_documents(docs, docs_stage, chunk_stage, chunker, "fresh")
    vectors = embed_chunks(chunks, chunk_stage, cache, lambda: embedder, embedder.fingerprint.as_dict(),
                           titles=index.title_vectors != "off")
    write_index(chunks, chunk_stage, store, cache, embedder.fingerprint.id)
    return store, vectors, time.perf_counter() - start


def table_rows(store) -> dict[str, tuple[str, object]]:
    import numpy as np

    table = store.open().to_arrow().select(["chunk_id", "text", "vector"])
    ids = table.column("chunk_id").to_pylist()
    vectors = np.asarray(table.column("vector").combine_chunks().values, dtype=np.float32).reshape(len(ids), -1)
    return {i: (t, v) for i, t, v in zip(ids, table.column("text").to_pylist(), vectors, strict=True)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=str(ROOT.parent / "shared" / "corpora" / "lancedb-docs"))
    parser.add_argument("--work", help="working folder (default: a new temporary folder)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "incremental.md"))
    parser.add_argument("--precision", default="fp32",
                        help="embedder.precision of the runs (default fp32: with `auto` a load may pick bf16, whose "
                             "vectors depend on the batch a text is in, and the 1e-5 equality check cannot hold)")
    parser.add_argument("--limit-docs", type=int, default=0,
                        help="smoke run: only this many relative paths of each snapshot (0: all)")
    args = parser.parse_args(argv)
    corpus = Path(args.corpus).resolve()
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-incremental-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    if args.limit_docs:
        corpus = sample_snapshots(corpus, work, args.limit_docs)
    os.environ["RAGINDEX_DATA_DIR"] = str(work / "data")
    os.environ["DAGSTER_HOME"] = str(work / "dagster")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    (work / "dagster").mkdir(exist_ok=True)

    import yaml
    from dagster import DagsterInstance

    from ragindex.chunking import make_chunker
    from ragindex.config import load_config
    from ragindex.embedding import configured_embedder
    from ragindex.index_store import IndexStore
    from ragindex_app.assets.partitions import BuildPartition

    host = machine()
    link = work / "docs"
    config = work / "config.yaml"
    config.write_text(yaml.safe_dump({
        "sources": [{"name": "docs", "type": "directory", "path": str(link)}],
        "index": {"uri": str(work / "data" / "lancedb"), "table": "chunks"},
        "embedder": {"precision": args.precision},
    }))
    project = load_config(config)
    embedder = configured_embedder(project.embedder)  # the job's resource: same settings, same cached embedder
    chunker = make_chunker(project.chunker, embedder)
    snapshots = {name: read_snapshot(corpus / name, chunker) for name in dict.fromkeys(STEPS)}

    instance = DagsterInstance.get()
    partition = BuildPartition("docs", project.index.table)  # a new table: the logical name is the physical one
    partition.register(instance)
    rows, checks, seen = [], [], set()
    previous = None
    for step, name in enumerate(STEPS, start=1):
        if link.is_symlink():
            link.unlink()
        link.symlink_to(corpus / name, target_is_directory=True)
        expected = expected_step(previous, snapshots[name], seen)
        nodes, seconds = run_job(config, instance, partition)
        docs, chunks, vectors, build = (nodes[k] for k in ("documents", "chunks", "embeddings", "search_index"))
        got = {**docs.counts(), "chunks_total": IndexStore.at(project.index).count("docs"),
               "embedded": vectors.embedded, "deleted_chunks": build.deleted}
        stages = docs.seconds + chunks.seconds + vectors.seconds + build.seconds
        rows.append({"step": step, "snapshot": name, **got, "chunked": chunks.chunks, "reused": vectors.reused,
                     "expected_embedded": expected["embedded"], "doc_level": expected["doc_level"],
                     "seconds": seconds, "stages": stages, "embed_seconds": vectors.seconds})
        for key in ("added", "modified", "deleted", "unchanged", "chunks_total", "embedded", "deleted_chunks"):
            checks.append((f"step {step} ({name}): {key} {got[key]} == independent count {expected[key]}",
                           got[key] == expected[key]))
        print(f"step {step} {name}: {got} in {seconds:.1f} s (stages {stages:.1f} s); expected {expected}",
              flush=True)
        seen |= snapshots[name].texts
        previous = snapshots[name]

    first, rerun = rows[0], rows[-1]
    checks.append((f"unchanged re-run embeds 0 chunks (embedded {rerun['embedded']})", rerun["embedded"] == 0))
    share = rerun["seconds"] / first["seconds"]
    timing = (f"unchanged re-run takes {rerun['seconds']:.1f} s = {share:.1%} of the first full build "
              f"({first['seconds']:.1f} s) < 10%")
    if args.limit_docs:
        notes = [f"{timing}: not checked (--limit-docs {args.limit_docs} smoke run)"]
    else:
        notes = []
        checks.append((timing, share < 0.10))

    store, fresh_vectors, fresh_seconds = fresh_build(corpus / STEPS[-1], work, project, embedder, chunker)
    ours, theirs = table_rows(IndexStore.at(project.index)), table_rows(store)
    checks.append((f"same chunk ids as a fresh build ({len(ours)} vs {len(theirs)})", set(ours) == set(theirs)))
    common = set(ours) & set(theirs)
    checks.append(("same texts for every chunk id", all(ours[i][0] == theirs[i][0] for i in common)))
    worst = max((float(abs(ours[i][1] - theirs[i][1]).max()) for i in common), default=float("inf"))
    checks.append((f"vectors within 1e-5 of the fresh build's (max abs difference {worst:.2e})", worst <= 1e-5))

    lines = [
        "# Incremental re-embedding on real history (lancedb-docs)",
        "",
        f"Date {dt.date.today().isoformat()}. Machine: {host}. Model {embedder.fingerprint.name} "
        f"(dim {embedder.dimension}, precision {args.precision}: {embedder.precision or 'not loaded'}, "
        f"backend {embedder.backend or 'not loaded'}), chunker max_tokens {project.chunker.max_tokens} / overlap "
        f"{project.chunker.overlap_tokens}.",
        "",
        "Path: the real Dagster `index_job` executed in-process (`execute_in_process`, one (source, table) partition "
        f"`docs` / `{project.index.table}`), "
        "every asset of the job included (ingest, chunk, embed, index with retention, quality checks, evaluation, "
        "champion registration, datasets, drift). One table; the source folder is a symlink re-pointed at each "
        "snapshot. `seconds` is the whole job; `stages` is documents + chunks + embeddings + index as the assets "
        "report them (the rest is Dagster, MLflow, quality checks, drift and datasets).",
        "",
        "| step | snapshot | docs added | modified | deleted | unchanged | chunks total | chunks (re)cut | embedded "
        "| expected embedded | reused | chunks deleted | document-level would embed | seconds | stages s | embed s |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['step']} | {r['snapshot']} | {r['added']} | {r['modified']} | {r['deleted']} | "
                     f"{r['unchanged']} | {r['chunks_total']} | {r['chunked']} | {r['embedded']} | "
                     f"{r['expected_embedded']} | {r['reused']} | {r['deleted_chunks']} | {r['doc_level']} | "
                     f"{r['seconds']:.1f} | {r['stages']:.1f} | {r['embed_seconds']:.1f} |")
    total = sum(r["embedded"] for r in rows)
    baseline = sum(r["doc_level"] for r in rows)
    lines += [
        "",
        f"Over the four steps: {total} chunks embedded, against {baseline} for a document-level pipeline "
        f"({1 - total / baseline:.0%} fewer); after step 1: {total - first['embedded']} against "
        f"{baseline - first['doc_level']}.",
        "",
        "`expected embedded` = distinct chunk texts of the snapshot never embedded before with this model, counted by "
        "the benchmark from a fresh chunking of every snapshot. `document-level would embed` = every chunk of every "
        "added or modified document. Unchanged files are re-hashed when the snapshot folder changes (their mtimes "
        "differ) and stay 'unchanged' because their content hash is equal.",
        "",
        f"Fresh build of {STEPS[-1]} for the equality check: build stages directly into another table with an empty "
        f"embedding cache, {fresh_vectors.embedded} texts embedded in {fresh_seconds:.1f} s.",
        "",
        "Checks:",
        "",
        *[f"- [{'x' if ok else ' '}] {text}" for text, ok in checks],
        *[f"- [-] {text}" for text in notes],
    ]
    text = "\n".join(lines) + "\n"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    instance.dispose()
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
