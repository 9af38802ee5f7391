"""A method a path does not take is a 405 that says which methods it does take (RFC 9110
15.5.6: the Allow header is required), through both front doors. schemathesis' default
checks (ST204) flagged every route of the live server for the missing header."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from functions.core.http.routes import Route
from tests.functions.test_api import door, front_door  # noqa: F401  (shared fixture)


class _Echo(BaseModel):
    text: str = ""


def _routes() -> list[Route]:
    return [
        Route("GET", "/v1/things", None, _Echo, lambda: _Echo(text="got"), "t"),
        Route("POST", "/v1/things", _Echo, _Echo, lambda request: request, "t"),
        Route("POST", "/v1/search", _Echo, _Echo, lambda request: request, "t"),
    ]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("TRACE", "/v1/search", {"POST"}),
        ("DELETE", "/v1/search", {"POST"}),
        ("PUT", "/v1/things", {"GET", "POST"}),
    ],
)
def test_a_405_names_the_allowed_methods_through_both_doors(
    door: str,  # noqa: F811
    method: str,
    path: str,
    allowed: set[str],
) -> None:
    status, answer, headers = front_door(door, _routes())(method, path, None)
    assert (status, answer["error"]["code"]) == (405, "method_not_allowed")
    named = {m.strip() for m in headers["allow"].split(",")}
    # Starlette also answers HEAD wherever GET is taken; the Lambda door does not.
    assert named - {"HEAD"} == allowed
    assert "HEAD" not in named or "GET" in allowed
    assert headers["x-content-type-options"] == "nosniff"


def test_an_allowed_method_still_answers(door: str) -> None:  # noqa: F811
    status, answer, _ = front_door(door, _routes())("GET", "/v1/things", None)
    assert (status, answer) == (200, {"text": "got"})
