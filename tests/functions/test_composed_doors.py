"""The one-function deployment through every door it has: the FastAPI app (the local server),
the same app through Mangum (the Lambda handler of `split_functions=false`) and the lean
dispatcher over the same routes (what the split functions run). Each request must get the
same status, body and error headers from all three."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient

from functions.composed.app import create_app
from functions.composed.asgi_lambda import asgi_lambda_handler
from functions.composed.service import composed_routes
from functions.core.http.invoke_events import http_event, response_json
from functions.core.http.lambda_adapter import LambdaHandler, lambda_handler
from functions.core.settings import Settings

# (status, JSON body, the headers a client acts on)
Answer = tuple[int, Any, dict[str, str]]
Door = Callable[[str, str, str | bytes | None, str], Answer]
DOORS = ("fastapi", "mangum", "lambda")
COMPARED_HEADERS = ("retry-after", "content-type")
JSON = "application/json"


def _invoke(handler: LambdaHandler, event: dict[str, Any]) -> dict[str, Any]:
    """Call `handler` on a thread of its own, as Lambda's runtime does: Mangum runs the app on
    an event loop of that thread, which must not be one a browser test left running here."""

    def run() -> dict[str, Any]:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            return handler(event, None)
        finally:
            loop.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result()


def _lambda_door(handler: LambdaHandler) -> Door:
    def call(method: str, path: str, body: str | bytes | None, content_type: str) -> Answer:
        event = http_event(method, path, None, {"content-type": content_type})
        if isinstance(body, bytes):  # binary bodies arrive base64-encoded, as from API Gateway
            event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
        else:
            event["body"] = body
        response = _invoke(handler, event)
        headers = {k.lower(): v for k, v in response.get("headers", {}).items()}
        assert headers["x-correlation-id"] == event["requestContext"]["requestId"]
        return response["statusCode"], response_json(response), headers

    return call


def _http_door(client: TestClient) -> Door:
    def call(method: str, path: str, body: str | bytes | None, content_type: str) -> Answer:
        response = client.request(
            method, path, content=body, headers={"content-type": content_type}
        )
        return response.status_code, response.json(), dict(response.headers)

    return call


@pytest.fixture(scope="module")
def lambda_doors(qa_once: Settings) -> dict[str, LambdaHandler]:
    """The one function's Lambda handler (Mangum) and the lean dispatcher, same settings."""
    return {
        "mangum": asgi_lambda_handler(create_app(qa_once)),
        "lambda": lambda_handler(composed_routes(qa_once)[1]),
    }


@pytest.fixture(scope="module")
def doors(qa_once: Settings, lambda_doors: dict[str, LambdaHandler]) -> Iterator[dict[str, Door]]:
    with TestClient(create_app(qa_once)) as client:
        yield {
            "fastapi": _http_door(client),
            **{name: _lambda_door(handler) for name, handler in lambda_doors.items()},
        }


def through_every_door(
    doors: dict[str, Door],
    method: str,
    path: str,
    body: Any = None,
    content_type: str = JSON,
) -> Answer:
    """The answer the three doors agree on (timings aside): Mangum answers exactly as FastAPI
    (the same app); the lean dispatcher too, except for an error's wording (same code)."""
    raw = body if isinstance(body, str | bytes) or body is None else json.dumps(body)
    answers = {}
    for name in DOORS:
        status, payload, headers = doors[name](method, path, raw, content_type)
        if isinstance(payload, dict):
            payload.pop("timings_ms", None)
        kept = {h: headers[h].split(";")[0] for h in COMPARED_HEADERS if h in headers}
        answers[name] = (status, payload, kept)
    assert answers["mangum"] == answers["fastapi"], f"mangum differs on {method} {path}"
    lean, first = answers["lambda"], answers["fastapi"]
    assert _without_wording(lean) == _without_wording(first), f"lambda differs on {path}"
    return first


def _without_wording(answer: Answer) -> Answer:
    status, payload, headers = answer
    if isinstance(payload, dict) and set(payload) == {"error"}:
        payload = {"error": {"code": payload["error"]["code"]}}
    return status, payload, headers


def test_search_answers_alike_through_fastapi_mangum_and_the_lean_dispatcher(
    doors: dict[str, Door],
) -> None:
    request = {"query": "I forgot my login password", "debug": {"experiments": {"rank": "score"}}}
    status, body, _ = through_every_door(doors, "POST", "/v1/search", request)
    assert status == 200
    assert body["hits"][0]["id"] == "qa-000"
    filtered = {"query": "capital", "top_k": 50, "filters": {"category": ["billing", "shipping"]}}
    status, body, _ = through_every_door(doors, "POST", "/v1/search", filtered)
    assert (status, len(body["hits"])) == (200, 6)


def test_scenes_embed_and_documents_answer_alike_through_every_door(
    doors: dict[str, Door],
) -> None:
    status, body, _ = through_every_door(doors, "GET", "/v1/scenes")
    assert status == 200 and "qa" in body["scenes"]
    status, body, _ = through_every_door(doors, "POST", "/v1/embed", {"texts": ["héllo"]})
    assert (status, body["dim"]) == (200, 384)
    request = {"scene": "qa", "ids": ["qa-001", "nope", "qa-000"]}
    status, body, _ = through_every_door(doors, "POST", "/v1/documents:batchGet", request)
    assert status == 200
    assert [d["id"] for d in body["documents"]] == ["qa-001", "qa-000"]
    assert body["missing"] == ["nope"]


def test_a_multipart_search_form_is_read_alike_through_every_door(
    doors: dict[str, Door],
) -> None:
    boundary = "XyZ"
    form = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="query"\r\n\r\n'
        "reset my password\r\n"
        f'--{boundary}\r\nContent-Disposition: form-data; name="top_k"\r\n\r\n3\r\n'
        f"--{boundary}--\r\n"
    ).encode()
    status, body, _ = through_every_door(
        doors, "POST", "/v1/search", form, f"multipart/form-data; boundary={boundary}"
    )
    assert (status, len(body.get("hits", body))) == (200, 3), body


@pytest.mark.parametrize(
    ("method", "path", "body", "content_type", "status", "code"),
    [
        ("POST", "/v1/nope", {"texts": ["x"]}, JSON, 404, "not_found"),
        ("GET", "/v1/embed", None, JSON, 405, "method_not_allowed"),
        ("POST", "/v1/search", "{broken", JSON, 400, "malformed_json"),
        ("POST", "/v1/search", {"query": "x", "top_k": 0}, JSON, 422, None),
        ("POST", "/v1/search", {"query": "x", "scene": "nope"}, JSON, 404, None),
        ("POST", "/v1/search", "query=x", "text/plain", 415, "unsupported_media_type"),
        ("POST", "/v1/embed", "x" * (5 * 2**20 + 1), JSON, 413, "payload_too_large"),
    ],
)
def test_refusals_carry_the_same_status_and_error_body_through_every_door(
    doors: dict[str, Door],
    method: str,
    path: str,
    body: Any,
    content_type: str,
    status: int,
    code: str | None,
) -> None:
    answered, payload, _ = through_every_door(doors, method, path, body, content_type)
    assert answered == status
    assert set(payload) == {"error"}
    assert code is None or payload["error"]["code"] == code


@pytest.mark.parametrize("door", ["mangum", "lambda"])
def test_both_lambda_doors_refuse_a_body_that_is_not_base64_or_not_utf8(
    lambda_doors: dict[str, LambdaHandler], door: str
) -> None:
    handler = lambda_doors[door]
    event = http_event("POST", "/v1/embed", None)
    event["body"], event["isBase64Encoded"] = "%%% not base64", True
    response = _invoke(handler, event)
    assert response["statusCode"] == 400
    assert response_json(response)["error"]["code"] == "malformed_json"
    event = http_event("POST", "/v1/embed", None)
    event["body"] = '{"texts": ["\ud800"]}'  # a lone surrogate, as a broken client may send
    response = _invoke(handler, event)
    assert response["statusCode"] == 400
    assert response_json(response)["error"]["code"] == "malformed_json"
