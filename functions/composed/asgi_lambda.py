"""API Gateway events to the composed FastAPI app through Mangum: the one-function door.

In the one-function deployment FastAPI is loaded anyway and SnapStart moves its import cost
into the snapshot, so Lambda serves the very app the local server runs. Mangum turns the event
into an ASGI request; what it leaves undone is done here as the lean dispatcher
(`functions.core.http.lambda_adapter`) does it: a body that is not base64 or not UTF-8 is a
400, not a crash, and the correlation id is taken from the event and echoed.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from mangum import Mangum
from mangum.types import ASGI

from functions.core.http import correlation
from functions.core.http.lambda_adapter import LambdaHandler, error


def asgi_lambda_handler(app: ASGI) -> LambdaHandler:
    """A Lambda handler serving API Gateway HTTP API (v2) events with the ASGI `app`."""
    adapter = Mangum(app, lifespan="off")

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        correlation_id = correlation.begin(event)
        response = _refusal(event) or dict(adapter(event, context))
        response.setdefault("headers", {})[correlation.HEADER] = correlation_id
        return response

    return handler


def _refusal(event: dict[str, Any]) -> dict[str, Any] | None:
    """The 400 for a body Mangum could not decode (it would raise), else None."""
    raw = event.get("body") or ""
    try:
        if event.get("isBase64Encoded"):
            base64.b64decode(raw, validate=True)
        else:
            raw.encode("utf-8")  # a lone surrogate, as a broken client may send
    except binascii.Error:
        return error(400, "malformed_json", "request body is not valid base64")
    except UnicodeError:
        return error(400, "malformed_json", "request body is not valid UTF-8")
    return None
