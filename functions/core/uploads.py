"""`multipart/form-data` search requests (a file picked on a page or sent with `curl -F`),
turned into the JSON body the search route validates: the file becomes `query_image`."""

from __future__ import annotations

import base64
import json
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from functions.core.errors import InvalidRequest

TEXT_FIELDS = ("scene", "query", "user_id")
JSON_FIELDS = ("top_k", "filters", "debug")
IMAGE_FIELDS = ("image", "query_image", "file")


def is_multipart(content_type: str | None) -> bool:
    return (content_type or "").lower().startswith("multipart/form-data")


def multipart_to_json(body: bytes, content_type: str) -> bytes:
    """The JSON search body for a multipart one; unknown or malformed parts are a 4xx."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise InvalidRequest("multipart body without parts (is the boundary right?)")
    out: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            raise InvalidRequest("a multipart part has no name")
        payload = part.get_payload(decode=True) or b""
        if not isinstance(payload, bytes):
            raise InvalidRequest(f"part {name!r} could not be read")
        if name in IMAGE_FIELDS:
            out["query_image"] = base64.b64encode(payload).decode("ascii")
        elif name in TEXT_FIELDS:
            out[name] = _text(name, payload)
        elif name in JSON_FIELDS:
            try:
                out[name] = json.loads(_text(name, payload))
            except json.JSONDecodeError:
                raise InvalidRequest(f"part {name!r} must be JSON (e.g. 10 or {{}})") from None
        else:
            known = ", ".join((*TEXT_FIELDS, *JSON_FIELDS, *IMAGE_FIELDS))
            raise InvalidRequest(f"unknown part {name!r}; parts: {known}")
    return json.dumps(out).encode("utf-8")


def _text(name: str, payload: bytes) -> str:
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest(f"part {name!r} is not UTF-8 text") from None
