"""Input limits and hostile input through both front doors: what is refused is a 4xx with
`{"error": {"code", "message"}}` (never echoing the input), unusual but valid text is
answered, and nothing is written to either store."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pymilvus import MilvusClient
from pymongo import MongoClient

from functions.composed.service import composed_routes
from functions.core.http.fastapi_app import create_api, include_routes
from functions.core.http.invoke_events import http_event, response_json
from functions.core.http.lambda_adapter import lambda_handler
from functions.core.http.routes import Route
from functions.core.settings import Settings
from tests.functions.test_api import Call, front_door

# Configured limits below the schema's ceilings, so the test proves the settings are used.
LIMITS = {
    "max_top_k": 20,
    "max_filter_fields": 1,
    "max_filter_values": 3,
    "max_query_chars": 200,
    "max_body_bytes": 200_000,
}
HUGE = "x" * 100_000


@pytest.fixture(scope="module")
def limited(qa_once: Settings) -> Settings:
    return qa_once.model_copy(update=LIMITS)


@pytest.fixture(scope="module")
def routes(limited: Settings) -> list[Route]:
    return composed_routes(limited)[1]


@pytest.fixture
def api(routes: list[Route], door: str) -> Call:
    return front_door(door, routes, LIMITS["max_body_bytes"])


def store_snapshot(settings: Settings) -> dict[str, int]:
    """Every collection of this test's prefix in both stores, with its size."""
    assert settings.mongo_uri is not None
    mongo: MongoClient[dict[str, Any]] = MongoClient(settings.mongo_uri.get_secret_value())
    database = mongo[settings.mongo_database]
    snapshot = {
        f"mongo:{name}": database[name].count_documents({})
        for name in database.list_collection_names()
        if name.startswith(settings.collection_prefix)
    }
    mongo.close()
    milvus = MilvusClient(settings.resolved_milvus_uri)
    for name in milvus.list_collections():
        if name.startswith(settings.collection_prefix):
            rows = milvus.query(name, filter="", output_fields=["count(*)"])
            snapshot[f"milvus:{name}"] = int(rows[0]["count(*)"])
    return snapshot


@pytest.fixture
def nothing_written(limited: Settings) -> Iterator[None]:
    before = store_snapshot(limited)
    assert before  # the corpus is there to be (not) changed
    yield
    assert store_snapshot(limited) == before


SEARCH = "/v1/search"
# A lone surrogate escape is invalid JSON to the Lambda door's parser (400) and valid JSON
# but invalid text to the HTTP door's (422): either way a 4xx that names the problem.
REFUSED: list[tuple[str, dict[str, Any], int | tuple[int, int]]] = [
    (SEARCH, {"query": "refund\x00 please"}, 422),
    (SEARCH, {"query": "refund \ud800"}, (400, 422)),
    (SEARCH, {"query": HUGE}, 422),
    (SEARCH, {"query": "a" * 201}, 422),
    (SEARCH, {"query": "refund", "top_k": 21}, 422),
    (SEARCH, {"query": "refund", "scene": HUGE}, 422),
    (SEARCH, {"query": "refund", "user_id": HUGE}, 422),
    (SEARCH, {"query": "refund", "filters": {HUGE: "billing"}}, 422),
    (SEARCH, {"query": "refund", "filters": {"category": HUGE}}, 422),
    (SEARCH, {"query": "refund", "filters": {"category": ["a", "b", "c", "d"]}}, 422),
    (SEARCH, {"query": "refund", "filters": {"category": "a", "tags": "b"}}, 422),
    (SEARCH, {"query": "refund", "filters": {"category": "bill\x00ing"}}, 422),
    (SEARCH, {"query": "refund", "debug": {"experiments": {"match": HUGE}}}, 422),
    (SEARCH, {"query": "refund", "query_image": HUGE}, 422),
    (SEARCH, {"query": "refund", "user_id": "u" * 250_000}, 413),
    ("/v1/embed", {"texts": [HUGE]}, 422),
    ("/v1/embed", {"texts": ["ok\x00"]}, 422),
    ("/v1/embed", {"texts": ["\u202e"]}, 422),  # empty once the override is dropped
    ("/v1/documents:batchGet", {"scene": "qa", "ids": [HUGE]}, 422),
    ("/v1/documents:batchGet", {"scene": "qa", "ids": ["a\x00" * 100] * 1000}, 413),
]


@pytest.mark.parametrize(("path", "body", "status"), REFUSED)
def test_out_of_limit_or_hostile_input_is_a_clear_4xx_and_writes_nothing(
    api: Call, nothing_written: None, path: str, body: dict[str, Any], status: int | tuple[int]
) -> None:
    got, answer, _ = api("POST", path, body)
    assert got in (status if isinstance(status, tuple) else (status,)), answer
    assert set(answer) == {"error"} and set(answer["error"]) == {"code", "message"}
    assert 0 < len(answer["error"]["message"]) < 500  # names the limit, never echoes input


@pytest.mark.parametrize(
    "query",
    [
        "كيف أسترد أموالي؟ refund",  # Arabic, right to left
        "איך מקבלים החזר refund",  # Hebrew
        "\u202erefund\u202c my card",  # a right-to-left override around a word
        "📦🚚 how long does shipping take? 👍🏽",
        "👨‍👩‍👧 family plan billing",  # a zero-width-joiner sequence
        "re\u0301fund",  # a combining accent
    ],
)
def test_right_to_left_text_and_emoji_within_limits_are_answered(
    api: Call, nothing_written: None, query: str
) -> None:
    status, body, _ = api("POST", SEARCH, {"query": query, "filters": {"category": "billing"}})
    assert status == 200, body
    assert all(h["document"]["category"][0] == "billing" for h in body["hits"])


def send_raw(
    door: str, routes: list[Route], body: bytes, content_type: str | None, path: str = SEARCH
) -> Any:
    """POST raw bytes to `path` with the given content type (None: no header)."""
    status, answer, _ = send_raw_with_headers(door, routes, body, content_type, path)
    return status, answer


def send_raw_with_headers(
    door: str, routes: list[Route], body: bytes, content_type: str | None, path: str = SEARCH
) -> tuple[int, Any, dict[str, str]]:
    """`send_raw`, also returning the response's headers (lower-cased names)."""
    headers = {} if content_type is None else {"content-type": content_type}
    if door == "lambda":
        event = http_event("POST", path, None)
        event["headers"] = headers
        event["body"] = base64.b64encode(body).decode()
        event["isBase64Encoded"] = True
        response = lambda_handler(routes)(event, None)
        lowered = {k.lower(): v for k, v in response["headers"].items()}
        return response["statusCode"], response_json(response), lowered
    app = create_api("test", "test")
    include_routes(app, routes)
    answer = TestClient(app).post(path, content=body, headers=headers)
    return answer.status_code, answer.json(), dict(answer.headers)


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b"{not json", "application/json", 400, "malformed_json"),
        (b'{"query": "refund', "application/json", 400, "malformed_json"),
        (b'{"query": "a\x00b"}', "application/json", 400, "malformed_json"),  # raw NUL
        (b"\xff\xfe{}", "application/json", None, None),  # not UTF-8
        (b'{"query": "\xed\xa0\x80"}', "application/json", None, None),  # encoded surrogate
        (b'{"query": "refund"}', "text/plain", 415, "unsupported_media_type"),
        (b"query=refund", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        (b"<query>refund</query>", "application/xml", 415, "unsupported_media_type"),
        # No declared type: a cross-site page can send that without a CORS preflight.
        (b'{"query": "refund"}', None, 415, "unsupported_media_type"),
        (b'{"query": "refund"}', "", 415, "unsupported_media_type"),
        (b'{"query": "refund"}', "application/json; charset=utf-8", 200, None),
    ],
)
def test_malformed_bodies_and_wrong_content_types_are_refused_alike_by_both_doors(
    routes: list[Route],
    door: str,
    nothing_written: None,
    body: bytes,
    content_type: str | None,
    status: int | None,
    code: str | None,
) -> None:
    got, answer = send_raw(door, routes, body, content_type)
    if status == 200:
        assert got == 200 and answer["hits"], answer
        return
    assert 400 <= got < 500 and set(answer["error"]) == {"code", "message"}, answer
    if status is not None:
        assert (got, answer["error"]["code"]) == (status, code)
