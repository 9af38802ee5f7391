"""The page shows the tag facets of a text search as buttons that filter it (issue 17)."""

from __future__ import annotations

import json
import urllib.request
from typing import Any
from urllib.parse import parse_qs, urlparse

from tests.frontend.conftest import search, wait_idle

QUERY = "a large animal with a trunk"


def api_facets(server: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    request = urllib.request.Request(
        f"{server}/v1/search",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return list(json.load(response)["facets"]["category"])


def test_facets_show_the_answers_tag_counts_and_a_click_filters_by_one(
    page: Any, server: str
) -> None:
    search(page, QUERY)
    facets = page.locator("#facets button.facet")
    assert page.locator("#facets").is_visible() and facets.count() >= 2
    expected = api_facets(server, {"scene": "qa", "query": QUERY, "facets": ["category"]})
    shown = [(f.get_attribute("data-tag"), f.inner_text().rsplit(" ", 1)) for f in facets.all()]
    assert [(tag, int(n)) for tag, (_, n) in shown] == [
        (c["value"], c["count"]) for c in expected[:12]
    ]
    assert all(not label.startswith("noun.") for _, (label, _) in shown)  # readable words
    chosen = shown[0][0]
    facets.first.click()
    wait_idle(page)
    assert parse_qs(urlparse(page.url).query)["tag"] == [chosen]
    tags = page.locator("#results button.hit-category")
    assert tags.count() >= 1 and chosen in {t.get_attribute("data-tag") for t in tags.all()}
    assert page.locator("#facets").is_hidden()  # filtered: the filter line says so instead
    assert page.locator("#filter").is_visible()
