"""The search pipeline: preprocess -> match -> rank -> summary, timed per stage."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from time import perf_counter

from aws_lambda_powertools import Logger

from functions.core.routes import Route
from functions.core.scenes import Scene, get_scene
from functions.core.schemas import FilterValue, Hit, SearchRequest, SearchResponse, Timings
from functions.core.settings import Settings
from functions.core.stores import collection_name, open_document_store, open_vector_store
from functions.core.text import normalize_text
from functions.core.vector_store import Match, VectorStore
from functions.search.clients import (
    DocumentFetcher,
    InProcessDocuments,
    InProcessEmbedder,
    LambdaDocuments,
    LambdaEmbedder,
    LambdaInvoker,
    QueryEmbedder,
)

logger = Logger(service="mmsearch-search")


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


def build_search_service(
    settings: Settings, embedder: QueryEmbedder, documents: DocumentFetcher
) -> SearchService:
    """Wire the pipeline to the vector store named by `settings`."""
    return SearchService(
        embedder,
        open_vector_store(settings),
        documents,
        collection_for=lambda scene: collection_name(settings, scene),
        max_query_chars=settings.max_query_chars,
        match_candidates=settings.match_candidates,
    )


def dependencies(settings: Settings) -> tuple[QueryEmbedder, DocumentFetcher]:
    """Preprocess and summary: other Lambda functions in a split deployment, else in-process."""
    if settings.deployment == "lambda":
        import boto3

        client = boto3.client("lambda")
        if not settings.preprocess_function or not settings.summary_function:
            raise ValueError(
                "split deployment needs MMSEARCH_PREPROCESS_FUNCTION and _SUMMARY_FUNCTION"
            )
        return (
            LambdaEmbedder(LambdaInvoker(client, settings.preprocess_function)),
            LambdaDocuments(LambdaInvoker(client, settings.summary_function)),
        )
    from functions.preprocess.service import build_preprocessor

    return (
        InProcessEmbedder(build_preprocessor(settings)),
        InProcessDocuments(open_document_store(settings)),
    )


def routes(service: SearchService) -> list[Route]:
    """Routes of the search function."""

    def search(request: SearchRequest) -> SearchResponse:
        """Search one scene: embed the query, match in Milvus, rank, attach documents."""
        response = service.search(request)
        logger.info(
            "search",
            scene=response.scene,
            top_k=request.top_k,
            hits=len(response.hits),
            filtered=bool(request.filters),
            timings_ms=response.timings_ms.model_dump(),
        )
        return response

    return [Route("POST", "/v1/search", SearchRequest, SearchResponse, search, "search")]
