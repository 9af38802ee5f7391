"""Each limit lives in one place (`functions/core/limits.py`): no other module of the code that
ships or indexes defines one again or spells its literal, and a search one step past a limit
is refused through both front doors with the default settings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from functions.core import limits
from functions.core.http.routes import Route
from functions.core.settings import Settings
from tests.functions.test_api import front_door, search_routes

ROOT = Path(__file__).resolve().parents[2]
HOME = ROOT / "functions" / "core" / "limits.py"
SCANNED = ("functions", "indexing", "offline", "infra")
NAMES = sorted(n for n, v in vars(limits).items() if n.isupper() and isinstance(v, int))
# A name that means something else where it is assigned: the AWS stack's lower body limit
# (a Lambda event is 6 MB, base64 adds a third), passed to the functions as a setting.
OWN_MEANING = {("infra/api.py", "MAX_BODY_BYTES")}
BODY_LITERAL = re.compile(r"5\s*\*\s*(2\s*\*\*\s*20|1024\s*\*\s*1024)|\b5_?242_?880\b")
# Bounds of the request bodies that must be named limits, not numbers.
SCHEMAS = ("functions/core/http/schemas.py", "functions/documents/schemas.py")
NUMERIC_BOUND = re.compile(r"\b(max_length|max_capacity)\s*=\s*\d")


def sources() -> list[tuple[str, str]]:
    found = []
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path != HOME and ".venv" not in path.parts and "cdk.out" not in path.parts:
                found.append((path.relative_to(ROOT).as_posix(), path.read_text("utf-8")))
    return found


def test_the_home_defines_the_limits_the_issue_names() -> None:
    assert limits.FILTER_MAX_VALUES == 64
    assert limits.MAX_BODY_BYTES == 5 * 2**20
    assert {"MAX_TOP_K", "ID_MAX_LENGTH", "MAX_UPSERT_DOCUMENTS", "MAX_DELETE_IDS"} <= set(NAMES)


def test_no_other_module_defines_a_limit_again() -> None:
    defined = re.compile(rf"^\s*({'|'.join(NAMES)})\s*(:[^=\n]+)?=[^=]", re.MULTILINE)
    again = [
        (path, match[1])
        for path, text in sources()
        for match in defined.finditer(text)
        if (path, match[1]) not in OWN_MEANING
    ]
    assert again == []


def test_the_body_default_is_written_only_in_its_home() -> None:
    assert BODY_LITERAL.search(HOME.read_text("utf-8"))
    assert [path for path, text in sources() if BODY_LITERAL.search(text)] == []


def test_request_schemas_bound_their_lists_and_names_by_named_limits() -> None:
    numeric = [
        (path, line.strip())
        for path in SCHEMAS
        for line in (ROOT / path).read_text("utf-8").splitlines()
        if NUMERIC_BOUND.search(line)
    ]
    assert numeric == []


@pytest.fixture(scope="module")
def defaults(qa_once: Settings) -> Settings:
    """The indexed QA corpus with every configurable limit at its default."""
    fresh = Settings(
        home=qa_once.home,
        model_dir=qa_once.model_dir,
        milvus_uri=qa_once.milvus_uri,
        mongo_uri=qa_once.mongo_uri,
        collection_prefix=qa_once.collection_prefix,
        store_timeout_s=qa_once.store_timeout_s,
    )
    assert fresh.max_filter_values == limits.FILTER_MAX_VALUES
    assert fresh.max_top_k == limits.MAX_TOP_K
    assert fresh.max_body_bytes == limits.MAX_BODY_BYTES
    return fresh


@pytest.fixture(scope="module")
def routes(defaults: Settings) -> list[Route]:
    """One search service for the module's requests (they only read)."""
    return search_routes(defaults)


def values(n: int) -> list[str]:
    return [f"c{i}" for i in range(n)]


AT_LIMIT = [
    {"query": "refund", "filters": {"category": values(limits.FILTER_MAX_VALUES)}},
    {"query": "refund", "top_k": limits.MAX_TOP_K},
    {"query": "refund", "filters": {"category": "x" * limits.FILTER_VALUE_MAX_LENGTH}},
]
PAST_LIMIT = [
    {"query": "refund", "filters": {"category": values(limits.FILTER_MAX_VALUES + 1)}},
    {"query": "refund", "top_k": limits.MAX_TOP_K + 1},
    {"query": "refund", "filters": {"category": "x" * (limits.FILTER_VALUE_MAX_LENGTH + 1)}},
    {"query": "refund", "scene": "s" * (limits.SCENE_NAME_MAX_LENGTH + 1)},
    {"query": "q" * (limits.MAX_QUERY_CHARS + 1)},
    {"query": "refund", "filters": {f"f{i}": "x" for i in range(limits.MAX_FILTER_FIELDS + 1)}},
]


@pytest.mark.parametrize("body", AT_LIMIT, ids=["filter-values", "top-k", "value-length"])
def test_a_search_at_each_limit_is_answered(routes: list[Route], door: str, body: dict) -> None:
    status, answer, _ = front_door(door, routes)("POST", "/v1/search", body)
    assert status == 200, answer


@pytest.mark.parametrize(
    "body",
    PAST_LIMIT,
    ids=["filter-values", "top-k", "value-length", "scene-name", "query", "filter-fields"],
)
def test_a_search_one_past_each_limit_is_a_422(routes: list[Route], door: str, body: dict) -> None:
    status, answer, _ = front_door(door, routes)("POST", "/v1/search", body)
    assert status == 422, answer
    assert answer["error"]["code"] == "invalid_request", answer


def test_a_search_body_one_byte_past_the_limit_is_a_413(
    defaults: Settings, routes: list[Route], door: str
) -> None:
    search = front_door(door, routes, defaults.max_body_bytes)
    padding = limits.MAX_BODY_BYTES - len('{"query": ""}') + 1
    status, answer, _ = search("POST", "/v1/search", '{"query": "' + "x" * padding + '"}')
    assert status == 413, answer
    assert answer["error"]["code"] == "payload_too_large"
