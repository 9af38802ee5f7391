"""Issue 15, design point: `debug.experiments` let any caller pick an A/B arm and skew the
metrics. It is honoured only for allowed callers (the x-mmsearch-debug header matching
MMSEARCH_DEBUG_TOKEN, or a deployment left open: the local server on 127.0.0.1), and forced
requests are kept out of the per-experiment metrics."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from functions.core.http.fastapi_app import create_api, include_routes
from functions.core.http.invoke_events import http_event, response_json
from functions.core.http.lambda_adapter import lambda_handler
from functions.core.settings import Settings
from functions.search import service as search_service
from functions.search.bucketing import DebugAccess

TOKEN = secrets.token_urlsafe(16)  # made per run: no token is stored anywhere
FORCE = {"query": "refund", "debug": {"experiments": {"rank": "score"}}}
Send = Callable[[dict[str, Any], dict[str, str]], tuple[int, Any]]


@pytest.fixture(params=["lambda", "http"])
def door(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _doors(settings: Settings, door: str) -> Send:
    service = search_service.build_search_service(settings, *search_service.dependencies(settings))
    routes = search_service.routes(service)
    if door == "lambda":
        handler = lambda_handler(routes)

        def via_lambda(body: dict[str, Any], headers: dict[str, str]) -> tuple[int, Any]:
            response = handler(http_event("POST", "/v1/search", body, headers), None)
            return response["statusCode"], response_json(response)

        return via_lambda
    app = create_api("test", "test")
    include_routes(app, routes)
    client = TestClient(app)

    def via_http(body: dict[str, Any], headers: dict[str, str]) -> tuple[int, Any]:
        reply = client.post(
            "/v1/search",
            content=json.dumps(body),
            headers={"content-type": "application/json", **headers},
        )
        return reply.status_code, reply.json()

    return via_http


@pytest.fixture
def guarded(qa_once: Settings, door: str) -> Send:
    closed = qa_once.model_copy(update={"debug_open": False, "debug_token": SecretStr(TOKEN)})
    return _doors(closed, door)


def test_forcing_an_experiment_without_the_token_is_a_403(guarded: Send) -> None:
    for headers in ({}, {"x-mmsearch-debug": "wrong"}, {"x-mmsearch-debug": TOKEN[:-1]}):
        status, body = guarded(FORCE, headers)
        assert status == 403, body
        assert body["error"]["code"] == "debug_not_allowed"
        assert TOKEN not in json.dumps(body)


def test_the_debug_token_lets_a_caller_force_an_experiment(guarded: Send) -> None:
    status, body = guarded(FORCE, {"X-MMSearch-Debug": TOKEN})
    assert status == 200, body
    assert body["experiments"]["rank"] == "score"


def test_requests_without_debug_need_no_token(guarded: Send) -> None:
    status, body = guarded({"query": "refund"}, {})
    assert status == 200 and body["hits"]


def test_without_a_token_configured_no_caller_can_force(qa_once: Settings, door: str) -> None:
    send = _doors(qa_once.model_copy(update={"debug_open": False}), door)
    assert send(FORCE, {"x-mmsearch-debug": ""})[0] == 403
    assert send(FORCE, {"x-mmsearch-debug": "None"})[0] == 403


def test_debug_is_open_by_default_outside_lambda_and_closed_inside(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    assert DebugAccess.from_settings(Settings()).open
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "mmsearch-search")
    assert not DebugAccess.from_settings(Settings()).open
    assert DebugAccess.from_settings(Settings(debug_open=True)).open


def _metric_blobs(out: str) -> list[dict[str, Any]]:
    blobs = []
    for line in out.splitlines():
        if line.startswith("{") and "_aws" in line:
            blobs.append(json.loads(line))
    return blobs


def test_forced_requests_stay_out_of_the_per_experiment_metrics(
    qa_once: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    send = _doors(qa_once.model_copy(update={"debug_open": True}), "lambda")
    capsys.readouterr()
    assert send({"query": "refund"}, {})[0] == 200
    bucketed = _metric_blobs(capsys.readouterr().out)
    assert {b["layer"] for b in bucketed} == {"qp", "match", "rank", "summary"}
    assert send(FORCE, {})[0] == 200
    forced = _metric_blobs(capsys.readouterr().out)
    assert forced and all("experiment" not in b and "layer" not in b for b in forced)
    assert [b["ForcedRequests"] for b in forced] in ([1.0], [[1.0]])
