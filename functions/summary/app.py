"""The summary function as an ASGI app: `POST /v1/documents:batchGet` returns documents."""

from __future__ import annotations

from fastapi import FastAPI

from functions.core.http.fastapi_app import create_api, include_routes
from functions.core.settings import Settings
from functions.core.stores.document_store import DocumentStore
from functions.core.stores.factory import open_document_store
from functions.summary.service import routes


def create_app(settings: Settings, documents: DocumentStore | None = None) -> FastAPI:
    """The summary function as an ASGI app."""
    app = create_api("mmsearch summary", "Documents by id from the document store.")
    include_routes(app, routes(documents or open_document_store(settings)))
    return app
