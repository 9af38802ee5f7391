"""What the page says about hits and failures (issue 16, page items 3, 4 and 5): calibrated
relevance instead of raw scores, weak matches and spelling, developer controls only with
?debug=1, readable tags that filter, fixed error messages, the length limit, no flicker."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from tests.frontend.conftest import close_page, new_page, search, shot, wait_idle

RAW_NUMBER = re.compile(r"\d\.\d{2,}")
LABELS = {"close match", "related", "weak"}


def rewrite_search(page: Any, change: Any) -> None:
    """Answer /v1/search with the real server's answer, changed by `change(request, body)`."""

    def handler(route: Any) -> None:
        body = route.fetch().json()
        change(json.loads(route.request.post_data), body)
        route.fulfill(json=body)

    page.route("**/v1/search", handler)


def test_real_answers_show_labels_never_raw_scores(page: Any) -> None:
    search(page, "a large animal with a trunk")
    badges = page.locator(".hit-relevance").all_inner_texts()
    assert badges and set(badges) <= LABELS | {""}
    assert not RAW_NUMBER.search(page.inner_text("#results"))


def test_calibrated_relevance_is_shown_as_a_label(page: Any) -> None:
    def relevance(_: Any, body: dict[str, Any]) -> None:
        for hit, value in zip(body["hits"], [0.92, 0.45, 0.05], strict=False):
            hit["relevance"] = value
        body["hits"] = body["hits"][:3]

    rewrite_search(page, relevance)
    search(page, "a large animal with a trunk")
    assert page.locator(".hit-relevance").all_inner_texts() == ["close match", "related", "weak"]
    assert page.locator(".hit-relevance").first.get_attribute("title") == "Relevance 92%"
    assert not RAW_NUMBER.search(page.inner_text("#results"))
    shot(page, "relevance-labels")


def test_an_uncalibrated_answer_gets_no_label_rather_than_weak(page: Any) -> None:
    """The API sends relevance 0 for a mode it has not calibrated: no hit above 0 and no
    weak_match means "unknown", not "weak"; with weak_match the zeros are real."""
    weak = {"flag": False}

    def zeros(_: Any, body: dict[str, Any]) -> None:
        for hit in body["hits"]:
            hit["relevance"] = 0.0
        body["weak_match"] = weak["flag"]

    rewrite_search(page, zeros)
    search(page, "refund")
    assert set(page.locator(".hit-relevance").all_inner_texts()) == {""}
    weak["flag"] = True
    search(page, "password")
    assert set(page.locator(".hit-relevance").all_inner_texts()) == {"weak"}


def test_a_weak_match_says_so_and_did_you_mean_searches_the_suggestion(page: Any) -> None:
    def misspelt(request: dict[str, Any], body: dict[str, Any]) -> None:
        if request["query"] == "sientist who studies stars":
            body["weak_match"] = True
            body["spelling"] = {"suggestion": "scientist who studies stars", "applied": False}
        else:
            # The page's part only: what the server answers for the corrected query is the
            # relevance tests' business (a small vocabulary can still "correct" it).
            body["weak_match"] = False
            body["spelling"] = None

    rewrite_search(page, misspelt)
    search(page, "sientist who studies stars")
    assert "No close match; nearest results." in page.inner_text("#notice")
    assert "Did you mean scientist who studies stars?" in page.inner_text("#notice")
    shot(page, "did-you-mean")
    page.click("#notice button.suggestion")
    page.wait_for_function(
        "() => new URL(location.href).searchParams.get('q') === 'scientist who studies stars'"
    )
    wait_idle(page)
    assert page.input_value("#query") == "scientist who studies stars"
    assert page.locator("#notice").is_hidden()  # a close match with no suggestion


def test_an_applied_correction_says_what_was_searched(page: Any) -> None:
    def applied(_: Any, body: dict[str, Any]) -> None:
        body["spelling"] = {"suggestion": "elephant", "applied": True}

    rewrite_search(page, applied)
    search(page, "elefant")
    assert page.inner_text("#notice").startswith("Showing results for elephant")
    shot(page, "spelling-applied")


def test_developer_controls_show_only_with_debug(browser: Any, server: str) -> None:
    for url, shown in ((server, False), (f"{server}/?debug=1", True)):
        page = new_page(browser, url)
        page.check("input[name=scene][value=images]")
        search(page, "a coin")
        for selector in ("#debug", "#timings", "#mode"):
            assert page.locator(selector).is_visible() is shown, (url, selector)
        assert ("mode: caption" in page.inner_text("body")) is shown
        badges = " ".join(page.locator(".hit-relevance").all_inner_texts())
        assert bool(RAW_NUMBER.search(badges)) is shown  # raw scores: developers only
        shot(page, f"images-{'debug' if shown else 'plain'}")
        close_page(page)


def test_tags_read_as_words_and_filter_the_search(page: Any) -> None:
    search(page, "a large animal with a trunk")
    elephant = page.locator(".hit", has_text="five-toed pachyderm")
    tag = elephant.locator("button.hit-category")
    assert tag.inner_text() == "animal"
    assert "noun.animal" not in page.inner_text("#results")
    tag.click()
    wait_idle(page)
    query = parse_qs(urlparse(page.url).query)
    assert query["tag"] == ["noun.animal"] and query["q"] == ["a large animal with a trunk"]
    tags = page.locator("#results button.hit-category")
    assert tags.count() >= 1
    assert {t.get_attribute("data-tag") for t in tags.all()} == {"noun.animal"}
    assert "animal" in page.inner_text("#filter")
    shot(page, "tag-filter")
    page.click("#filter-clear")
    wait_idle(page)
    assert "tag" not in parse_qs(urlparse(page.url).query)
    assert page.locator(".hit").count() == 10


def test_an_error_shows_a_fixed_message_and_never_internals(page: Any) -> None:
    internals = "Milvus at in01-abc.zillizcloud.com failed: <_io.BytesIO object at 0x7f3a2c>"

    def failing(route: Any) -> None:
        route.fulfill(
            status=503,
            headers={"Retry-After": "2"},
            json={"error": {"code": "store_unavailable", "message": internals}},
        )

    page.route("**/v1/search", failing)
    search(page, "refund")
    text = page.inner_text("#error")
    assert "The search index is not answering right now. Try again in 2 s." in text
    assert "store_unavailable" in text
    for leak in ("zilliz", "BytesIO", "0x7f", "Milvus"):
        assert leak not in page.inner_text("body")
    shot(page, "error-state")


def test_an_unreadable_upload_gets_the_image_message_from_the_real_server(
    page: Any, tmp_path: Path
) -> None:
    page.check("input[name=scene][value=images]")
    fake = tmp_path / "not-an-image.png"
    fake.write_bytes(b"this is text, not a PNG" * 10)
    page.set_input_files("#image-file", str(fake))
    page.wait_for_selector("#error:not([hidden])")
    text = page.inner_text("#error")
    assert "could not be read as an image" in text and "invalid_request" in text
    assert not re.search(r"0x[0-9a-f]{6,}|BytesIO|Traceback", page.inner_text("body"))


def test_the_query_box_takes_at_most_1000_characters(page: Any) -> None:
    assert page.get_attribute("#query", "maxlength") == "1000"
    page.fill("#query", "")
    page.locator("#query").press_sequentially("ab" * 4)
    page.evaluate("() => document.querySelector('#query').select()")
    page.keyboard.insert_text("x" * 1001)  # a paste of 1,001 characters
    assert len(page.input_value("#query")) == 1000
    page.keyboard.press("Enter")
    wait_idle(page)
    assert page.locator("#error").is_hidden()


def test_previous_results_stay_while_the_next_search_loads(page: Any) -> None:
    search(page, "refund")
    first = page.locator(".hit-question").first.inner_text()
    held: list[Any] = []
    page.route("**/v1/search", lambda route: held.append(route))
    page.fill("#query", "password")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.querySelector('#status').textContent === 'Searching…'")
    while not held:
        page.wait_for_timeout(20)
    assert page.locator(".hit").count() == 10  # the old answer is still there, dimmed
    assert page.locator(".hit-question").first.inner_text() == first
    assert page.get_attribute("#results", "aria-busy") == "true"
    shot(page, "loading-keeps-results")
    held[0].continue_()
    wait_idle(page)
    assert page.locator(".hit-question").first.inner_text() != first
