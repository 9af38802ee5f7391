"""Two scenes searched at once by 8 clients each, for a bounded time: every answer belongs to
the scene asked (and is the answer that query gets alone), and none is an error. Through the
local server over real sockets, and through the Lambda handler from many threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from functions.composed.app import create_app
from functions.composed.service import composed_routes
from functions.core.http.invoke_events import http_event, response_json
from functions.core.http.lambda_adapter import lambda_handler
from functions.core.settings import Settings
from offline.local_mongo import free_port

CLIENTS_PER_SCENE = 8
SECONDS = 3.0
# Deterministic experiments, so a concurrent answer can be compared with the serial one.
QUERIES = {
    "qa": [
        ("How do I reset my password?", {"match": "dense", "rank": "score"}),
        ("refund", {"match": "bm25", "rank": "score"}),
        ("how long is delivery", {"match": "hybrid", "rank": "score"}),
    ],
    "t2i": [
        ("a penguin", {"match": "caption", "rank": "score"}),
        ("a coin", {"match": "caption", "rank": "score"}),
        ("a cat", {"match": "caption", "rank": "score"}),
    ],
}
CORPUS_PREFIX = {"qa": "qa-", "t2i": "tux:"}

Post = Callable[[dict[str, Any]], tuple[int, Any]]


@pytest.fixture(scope="module")
def server(qa_and_images_once: Settings) -> Iterator[str]:
    """The composed app served by uvicorn on a free local port, in a thread."""
    port = free_port()
    config = uvicorn.Config(
        create_app(qa_and_images_once), host="127.0.0.1", port=port, log_level="warning"
    )
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not instance.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    instance.should_exit = True
    thread.join(timeout=10)


def body(scene: str, query: str, experiments: dict[str, str]) -> dict[str, Any]:
    return {"scene": scene, "query": query, "top_k": 5, "debug": {"experiments": experiments}}


def hammer(make_post: Callable[[], Post]) -> list[str]:
    """8 clients a scene, each cycling through its scene's queries for SECONDS; returns the
    problems seen (empty: every answer right)."""
    post = make_post()
    expected = {
        (scene, query): post(body(scene, query, experiments))[1]
        for scene, queries in QUERIES.items()
        for query, experiments in queries
    }
    for (scene, _), answer in expected.items():
        assert answer["hits"] and all(
            h["id"].startswith(CORPUS_PREFIX[scene]) for h in answer["hits"]
        )
    problems: list[str] = []
    counts: list[int] = []
    stop = time.monotonic() + SECONDS

    def client(scene: str, offset: int) -> None:
        post, n = make_post(), offset
        while time.monotonic() < stop:
            query, experiments = QUERIES[scene][n % len(QUERIES[scene])]
            status, answer = post(body(scene, query, experiments))
            want = expected[(scene, query)]
            if status != 200:
                problems.append(f"{scene} {query!r}: {status} {answer}")
            elif answer["scene"] != scene or [h["id"] for h in answer["hits"]] != [
                h["id"] for h in want["hits"]
            ]:
                problems.append(f"{scene} {query!r}: got {answer['scene']} {answer['hits']}")
            elif any(
                h["document"]["id"] != h["id"] or not h["id"].startswith(CORPUS_PREFIX[scene])
                for h in answer["hits"]
            ):
                problems.append(f"{scene} {query!r}: a document of another corpus")
            n += 1
        counts.append(n - offset)

    threads = [
        threading.Thread(target=client, args=(scene, i))
        for scene in QUERIES
        for i in range(CLIENTS_PER_SCENE)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(f"\n{sum(counts)} concurrent searches by {len(threads)} clients in {SECONDS} s")
    assert sum(counts) >= len(threads)  # every client got at least one answer
    return problems


def test_two_scenes_searched_concurrently_over_http_never_mix_answers(server: str) -> None:
    def make_post() -> Post:
        client = httpx.Client(base_url=server, timeout=30)

        def post(request: dict[str, Any]) -> tuple[int, Any]:
            response = client.post("/v1/search", json=request)
            return response.status_code, response.json()

        return post

    assert hammer(make_post) == []


def test_two_scenes_searched_concurrently_through_the_lambda_handler_never_mix_answers(
    qa_and_images_once: Settings,
) -> None:
    handler = lambda_handler(composed_routes(qa_and_images_once)[1])

    def make_post() -> Post:
        def post(request: dict[str, Any]) -> tuple[int, Any]:
            response = handler(http_event("POST", "/v1/search", request), None)
            return response["statusCode"], response_json(response)

        return post

    assert hammer(make_post) == []
