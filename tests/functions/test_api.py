"""The three functions through both front doors built from the same routes: the Lambda
handler (API Gateway HTTP API v2 events) and the FastAPI app (HTTP, as the local server)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from functions.core.http.fastapi_app import create_api, include_routes
from functions.core.http.invoke_events import http_event, response_json
from functions.core.http.lambda_adapter import lambda_handler
from functions.core.http.routes import Route
from functions.core.settings import Settings
from functions.core.stores.factory import open_document_store
from functions.preprocess import service as preprocess
from functions.search import service as search_service
from functions.summary import service as summary
from offline.local_mongo import free_port

Call = Callable[[str, str, Any], tuple[int, Any, dict[str, str]]]


def front_door(kind: str, routes: list[Route], max_body_bytes: int = 5 * 2**20) -> Call:
    """`call(method, path, body) -> (status, json body, lower-cased headers)`."""
    if kind == "lambda":
        handler = lambda_handler(routes, max_body_bytes)

        def call_lambda(method: str, path: str, body: Any = None) -> tuple[int, Any, dict]:
            response = handler(http_event(method, path, body), None)
            headers = {k.lower(): v for k, v in response.get("headers", {}).items()}
            return response["statusCode"], response_json(response), headers

        return call_lambda
    app = create_api("test", "test", max_body_bytes)
    include_routes(app, routes)
    client = TestClient(app)

    def call_http(method: str, path: str, body: Any = None) -> tuple[int, Any, dict]:
        raw = body if isinstance(body, str) or body is None else json.dumps(body)
        response = client.request(
            method, path, content=raw, headers={"content-type": "application/json"}
        )
        return response.status_code, response.json(), dict(response.headers)

    return call_http


@pytest.fixture(params=["lambda", "http"])
def door(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def search_routes(settings: Settings) -> list[Route]:
    service = search_service.build_search_service(settings, *search_service.dependencies(settings))
    return search_service.routes(service)


def call(handler: Call, method: str, path: str, body: Any = None) -> tuple[int, Any, dict]:
    return handler(method, path, body)


@pytest.fixture(scope="module", params=["lambda", "http"])
def search(qa_once: Settings, request: pytest.FixtureRequest) -> Call:
    """Search over the session's indexed QA corpus through each front door, one service per
    door for the module (these tests only read)."""
    return front_door(str(request.param), search_routes(qa_once))


def test_search_finds_the_semantically_closest_document(search: Call) -> None:
    status, body, _ = call(
        search,
        "POST",
        "/v1/search",
        {"query": "I forgot my login password", "debug": {"experiments": {"rank": "score"}}},
    )
    assert status == 200
    assert body["hits"][0]["id"] == "qa-000"
    assert body["hits"][0]["document"]["question"] == "How do I reset my password?"
    scores = [h["score"] for h in body["hits"]]
    assert scores == sorted(scores, reverse=True)
    assert set(body["timings_ms"]) == {"preprocess", "match", "rank", "summary", "total"}


def test_search_returns_fewer_hits_than_top_k_without_error(search: Call) -> None:
    status, body, _ = call(search, "POST", "/v1/search", {"query": "shipping time", "top_k": 100})
    assert status == 200
    assert len(body["hits"]) == 30
    assert len({h["id"] for h in body["hits"]}) == 30


def test_search_filters_by_category_including_unicode_values(search: Call) -> None:
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


@pytest.mark.parametrize("matcher", ["dense", "bm25", "hybrid"])
@pytest.mark.parametrize("value", ['x"]) or id != ("', 'x" or 1==1 or "', "x' or 1==1 or '"])
def test_filter_values_with_quotes_cannot_inject_expressions(
    search: Call, matcher: str, value: str
) -> None:
    request = {
        "query": "refund",
        "filters": {"category": value},
        "debug": {"experiments": {"match": matcher}},
    }
    status, body, _ = call(search, "POST", "/v1/search", request)
    assert status == 200
    assert body["hits"] == []
    assert body["experiments"]["match"] == matcher


def test_every_response_names_the_experiment_of_each_layer(search: Call) -> None:
    from functions.core.pipeline_config import parse_config
    from functions.search.bucketing import assign
    from functions.search.config_source import DEFAULT_CONFIG

    scene = parse_config(DEFAULT_CONFIG.read_text()).scenes["qa"]
    users = [f"user-{i}" for i in range(200)]
    # A user from each rank arm with traffic (MMR has none until it helps: README, Relevance).
    arms = {n for n, e in scene.rank.experiments.items() if e.ratio > 0}
    picked = [next(u for u in users if assign(scene, u)["rank"] == arm) for arm in sorted(arms)]
    seen = set()
    for user in ("alice", "bob", *picked):
        request = {"query": "refund", "user_id": user}
        _, first, _ = call(search, "POST", "/v1/search", request)
        _, again, _ = call(search, "POST", "/v1/search", request)
        assert set(first["experiments"]) == {"qp", "match", "rank", "summary"}
        assert first["experiments"] == again["experiments"]
        seen.add(first["experiments"]["rank"])
    assert seen == arms


@pytest.mark.parametrize("matcher", ["dense", "bm25", "hybrid", "hybrid_weighted"])
def test_each_matcher_finds_the_document_and_highlights_the_query(
    search: Call, matcher: str
) -> None:
    request = {
        "query": "How long does shipping take?",
        "debug": {"experiments": {"match": matcher, "rank": "score"}},
    }
    status, body, _ = call(search, "POST", "/v1/search", request)
    assert status == 200, body
    top = body["hits"][0]
    assert top["id"] == "qa-006"
    question = top["document"]["question"]
    assert [question[a:b] for a, b in top["highlights"]["question"]] == ["long", "shipping", "take"]
    assert top["snippet"]["field"] == "answer"
    snippet = top["snippet"]["text"]
    assert all(0 <= a < b <= len(snippet) for a, b in top["snippet"]["highlights"])


def test_bm25_alone_skips_the_embedding(search: Call) -> None:
    request = {"query": "refund", "debug": {"experiments": {"match": "bm25"}}}
    status, body, _ = call(search, "POST", "/v1/search", request)
    assert status == 200
    assert body["timings_ms"]["preprocess"] < 2.0
    assert body["hits"][0]["id"] == "qa-004"  # "How do I get a refund?"


def test_unknown_debug_experiment_is_a_4xx(search: Call) -> None:
    request = {"query": "refund", "debug": {"experiments": {"match": "quantum"}}}
    status, body, _ = call(search, "POST", "/v1/search", request)
    assert (status, body["error"]["code"]) == (422, "invalid_request")
    assert "quantum" in body["error"]["message"]


def test_search_logs_and_emits_a_metric_per_layer_experiment(
    qa_once: Settings,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    handler = front_door("lambda", search_routes(qa_once))
    capfd.readouterr()
    # Not forced: forced requests stay out of the per-experiment metrics (test_debug_access.py).
    request = {"query": "refund", "user_id": "u-42"}
    status, body, _ = handler("POST", "/v1/search", request)
    assert status == 200
    lines = [json.loads(x) for x in capfd.readouterr().out.splitlines() if x.startswith("{")]
    logs = [r for r in caplog.records if r.getMessage() == "search"]
    assert logs and logs[-1].__dict__["experiments"] == body["experiments"]
    metrics = {(m["layer"], m["experiment"]): m for m in lines if "_aws" in m and "layer" in m}
    assert set(metrics) == set(body["experiments"].items())
    assert all(m["Requests"] == [1.0] and m["LatencyMs"][0] > 0 for m in metrics.values())
    assert all(
        m["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "mmsearch" for m in metrics.values()
    )
    directive = metrics[("match", body["experiments"]["match"])]["_aws"]["CloudWatchMetrics"][0]
    assert directive["Dimensions"] == [["scene", "layer", "experiment"]]
    assert {m["Name"]: m["Unit"] for m in directive["Metrics"]} == {
        "Requests": "Count",
        "LatencyMs": "Milliseconds",
        "Hits": "Count",
    }
    # The local server's switch, as powertools reads it: no metric lines at all.
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    assert handler("POST", "/v1/search", request)[0] == 200
    assert not [x for x in capfd.readouterr().out.splitlines() if '"_aws"' in x]


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
def test_bad_search_input_is_a_clear_4xx(search: Call, body: Any, status: int, code: str) -> None:
    got_status, got, _ = call(search, "POST", "/v1/search", body)
    assert got_status == status
    assert got["error"]["code"] == code
    assert got["error"]["message"]
    assert len(got["error"]["message"]) < 1000


def test_embed_returns_unit_vectors_of_the_model_dimension(settings: Settings, door: str) -> None:
    handler = front_door(door, preprocess.routes(preprocess.build_preprocessor(settings)))
    status, body, _ = call(handler, "POST", "/v1/embed", {"texts": ["hello", "a longer text"]})
    assert status == 200
    assert body["dim"] == 384 and len(body["vectors"]) == 2
    for vector in body["vectors"]:
        assert abs(sum(v * v for v in vector) - 1.0) < 1e-4
    status, body, _ = call(handler, "POST", "/v1/embed", {"texts": []})
    assert status == 422


def test_documents_batch_get_keeps_order_and_lists_missing(qa_once: Settings, door: str) -> None:
    handler = front_door(door, summary.routes(open_document_store(qa_once)))
    ids = ["qa-005", "nope", "qa-001"]
    status, body, _ = call(handler, "POST", "/v1/documents:batchGet", {"scene": "qa", "ids": ids})
    assert status == 200
    assert [d["id"] for d in body["documents"]] == ["qa-005", "qa-001"]
    assert body["missing"] == ["nope"]
    assert "_fingerprint" not in body["documents"][0]


def test_unreachable_mongodb_is_a_503_with_retry_hint_within_the_timeout(
    qa_once: Settings, door: str
) -> None:
    dead = qa_once.model_copy(
        update={
            "mongo_uri": SecretStr(f"mongodb://127.0.0.1:{free_port()}/"),
            "store_timeout_s": 1.0,
        }
    )
    handler = front_door(door, search_routes(dead))
    started = time.monotonic()
    status, body, headers = call(handler, "POST", "/v1/search", {"query": "refund"})
    assert status == 503
    assert body["error"]["code"] == "store_unavailable"
    assert int(headers["retry-after"]) > 0
    assert time.monotonic() - started < 8


def test_search_before_indexing_says_the_index_is_not_ready(settings: Settings, door: str) -> None:
    handler = front_door(door, search_routes(settings))
    status, body, _ = call(handler, "POST", "/v1/search", {"query": "refund"})
    assert status == 503
    assert body["error"]["code"] == "index_not_ready"


def test_openapi_schema_lists_every_route(settings: Settings) -> None:
    from functions.composed.app import create_app

    response = TestClient(create_app(settings)).get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {"/v1/embed", "/v1/search", "/v1/documents:batchGet", "/v1/health"} <= set(paths)
    search = paths["/v1/search"]["post"]
    assert search["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/SearchRequest"
    )
    assert {"200", "422", "503"} <= set(search["responses"])


def test_lambda_handler_answers_unknown_routes_and_methods_with_the_error_body(
    settings: Settings,
) -> None:
    handler = front_door("lambda", preprocess.routes(preprocess.build_preprocessor(settings)))
    status, body, _ = handler("POST", "/v1/nope", {"texts": ["x"]})
    assert (status, body["error"]["code"]) == (404, "not_found")
    status, body, _ = handler("GET", "/v1/embed", None)
    assert (status, body["error"]["code"]) == (405, "method_not_allowed")


def test_lambda_handler_decodes_base64_bodies_and_refuses_broken_ones(settings: Settings) -> None:
    handler = lambda_handler(preprocess.routes(preprocess.build_preprocessor(settings)))
    event = http_event("POST", "/v1/embed", None)
    event["body"] = base64.b64encode(json.dumps({"texts": ["héllo"]}).encode()).decode()
    event["isBase64Encoded"] = True
    assert handler(event, None)["statusCode"] == 200
    event["body"] = "%%% not base64"
    assert response_json(handler(event, None))["error"]["code"] == "malformed_json"
    event = http_event("POST", "/v1/embed", None)
    event["body"] = '{"texts": ["\ud800"]}'  # a lone surrogate, as a broken client may send
    response = handler(event, None)
    assert response["statusCode"] == 400


@pytest.mark.parametrize("query", ["how long is delivery", "refund my card", "capital city"])
def test_milvus_side_rrf_ranks_like_our_fusion_of_the_two_searches(
    qa_once: Settings, query: str
) -> None:
    from functions.core.scenes import QA
    from functions.core.stores.factory import collection_name, open_vector_store
    from functions.core.stores.fusion import reciprocal_rank_fusion
    from functions.preprocess.service import build_preprocessor

    store = open_vector_store(qa_once)
    collection = collection_name(qa_once, QA)
    vector = build_preprocessor(qa_once).embed([query])[0]
    # The whole corpus (30 documents) on both sides, so ties cannot fall at a cut-off.
    dense = store.search(collection, vector, 30, {})
    lexical = store.search_text(collection, query, 30, {})
    ours = reciprocal_rank_fusion([dense, lexical], 60)
    theirs = store.search_hybrid(collection, vector, query, 30, {}, candidates=30, rrf_k=60)
    assert {m.id: round(m.score, 6) for m in theirs} == {m.id: round(m.score, 6) for m in ours}
    scores = [m.score for m in theirs]
    assert scores == sorted(scores, reverse=True)
