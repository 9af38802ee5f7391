"""API Gateway HTTP API (payload v2) events straight to routes: the Lambda entry point.

Answers exactly like the FastAPI app built from the same routes: the same bodies, the same
`{"error": {"code", "message"}}` on failure, Retry-After on retryable errors.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ValidationError

from functions.core.errors import ServiceError
from functions.core.http import caller, correlation
from functions.core.http.multipart import is_multipart, multipart_to_json
from functions.core.http.routes import Route, describe_errors, media_type_error
from functions.core.http.security_headers import API_HEADERS
from functions.core.limits import MAX_BODY_BYTES

log = logging.getLogger("mmsearch")

LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]


def lambda_handler(routes: Sequence[Route], max_body_bytes: int = MAX_BODY_BYTES) -> LambdaHandler:
    """A Lambda handler serving `routes` for API Gateway v2 (and direct-invoke) events;
    bodies over `max_body_bytes` are a 413, a body without a JSON type a 415 (multipart
    forms are read where the route takes them); answers carry the API's security headers."""
    table = {(r.method, r.path): r for r in routes}
    paths = {r.path for r in routes}
    methods = {p: {r.method for r in routes if r.path == p} for p in paths}

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        correlation_id = correlation.begin(event)
        caller.begin(event.get("headers"))
        response = _serve(event)
        response["headers"][correlation.HEADER] = correlation_id
        return response

    def _serve(event: dict[str, Any]) -> dict[str, Any]:
        method, path = _method_and_path(event)
        route = table.get((method, path))
        if route is None:
            if path in paths:
                answer = error(405, "method_not_allowed", f"{method} is not allowed on {path}")
                answer["headers"]["allow"] = ", ".join(sorted(methods[path]))  # RFC 9110
                return answer
            return error(404, "not_found", f"no route {method} {path}")
        if route.request is None:
            return _answer(route, method, path, None)
        try:
            body = _body(event)
            if len(body) > max_body_bytes:
                return error(
                    413, "payload_too_large", f"bodies are limited to {max_body_bytes:,} bytes"
                )
            content_type = _header(event, "content-type")
            if refused := media_type_error(content_type, route.form):
                return error(415, "unsupported_media_type", refused)
            if is_multipart(content_type):
                body = multipart_to_json(body, content_type or "")
            request = route.request.model_validate_json(body or b"null")
        except UnicodeError:
            return error(400, "malformed_json", "request body is not valid UTF-8")
        except binascii.Error:
            return error(400, "malformed_json", "request body is not valid base64")
        except ValidationError as exc:
            return error(*describe_errors(exc.errors(include_url=False, include_input=False)))
        except ServiceError as exc:  # a multipart body that cannot be read
            return error(exc.status, exc.code, exc.public_message)
        return _answer(route, method, path, request)

    return handler


def _answer(route: Route, method: str, path: str, request: Any) -> dict[str, Any]:
    try:
        response = route.call() if route.request is None else route.call(request)
    except ServiceError as exc:
        if exc.status >= 500:
            log.warning("%s: %s", exc.code, exc.message)
        return error(exc.status, exc.code, exc.public_message, exc.retry_after_s)
    except Exception:
        log.exception("unhandled error on %s %s", method, path)
        return error(500, "internal", "internal error; it has been logged")
    return _json(200, response.model_dump_json())


def error(status: int, code: str, message: str, retry_after_s: int | None = None) -> dict[str, Any]:
    """The one error body as a Lambda proxy response."""
    body = json.dumps({"error": {"code": code, "message": message}})
    response = _json(status, body)
    if retry_after_s:
        response["headers"]["retry-after"] = str(retry_after_s)
    return response


def _json(status: int, body: str) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json", **API_HEADERS},
        "body": body,
        "isBase64Encoded": False,
    }


def _method_and_path(event: dict[str, Any]) -> tuple[str, str]:
    http = event.get("requestContext", {}).get("http", {})
    route_key = event.get("routeKey") or ""
    if " " in route_key and "{" not in route_key:
        method, path = route_key.split(" ", 1)
        return method.upper(), path
    return str(http.get("method", "")).upper(), str(event.get("rawPath") or http.get("path", ""))


def _header(event: dict[str, Any], name: str) -> str | None:
    headers = event.get("headers") or {}
    return next((str(v) for k, v in headers.items() if k.lower() == name), None)


def _body(event: dict[str, Any]) -> bytes:
    raw = event.get("body") or ""
    if event.get("isBase64Encoded"):
        return base64.b64decode(raw, validate=True)
    return raw.encode("utf-8")  # a lone surrogate raises UnicodeEncodeError: a 400
