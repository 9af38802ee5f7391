"""`GET /v1/health` through the split search function's Lambda door (API Gateway routes it
there; the page calls it)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from functions.core.http.lambda_adapter import lambda_handler
from functions.search.health import health_route

HANDLER = Path(__file__).resolve().parents[2] / "functions" / "search" / "handler.py"


def event(method: str, path: str) -> dict[str, object]:
    return {
        "version": "2.0",
        "rawPath": path,
        "headers": {},
        "requestContext": {"http": {"method": method, "path": path}, "requestId": "r-1"},
        "isBase64Encoded": False,
    }


def test_the_split_search_function_answers_health_with_ok():
    response = lambda_handler([health_route()])(event("GET", "/v1/health"), None)
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {"status": "ok"}


def test_the_split_search_handler_serves_the_health_route():
    """The handler module inits the stores at import, so its route list is read, not run."""
    calls = {
        node.func.id
        for node in ast.walk(ast.parse(HANDLER.read_text()))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    assert "health_route" in calls
