"""Latency summaries in milliseconds."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def percentiles_ms(seconds: Sequence[float]) -> dict[str, float]:
    """p50 and p95 (linear interpolation) of durations given in seconds, returned in milliseconds, and n."""
    if len(seconds) == 0:
        raise ValueError("percentiles_ms needs at least one duration")
    p50, p95 = np.percentile(np.asarray(seconds, dtype=float) * 1000.0, [50, 95])
    return {"p50": float(p50), "p95": float(p95), "n": len(seconds)}
