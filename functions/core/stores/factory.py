"""Builds the stores named by `Settings` (the one place that knows which backend is in use)."""

from __future__ import annotations

import re

from functions.core import log_scrub
from functions.core.errors import StoreUnavailable
from functions.core.scenes import Scene
from functions.core.settings import Settings
from functions.core.stores.document_store import MongoDocumentStore
from functions.core.stores.vector_store import MilvusVectorStore


def open_vector_store(settings: Settings) -> MilvusVectorStore:
    """Milvus Lite under home, or the Milvus server / Zilliz Cloud at `milvus_uri`."""
    log_scrub.install()  # before pymilvus can log its URI (with a password, if it has one)
    uri = settings.resolved_milvus_uri
    if settings.milvus_uri is None:
        settings.home.joinpath("milvus").mkdir(parents=True, exist_ok=True)
    token = settings.milvus_token.get_secret_value() if settings.milvus_token else None
    return MilvusVectorStore(
        uri,
        token,
        timeout_s=settings.store_timeout_s,
        retries=settings.store_retries,
        retry_backoff_s=settings.store_retry_backoff_s,
        index_type=settings.index_type,
        nlist=settings.nlist,
        nprobe=settings.nprobe,
    )


def open_document_store(settings: Settings) -> MongoDocumentStore:
    """MongoDB at `mongo_uri` (the local server's URI when running embedded)."""
    log_scrub.install()
    if settings.mongo_uri is None:
        raise StoreUnavailable("MMSEARCH_MONGO_URI is not set and no local server was started")
    return MongoDocumentStore(
        settings.mongo_uri.get_secret_value(),
        settings.mongo_database,
        collection_prefix=settings.collection_prefix,
        timeout_s=settings.store_timeout_s,
        retries=settings.store_retries,
        retry_backoff_s=settings.store_retry_backoff_s,
    )


IMAGE_COLLECTION_SUFFIX = "_image"


def collection_name(settings: Settings, scene: Scene) -> str:
    """The Milvus collection that holds a scene's (text-space) vectors."""
    return f"{settings.collection_prefix}{scene.store}"


def image_collection(collection: str) -> str:
    """The collection of image-space vectors beside an image corpus' caption collection."""
    return collection + IMAGE_COLLECTION_SUFFIX


def model_collection(collection: str, model: str | None) -> str:
    """The collection of `model`'s vectors beside the default model's (`collection`), or
    `collection` itself when `model` is None."""
    if model is None:
        return collection
    return f"{collection}__{re.sub(r'[^0-9a-z]+', '_', model.lower()).strip('_')}"
