"""The local server at its connection limit (offline/local_server.py), on a real socket. The
outside review of issue 15 found that `max_connections` idle sockets, each renewed before its
header deadline, filled uvicorn's limit: every other client got uvicorn's plain-text 503 for
as long as the sockets were renewed. Now a new connection evicts the oldest idle one, and a
server whose connections are all busy answers our JSON 503 with a retry hint."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from functions.composed.app import create_app
from functions.core.settings import Settings
from tests.security.test_http_local_server import FRONTEND, Live, serve

MAX_CONNECTIONS = 6


@pytest.fixture(scope="module")
def small(qa_once: Settings) -> Iterator[Live]:
    """The composed app with room for six connections and a long header deadline (the idle
    sockets below must outlive the test without it)."""
    settings = qa_once.model_copy(
        update={
            "max_connections": MAX_CONNECTIONS,
            "header_timeout_s": 30.0,
            "body_timeout_s": 30.0,
            "max_concurrent_bodies": 10,
        }
    )
    yield from serve(create_app(settings, static_dir=FRONTEND), settings)


def connect(live: Live, first: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", live.port), timeout=5)
    if first:
        sock.sendall(first)
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(1.5)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_idle_sockets_at_the_limit_give_way_to_a_new_client_oldest_first(live_small: Live) -> None:
    # Silent sockets and one with half a header line: none has a request in progress.
    idle = [connect(live_small) for _ in range(MAX_CONNECTIONS - 1)]
    idle.append(connect(live_small, b"GET /v1/health HTTP/1.1\r\nHost: 127."))
    time.sleep(0.3)
    try:
        assert httpx.get(f"{live_small.base}/v1/health", timeout=10).status_code == 200
        # Seven open with the client's: the two oldest idle sockets went, making room for
        # its request (uvicorn refuses one once the open connections reach the limit).
        assert [closed_by_server(s) for s in idle] == [True, True] + [False] * 4
        # Refilled by the attacker, the limit still gives way, again oldest first.
        idle += [connect(live_small) for _ in range(2)]
        time.sleep(0.3)
        assert httpx.get(f"{live_small.base}/v1/health", timeout=10).status_code == 200
        assert [closed_by_server(s) for s in idle[2:]] == [True, True] + [False] * 4
    finally:
        for sock in idle:
            sock.close()


def test_when_every_connection_is_busy_the_answer_is_a_json_503_with_a_retry_hint(
    live_small: Live,
) -> None:
    # Requests in progress (headers in, body still arriving) are never evicted.
    head = (
        b"POST /v1/search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n{"
    )
    busy = [connect(live_small, head) for _ in range(MAX_CONNECTIONS - 1)]
    time.sleep(0.5)
    try:
        answer = httpx.get(f"{live_small.base}/v1/health", timeout=10)
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == "1"
        assert answer.json()["error"]["code"] == "server_busy"
        assert not any(closed_by_server(s) for s in busy[:1])
    finally:
        for sock in busy:
            sock.close()
    time.sleep(0.5)
    assert httpx.get(f"{live_small.base}/v1/health", timeout=10).status_code == 200


@pytest.fixture
def live_small(small: Live) -> Live:
    return small
