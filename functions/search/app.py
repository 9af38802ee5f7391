"""The search function: `POST /v1/search` answers a query with ranked, summarised hits."""

from __future__ import annotations

from aws_lambda_powertools import Logger
from fastapi import APIRouter, FastAPI

from functions.core.http import ERROR_RESPONSES, create_api
from functions.core.schemas import SearchRequest, SearchResponse
from functions.core.settings import Settings
from functions.core.stores import collection_name, open_document_store, open_vector_store
from functions.search.clients import (
    DocumentFetcher,
    InProcessDocuments,
    InProcessEmbedder,
    LambdaDocuments,
    LambdaEmbedder,
    LambdaInvoker,
    QueryEmbedder,
)
from functions.search.service import SearchService

logger = Logger(service="mmsearch-search")


def router(service: SearchService) -> APIRouter:
    """Routes of the search function."""
    api = APIRouter(tags=["search"], responses=ERROR_RESPONSES)

    @api.post("/v1/search", response_model=SearchResponse)
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

    return api


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


def _dependencies(settings: Settings) -> tuple[QueryEmbedder, DocumentFetcher]:
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
    from functions.preprocess.app import build_preprocessor

    return (
        InProcessEmbedder(build_preprocessor(settings)),
        InProcessDocuments(open_document_store(settings)),
    )


def create_app(settings: Settings, service: SearchService | None = None) -> FastAPI:
    """The search function as an ASGI app."""
    if service is None:
        service = build_search_service(settings, *_dependencies(settings))
    app = create_api("mmsearch search", "Match and rank a query against a scene.")
    app.include_router(router(service))
    return app
