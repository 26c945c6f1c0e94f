"""What the forkserver of a run imports before it forks the run's steps (pipelines/executor.py): the code
location's modules, the libraries its steps use and the modules of the instance's storages, once per run
instead of once per step. Imported only there.

LanceDB's background threads are running in the server after its import; LanceDB restarts them in each forked
child and warns that a fork during a LanceDB operation could deadlock. The server never opens a table (it only
imports and forks), so that warning is silenced in the children it forks."""

import importlib
import os
import warnings

# transformers is left out: no step of a build with the default (BERT) model imports it; a non-BERT checkpoint or
# an image model imports it in the steps that need it
MODULES = ("ragindex_app.pipelines.factory", "torch", "onnxruntime", "great_expectations", "mlflow")


def instance_modules() -> list[str]:
    """The modules of the instance's storages, run launcher and coordinator (from `$DAGSTER_HOME/dagster.yaml`):
    every step creates the instance from its ref, and importing these there (Dagster's storage layer, alembic)
    took ~0.4 s of each step's start. Nothing to preload for an ephemeral instance."""
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        return []
    from dagster._core.instance.ref import InstanceRef

    try:
        ref = InstanceRef.from_dir(home)
    except Exception:  # noqa: BLE001  (an instance the run did not use: its steps load their own and say why)
        return []
    return sorted({data.module_name for data in ref if hasattr(data, "module_name")})


warnings.filterwarnings("ignore", message="lancedb fork support is experimental", category=RuntimeWarning)
for _name in (*MODULES, *instance_modules()):
    importlib.import_module(_name)
