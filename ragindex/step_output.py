"""The record a build step returns: plain fields, stored as JSON so any process can read a step's inputs."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import ClassVar


class StepOutput:
    """Base of step records (dataclasses); subclasses register themselves by name for `from_json`."""

    kinds: ClassVar[dict[str, type]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        StepOutput.kinds[cls.__name__] = cls

    def to_json(self) -> dict:
        return {"kind": type(self).__name__, "value": asdict(self)}

    @staticmethod
    def from_json(data: dict) -> StepOutput:
        cls = StepOutput.kinds[data["kind"]]
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data["value"].items() if k in names})
