"""The process heap (ragindex/heap.py): Arrow allocates from malloc, so what a build drops goes back to the OS."""

import json
import os
import subprocess
import sys

import pytest

ALLOCATE = """
import json
{first}
import pyarrow as pa, pyarrow.compute as pc, numpy as np
from ragindex.heap import return_freed_memory
def rss():
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS")) // 1024
base = rss()
parts = [pc.add(pa.array(np.arange(50_000, dtype=np.float32)), 1) for _ in range(1000)]  # 200 MB, 200 kB buffers
held = rss()
del parts
return_freed_memory()
print(json.dumps({{"pool": pa.default_memory_pool().backend_name, "held": held - base, "left": rss() - base}}))
"""


def _run(first: str, **env: str) -> dict:
    code = ALLOCATE.format(first=first)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={k: v for k, v in {**os.environ, **env}.items() if v})
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc and /proc")
@pytest.mark.parametrize("first", ["import ragindex", "import pyarrow; import ragindex"])
def test_arrow_buffers_dropped_are_given_back(first):
    out = _run(first, ARROW_DEFAULT_MEMORY_POOL="")
    assert out["pool"] == "system"
    assert out["held"] > 150 and out["left"] < out["held"] / 3  # Arrow's own mimalloc pool keeps all of it


def test_an_explicit_arrow_pool_is_kept():
    assert _run("import ragindex", ARROW_DEFAULT_MEMORY_POOL="mimalloc")["pool"] == "mimalloc"
