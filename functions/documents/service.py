"""Writes by id: the documents function's routes.

Why a function of its own: a write needs the encoder (preprocess holds it), Milvus (search)
and MongoDB (summary). Giving any reader the other two's secrets would widen every read
path's permissions for a feature that is off by default, so in AWS the writes run in a
separate function, deployed only with `-c writes=true`, from the indexing bundle (which
already carries the encoder, both store clients and `indexing/`, whose code paths a write
reuses) and reached only by IAM-signed callers. Locally the composed server serves them
beside the reads.
"""

from __future__ import annotations

from typing import Any

from functions.core.errors import InvalidRequest
from functions.core.http.routes import Route
from functions.core.models.text_encoder import TextEncoder
from functions.core.scenes import InvalidDocument, Scene, SceneDocument, get_scene
from functions.core.settings import Settings
from functions.core.stores.document_store import DocumentStore
from functions.core.stores.factory import collection_name, open_document_store, open_vector_store
from functions.documents.schemas import (
    DeleteRequest,
    DeleteResponse,
    UpsertRequest,
    UpsertResponse,
    id_problem,
)
from indexing.corpus import scene_document
from indexing.indexer import Indexer
from indexing.writes import DocumentWriter


def validate_documents(scene: Scene, raw: list[dict[str, Any]]) -> list[SceneDocument]:
    """Every document checked against the scene's declared fields, or an `InvalidRequest`
    naming the first bad one (`documents[i].field`), so nothing is written."""
    if scene.kind == "image":
        raise InvalidRequest(
            f"scene {scene.name!r} holds images: write it with `mmsearch index --scene "
            f"{scene.name}` (the write API takes text scenes)"
        )
    documents: list[SceneDocument] = []
    seen: dict[str, int] = {}
    for position, body in enumerate(raw):
        try:
            document = scene_document(scene, body)
        except InvalidDocument as exc:
            raise InvalidDocument(f"documents[{position}].{exc.message}") from None
        if problem := id_problem(document.id):
            raise InvalidDocument(f"documents[{position}].id: {problem}")
        if document.id in seen:
            raise InvalidDocument(
                f"documents[{position}].id: duplicate of documents[{seen[document.id]}]"
            )
        seen[document.id] = position
        documents.append(document)
    return documents


def routes(writer: DocumentWriter) -> list[Route]:
    """Routes of the documents (write) function."""

    def batch_upsert(request: UpsertRequest) -> UpsertResponse:
        """Insert or replace up to 100 documents by id, validated against the scene's schema
        (one invalid document: 422 naming it, nothing written). Idempotent: a repeated batch
        writes nothing. Searchable when the call returns (flushed)."""
        scene = get_scene(request.scene)
        report = writer.upsert(scene, validate_documents(scene, request.documents))
        return UpsertResponse(
            scene=scene.name,
            written=report.written,
            unchanged=report.unchanged,
            seconds=round(report.seconds, 3),
        )

    def batch_delete(request: DeleteRequest) -> DeleteResponse:
        """Remove up to 1,000 ids from the scene's vectors and documents; ids not stored are
        listed in `missing`. Idempotent."""
        scene = get_scene(request.scene)
        report = writer.delete(scene, request.ids)
        return DeleteResponse(
            scene=scene.name,
            deleted=report.deleted,
            missing=report.missing,
            seconds=round(report.seconds, 3),
        )

    return [
        Route(
            "POST",
            "/v1/documents:batchUpsert",
            UpsertRequest,
            UpsertResponse,
            batch_upsert,
            "documents",
        ),
        Route(
            "POST",
            "/v1/documents:batchDelete",
            DeleteRequest,
            DeleteResponse,
            batch_delete,
            "documents",
        ),
    ]


def build_writer(
    settings: Settings, encoder: TextEncoder, documents: DocumentStore | None = None
) -> DocumentWriter:
    """A writer over the stores named by `settings` (or the given document store), embedding
    with `encoder`."""
    indexer = Indexer(
        encoder, open_vector_store(settings), documents or open_document_store(settings)
    )
    return DocumentWriter(indexer, lambda scene: collection_name(settings, scene))
