"""Score fusion of dense and full-text runs (min-max or z-score weighted, RRF) and the served fusion choice."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np

from ragindex.evaluation.metrics import rank_docs

Scores = Mapping[str, float]
Norm = Literal["minmax", "zscore"]
Method = Literal["dense", "fts", "minmax", "zscore", "rrf"]
SINGLE_METHODS: tuple[str, ...] = ("dense", "fts")
FUSION_METHODS: tuple[str, ...] = ("minmax", "zscore", "rrf")


def rrf(runs: Sequence[Scores], k: int = 60) -> dict[str, float]:
    """Reciprocal rank fusion: sum over runs of 1 / (k + rank), rank 1-based in trec_eval order."""
    fused: dict[str, float] = {}
    for scores in runs:
        for rank, doc in enumerate(rank_docs(scores), start=1):
            fused[doc] = fused.get(doc, 0.0) + 1.0 / (k + rank)
    return fused


def normalize(scores: Scores, norm: Norm = "minmax") -> dict[str, float]:
    """Min-max (to [0, 1]; a constant list maps to 1.0) or z-score (a constant list maps to 0.0)."""
    if not scores:
        return {}
    values = np.array(list(scores.values()), dtype=float)
    if norm == "minmax":
        span = values.max() - values.min()
        out = (values - values.min()) / span if span > 0 else np.ones_like(values)
    elif norm == "zscore":
        std = values.std()
        out = (values - values.mean()) / std if std > 0 else np.zeros_like(values)
    else:
        raise ValueError(f"unknown norm {norm!r}; expected 'minmax' or 'zscore'")
    return dict(zip(scores, out.tolist(), strict=True))


def normalized_fusion(
    dense: Scores, sparse: Scores, weight: float, norm: Norm = "minmax"
) -> dict[str, float]:
    """weight * norm(dense) + (1 - weight) * norm(sparse); a doc missing from a list gets its minimum.

    With z-scores this is distribution-based score fusion: each list is put on its own mean and spread."""
    nd, ns = normalize(dense, norm), normalize(sparse, norm)
    # Missing docs take the list's lowest normalized value; for min-max that is the range floor 0.
    fill_d = 0.0 if norm == "minmax" or not nd else min(nd.values())
    fill_s = 0.0 if norm == "minmax" or not ns else min(ns.values())
    docs = list(dict.fromkeys([*nd, *ns]))
    return {d: weight * nd.get(d, fill_d) + (1.0 - weight) * ns.get(d, fill_s) for d in docs}


@dataclass(frozen=True)
class FusionChoice:
    """How `hybrid` ranks: one single mode or one fusion method with its parameter, and why; and the weight of
    title vectors in dense scores (0: none; chosen by ragindex/evaluation/fusion_titles.py, why in
    details["titles"]).

    `cv_scores` maps each candidate family (dense, fts, minmax, zscore, rrf, served) to its cross-validated
    metric {"mean", "ci_low", "ci_high", "n"}; `evidence` says which queries chose it (or that it is the prior).
    """

    method: Method
    weight: float | None = None  # dense share, for minmax and zscore
    rrf_k: int | None = None
    metric: str = "ndcg@10"
    margin: float = 0.0  # a fusion must beat the best single mode by more than this in CV to be served
    evidence: str = "prior"
    cv_scores: dict[str, dict[str, float]] = field(default_factory=dict)
    details: dict = field(default_factory=dict)  # folds, seed, per-fold choices, what lexical data preferred
    title_weight: float = 0.0  # dense score = cos(query, vector) + title_weight x cos(query, title_vector)

    def __post_init__(self) -> None:
        if self.method not in (*SINGLE_METHODS, *FUSION_METHODS):
            raise ValueError(f"unknown fusion method {self.method!r}; use one of "
                             f"{', '.join((*SINGLE_METHODS, *FUSION_METHODS))}")
        if self.method in ("minmax", "zscore") and not (self.weight is not None and 0.0 <= self.weight <= 1.0):
            raise ValueError(f"fusion method {self.method} needs a dense weight in [0, 1]")
        if self.method == "rrf" and not (self.rrf_k is not None and self.rrf_k > 0):
            raise ValueError("fusion method rrf needs rrf_k > 0")
        if self.title_weight < 0:
            raise ValueError("title_weight must be >= 0")

    @property
    def label(self) -> str:
        titles = f", titles {self.title_weight:g}" if self.title_weight else ""
        if self.method in ("minmax", "zscore"):
            return f"{self.method} w={self.weight:g}{titles}"
        return (f"rrf k={self.rrf_k}" if self.method == "rrf" else self.method) + titles

    def fuse(self, dense: Scores, sparse: Scores) -> dict[str, float]:
        """The hybrid scores of one query from its dense and full-text candidate scores."""
        if self.method == "dense":
            return dict(dense)
        if self.method == "fts":
            return dict(sparse)
        if self.method == "rrf":
            return rrf([dense, sparse], self.rrf_k or 60)
        return normalized_fusion(dense, sparse, float(self.weight), self.method)  # type: ignore[arg-type]

    def as_dict(self) -> dict:
        return {**asdict(self), "label": self.label}

    @classmethod
    def from_dict(cls, data: Mapping) -> FusionChoice:
        names = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in names})


# The documented prior, served when no evaluation with non-lexical evidence chose otherwise (docs/benchmarks.md):
# min-max fusion with dense weight 0.7, the weight the project used before cross-validation was available.
PRIOR = FusionChoice("minmax", weight=0.7, evidence="prior")
