"""The executor of runs launched by the UI, the daemon, the sensors and `dagster asset materialize`: Dagster's
default (a process per step, or `in_process` by run config) with one default changed. Step processes are forked
from a server that imported the code location and the heavy libraries once per run (pipelines/step_server.py),
where `spawn`, Dagster's default, re-imports them in every step: 3-8 s a step, 18 steps in a build."""

from dagster import ExecutorDefinition, Field, multi_or_in_process_executor

FORKSERVER = {"multiprocess": {"start_method": {"forkserver": {
    "preload_modules": ["ragindex_app.pipelines.step_server"]}}}}


def _same_config(config: dict) -> dict:
    return config


step_executor: ExecutorDefinition = multi_or_in_process_executor.configured(
    _same_config, name="multi_or_in_process_executor",
    config_schema=Field(multi_or_in_process_executor.config_schema.as_field().config_type, default_value=FORKSERVER),
    description="A process per step, each forked from a server that imported the code location once per run; "
                "`in_process` or `multiprocess` run config as for Dagster's default executor.")
