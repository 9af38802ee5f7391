"""A function's API as data: each route is a method, a path, a request model and a call.

The same table becomes a FastAPI router (the local server, the OpenAPI schema) and a plain
Lambda handler (`functions.core.http.lambda_adapter`), so the Lambda path never imports FastAPI:
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
    form: bool = False  # also reads `multipart/form-data` (functions.core.http.multipart)


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


def media_type_error(content_type: str | None, form: bool = False) -> str | None:
    """Why a body of `content_type` is refused (a 415), or None: JSON (`application/json` or
    `application/*+json`) is read, and multipart forms where `form`. A body without a type is
    refused: a cross-site page can send one without a CORS preflight (as it can a form)."""
    accepted = "application/json" + (" or multipart/form-data" if form else "")
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if not media:
        return f"send Content-Type: {accepted}"
    if media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    ):
        return None
    if form and media == "multipart/form-data":
        return None
    return f"bodies are {accepted}, not {media[:100]!r}"


def _cut(part: object, limit: int = 64) -> str:
    text = str(part)
    return text if len(text) <= limit else text[: limit - 1] + "…"
