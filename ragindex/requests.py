"""One search request (query, k, mode, per_doc, group_by, groups) validated before any work, for CLI and model."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ragindex.access import parse_groups
from ragindex.config import SEARCH_MODES

GROUP_BY = ("chunk", "doc")
FIELDS = ("query", "k", "mode", "per_doc", "group_by", "groups")


@dataclass(frozen=True)
class SearchRequest:
    query: str
    k: int = 10
    mode: str = "hybrid"
    per_doc: int | None = None  # None: search.per_doc
    group_by: str = "chunk"
    groups: tuple[str, ...] = ()  # the caller's access groups; () sees public chunks only


def _missing(value: object) -> bool:
    """None, NaN (a missing cell of a DataFrame) or pandas' NA."""
    if isinstance(value, float):
        return math.isnan(value)
    return value is None or type(value).__name__ in ("NAType", "NaTType")


def _integer(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{name} must be an integer, not {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{name} must be an integer, not {value!r}") from None
    if not math.isfinite(number) or number != int(number):
        raise ValueError(f"{name} must be an integer, not {value!r}")
    if not low <= number <= high:
        raise ValueError(f"{name} must be between {low} and {high}, not {int(number)}")
    return int(number)


def check_query(query: object) -> str:
    if _missing(query):
        raise ValueError("query is missing")
    if not isinstance(query, str):
        raise ValueError(f"query must be a string, not {type(query).__name__}")
    if not query.strip():
        raise ValueError("query is empty")
    return query


def check_k(k: object, max_k: int) -> int:
    """k between 1 and search.max_k."""
    return _integer("k", k, 1, max_k)


def parse_request(row: Mapping, max_k: int) -> SearchRequest:
    """A request from a mapping (a served model's input row); ValueError names the first bad field."""
    unknown = sorted(set(row) - set(FIELDS))
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(map(str, unknown))}; use {', '.join(FIELDS)}")
    value = {name: (None if _missing(row.get(name)) else row.get(name)) for name in FIELDS}
    mode = value["mode"] or "hybrid"
    if mode not in SEARCH_MODES:
        raise ValueError(f"mode must be one of {', '.join(SEARCH_MODES)}, not {mode!r}")
    group_by = value["group_by"] or "chunk"
    if group_by not in GROUP_BY:
        raise ValueError(f"group_by must be chunk or doc, not {group_by!r}")
    groups = value["groups"]
    if hasattr(groups, "tolist"):  # a numpy array from a DataFrame cell
        groups = groups.tolist()
    if groups is not None and not isinstance(groups, (str, list, tuple)):
        raise ValueError(f"groups must be a list of names or 'a,b', not {type(groups).__name__}")
    return SearchRequest(check_query(value["query"]), 10 if value["k"] is None else check_k(value["k"], max_k),
                         mode, None if value["per_doc"] is None else _integer("per_doc", value["per_doc"], 0, max_k),
                         group_by, parse_groups(groups))


def parse_requests(rows: Sequence[Mapping], max_k: int) -> list[SearchRequest]:
    """Every row validated; one ValueError listing each bad row (`row N: why`), one line per row."""
    requests, errors = [], []
    for number, row in enumerate(rows):
        try:
            if not isinstance(row, Mapping):
                raise ValueError(f"expected a mapping of {', '.join(FIELDS)}, not {type(row).__name__}")
            requests.append(parse_request(row, max_k))
        except ValueError as error:
            errors.append(f"row {number}: {error}")
    if errors:
        raise ValueError(f"{len(errors)} bad input row(s):\n" + "\n".join(errors))
    return requests
