"""Paging, result counts and the URL as the page's state (issue 16, page items 1, 2 and 8)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from tests.frontend.conftest import QA_COUNT, close_page, new_page, search, shot, wait_idle
from tests.functions.test_image_search import COINS


def params(page: Any) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlparse(page.url).query).items()}


def hit_count(page: Any) -> int:
    return int(page.evaluate("document.querySelectorAll('#results > li').length"))


def test_more_results_appends_keeping_scroll_position_and_focus(page: Any) -> None:
    search(page, "a question about anything")
    assert hit_count(page) == 10
    page.evaluate("window.firstHit = document.querySelector('#results > li')")
    page.locator("#more").scroll_into_view_if_needed()
    page.focus("#more")
    before = page.evaluate("window.scrollY")
    assert before > 0
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.querySelectorAll('#results > li').length === 20")
    assert page.evaluate("window.scrollY") == before  # no jump to the top
    assert page.evaluate("document.activeElement.id") == "more"  # keyboard focus kept
    assert page.evaluate("window.firstHit === document.querySelector('#results > li')")
    assert params(page)["k"] == "20"
    shot(page, "more-results-appended")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.querySelectorAll('#results > li').length === 30")
    page.keyboard.press("Enter")
    page.wait_for_function(
        f"() => document.querySelectorAll('#results > li').length === {QA_COUNT}"
    )
    assert page.locator("#more").is_hidden()
    # The button is gone: focus moves to the first hit it revealed, not to the page's top.
    assert (
        page.evaluate(
            "[...document.querySelectorAll('#results > li')].indexOf(document.activeElement)"
        )
        == 30
    )


def test_the_first_more_asks_for_100_once_and_gives_the_exact_count(page: Any) -> None:
    asked: list[int] = []
    page.on(
        "request",
        lambda r: asked.append(json.loads(r.post_data)["top_k"]) if "/v1/search" in r.url else None,
    )
    search(page, "a question about anything")
    assert asked == [11]  # one page and one more hit: is there a next page?
    assert page.inner_text("#status").startswith("Top 10 for")
    page.click("#more")
    page.wait_for_function("() => document.querySelectorAll('#results > li').length === 20")
    status = page.inner_text("#status")
    assert f"{QA_COUNT} results" in status and "showing 20" in status
    page.click("#more")
    page.wait_for_function("() => document.querySelectorAll('#results > li').length === 30")
    assert asked == [11, 100]  # later pages come from memory
    shot(page, "result-count")


def test_fewer_hits_than_a_page_give_the_count_at_once(page: Any) -> None:
    page.select_option("#top-k", "50")
    search(page, "a question about anything")
    assert page.inner_text("#status").startswith(f"{QA_COUNT} results for")
    assert page.locator("#more").is_hidden()


def test_past_100_hits_the_page_says_100_plus_and_stops(page: Any) -> None:
    """The API stops at top_k 100 and has no offset: the page says "100+" and stops there."""
    asked: list[int] = []

    def hundred(route: Any) -> None:  # a corpus larger than 100: every request is filled
        top_k = json.loads(route.request.post_data)["top_k"]
        asked.append(top_k)
        body = route.fetch().json()
        real = body["hits"]
        body["hits"] = [{**real[i % len(real)], "id": f"hit-{i}"} for i in range(top_k)]
        route.fulfill(json=body)

    page.route("**/v1/search", hundred)
    page.select_option("#top-k", "50")
    search(page, "a question about anything")
    assert page.inner_text("#status").startswith("Top 50 for")
    page.click("#more")
    page.wait_for_function("() => document.querySelectorAll('#results > li').length === 100")
    assert page.locator("#more").is_hidden()
    assert "top 100" in page.inner_text("#end-note")
    assert page.inner_text("#status").startswith("100+ results")
    assert asked == [51, 100]
    shot(page, "hundred-plus")


def test_the_url_records_searches_and_back_and_forward_walk_them(page: Any) -> None:
    search(page, "refund")
    first = page.locator(".hit-question").first.inner_text()
    assert params(page) == {"q": "refund", "k": "10"}
    length = page.evaluate("history.length")
    page.fill("#query", "")
    page.type("#query", "reset my password", delay=30)  # typed: searched after a pause
    page.wait_for_function(
        "() => new URL(location.href).searchParams.get('q') === 'reset my password'"
    )
    wait_idle(page)
    assert page.evaluate("history.length") == length + 1  # one entry per typed query
    page.click("#more")
    assert params(page) == {"q": "reset my password", "k": "20"}
    page.go_back()
    wait_idle(page)
    assert page.input_value("#query") == "refund"
    assert page.locator(".hit-question").first.inner_text() == first
    assert hit_count(page) == 10
    page.go_forward()
    page.wait_for_function("() => document.querySelectorAll('#results > li').length === 20")
    assert page.input_value("#query") == "reset my password"
    page.reload()  # the URL alone restores query and count
    page.wait_for_function("() => document.querySelectorAll('#results > li').length === 20")
    assert page.input_value("#query") == "reset my password"
    shot(page, "url-state-restored")


def test_a_shared_images_link_opens_images(browser: Any, server: str) -> None:
    page = new_page(browser, f"{server}/?tab=images&q=a+coin&k=10")
    wait_idle(page)
    assert page.is_checked("input[name=scene][value=images]")
    assert page.input_value("#query") == "a coin"
    assert page.locator(".image-hit").count() == 10
    page.check("input[name=scene][value=qa]")  # switching tabs is a history step too
    wait_idle(page)
    assert "tab" not in params(page)
    page.go_back()
    page.wait_for_selector(".image-hit")
    assert page.is_checked("input[name=scene][value=images]")
    shot(page, "shared-images-link")
    close_page(page)


def test_an_uploaded_image_becomes_the_query_and_clears_the_text_box(
    page: Any, tmp_path: Path
) -> None:
    page.check("input[name=scene][value=images]")
    search(page, "a coin")
    upload = tmp_path / "nickel.png"
    shutil.copy(Path("/usr/share/tuxpaint/stamps") / COINS / "005nickel.png", upload)
    page.set_input_files("#image-file", str(upload))
    page.wait_for_function(
        "() => document.querySelector('#status').textContent.includes('your image')"
    )
    assert page.input_value("#query") == ""
    preview = page.locator("#query-image-preview")
    assert preview.is_visible()
    page.wait_for_function("() => document.querySelector('#query-image-preview').naturalWidth > 0")
    assert preview.get_attribute("src").startswith("blob:")
    assert "nickel" in page.inner_text("#query-image-label")
    assert "nickel" in page.locator(".image-caption").first.inner_text().lower()
    shot(page, "upload-as-query")
    page.go_back()  # back to the text search the upload followed
    wait_idle(page)
    assert page.input_value("#query") == "a coin"
    assert page.locator("#query-image").is_hidden()
