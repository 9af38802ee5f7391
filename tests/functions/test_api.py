"""The three functions through their Lambda handlers, with API Gateway HTTP API (v2) events."""

from __future__ import annotations

import time
from typing import Any

import pytest
from mangum import Mangum
from pydantic import SecretStr

from functions.core.apigw import http_event, response_json
from functions.core.settings import Settings
from functions.preprocess.app import create_app as preprocess_app
from functions.search.app import create_app as search_app
from functions.summary.app import create_app as summary_app
from offline.local_mongo import free_port


def call(handler: Mangum, method: str, path: str, body: Any = None) -> tuple[int, Any, dict]:
    response = handler(http_event(method, path, body), None)
    return response["statusCode"], response_json(response), response.get("headers", {})


@pytest.fixture
def search(indexed_qa: Settings) -> Mangum:
    return Mangum(search_app(indexed_qa), lifespan="off")


def test_search_finds_the_semantically_closest_document(search: Mangum) -> None:
    status, body, _ = call(search, "POST", "/v1/search", {"query": "I forgot my login password"})
    assert status == 200
    assert body["hits"][0]["id"] == "qa-000"
    assert body["hits"][0]["document"]["question"] == "How do I reset my password?"
    scores = [h["score"] for h in body["hits"]]
    assert scores == sorted(scores, reverse=True)
    assert set(body["timings_ms"]) == {"preprocess", "match", "rank", "summary", "total"}


def test_search_returns_fewer_hits_than_top_k_without_error(search: Mangum) -> None:
    status, body, _ = call(search, "POST", "/v1/search", {"query": "shipping time", "top_k": 100})
    assert status == 200
    assert len(body["hits"]) == 30
    assert len({h["id"] for h in body["hits"]}) == 30


def test_search_filters_by_category_including_unicode_values(search: Mangum) -> None:
    _, body, _ = call(
        search,
        "POST",
        "/v1/search",
        {"query": "capital city", "top_k": 50, "filters": {"category": "日本語"}},
    )
    assert [h["id"] for h in body["hits"]] == ["qa-029"]
    _, body, _ = call(
        search,
        "POST",
        "/v1/search",
        {"query": "capital", "top_k": 50, "filters": {"category": ["billing", "shipping"]}},
    )
    assert {h["document"]["category"][0] for h in body["hits"]} == {"billing", "shipping"}
    assert len(body["hits"]) == 6


def test_filter_values_with_quotes_cannot_inject_expressions(search: Mangum) -> None:
    injected = {"category": 'x"]) or id != ("'}
    status, body, _ = call(search, "POST", "/v1/search", {"query": "refund", "filters": injected})
    assert status == 200
    assert body["hits"] == []


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"query": ""}, 422, "invalid_request"),
        ({"query": "   \n\t "}, 422, "invalid_request"),
        ({"query": "x" * 1001}, 422, "invalid_request"),
        ({"query": "x" * 100_000}, 422, "invalid_request"),
        ({"query": "ok", "top_k": 0}, 422, "invalid_request"),
        ({"query": "ok", "top_k": 101}, 422, "invalid_request"),
        ({"query": "ok", "top_k": "ten"}, 422, "invalid_request"),
        ({"query": 42}, 422, "invalid_request"),
        ({"query": "ok", "scene": "nope"}, 404, "unknown_scene"),
        ({"query": "ok", "filters": {"color": "red"}}, 422, "invalid_request"),
        ({"query": "ok", "filters": {"category": []}}, 422, "invalid_request"),
        ({"query": "ok", "unexpected": 1}, 422, "invalid_request"),
        ({}, 422, "invalid_request"),
        ("{not json", 400, "malformed_json"),
        ("[1, 2]", 422, "invalid_request"),
    ],
)
def test_bad_search_input_is_a_clear_4xx(search: Mangum, body: Any, status: int, code: str) -> None:
    got_status, got, _ = call(search, "POST", "/v1/search", body)
    assert got_status == status
    assert got["error"]["code"] == code
    assert got["error"]["message"]
    assert len(got["error"]["message"]) < 1000


def test_embed_returns_unit_vectors_of_the_model_dimension(settings: Settings) -> None:
    handler = Mangum(preprocess_app(settings), lifespan="off")
    status, body, _ = call(handler, "POST", "/v1/embed", {"texts": ["hello", "a longer text"]})
    assert status == 200
    assert body["dim"] == 384 and len(body["vectors"]) == 2
    for vector in body["vectors"]:
        assert abs(sum(v * v for v in vector) - 1.0) < 1e-4
    status, body, _ = call(handler, "POST", "/v1/embed", {"texts": []})
    assert status == 422


def test_documents_batch_get_keeps_order_and_lists_missing(indexed_qa: Settings) -> None:
    handler = Mangum(summary_app(indexed_qa), lifespan="off")
    ids = ["qa-005", "nope", "qa-001"]
    status, body, _ = call(handler, "POST", "/v1/documents:batchGet", {"scene": "qa", "ids": ids})
    assert status == 200
    assert [d["id"] for d in body["documents"]] == ["qa-005", "qa-001"]
    assert body["missing"] == ["nope"]
    assert "_fingerprint" not in body["documents"][0]


def test_unreachable_mongodb_is_a_503_with_retry_hint_within_the_timeout(
    indexed_qa: Settings,
) -> None:
    dead = indexed_qa.model_copy(
        update={
            "mongo_uri": SecretStr(f"mongodb://127.0.0.1:{free_port()}/"),
            "store_timeout_s": 1.0,
        }
    )
    handler = Mangum(search_app(dead), lifespan="off")
    started = time.monotonic()
    status, body, headers = call(handler, "POST", "/v1/search", {"query": "refund"})
    assert status == 503
    assert body["error"]["code"] == "store_unavailable"
    assert int(headers["retry-after"]) > 0
    assert time.monotonic() - started < 8


def test_search_before_indexing_says_the_index_is_not_ready(settings: Settings) -> None:
    handler = Mangum(search_app(settings), lifespan="off")
    status, body, _ = call(handler, "POST", "/v1/search", {"query": "refund"})
    assert status == 503
    assert body["error"]["code"] == "index_not_ready"


def test_openapi_schema_lists_every_route(settings: Settings) -> None:
    from functions.composed.app import create_app

    handler = Mangum(create_app(settings), lifespan="off")
    status, schema, _ = call(handler, "GET", "/openapi.json")
    assert status == 200
    assert {"/v1/embed", "/v1/search", "/v1/documents:batchGet"} <= set(schema["paths"])
