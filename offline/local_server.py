"""The local server as `mmsearch serve` runs it: uvicorn (h11) with a deadline on request
headers, bounded header bytes and connections, and the local guard (Host and Origin checks,
a body deadline, a bound on bodies read at once) around the composed app."""

from __future__ import annotations

import asyncio

import h11
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

from functions.core.http.fastapi_app import SecurityHeaders
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
        http=header_deadline_protocol(settings.header_timeout_s),
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        timeout_keep_alive=KEEP_ALIVE_S,
        limit_concurrency=settings.max_connections,
        timeout_graceful_shutdown=5,
    )
    return uvicorn.Server(config)


def header_deadline_protocol(timeout_s: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol, closing a connection whose request line and headers have not
    all arrived `timeout_s` after it began waiting for them (uvicorn has no such timeout:
    a client sending a header a minute, or nothing at all, held a connection for ever)."""

    class HeaderDeadline(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._watch_headers()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._watch_headers()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._watch_headers()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_timer()
            super().connection_lost(exc)

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
