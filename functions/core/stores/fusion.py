"""Rank fusion of hit lists, shared by the store (its own fusion where Milvus cannot fuse
several BM25 fields in one call) and the search layer (hybrid, mixed queries)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the store imports this module
    from functions.core.stores.vector_store import Match


def reciprocal_rank_fusion(lists: Sequence[Sequence[Match]], k: int = 60) -> list[Match]:
    """score(d) = sum over lists of 1 / (k + rank of d), ranks from 1 (Cormack et al. 2009)."""
    return weighted_rank_fusion(lists, [1.0] * len(lists), k)


def weighted_rank_fusion(
    lists: Sequence[Sequence[Match]], weights: Sequence[float], k: int = 60
) -> list[Match]:
    """score(d) = sum over lists of weight / (k + rank of d); a list with a negative weight
    only pushes down documents the positive lists found, it never adds any."""
    scores: dict[str, float] = {}
    first: dict[str, Match] = {}
    for hits, weight in sorted(zip(lists, weights, strict=True), key=lambda p: p[1] < 0):
        for rank, hit in enumerate(hits, start=1):
            if weight < 0 and hit.id not in scores:
                continue
            scores[hit.id] = scores.get(hit.id, 0.0) + weight / (k + rank)
            first.setdefault(hit.id, hit)
            if hit.fields and not first[hit.id].fields:
                first[hit.id] = hit
    return fused_order(scores, first)


def fused_order(scores: Mapping[str, float], first: Mapping[str, Match]) -> list[Match]:
    """Best fused score first; equal scores by id, so an order never depends on arrival."""
    ordered = sorted(scores, key=lambda i: (-scores[i], i))
    if not ordered:
        return []
    # Built with the constructor, not dataclasses.replace (a third of the cost, on 200 hits a
    # query); Match comes from the hits, since the store imports this module.
    kind = type(first[ordered[0]])
    return [kind(i, scores[i], first[i].fields) for i in ordered]
