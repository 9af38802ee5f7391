"""A scene whose collection holds no documents (indexed empty, or created and not yet filled)
answers 200 with no hits in every match mode, through both front doors: never Milvus'
"Invalid sparse row: NaN or Inf value at /workspace/milvus-lite/..." as a retryable 503
(issue 15, item 11). A scene with no collection at all stays a 503 `index_not_ready`."""

from __future__ import annotations

import pytest

from functions.core.models.text_encoder import TextEncoder
from functions.core.scenes import QA
from functions.core.settings import Settings
from functions.core.stores.factory import collection_name, open_document_store, open_vector_store
from indexing.indexer import Indexer
from tests.functions.test_api import front_door, search_routes

MATCH_MODES = ["dense", "bm25", "hybrid", "hybrid_weighted"]


@pytest.fixture(params=["indexed_empty", "created_not_filled"])
def empty_scene(
    request: pytest.FixtureRequest, settings: Settings, encoder: TextEncoder
) -> Settings:
    collection = collection_name(settings, QA)
    if request.param == "indexed_empty":
        report = Indexer(encoder, open_vector_store(settings), open_document_store(settings)).run(
            QA, collection, []
        )
        assert (report.vectors, report.documents) == (0, 0)
    else:  # an index run that has created the collection and written nothing yet
        open_vector_store(settings).ensure_collection(collection, encoder.dim, ["category"])
    return settings


@pytest.mark.parametrize("door", ["lambda", "http"])
def test_every_match_mode_on_an_empty_scene_answers_no_hits(
    empty_scene: Settings, door: str
) -> None:
    search = front_door(door, search_routes(empty_scene))
    for mode in MATCH_MODES:
        for filters in ({}, {"category": ["it's"]}):
            request = {
                "query": "how do I get a refund?",
                "filters": filters,
                "debug": {"experiments": {"match": mode}},
            }
            status, body, _ = search("POST", "/v1/search", request)
            assert status == 200, (mode, body)
            assert body["hits"] == [] and body["experiments"]["match"] == mode
            assert "workspace" not in str(body)
