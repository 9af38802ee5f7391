"""Issue 15, findings 1, 5 and 6 on a real socket: the composed app served by uvicorn exactly
as `mmsearch serve` sets it up (offline/local_server.py), with short timeouts so each test
is bounded. Before the fix a connection with partial headers, headers and no body, or a
trickled body stayed open for over 75 s; 40 stalled 5 MB uploads were all buffered; a
truncated request was still served; any Host header and a POST with no content type got a
200; two 42,000-part forms held /v1/health for 15.7 s."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from pydantic import BaseModel

from functions.composed.app import create_app
from functions.core.http.fastapi_app import create_api, include_routes
from functions.core.http.routes import Route
from functions.core.http.security_headers import (
    API_CONTENT_SECURITY_POLICY,
    page_content_security_policy,
)
from functions.core.http.server_guard import allowed_hosts
from functions.core.settings import Settings
from offline.local_mongo import free_port
from offline.local_server import MAX_HEADER_BYTES, local_server
from tests.security.test_http_multipart import FORM, tiny_parts

FRONTEND = Path(__file__).resolve().parents[2] / "frontend"
LIMITS = {
    "header_timeout_s": 1.0,
    "body_timeout_s": 1.5,
    "max_concurrent_bodies": 2,
    "allowed_hosts": "mmsearch.test",
}
SLACK_S = 2.0  # scheduling on a busy 2-core machine


@dataclass
class Live:
    port: int
    settings: Settings

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def serve(app: object, settings: Settings) -> Iterator[Live]:
    """`app` behind the local server's set-up on a free port, in a thread."""
    port = free_port()
    server = local_server(app, settings, "127.0.0.1", port)  # type: ignore[arg-type]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the local server did not start"
    yield Live(port, settings)
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def live(qa_once: Settings) -> Iterator[Live]:
    """The composed app (API and page) as `mmsearch serve` runs it, with short timeouts."""
    settings = qa_once.model_copy(update=LIMITS)
    yield from serve(create_app(settings, static_dir=FRONTEND), settings)


class Echo(BaseModel):
    query: str = ""


@pytest.fixture(scope="module")
def recorded(qa_once: Settings) -> Iterator[tuple[Live, list[str]]]:
    """The local server with one form-taking route that records each call it gets."""
    calls: list[str] = []

    def search(request: Echo) -> Echo:
        calls.append(request.query)
        return request

    app = create_api("recorded", "recorded")
    include_routes(app, [Route("POST", "/v1/search", Echo, Echo, search, "t", form=True)])
    yield from ((live, calls) for live in serve(app, qa_once.model_copy(update=LIMITS)))


def raw(
    port: int, data: bytes, trickle: list[bytes] | None = None, wait_s: float = 8.0
) -> tuple[bytes, float]:
    """Send `data` (then each of `trickle`, 0.3 s apart) and read until the server closes
    the connection; what came back and after how long (inf: still open after `wait_s`)."""
    sock = socket.create_connection(("127.0.0.1", port))
    started = time.monotonic()
    sock.sendall(data)
    stop = threading.Event()

    def feed() -> None:
        for piece in trickle or []:
            if stop.wait(0.3):
                return
            try:
                sock.sendall(piece)
            except OSError:
                return

    threading.Thread(target=feed, daemon=True).start()
    received = b""
    try:
        while (left := wait_s - (time.monotonic() - started)) > 0:
            sock.settimeout(left)
            chunk = sock.recv(65536)
            if not chunk:
                return received, time.monotonic() - started
            received += chunk
    except TimeoutError:
        pass
    except OSError:  # reset: closed too
        return received, time.monotonic() - started
    finally:
        stop.set()
        sock.close()
    return received, float("inf")


def request_head(live: Live, length: int | None, content_type: str = "application/json") -> bytes:
    head = f"POST /v1/search HTTP/1.1\r\nHost: 127.0.0.1:{live.port}\r\n"
    head += f"Content-Type: {content_type}\r\n"
    if length is not None:
        head += f"Content-Length: {length}\r\n"
    return head.encode()


# Finding 5: slow and abandoned clients.


@pytest.mark.parametrize("shape", ["nothing", "partial headers", "trickled headers"])
def test_a_connection_whose_headers_do_not_arrive_in_time_is_closed(live: Live, shape: str) -> None:
    data = {
        "nothing": b"",
        "partial headers": request_head(live, None),
        "trickled headers": request_head(live, None),
    }[shape]
    trickle = [b"X-Slow-%d: y\r\n" % i for i in range(30)] if shape == "trickled headers" else None
    _, closed_after = raw(live.port, data, trickle)
    assert closed_after < LIMITS["header_timeout_s"] + SLACK_S  # type: ignore[operator]


def test_over_16_kib_of_unfinished_headers_is_a_400_and_the_connection_closes(
    live: Live,
) -> None:
    head = request_head(live, 2) + b"X-Pad: " + b"a" * MAX_HEADER_BYTES  # and no end
    answer, closed_after = raw(live.port, head)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert closed_after < SLACK_S


@pytest.mark.parametrize("shape", ["headers and no body", "a trickled body"])
def test_a_body_that_does_not_arrive_in_time_is_a_408_and_the_connection_closes(
    live: Live, shape: str
) -> None:
    head = request_head(live, 200) + b"\r\n"
    trickle = [b" "] * 30 if shape == "a trickled body" else None
    answer, closed_after = raw(live.port, head, trickle)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'"request_timeout"' in answer
    assert closed_after < LIMITS["body_timeout_s"] + SLACK_S  # type: ignore[operator]


def test_uploads_beyond_the_bound_are_a_503_at_once_and_stalled_ones_are_dropped(
    live: Live,
) -> None:
    size = 5 * 2**20 - 1  # just under max_body_bytes
    head = request_head(live, size) + b"\r\n"
    stalled = []
    for _ in range(LIMITS["max_concurrent_bodies"]):  # type: ignore[call-overload]
        sock = socket.create_connection(("127.0.0.1", live.port))
        sock.sendall(head + b" " * 2**20)  # a fifth of the body, then nothing
        stalled.append(sock)
    time.sleep(0.3)
    answer, closed_after = raw(live.port, head + b" " * 1000, wait_s=5)
    assert answer.startswith(b"HTTP/1.1 503"), answer[:200]
    assert b"retry-after: 1" in answer.lower() and b'"server_busy"' in answer
    assert closed_after < 1.0 + SLACK_S
    for sock in stalled:  # each stalled upload is answered 408 at its deadline and let go
        sock.settimeout(LIMITS["body_timeout_s"] + SLACK_S)  # type: ignore[operator]
        assert sock.recv(100).startswith(b"HTTP/1.1 408")
        sock.close()
    search = httpx.post(f"{live.base}/v1/search", json={"query": "refund"}, timeout=30)
    assert search.status_code == 200, search.text  # the slots were given back


def test_an_abandoned_or_late_request_never_reaches_the_route(
    recorded: tuple[Live, list[str]],
) -> None:
    live, calls = recorded
    body = b'{"query": "abandoned"}'
    # The client sends half its body and goes away; then one that stops half-way and waits.
    raw(live.port, request_head(live, len(body)) + b"\r\n" + body[:10], wait_s=0.2)
    answer, _ = raw(live.port, request_head(live, len(body)) + b"\r\n" + body[:10])
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    time.sleep(0.5)
    assert calls == []
    # The same request sent whole is served: the route is reachable and records.
    done = httpx.post(
        f"{live.base}/v1/search", content=body, headers={"content-type": "application/json"}
    )
    assert done.status_code == 200 and calls == ["abandoned"]


def test_an_abandoned_hostile_form_costs_no_cpu(recorded: tuple[Live, list[str]]) -> None:
    live, calls = recorded
    body, served = tiny_parts(42_000), len(calls)
    cpu = time.process_time()
    raw(live.port, request_head(live, len(body) + 1000, FORM) + b"\r\n" + body, wait_s=0.5)
    time.sleep(3.0)
    assert time.process_time() - cpu < 0.5  # before: 3.3 s in the server after the client left
    assert len(calls) == served


# Finding 1: the event loop stays free.


def test_health_answers_while_hostile_forms_arrive(live: Live) -> None:
    body = tiny_parts(42_000)
    answers: list[int] = []

    def post_forms() -> None:
        for _ in range(3):
            response = httpx.post(
                f"{live.base}/v1/search", content=body, headers={"content-type": FORM}, timeout=60
            )
            answers.append(response.status_code)

    sender = threading.Thread(target=post_forms)
    started = time.monotonic()
    sender.start()
    latencies = []
    while sender.is_alive():
        before = time.monotonic()
        assert httpx.get(f"{live.base}/v1/health", timeout=30).status_code == 200
        latencies.append(time.monotonic() - before)
    sender.join()
    assert answers == [422, 422, 422]
    assert time.monotonic() - started < 10  # before: 39 s for two forms
    assert max(latencies) < 1.0  # before: 15.7 s


# Finding 6: Host and Origin, content types, security headers.


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("127.0.0.1:{port}", 200),
        ("localhost:{port}", 200),
        ("localhost", 200),
        ("[::1]:{port}", 200),
        ("mmsearch.test", 200),  # MMSEARCH_ALLOWED_HOSTS
        ("MMSEARCH.TEST:{port}", 200),
        ("rebind.evil.example:{port}", 421),
        ("127.0.0.1.evil.example", 421),
        ("localhost.", 421),
        ("", 421),
    ],
)
def test_only_the_bound_address_and_allowed_host_names_are_answered(
    live: Live, host: str, status: int
) -> None:
    for method, path, body in (
        ("GET", "/v1/health", None),
        ("POST", "/v1/search", b'{"query": "refund"}'),
    ):
        response = httpx.request(
            method,
            f"{live.base}{path}",
            content=body,
            headers={"host": host.format(port=live.port), "content-type": "application/json"},
            timeout=30,
        )
        assert response.status_code == status, response.text
        if status == 421:
            assert response.json()["error"]["code"] == "misdirected_request"
            assert response.headers["x-content-type-options"] == "nosniff"


def test_a_request_without_a_host_header_is_refused(live: Live) -> None:
    answer, _ = raw(live.port, b"GET /v1/health HTTP/1.0\r\n\r\n", wait_s=5)
    assert answer.startswith(b"HTTP/1.1 421"), answer[:200]


@pytest.mark.parametrize(
    ("origin", "status"),
    [
        ("http://127.0.0.1:{port}", 200),
        ("http://localhost:{port}", 200),
        ("https://evil.example", 403),
        ("http://127.0.0.1.evil.example", 403),
        ("null", 403),  # a sandboxed frame or a file:// page
    ],
)
def test_cross_origin_requests_are_refused(live: Live, origin: str, status: int) -> None:
    response = httpx.post(
        f"{live.base}/v1/search",
        json={"query": "refund"},
        headers={"origin": origin.format(port=live.port)},
        timeout=30,
    )
    assert response.status_code == status, response.text
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        (None, 415),  # what a cross-site page sends without a CORS preflight
        ("text/plain", 415),
        ("application/x-www-form-urlencoded", 415),
        ("application/json", 200),
    ],
)
def test_only_json_bodies_are_read_on_the_socket(
    live: Live, content_type: str | None, status: int
) -> None:
    head = f"POST /v1/search HTTP/1.1\r\nHost: 127.0.0.1:{live.port}\r\nConnection: close\r\n"
    if content_type:
        head += f"Content-Type: {content_type}\r\n"
    body = b'{"query": "refund"}'
    answer, _ = raw(live.port, head.encode() + b"Content-Length: %d\r\n\r\n" % len(body) + body)
    assert answer.startswith(b"HTTP/1.1 %d" % status), answer[:300]


def test_the_page_and_the_api_carry_the_security_headers(live: Live) -> None:
    page = httpx.get(f"{live.base}/", timeout=30)
    health = httpx.get(f"{live.base}/v1/health", timeout=30)
    assert page.status_code == health.status_code == 200
    assert page.headers["content-security-policy"] == page_content_security_policy()
    assert "connect-src 'self';" in page.headers["content-security-policy"]
    assert health.headers["content-security-policy"] == API_CONTENT_SECURITY_POLICY
    for response in (page, health):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "strict-origin-when-cross-origin"


@pytest.mark.parametrize(
    ("bound", "extra", "answered", "refused"),
    [
        ("127.0.0.1", "", {"127.0.0.1", "localhost", "[::1]"}, {"0.0.0.0", "example.com"}),
        ("0.0.0.0", "", {"localhost"}, {"0.0.0.0", ""}),  # every interface is no host name
        ("::1", "", {"[::1]"}, {"::1"}),
        ("192.168.1.5", " Box.LAN ,", {"192.168.1.5", "box.lan"}, {"192.168.1.6"}),
    ],
)
def test_the_host_allow_list_is_loopback_the_bound_address_and_the_configured_names(
    bound: str, extra: str, answered: set[str], refused: set[str]
) -> None:
    hosts = allowed_hosts(bound, extra)
    assert answered <= hosts
    assert not refused & hosts
