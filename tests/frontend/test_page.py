"""The page in a real browser (Debian's Chromium driven by Playwright) against the local
server with a small indexed corpus. Screenshots land in test-artifacts/screenshots/."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from functions.composed.app import create_app
from functions.core.encoder import TextEncoder
from functions.core.scenes import QA
from functions.core.settings import Settings
from functions.core.stores import collection_name
from indexing.corpus import QADocument
from indexing.indexer import Indexer
from offline.local_mongo import free_port
from tests.functions.test_image_search import COINS, index_images, stamps

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
HOSTILE = "<img src=x onerror=alert(1)><script>alert(2)</script>"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, model_dir: Path, mongo_server: Any, milvus_path: str
) -> Iterator[str]:
    """The composed app (API + page + media) on a free port, with QA and image corpora."""
    settings = Settings(
        home=tmp_path_factory.mktemp("page-home"),
        model_dir=model_dir,
        milvus_uri=milvus_path,
        mongo_uri=mongo_server.uri,
        collection_prefix="page_",
    )
    encoder = TextEncoder.load(model_dir)
    from functions.core.stores import open_document_store, open_vector_store

    lines = (ROOT / "tests" / "fixtures" / "qa_small.jsonl").read_text().splitlines()
    docs = [QADocument.model_validate_json(line) for line in lines]
    docs.append(
        QADocument(id="qa-hostile", question="Is this page safe?", answer=HOSTILE, category=["x"])
    )
    indexer = Indexer(encoder, open_vector_store(settings), open_document_store(settings))
    indexer.run(QA, collection_name(settings, QA), docs)
    index_images(settings, encoder, stamps())
    port = free_port()
    config = uvicorn.Config(
        create_app(settings, static_dir=ROOT / "frontend"),
        host="127.0.0.1",
        port=port,
        log_level="warning",
    )
    uvicorn_server = uvicorn.Server(config)
    thread = threading.Thread(target=uvicorn_server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uvicorn_server.started and time.monotonic() < deadline:
        time.sleep(0.1)
    assert uvicorn_server.started, "the local server did not start"
    yield f"http://127.0.0.1:{port}"
    uvicorn_server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), "install Debian's chromium (make system-deps)"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, server: str) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.dialogs = []  # type: ignore[attr-defined]
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(server)
    yield page
    context.close()


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    # Thumbnails load lazily: bring each into view so the full-page picture shows them.
    for image in page.locator(".image-hit img").all():
        image.scroll_into_view_if_needed()
    page.wait_for_function("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_a_text_search_shows_results_with_timings(page: Any) -> None:
    page.fill("#query", "I forgot my login password")
    page.keyboard.press("Enter")
    page.wait_for_selector(".hit-question")
    questions = page.locator(".hit-question").all_inner_texts()
    assert "How do I reset my password?" in questions[:3]
    assert "total" in page.inner_text("#timings")
    assert page.locator("#error").is_hidden()
    shot(page, "qa-results")


def test_a_hostile_answer_is_shown_as_text_and_runs_nothing(page: Any) -> None:
    page.fill("#query", "Is this page safe?")
    page.keyboard.press("Enter")
    page.wait_for_selector(".hit-answer")
    answers = page.locator(".hit-answer").all_inner_texts()
    assert HOSTILE in answers
    page.wait_for_timeout(500)
    assert page.dialogs == []  # type: ignore[attr-defined]
    assert page.locator(".hit-answer img, .hit-answer script").count() == 0
    shot(page, "qa-hostile-answer")


def test_an_error_from_the_api_shows_the_error_state(page: Any) -> None:
    page.fill("#query", "x" * 1001)
    page.keyboard.press("Enter")
    page.wait_for_selector("#error:not([hidden])")
    assert "1000" in page.inner_text("#error") or "1,000" in page.inner_text("#error")
    assert "invalid_request" in page.inner_text("#error")
    shot(page, "error-state")


def test_images_by_text_show_a_grid_of_thumbnails(page: Any) -> None:
    page.check("input[name=scene][value=images]")
    page.fill("#query", "a five cent coin called a nickel")
    page.keyboard.press("Enter")
    page.wait_for_selector(".image-hit img")
    first = page.locator(".image-hit img").first
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=first.element_handle()
    )
    assert "nickel" in page.locator(".image-caption").first.inner_text()
    assert "caption" in page.inner_text("#mode")
    shot(page, "images-by-text")


def test_an_uploaded_image_finds_itself(page: Any, tmp_path: Path) -> None:
    page.check("input[name=scene][value=images]")
    upload = tmp_path / "nickel.png"
    shutil.copy(Path("/usr/share/tuxpaint/stamps") / COINS / "005nickel.png", upload)
    page.set_input_files("#image-file", str(upload))
    page.wait_for_selector(".image-hit img")
    assert "nickel" in page.locator(".image-caption").first.inner_text().lower()
    assert "Matching pixels" in page.inner_text("#mode")
    shot(page, "images-by-upload")


def test_typing_searches_after_a_pause_and_marks_the_query_terms(page: Any) -> None:
    page.type("#query", "reset my password", delay=20)  # no Enter: the debounce searches
    page.wait_for_selector(".hit-question mark")
    marked = page.locator(".hit-question mark").all_inner_texts()
    assert {"reset", "password"} <= {m.lower() for m in marked}
    shot(page, "qa-highlights")


def test_the_debug_drawer_forces_an_experiment_and_shows_what_ran(page: Any) -> None:
    page.click("#debug summary")
    page.select_option("select[data-layer=match]", "bm25")
    page.select_option("select[data-layer=rank]", "score")
    page.fill("#query", "refund")
    page.keyboard.press("Enter")
    page.wait_for_selector(".hit-question")
    page.wait_for_function("document.querySelector('#debug-ran').textContent.includes('bm25')")
    ran = page.inner_text("#debug-ran")
    assert "match bm25" in ran and "rank score" in ran
    assert page.locator(".hit-question").first.inner_text() == "How do I get a refund?"
    shot(page, "debug-drawer")


def test_more_results_extends_the_list(page: Any) -> None:
    page.fill("#query", "a question about anything")
    page.keyboard.press("Enter")
    page.wait_for_selector(".hit-question")
    assert page.locator(".hit").count() == 10
    page.click("#more")
    page.wait_for_function("document.querySelectorAll('.hit').length === 20")
    page.click("#more")
    page.wait_for_function("document.querySelectorAll('.hit').length === 30")
    assert page.locator("#more").is_visible()  # 31 documents: one more page
    page.click("#more")
    page.wait_for_function("document.querySelectorAll('.hit').length === 31")
    assert page.locator("#more").is_hidden()


def test_the_page_works_on_a_phone_sized_screen(browser: Any, server: str) -> None:
    context = browser.new_context(viewport={"width": 375, "height": 740}, is_mobile=True)
    phone = context.new_page()
    phone.goto(server)
    phone.fill("#query", "how long is delivery")
    phone.keyboard.press("Enter")
    phone.wait_for_selector(".hit-question")
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 375  # nothing overflows sideways
    shot(phone, "phone")
    context.close()


def test_the_page_works_under_the_security_headers_cloudfront_sends(
    browser: Any, server: str
) -> None:
    """The deployed page gets infra/web.py's Content-Security-Policy from CloudFront: served
    with it here, searching text and images still works and the browser reports no violation."""
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
    page.fill("#query", "I forgot my login password")
    page.keyboard.press("Enter")
    page.wait_for_selector(".hit-question")
    page.check("input[name=scene][value=images]")
    page.fill("#query", "a coin")
    page.keyboard.press("Enter")
    page.wait_for_selector(".image-hit img")
    first = page.locator(".image-hit img").first  # thumbnails load lazily: the first is in view
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=first.element_handle()
    )
    violations = [text for text in console if "Content Security Policy" in text]
    # Lazy thumbnails may still be in flight: their routed fetches must not outlive the page.
    context.unroute_all(behavior="ignoreErrors")
    context.close()
    assert violations == []
