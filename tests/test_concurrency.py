"""One writer per table and source: concurrent `ragindex index` runs, concurrent MLflow store creation, the writer
lock itself, and runs whose process was killed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from dagster import DagsterRunStatus, instance_for_test

from ragindex.config import load_config
from ragindex.index_store import IndexStore
from ragindex.locks import LockTimeout, writer_lock
from ragindex.staging import StageStore
from ragindex_app.pipelines.run_health import HOST_TAG, PID_TAG, fail_dead_runs, process_tags

ROOT = Path(__file__).resolve().parents[1]


def _env(data: Path, dagster_home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    path = [p for p in (os.environ.get("PYTHONPATH"), str(ROOT)) if p]
    env.update(RAGINDEX_DATA_DIR=str(data), DAGSTER_HOME=str(dagster_home), PYTHONPATH=os.pathsep.join(path))
    return env


@pytest.mark.slow
def test_two_concurrent_index_runs_leave_one_build_and_no_traceback(tmp_path, isolated_data_dir):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(12):
        (corpus / f"page{i:02d}.md").write_text(f"# Page {i}\n\n## Notes\n\nRemark {i} about lanterns and tides.\n",
                                                encoding="utf-8")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"sources": [{"name": "docs", "type": "directory", "path": str(corpus)}],
                                      "index": {"uri": str(isolated_data_dir / "lancedb")},
                                      "quality": {"data_docs": False}, "datasets": {"n": 5}}))
    (tmp_path / "dagster").mkdir()
    env = _env(isolated_data_dir, tmp_path / "dagster")
    argv = [sys.executable, "-m", "ragindex_app.cli.main", "--config", str(config), "index", "--source", "docs",
            "--json"]
    procs = [subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    done = [p.communicate(timeout=600) for p in procs]
    for proc, (_, err) in zip(procs, done, strict=True):
        assert proc.returncode == 0, err[-2000:]
        assert "Traceback" not in err and "Stack Trace" not in err, err[-2000:]
    summaries = [json.loads(out) for out, _ in done]
    assert sorted(s["unchanged"] for s in summaries) == [False, True]  # one built, the other found nothing to do
    assert sorted(s["documents"]["added"] for s in summaries) == [0, 12]

    project = load_config(config)
    ids = IndexStore.at(project.index).open().to_arrow().column("chunk_id").to_pylist()
    staged = StageStore(project.storage.resolved_uri()).chunks("chunks", "docs").columns(["chunk_id"])
    assert len(ids) == len(set(ids)) == 12 and set(ids) == set(staged.column("chunk_id").to_pylist())


def test_mlflow_store_created_by_several_processes_at_once(isolated_data_dir):
    probe = ("from ragindex.paths import DataLayout; from ragindex.tracking import Tracker; "
             "l = DataLayout.current(); print(Tracker(l.mlflow_uri, l.mlflow_artifacts.as_uri()).experiment_id)")
    env = _env(isolated_data_dir, isolated_data_dir)
    procs = [subprocess.Popen([sys.executable, "-c", probe], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    done = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-500:] for _, err in done]
    assert len({out.strip() for out, _ in done}) == 1  # one experiment, created once


def test_writer_lock_waits_for_its_holder_then_names_it(isolated_data_dir):
    hold = ("import sys, time; from ragindex.locks import writer_lock\n"
            "with writer_lock('chunks', 'docs', 'run-abc'):\n    print('held', flush=True); time.sleep(30)")
    holder = subprocess.Popen([sys.executable, "-c", hold], cwd=ROOT, env=_env(isolated_data_dir, isolated_data_dir),
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        start = time.monotonic()
        with pytest.raises(LockTimeout, match=r"table 'chunks', source 'docs' is being written by run run-abc "
                                              rf"\(pid {holder.pid}, since"):
            with writer_lock("chunks", "docs", "run-xyz", timeout=1):
                pass
        assert time.monotonic() - start >= 1
        with writer_lock("chunks", "other", "run-xyz", timeout=1):  # another source of the table: free
            pass
    finally:
        holder.kill()
        holder.wait()
    with writer_lock("chunks", "docs", "run-xyz", timeout=5):  # released when its holder died
        with writer_lock("chunks", "docs", "run-xyz", timeout=0.1):  # held by this process already: re-entered
            pass


def test_runs_whose_process_died_are_marked_failed(tmp_path):
    from dagster import DagsterRun

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with instance_for_test(temp_dir=str(tmp_path)) as instance:
            for name, pid in (("dead", gone.pid), ("live", alive.pid)):
                instance.add_run(DagsterRun(job_name="index_job", run_id=f"{name}-run", status=DagsterRunStatus.STARTED,
                                            tags={**process_tags(), PID_TAG: str(pid)}))
            instance.add_run(DagsterRun(job_name="index_job", run_id="other-host", status=DagsterRunStatus.STARTED,
                                        tags={PID_TAG: str(gone.pid), HOST_TAG: "elsewhere"}))
            assert fail_dead_runs(instance) == ["dead-run"]
            statuses = {r: instance.get_run_by_id(r).status for r in ("dead-run", "live-run", "other-host")}
            assert statuses == {"dead-run": DagsterRunStatus.FAILURE, "live-run": DagsterRunStatus.STARTED,
                                "other-host": DagsterRunStatus.STARTED}
            assert fail_dead_runs(instance) == []
    finally:
        alive.kill()
        alive.wait()
