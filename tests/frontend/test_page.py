"""The page in a real browser (Debian's Chromium driven by Playwright) against the local
server with a small indexed corpus (fixtures in conftest.py). Screenshots land in
test-artifacts/screenshots/."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tests.frontend.conftest import HOSTILE, close_page, new_page, search, shot
from tests.functions.test_image_search import COINS


def test_a_text_search_shows_results(page: Any) -> None:
    search(page, "I forgot my login password")
    questions = page.locator(".hit-question").all_inner_texts()
    assert "How do I reset my password?" in questions[:3]
    assert page.locator("#error").is_hidden()
    shot(page, "qa-results")


def test_a_hostile_answer_is_shown_as_text_and_runs_nothing(page: Any) -> None:
    search(page, "Is this page safe?")
    answers = page.locator(".hit-answer").all_inner_texts()
    assert HOSTILE in answers
    page.wait_for_timeout(500)
    assert page.dialogs == []
    assert page.locator(".hit-answer img, .hit-answer script").count() == 0
    shot(page, "qa-hostile-answer")


def test_images_by_text_show_a_grid_of_thumbnails(page: Any) -> None:
    page.check("input[name=scene][value=images]")
    search(page, "a five cent coin called a nickel")
    first = page.locator(".image-hit img").first
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=first.element_handle()
    )
    assert "nickel" in page.locator(".image-caption").first.inner_text()
    shot(page, "images-by-text")


def test_an_uploaded_image_finds_itself(page: Any, tmp_path: Path) -> None:
    page.check("input[name=scene][value=images]")
    upload = tmp_path / "nickel.png"
    shutil.copy(Path("/usr/share/tuxpaint/stamps") / COINS / "005nickel.png", upload)
    page.set_input_files("#image-file", str(upload))
    page.wait_for_selector(".image-hit img")
    assert "nickel" in page.locator(".image-caption").first.inner_text().lower()
    shot(page, "images-by-upload")


def test_typing_searches_after_a_pause_and_marks_the_query_terms(page: Any) -> None:
    page.type("#query", "reset my password", delay=20)  # no Enter: the debounce searches
    page.wait_for_selector(".hit-question mark")
    marked = page.locator(".hit-question mark").all_inner_texts()
    assert {"reset", "password"} <= {m.lower() for m in marked}
    shot(page, "qa-highlights")


def test_the_debug_drawer_forces_an_experiment_and_shows_what_ran(
    browser: Any, server: str
) -> None:
    page = new_page(browser, f"{server}/?debug=1")
    page.click("#debug summary")
    page.wait_for_selector("select[data-layer=match] option[value=bm25]", state="attached")
    page.select_option("select[data-layer=match]", "bm25")
    page.select_option("select[data-layer=rank]", "score")
    search(page, "refund")
    ran = page.inner_text("#debug-ran")
    assert "match bm25" in ran and "rank score" in ran
    assert page.locator(".hit-question").first.inner_text() == "How do I get a refund?"
    shot(page, "debug-drawer")
    close_page(page)


def test_the_page_works_on_a_phone_sized_screen(browser: Any, server: str) -> None:
    phone = new_page(browser, server, viewport={"width": 375, "height": 740}, is_mobile=True)
    search(phone, "how long is delivery")
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 375  # nothing overflows sideways
    shot(phone, "phone")
    close_page(phone)


def test_the_page_works_under_the_security_headers_cloudfront_sends(
    browser: Any, server: str
) -> None:
    """The deployed page gets infra/web.py's Content-Security-Policy from CloudFront: served
    with it here, searching text and images, opening the larger view and "more like this"
    still work and the browser reports no violation."""
    from infra.web import CONTENT_SECURITY_POLICY

    context = browser.new_context(viewport={"width": 1100, "height": 900})

    def with_csp(route: Any) -> None:
        response = route.fetch()
        headers = {**response.headers, "content-security-policy": CONTENT_SECURITY_POLICY}
        route.fulfill(response=response, headers=headers)

    context.route(f"{server}/**", with_csp)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.goto(server)
    assert "script-src 'self'" in page.evaluate(
        "fetch(location.href).then(r => r.headers.get('content-security-policy'))"
    )
    search(page, "I forgot my login password")
    page.check("input[name=scene][value=images]")
    search(page, "a coin")
    first = page.locator(".image-hit img").first  # thumbnails load lazily: the first is in view
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=first.element_handle()
    )
    page.locator(".image-open").first.click()
    page.wait_for_function("() => document.querySelector('#viewer-image').naturalWidth > 0")
    page.keyboard.press("Escape")
    page.locator(".more-like").first.click()
    page.wait_for_selector("#query-image:not([hidden])")
    page.wait_for_function(
        "() => document.querySelector('#status').textContent.includes('this image')"
    )
    violations = [text for text in console if "Content Security Policy" in text]
    close_page(page)
    assert violations == []
