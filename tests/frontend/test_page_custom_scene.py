"""A scene declared in configuration alone, written through the API and searched from the page
(issue 17): the page builds its tab from `GET /v1/scenes`, draws hits from the declared fields,
offers the keyword fields as facets and the numbers as ranges, and pages with the API's token.

The catalogue is test_catalogue_scene.py's (its YAML and products), declared beside the
packaged scenes and written into the shared page server by batchUpsert (conftest's
`catalogue`)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlparse

from tests.frontend.conftest import call, close_page, new_page, search, shot, wait_idle

QUERY = "something for the kitchen"
BRAND = "Cobalt"
LOW, HIGH = 20, 150


def shown_ids(page: Any) -> list[str]:
    return list(page.eval_on_selector_all("#results > li", "items => items.map(i => i.dataset.id)"))


def field_values(page: Any, field: str) -> list[str]:
    return list(
        page.eval_on_selector_all(
            f'#results .doc-field[data-field="{field}"] dd',
            "cells => cells.map(c => c.textContent)",
        )
    )


def test_a_declared_scene_is_a_tab_searched_filtered_by_facet_and_range_and_paged(
    browser: Any, server: str, catalogue: list[dict[str, Any]]
) -> None:
    page = new_page(browser, server)
    asked: list[dict[str, Any]] = []
    page.on(
        "request",
        lambda r: asked.append(json.loads(r.post_data)) if r.url.endswith("/v1/search") else None,
    )
    page.check("input[name=scene][value=catalogue]")
    assert page.inner_text("#query-label") == "Search Catalogue"
    search(page, QUERY)

    # Hits drawn from the declared fields: title first, the other fields, the picture.
    first = call(
        server,
        "/v1/search",
        {"scene": "catalogue", "query": QUERY, "top_k": 10, "facets": ["brand"]},
    )
    assert shown_ids(page) == [h["id"] for h in first["hits"]]
    titles = page.locator("#results .hit-question").all_inner_texts()
    assert titles == [h["document"]["title"] for h in first["hits"]]
    assert field_values(page, "brand") == [h["document"]["brand"] for h in first["hits"]]
    assert page.locator("#results .doc-field[data-field=released_at]").count() == 10
    assert page.locator("#results .doc-field[data-field=in_stock] dd").first.inner_text() in {
        "yes",
        "no",
    }
    page.wait_for_function(
        "() => [...document.querySelectorAll('#results img.doc-image')]"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    assert page.locator("#results img.doc-image").count() == 10
    assert page.locator("#scene-filters #range-price-min").is_visible()
    assert page.locator("#scene-filters #range-released_at-min").get_attribute("type") == "date"

    # The brand facet shows the API's counts; a click filters by it.
    facets = page.locator('#facets .facet[data-field="brand"]')
    counts = [(f.get_attribute("data-value"), f.inner_text().split()[-1]) for f in facets.all()]
    assert counts == [(c["value"], str(c["count"])) for c in first["facets"]["brand"]]
    page.locator(f'#facets .facet[data-value="{BRAND}"]').click()
    wait_idle(page)
    assert parse_qs(urlparse(page.url).query)["f.brand"] == [BRAND]
    assert set(field_values(page, "brand")) == {BRAND}
    assert page.locator(f'#active-filters .filter-chip[data-value="{BRAND}"]').is_visible()

    # A price range from the inputs; then every page, each asked with the previous page's token.
    page.fill("#range-price-min", str(LOW))
    page.fill("#range-price-max", str(HIGH))
    page.press("#range-price-max", "Enter")
    wait_idle(page)
    assert parse_qs(urlparse(page.url).query)["f.price"] == [f"{LOW}..{HIGH}"]
    expected = {r["id"] for r in catalogue if r["brand"] == BRAND and LOW <= r["price"] <= HIGH}
    assert 20 < len(expected) <= 60, len(expected)  # more than two pages of 10
    assert len(shown_ids(page)) == 10
    shot(page, "custom-scene-filtered")
    asked.clear()
    while page.locator("#more").is_visible():
        before = len(shown_ids(page))
        page.click("#more")
        page.wait_for_function(
            f"() => document.querySelectorAll('#results > li').length > {before}"
            " || document.querySelector('#more').hidden"
        )
        wait_idle(page)
    ids = shown_ids(page)
    assert len(ids) == len(set(ids)) and set(ids) == expected
    assert asked and all(a.get("page_token") for a in asked)
    assert all(
        a["filters"] == {"brand": BRAND, "price": {"gte": LOW, "lte": HIGH}} and a["top_k"] == 10
        for a in asked
    )
    prices = [float(v.replace(",", "")) for v in field_values(page, "price")]
    assert all(LOW <= p <= HIGH for p in prices)
    assert page.inner_text("#status").startswith(f"{len(expected)} results")

    # The link alone reopens the same filtered search; removing the chip drops the brand.
    page.reload()
    wait_idle(page)
    assert set(shown_ids(page)) == expected
    assert page.input_value("#range-price-min") == str(LOW)
    page.locator("#active-filters .filter-chip").click()
    wait_idle(page)
    assert "f.brand" not in parse_qs(urlparse(page.url).query)
    assert len(set(field_values(page, "brand"))) > 1
    close_page(page)
