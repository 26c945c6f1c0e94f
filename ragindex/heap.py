"""The process heap (glibc malloc): one arena, Arrow's buffers in it too, and freed memory handed back to the OS
between embedding parts.

glibc gives each thread that contends for the heap an arena of its own (up to 8 per core), and memory freed in
one arena is never reused by another. During a build LanceDB's I/O threads, torch's and ONNX Runtime's workers
and the main thread each allocate in their own, so the embed stage's peak grew with every part: a cold build of
50k distinct passages peaked at 1,471 MiB with the default arenas and 1,346 MiB with one (5k: 1,065 and 876), at
the same speed (docs/benchmarks.md). Arrow's default pool (mimalloc) keeps what it frees for itself, out of reach
of `malloc_trim`: 50k cached vectors read for the index commit left ~100 MiB behind after they were dropped;
in the system pool they are given back. Without glibc (macOS) the malloc calls do nothing.
"""

from __future__ import annotations

import ctypes
import os
import sys
from functools import cache

M_ARENA_MAX = -8  # mallopt parameter (malloc.h)


@cache
def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")  # not ctypes.util.find_library: it runs ldconfig in a subprocess
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def single_heap() -> None:
    """Let every thread share one malloc arena, and Arrow allocate from it (unless ARROW_DEFAULT_MEMORY_POOL says
    otherwise); call before the threads start (ragindex/__init__.py does)."""
    libc = _libc()
    if libc is not None:
        libc.mallopt(M_ARENA_MAX, 1)
    if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
        os.environ["ARROW_DEFAULT_MEMORY_POOL"] = "system"  # read when pyarrow makes its default pool
        if "pyarrow" in sys.modules:  # imported before ragindex: too late for the variable
            import pyarrow

            pyarrow.set_memory_pool(pyarrow.system_memory_pool())


def return_freed_memory() -> None:
    """Hand the heap's free pages back to the OS (glibc keeps them otherwise)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
