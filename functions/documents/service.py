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

from dataclasses import dataclass
from typing import Any

from functions.core.errors import InvalidRequest
from functions.core.http.routes import Route
from functions.core.models.image_space import load_image_space
from functions.core.models.text_encoder import TextEncoder
from functions.core.scenes import InvalidDocument, Scene, get_scene
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
from indexing.image_indexer import ImageIndexer
from indexing.indexer import Indexer
from indexing.inline_images import inline_image_document
from indexing.media import LocalMedia, MediaStore, S3Media
from indexing.writes import DocumentWriter


def validate_documents(
    scene: Scene, raw: list[dict[str, Any]], images: ImageLimits | None = None
) -> list[Any]:
    """Every document checked against the scene's declared fields, or an `InvalidRequest`
    naming the first bad one (`documents[i].field`), so nothing is written. An image scene's
    documents carry their image inline (`image`: base64), checked within `images`' limits."""
    if scene.kind == "image" and images is None:
        raise InvalidRequest(
            f"scene {scene.name!r} holds images and this server writes text scenes only: "
            f"index it with `mmsearch index --scene {scene.name}`"
        )
    documents: list[Any] = []
    seen: dict[str, int] = {}
    for position, body in enumerate(raw):
        try:
            if scene.kind == "image" and images is not None:
                document: Any = inline_image_document(
                    body, max_bytes=images.max_bytes, max_pixels=images.max_pixels
                )
            else:
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


@dataclass(frozen=True)
class ImageLimits:
    """Bounds of an image written inline (the server's query-image limits)."""

    max_bytes: int
    max_pixels: int


def routes(writer: DocumentWriter, images: ImageLimits | None = None) -> list[Route]:
    """Routes of the documents (write) function; image scenes are writable given `images`
    (the writer then holds an image indexer)."""

    def batch_upsert(request: UpsertRequest) -> UpsertResponse:
        """Insert or replace up to 100 documents by id, validated against the scene's schema
        (one invalid document: 422 naming it, nothing written). Idempotent: a repeated batch
        writes nothing. Searchable when the call returns (flushed)."""
        scene = get_scene(request.scene)
        report = writer.upsert(scene, validate_documents(scene, request.documents, images))
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
    text with `encoder`; image scenes through an image indexer built at their first write
    (the image space and the media store load only when an image is written)."""
    vectors = open_vector_store(settings)
    store = documents or open_document_store(settings)
    indexer = Indexer(encoder, vectors, store)

    def image_indexer() -> ImageIndexer:
        return ImageIndexer(encoder, load_image_space(settings), vectors, store, media(settings))

    return DocumentWriter(
        indexer, lambda scene: collection_name(settings, scene), image_indexer=image_indexer
    )


def image_limits(settings: Settings) -> ImageLimits:
    """An inline image is bounded as a query image is."""
    return ImageLimits(max_bytes=settings.max_body_bytes, max_pixels=settings.max_image_pixels)


def media(settings: Settings) -> MediaStore:
    """Where written images are published: the media bucket in AWS (CloudFront's `/media/*`),
    else the home's `media/` folder that the local server serves."""
    if settings.media_bucket:
        import boto3

        return S3Media(boto3.client("s3"), settings.media_bucket, settings.media_base_url)
    return LocalMedia(settings.home / "media", settings.media_base_url)
