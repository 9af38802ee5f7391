"""All three functions in one ASGI app: the local server, or a single-Lambda deployment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from functions.core.http import create_api
from functions.core.settings import Settings
from functions.core.stores import open_document_store
from functions.preprocess import app as preprocess
from functions.search import app as search
from functions.search.clients import InProcessDocuments, InProcessEmbedder
from functions.summary import app as summary


def create_app(settings: Settings, static_dir: Path | None = None) -> FastAPI:
    """Preprocess, search and summary sharing one encoder and one set of store clients."""
    preprocessor = preprocess.build_preprocessor(settings)
    documents = open_document_store(settings)
    service = search.build_search_service(
        settings, InProcessEmbedder(preprocessor), InProcessDocuments(documents)
    )
    app = create_api("mmsearch", "Multimodal retrieval: embed, search and fetch documents.")
    app.include_router(preprocess.router(preprocessor))
    app.include_router(search.router(service))
    app.include_router(summary.router(documents))

    @app.get("/v1/health", tags=["health"])
    def health() -> dict[str, Any]:
        """Liveness plus the model in use."""
        encoder = preprocessor.encoder
        return {"status": "ok", "model": encoder.name, "dim": encoder.dim}

    if static_dir is not None:
        app.mount("/", StaticFiles(directory=static_dir, html=True), name="frontend")
    return app
