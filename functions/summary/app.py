"""The summary function: `POST /v1/documents:batchGet` returns documents by id."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from functions.core.document_store import DocumentStore
from functions.core.http import ERROR_RESPONSES, create_api
from functions.core.scenes import get_scene
from functions.core.schemas import DocumentsRequest, DocumentsResponse
from functions.core.settings import Settings
from functions.core.stores import open_document_store


def router(documents: DocumentStore) -> APIRouter:
    """Routes of the summary function."""
    api = APIRouter(tags=["summary"], responses=ERROR_RESPONSES)

    @api.post("/v1/documents:batchGet", response_model=DocumentsResponse)
    def batch_get(request: DocumentsRequest) -> DocumentsResponse:
        """Documents of a scene in the order of `ids`; ids not found are listed in `missing`."""
        scene = get_scene(request.scene)
        found = documents.get(scene.name, request.ids)
        ordered = [found[i] for i in dict.fromkeys(request.ids) if i in found]
        missing = [i for i in dict.fromkeys(request.ids) if i not in found]
        return DocumentsResponse(scene=scene.name, documents=ordered, missing=missing)

    return api


def create_app(settings: Settings, documents: DocumentStore | None = None) -> FastAPI:
    """The summary function as an ASGI app."""
    app = create_api("mmsearch summary", "Documents by id from the document store.")
    app.include_router(router(documents or open_document_store(settings)))
    return app
