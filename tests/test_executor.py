"""Runs launched outside the CLI (UI, daemon, sensors, `dagster asset materialize`) run a process per step, each
forked from a server that imported the code location, the heavy libraries and the instance's storages once per
run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dagster import ExecutorDefinition

from ragindex_app.pipelines.executor import FORKSERVER
from ragindex_app.pipelines.factory import build_definitions

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "ci.yaml"
# A step as the multiprocess executor starts one: a forkserver that preloaded the step server forks a child,
# which finds the libraries imported and uses LanceDB (whose threads were running in the server when it forked).
STEP = '''
import multiprocessing
import sys


def step(uri):
    preloaded = [name for name in ("torch", "great_expectations", "mlflow", "dagster._core.storage.event_log.sqlite",
                                   "alembic") if name in sys.modules]
    import lancedb

    table = lancedb.connect(uri).create_table("t", [{"x": 1}, {"x": 2}])
    assert table.count_rows() == 2 and len(preloaded) == 5, preloaded


if __name__ == "__main__":
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["ragindex_app.pipelines.step_server"])
    process = context.Process(target=step, args=(sys.argv[1],))
    process.start()
    process.join(120)
    sys.exit(process.exitcode if process.exitcode is not None else 3)
'''


def test_every_job_defaults_to_steps_forked_from_the_step_server():
    defs = build_definitions(CONFIG)
    for job in (defs.resolve_job_def("index_job"), defs.resolve_job_def("upkeep_job"),
                defs.resolve_implicit_global_asset_job_def()):
        executor: ExecutorDefinition = job.executor_def
        field = executor.config_schema.as_field()
        assert field.default_value == FORKSERVER, job.name
        assert set(field.config_type.fields) == {"multiprocess", "in_process"}  # Dagster's default's choices stay


def test_a_forked_step_finds_the_libraries_imported_and_lancedb_working(tmp_path):
    script = tmp_path / "step.py"
    script.write_text(STEP)
    # LanceDB's fork warning made an error: whatever a library does to warnings' display (importing GE hides
    # them), it surfaces on stderr unless the step server's filter ignores it
    home = tmp_path / "dagster_home"  # an instance with the default (SQLite) storages, whose modules are preloaded
    home.mkdir()
    (home / "dagster.yaml").write_text("")
    done = subprocess.run([sys.executable, "-W", "error:lancedb fork support:RuntimeWarning", str(script),
                           str(tmp_path / "lancedb")], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "DAGSTER_HOME": str(home)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "fork support is experimental" not in done.stderr


def test_the_step_server_preloads_the_instances_storages_and_skips_an_instance_it_cannot_read(tmp_path, monkeypatch):
    from ragindex_app.pipelines.step_server import instance_modules

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    (tmp_path / "dagster.yaml").write_text("")
    assert {"dagster._core.storage.runs", "dagster._core.storage.event_log"} <= set(instance_modules())
    (tmp_path / "dagster.yaml").write_text("storage: {nosuch: {}}\n")  # the run's own instance load says why
    assert instance_modules() == []
    monkeypatch.delenv("DAGSTER_HOME")
    assert instance_modules() == []
