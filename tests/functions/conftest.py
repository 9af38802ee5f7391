"""Fixtures for the API's robustness tests: one indexed QA corpus per test module, since
those tests only read it."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from pydantic import SecretStr

from functions.core.scenes import QA
from functions.core.settings import Settings
from functions.core.stores.factory import collection_name, open_document_store, open_vector_store
from indexing.corpus import read_corpus
from indexing.indexer import Indexer
from offline.local_mongo import LocalMongoServer
from tests.conftest import FIXTURES, _encoder


@pytest.fixture(scope="module")
def qa_once(
    tmp_path_factory: pytest.TempPathFactory,
    model_dir: Path,
    mongo_server: LocalMongoServer,
    milvus_path: str,
) -> Settings:
    """The small QA corpus indexed once for the module, under its own collection prefix."""
    settings = Settings(
        home=tmp_path_factory.mktemp("home"),
        model_dir=model_dir,
        milvus_uri=milvus_path,
        mongo_uri=SecretStr(mongo_server.uri),
        collection_prefix=f"m{uuid.uuid4().hex[:10]}_",
        store_timeout_s=5.0,
    )
    indexer = Indexer(
        _encoder(model_dir), open_vector_store(settings), open_document_store(settings)
    )
    indexer.run(
        QA, collection_name(settings, QA), read_corpus(FIXTURES / "qa_small.jsonl").documents
    )
    return settings


@pytest.fixture(params=["lambda", "http"])
def door(request: pytest.FixtureRequest) -> str:
    """Which front door a test goes through: the Lambda handler or the FastAPI app."""
    return str(request.param)


@pytest.fixture(scope="module")
def qa_and_images_once(qa_once: Settings) -> Settings:
    """`qa_once` plus 40 Tux Paint stamps in the image corpus (scenes t2i and i2i)."""
    from tests.functions.test_image_search import index_images, stamps

    index_images(qa_once, _encoder(qa_once.resolved_model_dir), stamps())
    return qa_once
