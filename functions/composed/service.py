"""Preprocess, search and summary wired together in one process."""

from __future__ import annotations

import os

from functions.core.http.routes import Route
from functions.core.settings import Settings
from functions.core.stores.factory import open_document_store
from functions.preprocess import service as preprocess
from functions.preprocess.service import Preprocessor
from functions.search import service as search
from functions.search.clients import InProcessDocuments, InProcessEmbedder
from functions.summary import service as summary


def composed_routes(settings: Settings) -> tuple[Preprocessor, list[Route]]:
    """Preprocess, search and summary sharing one encoder and one set of store clients."""
    preprocessor = preprocess.build_preprocessor(settings)
    documents = open_document_store(settings)
    service = search.build_search_service(
        settings, InProcessEmbedder(preprocessor), InProcessDocuments(documents)
    )
    routes = (
        preprocess.routes(preprocessor, settings.max_body_bytes)
        + search.routes(service)
        + summary.routes(documents)
    )
    if writes_enabled(settings):
        from functions.documents import service as writes

        writer = writes.build_writer(settings, preprocessor.encoder, documents)
        routes += writes.routes(writer, writes.image_limits(settings))
    return preprocessor, routes


def writes_enabled(settings: Settings) -> bool:
    """`MMSEARCH_WRITES`; unset: on outside AWS Lambda (the local server), off inside it,
    where writes are the documents function's alone (deployed with `-c writes=true`)."""
    if settings.writes is not None:
        return settings.writes
    return "AWS_LAMBDA_FUNCTION_NAME" not in os.environ
