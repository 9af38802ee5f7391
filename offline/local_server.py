"""The local server as `mmsearch serve` runs it: uvicorn (h11) with a deadline on request
headers, bounded header bytes and connections, and the local guard (Host and Origin checks,
a body deadline, a bound on bodies read at once) around the composed app."""

from __future__ import annotations

import asyncio
import time

import h11
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http import h11_impl
from uvicorn.protocols.http.h11_impl import H11Protocol

from functions.core.http.fastapi_app import SecurityHeaders, error_response
from functions.core.http.server_guard import LocalServerGuard, allowed_hosts
from functions.core.settings import Settings

MAX_HEADER_BYTES = 16 * 1024  # a request's line and headers; more: 400 (h11's own check)
KEEP_ALIVE_S = 5  # an idle kept-alive connection closes after this


def local_server(app: ASGIApp, settings: Settings, host: str, port: int) -> uvicorn.Server:
    """A uvicorn server for `app` on `host:port` with the limits in `settings`."""
    guarded = LocalServerGuard(
        app,
        hosts=allowed_hosts(host, settings.allowed_hosts),
        body_timeout_s=settings.body_timeout_s,
        max_concurrent_bodies=settings.max_concurrent_bodies,
    )
    docs = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})
    config = uvicorn.Config(
        SecurityHeaders(guarded, docs_paths=docs),  # the guard's own refusals get them too
        host=host,
        port=port,
        log_level="warning",
        http=header_deadline_protocol(settings.header_timeout_s, settings.max_connections),
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        timeout_keep_alive=KEEP_ALIVE_S,
        limit_concurrency=settings.max_connections,
        timeout_graceful_shutdown=5,
    )
    return uvicorn.Server(config)


async def server_busy(scope: Scope, receive: Receive, send: Send) -> None:
    """What uvicorn answers past its connection limit: our error body and a retry hint, where
    uvicorn's own is a plain-text 503 without one."""
    response = error_response(
        503, "server_busy", "too many connections are open; retry shortly", retry_after_s=1
    )
    response.headers["connection"] = "close"
    await response(scope, receive, send)


# uvicorn's h11 protocol calls the module's `service_unavailable` past `limit_concurrency`;
# the local server is this process's only uvicorn, so the module's name is replaced.
h11_impl.service_unavailable = server_busy  # type: ignore[assignment]


def header_deadline_protocol(timeout_s: float, max_connections: int) -> type[H11Protocol]:
    """uvicorn's h11 protocol, closing a connection whose request line and headers have not
    all arrived `timeout_s` after it began waiting for them (uvicorn has no such timeout:
    a client sending a header a minute, or nothing at all, held a connection for ever).

    And at the connection limit a new connection evicts the oldest idle one (no request in
    progress: nothing sent yet, half a header, or kept alive after its last answer), as
    nginx reuses its idle keep-alive connections: otherwise `max_connections` idle sockets,
    each renewed before its header deadline, answered every other client 503."""

    class HeaderDeadline(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None
        _idle_since: float = 0.0

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._idle_since = time.monotonic()
            self._watch_headers()
            self._make_room()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._watch_headers()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._idle_since = time.monotonic()
            self._watch_headers()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_timer()
            super().connection_lost(exc)

        def idle(self) -> bool:
            """No request in progress: none begun, or the last one answered."""
            in_progress = self.cycle is not None and not self.cycle.response_complete
            return self.conn.their_state is h11.IDLE and not in_progress

        def _make_room(self) -> None:
            # Room for this connection's request: uvicorn answers 503 once the open
            # connections reach the limit, this one included.
            others = [
                c
                for c in self.connections
                if c is not self and isinstance(c, HeaderDeadline) and c.idle()
            ]
            excess = len(self.connections) - (max_connections - 1)
            for victim in sorted(others, key=lambda c: c._idle_since)[: max(0, excess)]:
                victim._stop_timer()
                victim.transport.close()

        def _watch_headers(self) -> None:
            # IDLE: no complete request yet on this cycle. The deadline is not moved by data
            # that arrives meanwhile, so trickling a header every few seconds does not help.
            if self.conn.their_state is not h11.IDLE:
                self._stop_timer()
            elif self._header_timer is None and not self.transport.is_closing():
                self._header_timer = self.loop.call_later(timeout_s, self._expire)

        def _stop_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _expire(self) -> None:
            self._header_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()

    return HeaderDeadline
