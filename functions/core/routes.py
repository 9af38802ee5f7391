"""A function's API as data: each route is a method, a path, a request model and a call.

The same table becomes a FastAPI router (the local server, the OpenAPI schema) and a plain
Lambda handler (`functions.core.lambda_http`), so the Lambda path never imports FastAPI:
that import alone is half a second of every cold start on this class of CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel


@dataclass(frozen=True)
class Route:
    """One endpoint: `call(request) -> response`, both pydantic models."""

    method: str
    path: str
    request: type[BaseModel] | None  # None: no body (GET), `call()` takes no argument
    response: type[BaseModel]
    call: Callable[..., BaseModel]
    tag: str


def describe_errors(errors: list[Any]) -> tuple[int, str, str]:
    """Status, code and a short message naming the offending fields (never echoing input),
    from pydantic's error list (FastAPI's has a leading "body" in each location)."""
    if any(e.get("type") == "json_invalid" for e in errors):
        return 400, "malformed_json", "request body is not valid JSON"
    parts = []
    for error in errors[:5]:
        # A dict key is part of the location: cut, so a huge key is never echoed.
        location = ".".join(_cut(p) for p in error.get("loc", ()) if p != "body") or "body"
        parts.append(f"{location}: {error.get('msg', 'invalid')}")
    return 422, "invalid_request", "; ".join(parts)


def media_type_error(content_type: str | None) -> str | None:
    """Why a body of `content_type` is refused (a 415), or None: JSON (`application/json`,
    `application/*+json`, or no type at all) and multipart forms are read."""
    media = (content_type or "application/json").split(";", 1)[0].strip().lower()
    if media in ("application/json", "multipart/form-data") or (
        media.startswith("application/") and media.endswith("+json")
    ):
        return None
    return f"bodies are JSON (application/json), not {media[:100]!r}"


def _cut(part: object, limit: int = 64) -> str:
    text = str(part)
    return text if len(text) <= limit else text[: limit - 1] + "…"
