"""The request's headers, for the few decisions that depend on who is calling (may this
caller force an experiment?): set per request by both front doors, read in a context
variable, so routes keep taking one validated body."""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

_headers: ContextVar[Mapping[str, str] | None] = ContextVar("caller_headers", default=None)


def begin(headers: Mapping[str, Any] | None) -> None:
    """Start a request with these headers (names compared case-insensitively)."""
    _headers.set({str(k).lower(): str(v) for k, v in (headers or {}).items()})


def header(name: str) -> str | None:
    """The current request's header `name`, if it sent one."""
    return (_headers.get() or {}).get(name.lower())


class CallerHeaders:
    """ASGI middleware for the local server: the HTTP door's `begin`."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            begin({k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]})
        await self.app(scope, receive, send)
