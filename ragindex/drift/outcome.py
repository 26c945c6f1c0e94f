"""The record a drift step returns: whether it tested, what it found, and where its reports are."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ragindex.step_output import StepOutput


@dataclass
class DriftOutcome(StepOutput):
    """What a drift asset found: `status` says whether a test ran; `drifted` is what the sensor reacts to."""

    kind: str  # "corpus" or "query"
    table: str
    source: str
    tag: str
    status: str  # "tested", or why not ("too few rows to test: ...")
    drifted: bool = False
    p_value: float | None = None
    decision: dict | None = None
    reference: dict = field(default_factory=dict)
    current: dict = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def tested(self) -> bool:
        return self.p_value is not None
