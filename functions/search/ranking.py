"""The rank layer: normalise, boost, cut, de-duplicate and diversify the matched candidates.

Every step works on whatever matching returned: nothing, one hit, or fewer than asked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from functions.core.pipeline_config import RankParams
from functions.core.stores.vector_store import VECTOR_FIELD, Match
from functions.search.matching import min_max


def needed_fields(params: RankParams) -> list[str]:
    """Stored fields the ranker reads, asked of the matcher with the hits: measured, vectors
    in the search answer cost less than fetching the MMR pool's by id afterwards."""
    fields = [*params.boosts, *([params.dedupe_field] if params.dedupe_field else [])]
    if params.mmr_lambda is not None:
        fields.append(VECTOR_FIELD)
    return list(dict.fromkeys(fields))


def keeps_order(params: RankParams) -> bool:
    """Whether ranking keeps the matcher's order and scores (a floor cuts only the tail), so
    no candidate past the page can reach it."""
    return (
        params.normalize == "none"
        and not params.boosts
        and not params.dedupe_field
        and params.mmr_lambda is None
    )


def rank(
    matches: Sequence[Match],
    params: RankParams,
    top_k: int,
    vectors: Callable[[list[str]], dict[str, np.ndarray]] | None = None,
) -> list[Match]:
    """At most `top_k` hits, best first, one per id. `vectors(ids)` supplies the vectors MMR
    needs for hits that came without one (BM25 hits)."""
    hits = _unique(matches)
    if params.normalize == "minmax":
        hits = [
            replace(h, score=s) for h, s in zip(hits, min_max([h.score for h in hits]), strict=True)
        ]
    if params.boosts:
        hits = [replace(h, score=h.score + _boost(h, params)) for h in hits]
    hits.sort(key=lambda h: (-h.score, h.id))
    if params.min_score is not None:
        hits = [h for h in hits if h.score >= params.min_score]
    if params.dedupe_field:
        hits = _dedupe(hits, params.dedupe_field)
    if params.mmr_lambda is not None:
        pool = hits[: max(params.mmr_pool, top_k)]
        return mmr(pool, top_k, params.mmr_lambda, vectors)
    return hits[:top_k]


def mmr(
    hits: Sequence[Match],
    top_k: int,
    lam: float,
    vectors: Callable[[list[str]], dict[str, np.ndarray]] | None = None,
) -> list[Match]:
    """Maximal marginal relevance (Carbonell & Goldstein 1998) on the stored vectors:
    repeatedly take argmax lam * relevance - (1 - lam) * max cosine to those already taken.
    Relevance is the hit score min-max scaled to [0, 1] so the two terms are comparable. Each
    hit's score becomes its MMR value when taken, which never rises down the list (what is
    left only gains redundancy), so the shown scores follow the shown order."""
    if len(hits) <= 1 or top_k <= 1:
        return list(hits[:top_k])
    matrix = _vector_matrix(hits, vectors)
    relevance = np.asarray(min_max([h.score for h in hits]))
    chosen: list[int] = []
    values: list[float] = []
    redundancy = np.full(len(hits), -np.inf)
    available = np.ones(len(hits), dtype=bool)
    for _ in range(min(top_k, len(hits))):
        penalty = np.where(np.isinf(redundancy), 0.0, redundancy)
        value = lam * relevance - (1 - lam) * penalty
        value[~available] = -np.inf
        best = int(np.argmax(value))
        chosen.append(best)
        values.append(float(value[best]))
        available[best] = False
        redundancy = np.maximum(redundancy, matrix @ matrix[best])
    return [replace(hits[i], score=v) for i, v in zip(chosen, values, strict=True)]


def _vector_matrix(
    hits: Sequence[Match], vectors: Callable[[list[str]], dict[str, np.ndarray]] | None
) -> np.ndarray:
    missing = [h.id for h in hits if h.fields.get(VECTOR_FIELD) is None]
    fetched = vectors(missing) if missing and vectors else {}
    rows = []
    for hit in hits:
        value = hit.fields.get(VECTOR_FIELD)
        row = np.asarray(value if value is not None else fetched.get(hit.id), dtype=np.float32)
        if row.ndim != 1 or not row.size:
            raise ValueError(f"no stored vector for {hit.id!r}")
        rows.append(row / (np.linalg.norm(row) or 1.0))
    return np.vstack(rows)


def _unique(matches: Sequence[Match]) -> list[Match]:
    best: dict[str, Match] = {}
    for match in matches:
        if match.id not in best or match.score > best[match.id].score:
            best[match.id] = match
    return list(best.values())


def _values(hit: Match, field: str) -> list[str]:
    value = hit.fields.get(field)
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]


def _boost(hit: Match, params: RankParams) -> float:
    total = 0.0
    for field, by_value in params.boosts.items():
        total += sum(by_value.get(v, 0.0) for v in set(_values(hit, field)))
    return total


def _dedupe(hits: Sequence[Match], field: str) -> list[Match]:
    seen: set[tuple[str, ...]] = set()
    kept = []
    for hit in hits:  # best first, so the best of each value survives
        key = tuple(sorted(v.strip().casefold() for v in _values(hit, field)))
        if key and key in seen:
            continue
        seen.add(key)
        kept.append(hit)
    return kept
