"""The search function as an ASGI app: `POST /v1/search` answers a query with ranked hits."""

from __future__ import annotations

from fastapi import FastAPI

from functions.core.http.fastapi_app import create_api, include_routes
from functions.core.settings import Settings
from functions.search.service import SearchService, build_search_service, dependencies, routes


def create_app(settings: Settings, service: SearchService | None = None) -> FastAPI:
    """The search function as an ASGI app."""
    if service is None:
        service = build_search_service(settings, *dependencies(settings))
    app = create_api("mmsearch search", "Match and rank a query against a scene.")
    include_routes(app, routes(service))
    return app
