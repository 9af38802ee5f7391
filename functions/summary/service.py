"""Documents by id, in the order asked, with the ids not found listed."""

from __future__ import annotations

from functions.core.http.routes import Route
from functions.core.http.schemas import DocumentsRequest, DocumentsResponse
from functions.core.scenes import get_scene
from functions.core.stores.document_store import DocumentStore


def routes(documents: DocumentStore) -> list[Route]:
    """Routes of the summary function."""

    def batch_get(request: DocumentsRequest) -> DocumentsResponse:
        """Documents of a scene in the order of `ids`, each with the scene's declared fields
        only (bookkeeping such as sha256 or pixel sizes stays in); ids not found are listed
        in `missing`."""
        scene = get_scene(request.scene)
        found = documents.get(scene.store, request.ids, scene.document_fields)
        ordered = [found[i] for i in dict.fromkeys(request.ids) if i in found]
        missing = [i for i in dict.fromkeys(request.ids) if i not in found]
        return DocumentsResponse(scene=scene.name, documents=ordered, missing=missing)

    return [
        Route(
            "POST",
            "/v1/documents:batchGet",
            DocumentsRequest,
            DocumentsResponse,
            batch_get,
            "summary",
        )
    ]
