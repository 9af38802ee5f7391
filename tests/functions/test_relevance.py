"""Scores people can read: MMR's shown scores follow its order, and the same search keeps it."""

from __future__ import annotations

import numpy as np

from functions.core.stores.vector_store import VECTOR_FIELD, Match
from functions.search.ranking import mmr


def _hits() -> list[Match]:
    rng = np.random.default_rng(7)
    base = rng.normal(size=16)
    hits = []
    for i in range(30):  # near-duplicates in pairs, so MMR reorders
        vector = base + rng.normal(size=16) * (0.05 if i % 2 else 1.0)
        hits.append(Match(f"d{i}", 1.0 - i / 40, {VECTOR_FIELD: vector.tolist()}))
    return hits


def test_mmr_scores_never_rise_down_the_list_and_the_order_changes() -> None:
    hits = _hits()
    ranked = mmr(hits, 10, 0.5)
    scores = [h.score for h in ranked]
    assert scores == sorted(scores, reverse=True)
    assert [h.id for h in ranked] != [h.id for h in hits[:10]]  # it did diversify


def test_mmr_gives_the_same_order_for_the_same_candidates() -> None:
    assert [h.id for h in mmr(_hits(), 10, 0.5)] == [h.id for h in mmr(_hits(), 10, 0.5)]
