"""A no-op run against a cold build: `ragindex index` twice on a fresh data directory, per corpus.

The second run finds nothing changed; it must cost at most 5% of the cold build (the issue's goal) and load no
model, add no LanceDB tag and register no MLflow model version. Each run is a new process, as a user's or a
sensor's would be; both the Dagster run's own time and the whole process's wall time are reported.

    python benchmarks/bench_noop.py [--json] [--corpus pydoc|lancedb-docs ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from machine_info import cpu_flags, cpu_model

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CORPORA = {
    "pydoc": {"name": "pydoc", "type": "pydoc_topics"},
    "lancedb-docs": {"name": "docs", "type": "directory",
                     "path": str(SHARED / "corpora" / "lancedb-docs" / "2025-05-31")},
}


def index_once(config: Path, source: str, env: dict) -> dict:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "ragindex_app.cli.main", "--config", str(config), "index",
                           "--source", source, "--json"], env=env, capture_output=True, text=True, check=True)
    summary = json.loads(done.stdout)
    summary["process_seconds"] = round(time.perf_counter() - start, 2)
    return summary


def versions(data: Path, name: str) -> tuple[int, int]:
    """(LanceDB tags of the table, MLflow model versions of its retriever)."""
    import lancedb
    import mlflow

    tags = len(lancedb.connect(str(data / "lancedb")).open_table("chunks").tags.list())
    client = mlflow.MlflowClient(f"sqlite:///{data / 'mlflow' / 'mlflow.db'}")
    return tags, len(client.search_model_versions(f"name = '{name}'"))


def bench(corpus: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="ragindex-noop-") as tmp:
        work = Path(tmp)
        config = work / "config.yaml"
        config.write_text(yaml.safe_dump({"sources": [CORPORA[corpus]]}))
        (work / "dagster").mkdir()
        (work / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        env = {**os.environ, "RAGINDEX_DATA_DIR": str(work / "data"), "DAGSTER_HOME": str(work / "dagster"),
               "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        env.pop("MLFLOW_TRACKING_URI", None)
        source = CORPORA[corpus]["name"]
        cold = index_once(config, source, env)
        before = versions(work / "data", "ragindex-retriever")
        noop = index_once(config, source, env)
        after = versions(work / "data", "ragindex-retriever")
    return {"corpus": corpus, "chunks": cold["chunks"]["total"], "embedded_cold": cold["chunks"]["embedded"],
            "cold_run_s": cold["seconds"], "noop_run_s": noop["seconds"],
            "cold_process_s": cold["process_seconds"], "noop_process_s": noop["process_seconds"],
            "run_ratio": round(noop["seconds"] / cold["seconds"], 4),
            "process_ratio": round(noop["process_seconds"] / cold["process_seconds"], 4),
            "noop_unchanged": noop["unchanged"], "noop_embedded": noop["chunks"]["embedded"],
            "noop_precision": noop["precision"], "new_tags": after[0] - before[0],
            "new_model_versions": after[1] - before[1]}


def machine_info() -> str:
    return f"{cpu_model()}, {os.cpu_count()} cores, flags {cpu_flags()}, load {os.getloadavg()[0]:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", action="append", choices=sorted(CORPORA))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = [bench(c) for c in args.corpus or sorted(CORPORA)]
    if args.json:
        print(json.dumps({"machine": machine_info(), "rows": rows}, indent=2))
        return
    print(f"machine: {machine_info()}")
    print("| corpus | chunks | cold run s | no-op run s | ratio | cold process s | no-op process s | ratio | "
          "no-op: embedded / model loaded / new tags / new model versions |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['corpus']} | {r['chunks']} | {r['cold_run_s']} | {r['noop_run_s']} | {r['run_ratio']:.1%} | "
              f"{r['cold_process_s']} | {r['noop_process_s']} | {r['process_ratio']:.1%} | {r['noop_embedded']} / "
              f"{'no' if r['noop_precision'] in (None, '', 'not loaded') else 'yes'} / {r['new_tags']} / "
              f"{r['new_model_versions']} |")


if __name__ == "__main__":
    main()
