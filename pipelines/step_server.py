"""What the forkserver of a run imports before it forks the run's steps (pipelines/executor.py): the code
location's modules and the libraries its steps use, once per run instead of once per step. Imported only there.

LanceDB's background threads are running in the server after its import; LanceDB restarts them in each forked
child and warns that a fork during a LanceDB operation could deadlock. The server never opens a table (it only
imports and forks), so that warning is silenced in the children it forks."""

import importlib
import warnings

MODULES = ("ragindex_app.pipelines.factory", "torch", "transformers", "onnxruntime", "great_expectations", "mlflow")

warnings.filterwarnings("ignore", message="lancedb fork support is experimental", category=RuntimeWarning)
for _name in MODULES:
    importlib.import_module(_name)
