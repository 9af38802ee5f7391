"""The search pipeline: preprocess -> match -> rank -> summary, timed per stage."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from time import perf_counter

from functions.core.scenes import Scene, get_scene
from functions.core.schemas import FilterValue, Hit, SearchRequest, SearchResponse, Timings
from functions.core.text import normalize_text
from functions.core.vector_store import Match, VectorStore
from functions.search.clients import DocumentFetcher, QueryEmbedder


def rank(matches: list[Match], top_k: int) -> list[Match]:
    """Best score first, one hit per id, at most `top_k` (fewer when fewer matched)."""
    best: dict[str, Match] = {}
    for match in matches:
        if match.id not in best or match.score > best[match.id].score:
            best[match.id] = match
    return sorted(best.values(), key=lambda m: (-m.score, m.id))[:top_k]


def normalize_filters(filters: Mapping[str, FilterValue] | None) -> dict[str, list[str]]:
    """`{field: value | [values]}` as `{field: [values]}`."""
    return {k: [v] if isinstance(v, str) else list(v) for k, v in (filters or {}).items()}


class SearchService:
    """Runs one search request through the four stages."""

    def __init__(
        self,
        embedder: QueryEmbedder,
        vectors: VectorStore,
        documents: DocumentFetcher,
        *,
        collection_for: Callable[[Scene], str],
        max_query_chars: int,
        match_candidates: int,
    ) -> None:
        self._embedder = embedder
        self._vectors = vectors
        self._documents = documents
        self._collection_for = collection_for
        self._max_query_chars = max_query_chars
        self._candidates = match_candidates

    def search(self, request: SearchRequest) -> SearchResponse:
        """Answer `request`; raises a `ServiceError` subclass for anything the caller can fix."""
        start = perf_counter()
        scene = get_scene(request.scene)
        query = normalize_text(request.query, self._max_query_chars)
        filters = normalize_filters(request.filters)
        vector = self._embedder.embed_query(query)
        t_pre = perf_counter()
        limit = max(request.top_k, self._candidates)
        matches = self._vectors.search(self._collection_for(scene), vector, limit, filters)
        t_match = perf_counter()
        ranked = rank(matches, request.top_k)
        t_rank = perf_counter()
        documents = self._documents.fetch(scene.name, [m.id for m in ranked])
        t_summary = perf_counter()
        hits = [Hit(id=m.id, score=m.score, document=documents.get(m.id)) for m in ranked]
        timings = Timings(
            preprocess=_ms(start, t_pre),
            match=_ms(t_pre, t_match),
            rank=_ms(t_match, t_rank),
            summary=_ms(t_rank, t_summary),
            total=_ms(start, perf_counter()),
        )
        return SearchResponse(scene=scene.name, hits=hits, timings_ms=timings)


def _ms(a: float, b: float) -> float:
    return round((b - a) * 1000, 3)
