"""Issue 15, findings 1 and 7, through both front doors (the Lambda handler and the FastAPI
app): a hostile multipart search form is refused in milliseconds (42,000 tiny parts took
5.6 s of CPU in the stdlib e-mail parser), deeply nested JSON in a form part is a 400 (it
was a 500 and an unhandled RecursionError), and a form is read only where a route takes one.
The local server's event loop staying free is in test_http_local_server.py."""

from __future__ import annotations

import json
import time

import pytest

from functions.composed.service import composed_routes
from functions.core.http.multipart import (
    JSON_FIELDS,
    MAX_FIELD_BYTES,
    MAX_PART_HEADER_BYTES,
    MAX_PARTS,
    TEXT_FIELDS,
)
from functions.core.http.routes import Route
from functions.core.settings import Settings
from tests.functions.conftest import door  # noqa: F401  (shared fixture)
from tests.functions.test_limits import send_raw

BOUNDARY = "mmsearch-test-boundary"
FORM = f"multipart/form-data; boundary={BOUNDARY}"


def part(name: str, value: bytes, headers: bytes = b"") -> bytes:
    """One form part named `name`."""
    disposition = f'Content-Disposition: form-data; name="{name}"\r\n'.encode()
    return b"--" + BOUNDARY.encode() + b"\r\n" + disposition + headers + b"\r\n" + value + b"\r\n"


def form(*parts: bytes, closed: bool = True) -> bytes:
    return b"".join(parts) + (b"--" + BOUNDARY.encode() + b"--\r\n" if closed else b"")


def tiny_parts(count: int, name: str = "scene") -> bytes:
    """The reviewer's body: `count` parts of a few bytes each (42,000 are 2.4 MB)."""
    return form(*[part(name, b"qa")] * count)


@pytest.fixture(scope="module")
def routes(qa_once: Settings) -> list[Route]:
    return composed_routes(qa_once)[1]


HOSTILE_FORMS = {
    "42,000 repeated parts": (tiny_parts(42_000), "more than once"),
    "42,000 unknown parts": (tiny_parts(42_000, name="x"), "unknown part"),
    "one part too many": (
        form(
            *[part(n, b"1") for n in (*TEXT_FIELDS, *JSON_FIELDS)],
            part("image", b"\x89PNG"),
            part("scene", b"qa"),
        ),
        f"at most {MAX_PARTS} parts",
    ),
    "a long header line": (
        form(part("scene", b"qa", b"X-Pad: " + b"a" * MAX_PART_HEADER_BYTES + b"\r\n")),
        "could not be read",
    ),
    "too many headers": (
        form(part("scene", b"qa", b"".join(b"X-%d: y\r\n" % i for i in range(8)))),
        "could not be read",
    ),
    "an oversized text field": (
        form(part("query", b"a" * (MAX_FIELD_BYTES + 1))),
        f"over {MAX_FIELD_BYTES:,} bytes",
    ),
    "no closing boundary": (form(part("scene", b"qa"), closed=False), "incomplete"),
}


@pytest.mark.parametrize("shape", list(HOSTILE_FORMS))
def test_a_hostile_search_form_is_refused_in_milliseconds_through_both_doors(
    routes: list[Route],
    door: str,  # noqa: F811
    shape: str,
) -> None:
    body, says = HOSTILE_FORMS[shape]
    cpu = time.process_time()
    status, answer = send_raw(door, routes, body, FORM)
    spent = time.process_time() - cpu
    assert status == 422 and answer["error"]["code"] == "invalid_request", answer
    assert says in answer["error"]["message"]
    assert spent < 0.5, f"{shape}: {spent:.2f} s of CPU"  # the e-mail parser: 5.6 s


def test_a_form_without_a_boundary_is_a_4xx_through_both_doors(
    routes: list[Route],
    door: str,  # noqa: F811
) -> None:
    status, answer = send_raw(door, routes, form(part("scene", b"qa")), "multipart/form-data")
    assert status == 422 and "boundary" in answer["error"]["message"], answer


@pytest.mark.parametrize("field", ["debug", "filters", "top_k"])
def test_deeply_nested_json_in_a_form_part_is_a_400_through_both_doors(
    routes: list[Route],
    door: str,  # noqa: F811
    field: str,
) -> None:
    nested = b"[" * 5_000 + b"]" * 5_000
    body = form(part("scene", b"qa"), part("query", b"refund"), part(field, nested))
    status, answer = send_raw(door, routes, body, FORM)
    assert (status, answer["error"]["code"]) == (400, "malformed_json"), answer
    assert "deeper than" in answer["error"]["message"]


def test_deeply_nested_json_in_a_json_body_is_a_400_through_both_doors(
    routes: list[Route],
    door: str,  # noqa: F811
) -> None:
    body = b'{"query": "refund", "debug": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    status, answer = send_raw(door, routes, body, "application/json")
    assert (status, answer["error"]["code"]) == (400, "malformed_json"), answer


def test_brackets_inside_json_strings_are_not_nesting(
    routes: list[Route],
    door: str,  # noqa: F811
) -> None:
    filters = json.dumps({"category": '[{"\\' + "[" * 40}).encode()
    body = form(part("scene", b"qa"), part("query", b"refund"), part("filters", filters))
    status, answer = send_raw(door, routes, body, FORM)
    assert status == 200, answer
    assert answer["hits"] == []  # no document has that category


def test_a_search_form_is_answered_through_both_doors(
    routes: list[Route],
    door: str,  # noqa: F811
) -> None:
    body = form(
        part("scene", b"qa"),
        part("query", b"how do I get a refund?"),
        part("top_k", b"3"),
        part("filters", b'{"category": "billing"}'),
    )
    status, answer = send_raw(door, routes, body, FORM)
    assert status == 200, answer
    assert 0 < len(answer["hits"]) <= 3
    assert all(hit["document"]["category"][0] == "billing" for hit in answer["hits"])


def test_a_form_is_refused_where_the_route_takes_none(
    routes: list[Route],
    door: str,  # noqa: F811
) -> None:
    body = form(part("texts", b'["refund"]'))
    status, answer = send_raw(door, routes, body, FORM, path="/v1/embed")
    assert (status, answer["error"]["code"]) == (415, "unsupported_media_type"), answer
    assert "application/json" in answer["error"]["message"]
