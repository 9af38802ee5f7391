"""Writes by id (`POST /v1/documents:batchUpsert` and `:batchDelete`) through both front doors,
against real Milvus Lite and the local MongoDB-wire server: validated, bounded, idempotent,
searchable when the call returns."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from functions.core.limits import MAX_DELETE_IDS, MAX_UPSERT_DOCUMENTS
from functions.core.models.text_encoder import TextEncoder
from functions.core.scenes import QA, SCENES_FILE_ENV
from functions.core.settings import Settings
from functions.core.stores.factory import collection_name, open_document_store, open_vector_store
from functions.documents import service as writes
from functions.summary import service as summary
from offline.local_mongo import free_port
from tests.conftest import FIXTURES
from tests.functions.test_api import Call, front_door, search_routes

UPSERT = "/v1/documents:batchUpsert"
DELETE = "/v1/documents:batchDelete"


def fixture_documents() -> list[dict[str, Any]]:
    lines = (FIXTURES / "qa_small.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@pytest.fixture
def api(settings: Settings, encoder: TextEncoder, door: str) -> Call:
    """Writes, search and batchGet behind one door, over this test's own (empty) collections."""
    documents = open_document_store(settings)
    routes = (
        writes.routes(writes.build_writer(settings, encoder, documents))
        + search_routes(settings)
        + summary.routes(documents)
    )
    return front_door(door, routes)


def ids_found(api: Call, query: str, top_k: int = 5) -> list[str]:
    status, body, _ = api("POST", "/v1/search", {"query": query, "top_k": top_k})
    assert status == 200, body
    return [hit["id"] for hit in body["hits"]]


def stored(api: Call, ids: list[str]) -> list[str]:
    status, body, _ = api("POST", "/v1/documents:batchGet", {"scene": "qa", "ids": ids})
    assert status == 200, body
    return [d["id"] for d in body["documents"]]


def test_upserted_documents_are_searchable_when_the_call_returns(api: Call) -> None:
    status, body, _ = api("POST", UPSERT, {"scene": "qa", "documents": fixture_documents()})
    assert status == 200, body
    assert (body["written"], body["unchanged"]) == (30, 0)
    new = {
        "id": "new-1",
        "question": "How do octopuses change colour?",
        "answer": "Chromatophores in their skin expand and contract under muscle control.",
        "category": ["animals"],
    }
    status, body, _ = api("POST", UPSERT, {"scene": "qa", "documents": [new]})
    assert (status, body["written"]) == (200, 1)
    # No wait, no flush by the caller: the very next search finds it.
    assert ids_found(api, "octopus skin colour change")[0] == "new-1"


def test_the_same_batch_twice_writes_nothing_the_second_time(api: Call) -> None:
    batch = {"scene": "qa", "documents": fixture_documents()[:10]}
    first = api("POST", UPSERT, batch)[1]
    second = api("POST", UPSERT, batch)[1]
    assert (first["written"], first["unchanged"]) == (10, 0)
    assert (second["written"], second["unchanged"]) == (0, 10)


def test_a_changed_document_is_re_embedded_and_replaced(api: Call) -> None:
    document = {"id": "doc-1", "question": "What is the capital of France?", "answer": "Paris."}
    api("POST", UPSERT, {"scene": "qa", "documents": [document, *fixture_documents()[:5]]})
    changed = {**document, "question": "Which gas do plants absorb?", "answer": "Carbon dioxide."}
    status, body, _ = api("POST", UPSERT, {"scene": "qa", "documents": [changed]})
    assert (status, body["written"]) == (200, 1)
    assert ids_found(api, "plants absorb carbon dioxide")[0] == "doc-1"
    _, got, _ = api("POST", "/v1/documents:batchGet", {"scene": "qa", "ids": ["doc-1"]})
    assert got["documents"][0]["answer"] == "Carbon dioxide."


def test_one_invalid_document_is_a_422_naming_it_and_nothing_is_written(api: Call) -> None:
    good = {"id": "ok-1", "question": "fine", "answer": "fine"}
    bad = {"id": "bad-1", "question": "q", "category": ["x" * 1000]}
    status, body, _ = api("POST", UPSERT, {"scene": "qa", "documents": [good, bad]})
    assert status == 422
    assert body["error"]["code"] == "invalid_document"
    assert body["error"]["message"].startswith("documents[1].category")
    assert "xxxx" not in body["error"]["message"]  # the value is never echoed
    assert stored(api, ["ok-1", "bad-1"]) == []


@pytest.mark.parametrize(
    ("documents", "field"),
    [
        ([{"question": "no id"}], "documents[0].id"),
        ([{"id": ""}], "documents[0].id"),
        ([{"id": "a", "question": "q"}] * 2, "documents[1].id: duplicate"),
        ([{"id": "a", "question": "q", "category": 42}], "documents[0].category"),
        # No text: an empty embedding would rank first for unrelated queries.
        ([{"id": "blank"}], "documents[0].question/answer: no text to embed"),
        ([{"id": "blank", "question": " ", "answer": ""}], "documents[0].question/answer"),
        ([{"id": "line\nbreak", "question": "q"}], "documents[0].id: ids must not contain control"),
    ],
)
def test_documents_outside_the_schema_are_refused_by_field(
    api: Call, documents: list[dict[str, Any]], field: str
) -> None:
    status, body, _ = api("POST", UPSERT, {"scene": "qa", "documents": documents})
    assert status == 422
    assert body["error"]["message"].startswith(field)


def test_batches_over_the_limits_are_refused_whole(api: Call) -> None:
    too_many = [{"id": f"d{i}", "question": "q"} for i in range(MAX_UPSERT_DOCUMENTS + 1)]
    status, body, _ = api("POST", UPSERT, {"scene": "qa", "documents": too_many})
    assert (status, body["error"]["code"]) == (422, "invalid_request")
    assert stored(api, ["d0"]) == []
    ids = [f"d{i}" for i in range(MAX_DELETE_IDS + 1)]
    status, body, _ = api("POST", DELETE, {"scene": "qa", "ids": ids})
    assert (status, body["error"]["code"]) == (422, "invalid_request")
    status, body, _ = api("POST", UPSERT, {"scene": "qa", "documents": []})
    assert status == 422
    # An id a Milvus filter cannot spell could be written but never deleted: refused.
    status, body, _ = api("POST", DELETE, {"scene": "qa", "ids": ["ok", "tab\there"]})
    assert (status, body["error"]["code"]) == (422, "invalid_request")
    assert body["error"]["message"].startswith("ids.1")


def test_unknown_and_image_scenes_are_refused(api: Call) -> None:
    one = [{"id": "x", "question": "q"}]
    status, body, _ = api("POST", UPSERT, {"scene": "nope", "documents": one})
    assert (status, body["error"]["code"]) == (404, "unknown_scene")
    status, body, _ = api("POST", UPSERT, {"scene": "t2i", "documents": one})
    assert (status, body["error"]["code"]) == (422, "invalid_request")
    assert "mmsearch index --scene t2i" in body["error"]["message"]


def test_deleted_documents_leave_search_and_batch_get_and_a_repeat_is_harmless(api: Call) -> None:
    api("POST", UPSERT, {"scene": "qa", "documents": fixture_documents()})
    before = ids_found(api, "refund", top_k=3)
    target = before[0]
    status, body, _ = api("POST", DELETE, {"scene": "qa", "ids": [target, "never-stored"]})
    assert status == 200, body
    assert (body["deleted"], body["missing"]) == (1, ["never-stored"])
    assert target not in ids_found(api, "refund", top_k=10)
    assert stored(api, [target]) == []
    status, body, _ = api("POST", DELETE, {"scene": "qa", "ids": [target]})
    assert (status, body["deleted"], body["missing"]) == (200, 0, [target])


def test_a_delete_also_removes_a_vector_whose_document_is_gone(
    settings: Settings, encoder: TextEncoder
) -> None:
    # A write that died between Milvus and MongoDB leaves a vector without its document.
    writer = writes.build_writer(settings, encoder)
    documents = writes.validate_documents(QA, fixture_documents()[:3])
    writer.upsert(QA, documents)
    open_document_store(settings).delete(QA.store, [documents[0].id])
    writer.delete(QA, [documents[0].id])
    vectors = open_vector_store(settings)
    assert vectors.missing_ids(collection_name(settings, QA), [documents[0].id]) == [
        documents[0].id
    ]


def test_an_unreachable_store_is_a_503_with_retry_hint_and_no_hang(
    settings: Settings, encoder: TextEncoder, door: str
) -> None:
    dead = settings.model_copy(
        update={"mongo_uri": SecretStr(f"mongodb://127.0.0.1:{free_port()}/"), "store_timeout_s": 1}
    )
    api = front_door(door, writes.routes(writes.build_writer(dead, encoder)))
    started = time.monotonic()
    status, body, headers = api(
        "POST", UPSERT, {"scene": "qa", "documents": [{"id": "a", "question": "q"}]}
    )
    assert status == 503
    assert body["error"]["code"] == "store_unavailable"
    assert int(headers["retry-after"]) > 0
    assert time.monotonic() - started < 8


def test_the_local_server_serves_writes_and_lambda_does_not_unless_told(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.composed.service import writes_enabled

    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    assert writes_enabled(settings)
    assert not writes_enabled(settings.model_copy(update={"writes": False}))
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "mmsearch-search")
    assert not writes_enabled(settings)
    assert writes_enabled(settings.model_copy(update={"writes": True}))


def test_a_declared_catalogue_scene_is_written_updated_and_deleted_by_id(
    settings: Settings,
    encoder: TextEncoder,
    door: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A scene added by configuration alone (tests/functions/test_catalogue_scene.py's YAML):
    typed fields checked by name, filters on what was written, updates and deletes seen."""
    from tests.functions.test_catalogue_scene import CATALOGUE_YAML, products

    (tmp_path / "scenes.yaml").write_text(CATALOGUE_YAML)
    monkeypatch.setenv(SCENES_FILE_ENV, str(tmp_path / "scenes.yaml"))
    settings = settings.model_copy(update={"nlist": 16})  # every list probed: exact filtering
    api = front_door(
        door,
        writes.routes(writes.build_writer(settings, encoder)) + search_routes(settings),
    )
    rows = products()[:40]
    bad = [rows[0], {**rows[1], "price": "cheap"}]
    status, body, _ = api("POST", UPSERT, {"scene": "catalogue", "documents": bad})
    assert status == 422 and body["error"]["message"].startswith("documents[1].price")
    status, body, _ = api("POST", UPSERT, {"scene": "catalogue", "documents": rows})
    assert (status, body["written"]) == (200, 40), body

    def cobalt_in_range() -> set[str]:
        request = {
            "scene": "catalogue",
            "query": "something for the kitchen",
            "top_k": 50,
            "filters": {"brand": "Cobalt", "price": {"gte": 20, "lte": 150}},
        }
        status, found, _ = api("POST", "/v1/search", request)
        assert status == 200, found
        return {h["id"] for h in found["hits"]}

    expected = {p["id"] for p in rows if p["brand"] == "Cobalt" and 20 <= p["price"] <= 150}
    assert expected and cobalt_in_range() == expected
    moved = next(p for p in rows if p["id"] in expected)
    status, body, _ = api(
        "POST", UPSERT, {"scene": "catalogue", "documents": [{**moved, "price": 999.0}]}
    )
    assert (status, body["written"]) == (200, 1)
    assert cobalt_in_range() == expected - {moved["id"]}
    gone = sorted(expected - {moved["id"]})[0]
    status, body, _ = api("POST", DELETE, {"scene": "catalogue", "ids": [gone]})
    assert (status, body["deleted"]) == (200, 1)
    assert cobalt_in_range() == expected - {moved["id"], gone}


def test_the_documents_lambda_entry_point_initialises_from_its_environment_and_writes(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `-c writes=true` deploys: the handler module built from MMSEARCH_* variables alone
    (init opens both stores and the model once), serving an API Gateway event."""
    import importlib
    import sys

    from functions.core.http.invoke_events import http_event, response_json

    assert settings.mongo_uri is not None
    for name, value in {
        "MMSEARCH_HOME": str(settings.home),
        "MMSEARCH_MODEL_DIR": str(settings.resolved_model_dir),
        "MMSEARCH_MILVUS_URI": str(settings.milvus_uri),
        "MMSEARCH_MONGO_URI": settings.mongo_uri.get_secret_value(),
        "MMSEARCH_COLLECTION_PREFIX": settings.collection_prefix,
    }.items():
        monkeypatch.setenv(name, value)
    sys.modules.pop("functions.documents.handler", None)
    module = importlib.import_module("functions.documents.handler")
    body = {"scene": "qa", "documents": fixture_documents()[:2]}
    response = module.handler(http_event("POST", UPSERT, body), None)
    assert response["statusCode"] == 200, response
    assert response_json(response)["written"] == 2
    assert open_document_store(settings).count(QA.store) == 2


def test_concurrent_writes_of_the_same_new_ids_all_succeed_and_store_each_once(
    settings: Settings, encoder: TextEncoder
) -> None:
    """The local server handles requests on several threads: batches racing over ids that are
    new to both must not fail on a duplicate key nor leave two vectors."""
    from concurrent.futures import ThreadPoolExecutor

    writer = writes.build_writer(settings, encoder)
    batch = writes.validate_documents(QA, fixture_documents()[:10])
    with ThreadPoolExecutor(4) as pool:
        reports = list(pool.map(lambda _: writer.upsert(QA, batch), range(4)))
    assert sorted(r.written for r in reports) == [0, 0, 0, 10]
    assert open_document_store(settings).count(QA.store) == 10
    assert open_vector_store(settings).count(collection_name(settings, QA)) == 10
