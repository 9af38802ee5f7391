"""FastAPI plumbing shared by the three functions: one error shape, one mapping to status codes."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from functions.core.errors import ServiceError
from functions.core.routes import Route, describe_errors, media_type_error
from functions.core.schemas import ErrorBody
from functions.core.uploads import is_multipart, multipart_to_json

log = logging.getLogger("mmsearch")

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 404, 413, 415, 422, 500, 503)
}

HTTP_CODES = {400: "malformed_json", 404: "not_found", 405: "method_not_allowed"}


def error_response(
    status: int, code: str, message: str, retry_after_s: int | None = None
) -> JSONResponse:
    """The one error body: `{"error": {"code", "message"}}`, with Retry-After when retryable."""
    headers = {"Retry-After": str(retry_after_s)} if retry_after_s else None
    body = {"error": {"code": code, "message": message}}
    return JSONResponse(status_code=status, content=body, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Map every failure to the error body; unexpected ones become a 500 without internals."""

    @app.exception_handler(ServiceError)
    async def _service_error(_: Request, exc: ServiceError) -> JSONResponse:
        if exc.status >= 500:
            log.warning("%s: %s", exc.code, exc.message)
        return error_response(exc.status, exc.code, exc.message, exc.retry_after_s)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        status, code, message = describe_errors(list(exc.errors()))
        return error_response(status, code, message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # FastAPI's own refusals (unparseable body, unknown path or method) in the one shape.
        code = HTTP_CODES.get(exc.status_code, "invalid_request")
        message = "request body is not valid JSON" if code == "malformed_json" else str(exc.detail)
        return error_response(exc.status_code, code, message[:300])

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return error_response(500, "internal", "internal error; it has been logged")


def create_api(title: str, description: str, max_body_bytes: int = 5 * 2**20) -> FastAPI:
    """A FastAPI app with the shared error handling and body limit installed."""
    app = FastAPI(title=title, description=description, version="0.1.0")
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    return app


class BodyLimit:
    """ASGI middleware: POST bodies over `max_bytes` are a 413 before any parsing (as API
    Gateway and Lambda refuse them), and multipart search forms become the JSON body."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                limit = f"bodies are limited to {self.max_bytes:,} bytes"
                await error_response(413, "payload_too_large", limit)(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        headers = dict(scope["headers"])
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        if refused := media_type_error(content_type):
            await error_response(415, "unsupported_media_type", refused)(scope, receive, send)
            return
        if not content_type:  # no declared type reads as JSON, as the Lambda handler does
            headers[b"content-type"] = b"application/json"
            scope = {**scope, "headers": list(headers.items())}
        if is_multipart(content_type):
            try:
                body = multipart_to_json(body, content_type)
            except ServiceError as exc:
                await error_response(exc.status, exc.code, exc.message)(scope, receive, send)
                return
            headers[b"content-type"] = b"application/json"
            headers[b"content-length"] = str(len(body)).encode()
            scope = {**scope, "headers": list(headers.items())}
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def include_routes(app: FastAPI, routes: list[Route]) -> None:
    """Serve `routes` from `app`, documented in its OpenAPI schema."""
    for route in routes:
        app.add_api_route(
            route.path,
            _endpoint(route),
            methods=[route.method],
            response_model=route.response,
            responses=ERROR_RESPONSES,
            tags=[route.tag],
        )


def _endpoint(route: Route) -> Any:
    if route.request is None:

        def bodiless() -> Any:
            return route.call()

        bodiless.__annotations__ = {"return": route.response}
        bodiless.__name__ = getattr(route.call, "__name__", "endpoint")
        bodiless.__doc__ = route.call.__doc__
        return bodiless

    def endpoint(request: Any) -> Any:
        return route.call(request)

    # FastAPI reads the body model and the docs from the endpoint's signature and docstring.
    endpoint.__annotations__ = {"request": route.request, "return": route.response}
    endpoint.__name__ = getattr(route.call, "__name__", "endpoint")
    endpoint.__doc__ = route.call.__doc__
    return endpoint
