"""Expectations in code and their validation with Great Expectations 1.x on pandas DataFrames.

A suite is a list of `ExpectationSpec`s (a GE expectation class name and its arguments) over one or more
DataFrames ("batches"). Great Expectations is imported inside `validate` only: importing it takes seconds, and
the Dagster definitions that import this package must load fast.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

MAX_EXAMPLES = 5
EXAMPLE_WIDTH = 80


def python_value(value: Any) -> Any:
    """The value with numpy scalars and arrays (at any depth) turned into plain Python ones: GE's renderer and
    JSON accept only those."""
    if isinstance(value, dict):
        return {key: python_value(v) for key, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(python_value(v) for v in value)
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    return value


@dataclass(frozen=True)
class ExpectationSpec:
    """One expectation in code: a GE 1.x expectation class name (gx.expectations.<type>) and its arguments."""

    type: str
    kwargs: dict[str, Any]
    note: str = ""  # what the rule means for the index, shown in the summary

    def build(self):
        import great_expectations as gx

        return getattr(gx.expectations, self.type)(**python_value(self.kwargs),
                                                   meta={"note": self.note} if self.note else None)


@dataclass
class Batch:
    """A DataFrame and the expectations validated on it; id columns name the rows in failure examples."""

    name: str
    frame: pd.DataFrame
    expectations: list[ExpectationSpec]
    id_columns: list[str] = field(default_factory=list)


@dataclass
class ExpectationOutcome:
    """One evaluated expectation: its GE type, column, how many values failed and a few examples."""

    batch: str
    expectation: str  # GE's snake-case type, e.g. expect_column_values_to_be_unique
    column: str | None
    success: bool
    unexpected_count: int
    examples: list[Any]
    observed: Any = None
    note: str = ""
    error: str | None = None  # the exception GE raised while evaluating, if any

    def as_dict(self) -> dict:
        return {"batch": self.batch, "expectation": self.expectation, "column": self.column,
                "success": self.success, "unexpected_count": self.unexpected_count, "examples": self.examples,
                "observed": self.observed, "note": self.note, "error": self.error}


FailedExpectation = ExpectationOutcome


@dataclass
class SuiteResult:
    """The outcome of one suite over its batches, plus GE's own JSON (`raw`)."""

    suite: str
    success: bool
    outcomes: list[ExpectationOutcome]
    rows: dict[str, int]
    raw: dict
    notes: list[str] = field(default_factory=list)
    observed: dict[str, Any] = field(default_factory=dict)
    validations: dict[str, Any] = field(default_factory=dict, repr=False)  # GE result objects, for HTML

    @property
    def failed(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success]

    @property
    def evaluated(self) -> int:
        return len(self.outcomes)

    def as_dict(self) -> dict:
        return {"suite": self.suite, "success": self.success, "evaluated": self.evaluated,
                "failed": [o.as_dict() for o in self.failed], "rows": self.rows, "notes": self.notes,
                "observed": self.observed}

    def headline(self) -> str:
        if self.success:
            return f"{self.suite}: all {self.evaluated} expectations passed on {sum(self.rows.values())} rows"
        names = ", ".join(f"{o.expectation}({o.column})" if o.column else o.expectation for o in self.failed)
        return f"{self.suite}: {len(self.failed)} of {self.evaluated} expectations failed: {names}"

    def markdown(self) -> str:
        """A summary table for the Dagster UI: failures first, with counts and examples."""
        status = "**passed**" if self.success else f"**failed** ({len(self.failed)} of {self.evaluated})"
        lines = [f"Suite `{self.suite}`: {status}; rows: "
                 + ", ".join(f"{name} {count}" for name, count in self.rows.items()), "",
                 "| | batch | expectation | column | unexpected | observed / examples | rule |",
                 "|---|---|---|---|---|---|---|"]
        for o in sorted(self.outcomes, key=lambda o: o.success):
            detail = o.error or (", ".join(_cell(e) for e in o.examples) if o.examples else _cell(o.observed))
            lines.append(f"| {'✅' if o.success else '❌'} | {o.batch} | `{o.expectation}` | {o.column or ''} | "
                         f"{o.unexpected_count} | {detail} | {_cell(o.note)} |")
        if self.notes:
            lines += ["", *[f"- {note}" for note in self.notes]]
        return "\n".join(lines)


def _cell(value: Any, width: int = 100) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        value = " ".join(f"{k}={v!r}" for k, v in value.items())
    text = " ".join(str(value).split()).replace("|", "\\|")
    return text if len(text) <= width else text[: width - 1] + "…"


def _example(value: Any) -> Any:
    """JSON-safe, short values for examples (values are plain Python already, see python_value)."""
    if isinstance(value, dict):
        return {str(k): _example(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_example(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str) and len(value) > EXAMPLE_WIDTH:
        return value[: EXAMPLE_WIDTH - 1] + "…"
    return value


def _gx_context():
    """An ephemeral GE context: in memory, no analytics, no progress bars, no Data Docs site of its own."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(analytics_enabled=False, progress_bars=ProgressBarsConfig(globally=False),
                               store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False))
    return gx.get_context(mode="ephemeral", project_config=config)


def _outcome(batch: str, result, id_columns: Sequence[str]) -> ExpectationOutcome:
    config = result.expectation_config
    kwargs = config.kwargs
    column = kwargs.get("column") or (f"{kwargs['column_A']}, {kwargs['column_B']}" if "column_A" in kwargs
                                      else None)
    details = result.result or {}
    error = None
    info = result.exception_info or {}
    if info.get("raised_exception"):
        error = _cell(info.get("exception_message"), 200)
    count = details.get("unexpected_count")
    if count is None:
        count = 0 if result.success else 1
    examples: list[Any] = []
    if not result.success:
        indexed = details.get("partial_unexpected_index_list") or []
        if indexed and isinstance(indexed[0], dict) and id_columns:
            examples = [_example(e) for e in indexed[:MAX_EXAMPLES]]
        else:
            examples = [_example(e) for e in (details.get("partial_unexpected_list") or [])[:MAX_EXAMPLES]]
    note = (config.meta or {}).get("note", "")
    return ExpectationOutcome(batch, config.type, column, bool(result.success), int(count), examples,
                              _example(details.get("observed_value")), note, error)


def validate(suite: str, batches: Sequence[Batch], notes: Iterable[str] = (),
             observed: Mapping[str, Any] | None = None) -> SuiteResult:
    """Validate every batch against its expectations in one ephemeral GE context.

    GE's metrics hand back numpy scalars (a column mean is a numpy float); each result is made plain Python
    here, so the JSON, the examples and the Data Docs renderer all see the same plain values."""
    import great_expectations as gx

    context = _gx_context()
    source = context.data_sources.add_pandas(f"{suite}_frames")
    outcomes: list[ExpectationOutcome] = []
    raw: dict[str, Any] = {}
    validations: dict[str, Any] = {}
    for batch in batches:
        ge_suite = context.suites.add(gx.ExpectationSuite(name=f"{suite}.{batch.name}"))
        for spec in batch.expectations:
            ge_suite.add_expectation(spec.build())
        definition = source.add_dataframe_asset(batch.name).add_batch_definition_whole_dataframe("whole")
        ge_batch = definition.get_batch(batch_parameters={"dataframe": batch.frame})
        result_format: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": MAX_EXAMPLES}
        if batch.id_columns:
            result_format["unexpected_index_column_names"] = list(batch.id_columns)
        result = ge_batch.validate(ge_suite, result_format=result_format)
        for evaluated in result.results:
            evaluated.result = python_value(evaluated.result or {})
        validations[batch.name] = result
        raw[batch.name] = result.to_json_dict()
        outcomes += [_outcome(batch.name, r, batch.id_columns) for r in result.results]
    success = all(o.success for o in outcomes)
    rows = {b.name: len(b.frame) for b in batches}
    return SuiteResult(suite, success, outcomes, rows,
                       {"suite": suite, "success": success, "validations": raw},
                       list(notes), dict(observed or {}), validations)
