"""Issue 15, finding 6, through both front doors: API answers (successes and refusals) carry
the security headers, and the page's policy is the one CloudFront sends in AWS (infra/web.py)
but for where the API is. The local server's own checks are in test_http_local_server.py."""

from __future__ import annotations

import re

import pytest

from functions.composed.service import composed_routes
from functions.core.http.routes import Route
from functions.core.http.security_headers import API_HEADERS, page_content_security_policy
from functions.core.settings import Settings
from tests.functions.conftest import door  # noqa: F401  (shared fixture)
from tests.functions.test_api import front_door
from tests.functions.test_limits import send_raw_with_headers


@pytest.fixture(scope="module")
def routes(qa_once: Settings) -> list[Route]:
    return composed_routes(qa_once)[1]


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/v1/scenes", None, 200),
        ("POST", "/v1/search", {"query": "refund"}, 200),
        ("POST", "/v1/search", {"query": "refund", "top_k": 0}, 422),
        ("GET", "/v1/nowhere", None, 404),
    ],
)
def test_api_answers_carry_the_security_headers_through_both_doors(
    routes: list[Route],
    door: str,  # noqa: F811
    method: str,
    path: str,
    body: object,
    status: int,
) -> None:
    got, _, headers = front_door(door, routes)(method, path, body)
    assert got == status
    for name, value in API_HEADERS.items():
        assert headers[name] == value, name


def test_a_body_without_a_content_type_is_a_415_through_both_doors(
    routes: list[Route],
    door: str,  # noqa: F811
) -> None:
    status, answer, headers = send_raw_with_headers(door, routes, b'{"query": "refund"}', None)
    assert (status, answer["error"]["code"]) == (415, "unsupported_media_type")
    assert "application/json or multipart/form-data" in answer["error"]["message"]
    assert headers["x-content-type-options"] == "nosniff"


def test_the_page_policy_is_cloudfronts_but_for_where_the_api_is() -> None:
    from infra.web import CONTENT_SECURITY_POLICY

    connect = re.search(r"connect-src ([^;]+);", CONTENT_SECURITY_POLICY)
    assert connect is not None
    assert page_content_security_policy(connect.group(1)) == CONTENT_SECURITY_POLICY
    assert "connect-src 'self';" in page_content_security_policy()  # locally: same origin
