"""What the local server checks before the app sees a request, where in AWS API Gateway and
CloudFront stand in front: the Host and Origin (a page the user visits must not reach the
local index through DNS rebinding or a cross-site form), a deadline on reading the body,
and a bound on how many bodies are read at once (the memory a slow client can hold)."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

import anyio
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from functions.core.http.fastapi_app import error_response

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})
ANY_INTERFACE = frozenset({"0.0.0.0", "::", "[::]", ""})


def allowed_hosts(bound: str, extra: str = "") -> frozenset[str]:
    """The Host names the server answers to: loopback, the bound address (unless it is every
    interface) and the comma-separated `extra`; `*` in `extra` allows any."""
    hosts = set(LOOPBACK_HOSTS)
    bound = bound.strip().lower()
    if bound not in ANY_INTERFACE:
        hosts.add(f"[{bound}]" if ":" in bound and not bound.startswith("[") else bound)
    hosts.update(h.strip().lower() for h in extra.split(",") if h.strip())
    return frozenset(hosts)


def host_name(host: str) -> str:
    """`host` without its port: `127.0.0.1:8000` -> `127.0.0.1`, `[::1]:80` -> `[::1]`."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0]


class LocalServerGuard:
    """ASGI middleware for the local server: an unknown Host is a 421, a foreign Origin a
    403; a request body must arrive within `body_timeout_s` (else 408) and at most
    `max_concurrent_bodies` are read at once (else 503); a client that disconnects or times
    out mid-body is never served, and a response sent before the body ends closes the
    connection."""

    def __init__(
        self,
        app: ASGIApp,
        hosts: Iterable[str],
        body_timeout_s: float,
        max_concurrent_bodies: int,
    ) -> None:
        self.app = app
        self.hosts = frozenset(hosts)
        self.body_timeout_s = body_timeout_s
        self.max_concurrent_bodies = max_concurrent_bodies
        self.reading = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if not self._allowed(host_name(headers.get(b"host", ""))):
            message = "this server answers to " + ", ".join(sorted(self.hosts))[:200]
            await _close_with(421, "misdirected_request", message, scope, receive, send)
            return
        origin = headers.get(b"origin")
        if origin is not None and not self._allowed(host_name(urlsplit(origin).netloc)):
            await _close_with(
                403, "forbidden_origin", "cross-origin requests are refused", scope, receive, send
            )
            return
        if scope["type"] == "http" and _has_body(headers):
            await self._with_body_deadline(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def _allowed(self, host: str) -> bool:
        return "*" in self.hosts or host in self.hosts

    async def _with_body_deadline(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.reading >= self.max_concurrent_bodies:
            message = f"{self.max_concurrent_bodies} uploads are in progress; retry shortly"
            await _close_with(503, "server_busy", message, scope, receive, send, retry_after_s=1)
            return
        self.reading += 1
        deadline = anyio.current_time() + self.body_timeout_s
        state = {"reading": True, "timed_out": False, "answered": False}

        def body_done() -> None:
            if state["reading"]:
                state["reading"] = False
                self.reading -= 1

        async def receive_by_deadline() -> Message:
            if not state["reading"]:
                return await receive()
            with anyio.move_on_after(deadline - anyio.current_time()):
                message = await receive()
                if message["type"] == "http.disconnect" or not message.get("more_body"):
                    body_done()
                return message
            state["timed_out"] = True
            body_done()
            return {"type": "http.disconnect"}  # the app drops the request unanswered

        async def send_closing_early(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["answered"] = True
                if state["reading"] or state["timed_out"]:
                    MutableHeaders(scope=message)["connection"] = "close"
            await send(message)

        try:
            await self.app(scope, receive_by_deadline, send_closing_early)
        finally:
            body_done()
        if state["timed_out"] and not state["answered"]:
            message = f"the request body did not arrive within {self.body_timeout_s:g} s"
            await _close_with(408, "request_timeout", message, scope, receive, send)


def _has_body(headers: dict[bytes, str]) -> bool:
    length = headers.get(b"content-length", "0").strip()
    return b"transfer-encoding" in headers or not length.isdigit() or int(length) > 0


async def _close_with(
    status: int,
    code: str,
    message: str,
    scope: Scope,
    receive: Receive,
    send: Send,
    retry_after_s: int | None = None,
) -> None:
    """The error body, then the connection closes (its request is not read any further)."""
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    response = error_response(status, code, message, retry_after_s)
    response.headers["connection"] = "close"
    await response(scope, receive, send)
