"""One correlation id per request, carried from API Gateway through every function it reaches.

The id is the caller's `x-correlation-id` header when it is a sane token (search passes its own
to preprocess and summary), else API Gateway's request id. It is echoed in the response and
written in the log lines of every function that served the request."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar
from typing import Any

HEADER = "x-correlation-id"
_TOKEN = re.compile(r"^[A-Za-z0-9._:=-]{1,128}$")
_current: ContextVar[str | None] = ContextVar("correlation_id", default=None)


def begin(event: dict[str, Any]) -> str:
    """Start a request: take the id from the event (header, then request id) or make one."""
    headers = event.get("headers") or {}
    given = next((str(v) for k, v in headers.items() if k.lower() == HEADER), "")
    request_id = str((event.get("requestContext") or {}).get("requestId") or "")
    chosen = next((c for c in (given, request_id) if _TOKEN.match(c)), None) or str(uuid.uuid4())
    _current.set(chosen)
    return chosen


def current() -> str | None:
    """The id of the request being served in this context, if any."""
    return _current.get()


def outgoing_headers() -> dict[str, str]:
    """Headers that carry the current id to another function."""
    value = _current.get()
    return {HEADER: value} if value else {}
