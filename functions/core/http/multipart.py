"""`multipart/form-data` search requests (a file picked on a page or sent with `curl -F`),
turned into the JSON body the search route validates: the file becomes `query_image`.

Parsed by python-multipart (the streaming parser Starlette uses) under hard bounds, so that
a hostile form costs at most a few milliseconds: the search form has nine fields, so more
parts than `MAX_PARTS`, a repeated field, a long header or deeply nested JSON is refused
where the parser meets it, without reading the rest. The stdlib e-mail parser this replaced
took 5.6 s of CPU for 42,000 tiny parts.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from functions.core.errors import InvalidRequest, MalformedBody

TEXT_FIELDS = ("scene", "query", "negative_query", "user_id")
JSON_FIELDS = ("top_k", "filters", "debug", "weights")
IMAGE_FIELDS = ("image", "query_image", "file")
FIELDS = (*TEXT_FIELDS, *JSON_FIELDS, *IMAGE_FIELDS)

MAX_PARTS = 9  # the form's nine fields, each at most once (one image, under any of its names)
MAX_PART_HEADERS = 4  # Content-Disposition and Content-Type, with room to spare
MAX_PART_HEADER_BYTES = 1024  # one header line; a long file name fits
MAX_FIELD_BYTES = 64 * 1024  # a non-file field (query, filters, weights): its limits are lower
MAX_JSON_DEPTH = 16  # filters and debug nest two levels; json.loads recurses per level


def is_multipart(content_type: str | None) -> bool:
    return (content_type or "").lower().startswith("multipart/form-data")


def multipart_to_json(body: bytes, content_type: str) -> bytes:
    """The JSON search body for a multipart one; unknown, repeated, oversized or malformed
    parts are a 4xx. CPU-bound on large bodies: the local server calls it off the event loop."""
    # Imported here: only form requests pay for it, not every Lambda cold start.
    from python_multipart.exceptions import FormParserError
    from python_multipart.multipart import MultipartParser, parse_options_header

    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise InvalidRequest("multipart body without a boundary in its Content-Type")
    form = _Form()
    try:
        parser = MultipartParser(
            boundary,
            form.callbacks(),
            max_header_count=MAX_PART_HEADERS,
            max_header_size=MAX_PART_HEADER_BYTES,
        )
        parser.write(body)
        parser.finalize()
    except FormParserError as exc:
        raise InvalidRequest(f"multipart body could not be read: {str(exc)[:100]}") from None
    if not form.ended:
        raise InvalidRequest("multipart body is incomplete (no closing boundary)")
    if not form.fields:
        raise InvalidRequest("multipart body without parts (is the boundary right?)")
    return json.dumps(form.fields).encode("utf-8")


class _Form:
    """Collects the parts the parser reports, enforcing the bounds as it goes."""

    def __init__(self) -> None:
        self.fields: dict[str, Any] = {}
        self.seen: set[str] = set()
        self.parts = 0
        self.ended = False
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._disposition = b""
        self._name = ""
        self._data = bytearray()

    def callbacks(self) -> Any:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda d, s, e: self._header_name.extend(d[s:e]),
            "on_header_value": lambda d, s, e: self._header_value.extend(d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise InvalidRequest(f"a search form has at most {MAX_PARTS} parts")
        self._disposition, self._data = b"", bytearray()

    def _header_end(self) -> None:
        if bytes(self._header_name).strip().lower() == b"content-disposition":
            self._disposition = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        from python_multipart.multipart import parse_options_header

        _, params = parse_options_header(self._disposition)
        raw = params.get(b"name")
        if not raw:
            raise InvalidRequest("a multipart part has no name")
        name = raw.decode("latin-1")
        if name not in FIELDS:
            raise InvalidRequest(f"unknown part {name[:64]!r}; parts: {', '.join(FIELDS)}")
        key = "query_image" if name in IMAGE_FIELDS else name
        if key in self.seen:
            raise InvalidRequest(f"part {name!r} appears more than once")
        self.seen.add(key)
        self._name = name

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        self._data.extend(data[start:end])
        if self._name not in IMAGE_FIELDS and len(self._data) > MAX_FIELD_BYTES:
            raise InvalidRequest(f"part {self._name!r} is over {MAX_FIELD_BYTES:,} bytes")

    def _part_end(self) -> None:
        name, payload = self._name, bytes(self._data)
        if name in IMAGE_FIELDS:
            self.fields["query_image"] = base64.b64encode(payload).decode("ascii")
        elif name in TEXT_FIELDS:
            self.fields[name] = _text(name, payload)
        else:
            self.fields[name] = _json(name, _text(name, payload))

    def _end(self) -> None:
        self.ended = True


def _text(name: str, payload: bytes) -> str:
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest(f"part {name!r} is not UTF-8 text") from None


def _json(name: str, text: str) -> Any:
    if nests_deeper(text, MAX_JSON_DEPTH):
        raise MalformedBody(f"part {name!r} nests JSON deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise InvalidRequest(f"part {name!r} must be JSON (e.g. 10 or {{}})") from None


def nests_deeper(text: str, limit: int) -> bool:
    """Whether arrays and objects in `text` nest deeper than `limit` (strings skipped), read
    in one pass before `json.loads`, whose recursion would otherwise end in RecursionError."""
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False
