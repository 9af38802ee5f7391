"""Shared fixtures: one exported model, one local MongoDB-wire server and one Milvus Lite file
per test session; each test gets its own collection prefix so tests never see each other."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from functions.core.models.text_encoder import TextEncoder
from functions.core.scenes import QA
from functions.core.settings import Settings
from functions.core.stores.factory import collection_name, open_document_store, open_vector_store
from indexing.corpus import QADocument, read_corpus
from indexing.indexer import Indexer
from offline.local_mongo import LocalMongoServer

DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"
# jsii (the CDK's Node bridge) prints a banner about Node 20 on every start; the CDK works.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default encoder exported once per session (or MMSEARCH_TEST_MODEL_DIR, if set)."""
    reuse = os.environ.get("MMSEARCH_TEST_MODEL_DIR")
    if reuse and (Path(reuse) / "manifest.json").exists():
        return Path(reuse)
    from offline.export import export_text_model

    out = tmp_path_factory.mktemp("models") / "all-MiniLM-L6-v2"
    export_text_model(None, out)
    return out


@pytest.fixture(scope="session")
def mongo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMongoServer]:
    """A real MongoDB-wire server (SecantusDB) on a free port, stopped after the session."""
    with LocalMongoServer(tmp_path_factory.mktemp("mongo") / "data") as server:
        yield server


@pytest.fixture(scope="session")
def milvus_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("milvus") / "milvus.db")


@pytest.fixture
def settings(
    tmp_path: Path, model_dir: Path, mongo_server: LocalMongoServer, milvus_path: str
) -> Settings:
    """Settings isolated per test: own collection prefix, shared real servers."""
    return Settings(
        home=tmp_path / "home",
        model_dir=model_dir,
        milvus_uri=milvus_path,
        mongo_uri=SecretStr(mongo_server.uri),
        collection_prefix=f"t{uuid.uuid4().hex[:10]}_",
        store_timeout_s=5.0,
    )


FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def qa_docs() -> list[QADocument]:
    """Thirty hand-written QA documents in eight categories, three languages."""
    return read_corpus(FIXTURES / "qa_small.jsonl").documents


@pytest.fixture
def encoder(model_dir: Path) -> TextEncoder:
    return _encoder(model_dir)


_ENCODERS: dict[Path, TextEncoder] = {}


def _encoder(model_dir: Path) -> TextEncoder:
    if model_dir not in _ENCODERS:
        _ENCODERS[model_dir] = TextEncoder.load(model_dir)
    return _ENCODERS[model_dir]


@pytest.fixture
def indexer(settings: Settings, encoder: TextEncoder) -> Indexer:
    """An indexer writing into this test's own collections, with tiny batches."""
    return Indexer(
        encoder, open_vector_store(settings), open_document_store(settings), batch_size=8
    )


@pytest.fixture
def indexed_qa(settings: Settings, indexer: Indexer, qa_docs: list[QADocument]) -> Settings:
    """The small QA corpus indexed into this test's collections; returns its settings."""
    indexer.run(QA, collection_name(settings, QA), qa_docs)
    return settings


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny randomly initialised CLIP, exported with the same code as real models."""
    from offline.export_clip import export_clip_model
    from tests.offline.tiny_clip import build_tiny_clip

    base = tmp_path_factory.mktemp("clip-session")
    out = base / "clip"
    export_clip_model(str(build_tiny_clip(base / "tiny-clip")), out)
    return out


@pytest.fixture(scope="session")
def qa_once(
    tmp_path_factory: pytest.TempPathFactory,
    model_dir: Path,
    mongo_server: LocalMongoServer,
    milvus_path: str,
) -> Settings:
    """The small QA corpus indexed once per session, under its own collection prefix, for the
    tests that only read it (a test that writes takes `indexed_qa`, its own collections)."""
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


@pytest.fixture(scope="session")
def qa_and_images_once(qa_once: Settings) -> Settings:
    """`qa_once` plus 40 Tux Paint stamps in the image corpus (scenes t2i and i2i)."""
    from tests.functions.test_image_search import index_images, stamps

    index_images(qa_once, _encoder(qa_once.resolved_model_dir), stamps())
    return qa_once
