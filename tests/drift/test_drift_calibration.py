"""False-alarm calibration and power of the drift tests on real MiniLM embeddings of real text."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from ragindex.drift.two_sample import TEST_NAMES, detect_drift

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
MSMARCO = SHARED / "datasets" / "msmarco-5k" / "corpus.jsonl"
LANCEDB_DOCS = SHARED / "corpora" / "lancedb-docs" / "2025-05-31"
MIN_CHARS, MAX_CHARS = 40, 300  # chunk-sized texts; the cap keeps CPU embedding time in budget
ALPHA = 0.05
TRIALS = 40
# One-sided binomial bound: with a true false-alarm rate <= 5%, more than this many alarms in 40 trials
# has probability < 1%.
MAX_FALSE_ALARMS = int(stats.binom.ppf(0.99, TRIALS, ALPHA))


def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n", text) if len(p.strip()) >= MIN_CHARS]


def _pick(texts: list[str], k: int, seed: int) -> list[str]:
    """k distinct texts of chunk size, chosen by a seeded generator from a sorted, de-duplicated list."""
    candidates = sorted({t for t in texts if MIN_CHARS <= len(t) <= MAX_CHARS})
    if len(candidates) < k:
        pytest.skip(f"only {len(candidates)} usable texts, need {k}")
    rng = np.random.default_rng(seed)
    return [candidates[i] for i in rng.choice(len(candidates), size=k, replace=False)]


@pytest.fixture(scope="module")
def embedder():
    from ragindex.embedding import load_embedder

    return load_embedder()


@pytest.fixture(scope="module")
def pydoc_pool(embedder) -> np.ndarray:
    import pydoc_data.topics

    texts = [p for body in pydoc_data.topics.topics.values() for p in _paragraphs(body)]
    return embedder.embed(_pick(texts, 280, seed=0))


@pytest.fixture(scope="module")
def msmarco_pool(embedder) -> np.ndarray:
    if not MSMARCO.is_file():
        pytest.skip(f"{MSMARCO} is not available")
    with MSMARCO.open() as handle:
        texts = [json.loads(line)["text"] for line in handle if line.strip()]
    return embedder.embed(_pick(texts, 300, seed=1))


@pytest.fixture(scope="module")
def lancedb_pool(embedder) -> np.ndarray:
    if not LANCEDB_DOCS.is_dir():
        pytest.skip(f"{LANCEDB_DOCS} is not available")
    files = sorted(LANCEDB_DOCS.rglob("*.md"))
    texts = [p for f in files for p in _paragraphs(f.read_text(encoding="utf-8", errors="replace"))]
    return embedder.embed(_pick(texts, 300, seed=2))


@pytest.mark.parametrize("pool_name", ["pydoc_pool", "msmarco_pool"])
def test_false_alarms_within_binomial_bound(pool_name: str, request: pytest.FixtureRequest) -> None:
    """Random 55/45 splits of one real pool: no drift exists, so alarms must stay at a <=5% rate."""
    pool = request.getfixturevalue(pool_name)
    alarms = dict.fromkeys([*TEST_NAMES, "combined"], 0)
    for trial in range(TRIALS):
        order = np.random.default_rng(10_000 + trial).permutation(len(pool))
        cut = int(0.55 * len(pool))
        decision = detect_drift(pool[order[:cut]], pool[order[cut:]], alpha=ALPHA, seed=trial)
        for test in decision.tests:
            alarms[test.name] += test.p_value <= ALPHA
        alarms["combined"] += decision.drifted
    print(f"\n{pool_name}: false alarms in {TRIALS} trials at alpha {ALPHA}: {alarms} "
          f"(bound {MAX_FALSE_ALARMS})")
    for name, count in alarms.items():
        assert count <= MAX_FALSE_ALARMS, f"{name}: {count} false alarms in {TRIALS} null trials"


def test_power_msmarco_vs_lancedb_docs(msmarco_pool: np.ndarray, lancedb_pool: np.ndarray) -> None:
    """Web passages vs database docs: every test and the combined decision are overwhelming."""
    decision = detect_drift(msmarco_pool, lancedb_pool, alpha=ALPHA, seed=0)
    print("\npower:", {t.name: (t.p_value, t.effect_size) for t in decision.tests}, decision.p_value)
    assert decision.drifted
    assert decision.p_value < 1e-3
    for test in decision.tests:
        assert test.p_value < 1e-3, test
    by_name = {t.name: t for t in decision.tests}
    assert by_name["classifier"].effect_size > 0.95  # AUC
    assert by_name["mmd_rff"].effect_size > 0.1  # centroid cosine shift
    assert by_name["pca_ks"].effect_size >= 0.3  # share of drifted components


def test_partial_drift_detected(pydoc_pool: np.ndarray, lancedb_pool: np.ndarray) -> None:
    """A current window where a third of the chunks come from a new corpus is flagged."""
    rng = np.random.default_rng(7)
    order = rng.permutation(len(pydoc_pool))
    reference = pydoc_pool[order[:160]]
    newcomers = lancedb_pool[rng.choice(len(lancedb_pool), 55, replace=False)]
    current = np.vstack([pydoc_pool[order[160:270]], newcomers])
    decision = detect_drift(reference, current, alpha=ALPHA, seed=0)
    print("\npartial drift:", {t.name: t.p_value for t in decision.tests}, decision.p_value)
    assert decision.drifted, decision.as_dict()
