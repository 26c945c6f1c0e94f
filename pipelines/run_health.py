"""Runs whose process died: in-process runs carry their host and pid, and are marked failed once that pid is gone.

Runs launched by the daemon are watched by Dagster's own run monitoring (dagster.yaml `run_monitoring`); a run
executed in-process by the CLI has no monitor, so the next process that opens the instance (the CLI runner, the
source sensor) reports it failed.
"""

from __future__ import annotations

import os
import socket

import psutil
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

PID_TAG = "ragindex/pid"
HOST_TAG = "ragindex/host"


def process_tags() -> dict[str, str]:
    """The tags that let a later process tell whether this run's process still lives."""
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


def _alive(pid: int, started: float | None) -> bool:
    try:
        process = psutil.Process(pid)
        return started is None or process.create_time() <= started + 1  # a pid reused by a later process: dead
    except psutil.Error:
        return False


def fail_dead_runs(instance: DagsterInstance) -> list[str]:
    """Mark failed every STARTED run of this host whose process is gone; returns their run ids."""
    host, failed = socket.gethostname(), []
    runs = instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.STARTED, DagsterRunStatus.STARTING],
                                        tags={HOST_TAG: host}))
    for run in runs:
        pid = run.tags.get(PID_TAG, "")
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        record = instance.get_run_record_by_id(run.run_id)
        started = record.start_time if record else None
        if not _alive(int(pid), started):
            instance.report_run_failed(run, message=f"process {pid} on {host} is gone (killed or crashed)")
            failed.append(run.run_id)
    return failed
