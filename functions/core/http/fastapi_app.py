"""FastAPI plumbing shared by the three functions: one error shape, one mapping to status codes."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from functions.core.errors import ServiceError
from functions.core.http.caller import CallerHeaders
from functions.core.http.multipart import is_multipart, multipart_to_json
from functions.core.http.routes import Route, describe_errors, media_type_error
from functions.core.http.schemas import ErrorBody
from functions.core.http.security_headers import (
    API_CONTENT_SECURITY_POLICY,
    page_content_security_policy,
    security_headers,
)
from functions.core.limits import MAX_BODY_BYTES

log = logging.getLogger("mmsearch")

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 403, 404, 413, 415, 422, 500, 503)
}

HTTP_CODES = {400: "malformed_json", 404: "not_found", 405: "method_not_allowed"}


def error_response(
    status: int, code: str, message: str, retry_after_s: int | None = None
) -> JSONResponse:
    """The one error body: `{"error": {"code", "message"}}`, with Retry-After when retryable."""
    headers = {"Retry-After": str(retry_after_s)} if retry_after_s else None
    body = {"error": {"code": code, "message": message}}
    return JSONResponse(status_code=status, content=body, headers=headers)


def _allowed_methods(request: Request) -> str:
    """Every method some route of the app takes on this request's path."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        regex, taken = getattr(route, "path_regex", None), getattr(route, "methods", None)
        if regex is not None and taken and regex.match(request.url.path):
            methods |= set(taken)
    return ", ".join(sorted(methods))


def install_error_handlers(app: FastAPI) -> None:
    """Map every failure to the error body; unexpected ones become a 500 without internals."""

    @app.exception_handler(ServiceError)
    async def _service_error(_: Request, exc: ServiceError) -> JSONResponse:
        if exc.status >= 500:
            log.warning("%s: %s", exc.code, exc.message)
        return error_response(exc.status, exc.code, exc.public_message, exc.retry_after_s)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        status, code, message = describe_errors(list(exc.errors()))
        return error_response(status, code, message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # FastAPI's own refusals (unparseable body, unknown path or method) in the one shape.
        code = HTTP_CODES.get(exc.status_code, "invalid_request")
        message = "request body is not valid JSON" if code == "malformed_json" else str(exc.detail)
        response = error_response(exc.status_code, code, message[:300])
        if exc.status_code == 405:  # says what the path takes (RFC 9110); Starlette names
            response.headers["Allow"] = _allowed_methods(request)  # only the first route's
        return response

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return error_response(500, "internal", "internal error; it has been logged")


def create_api(title: str, description: str, max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    """A FastAPI app with the shared error handling, body limit and security headers."""
    app = FastAPI(title=title, description=description, version="0.1.0")
    install_error_handlers(app)
    app.state.form_paths = set()  # filled by include_routes from each Route's `form`
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes, form_paths=app.state.form_paths)
    docs = {p for p in (app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url) if p}
    app.add_middleware(SecurityHeaders, docs_paths=frozenset(docs))
    app.add_middleware(CallerHeaders)  # who is calling, for the routes that ask
    return app


class SecurityHeaders:
    """ASGI middleware: every response carries nosniff, frame denial and a referrer policy;
    JSON the API's CSP, anything else (the page, media) the page's. The API docs page loads
    Swagger UI from a CDN, so it alone goes without a CSP."""

    def __init__(self, app: ASGIApp, docs_paths: frozenset[str]) -> None:
        self.app = app
        self.docs_paths = docs_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                media = headers.get("content-type", "")
                if scope["path"] in self.docs_paths:
                    policy = None
                elif media.startswith("application/json"):
                    policy = API_CONTENT_SECURITY_POLICY
                else:
                    policy = page_content_security_policy()
                for name, value in security_headers(policy).items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyLimit:
    """ASGI middleware: POST bodies of the wrong type are a 415 and bodies over `max_bytes`
    a 413 before any parsing (as API Gateway and Lambda refuse them); a client that goes
    away mid-body is not served (its truncated body never reaches a route); multipart
    search forms become the JSON body, parsed in a worker thread, off the event loop."""

    def __init__(self, app: ASGIApp, max_bytes: int, form_paths: set[str]) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.form_paths = form_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        if refused := media_type_error(content_type, scope["path"] in self.form_paths):
            await _refuse(415, "unsupported_media_type", refused, scope, receive, send)
            return
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await _refuse(413, "payload_too_large", self._limit, scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # abandoned (or timed out by the local server): nobody to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _refuse(413, "payload_too_large", self._limit, scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        if is_multipart(content_type):
            try:
                body = await run_in_threadpool(multipart_to_json, body, content_type)
            except ServiceError as exc:
                await error_response(exc.status, exc.code, exc.public_message)(scope, receive, send)
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

    @property
    def _limit(self) -> str:
        return f"bodies are limited to {self.max_bytes:,} bytes"


async def _refuse(
    status: int, code: str, message: str, scope: Scope, receive: Receive, send: Send
) -> None:
    """An error sent before the body is read: the connection closes after it, so the rest of
    the body is never read (or waited for)."""
    response = error_response(status, code, message)
    response.headers["connection"] = "close"
    await response(scope, receive, send)


def include_routes(app: FastAPI, routes: list[Route]) -> None:
    """Serve `routes` from `app`, documented in its OpenAPI schema."""
    form_paths: set[str] = getattr(app.state, "form_paths", set())
    form_paths.update(route.path for route in routes if route.form)
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
    # The route's answer is its response model already, built and checked by the service:
    # written out as JSON here, FastAPI neither validates it a second time (in a second hop
    # to the thread pool, for a sync endpoint) nor encodes it through `jsonable_encoder`.
    if route.request is None:

        def bodiless() -> Any:
            return _json(route.call())

        bodiless.__annotations__ = {"return": route.response}
        bodiless.__name__ = getattr(route.call, "__name__", "endpoint")
        bodiless.__doc__ = route.call.__doc__
        return bodiless

    def endpoint(request: Any) -> Any:
        return _json(route.call(request))

    # FastAPI reads the body model and the docs from the endpoint's signature and docstring.
    endpoint.__annotations__ = {"request": route.request, "return": route.response}
    endpoint.__name__ = getattr(route.call, "__name__", "endpoint")
    endpoint.__doc__ = route.call.__doc__
    return endpoint


def _json(model: BaseModel) -> Response:
    return Response(model.model_dump_json(), media_type="application/json")
