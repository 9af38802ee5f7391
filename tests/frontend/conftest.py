"""One local server (API + page + media, with a small QA corpus and 40 Tux Paint stamps) and
one Chromium per test session, shared by every page test; each test gets a fresh context.
A module that asks for `catalogue` also sees a product scene declared in configuration."""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from functions.composed.app import create_app
from functions.core.models.text_encoder import TextEncoder
from functions.core.scenes import PACKAGED_SCENES, QA, SCENES_FILE_ENV
from functions.core.settings import Settings
from functions.core.stores.factory import collection_name, open_document_store, open_vector_store
from indexing.corpus import QADocument
from indexing.indexer import Indexer
from offline.local_mongo import free_port
from offline.local_server import local_server
from tests.functions.test_catalogue_scene import CATALOGUE_YAML, products
from tests.functions.test_image_search import index_images, stamps

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
# WordNet-shaped documents (lexicographer-file categories) beside the 30 hand-written ones.
EXTRA_DOCS = [
    QADocument(id="qa-hostile", question="Is this page safe?", answer=HOSTILE, category=["x"]),
    QADocument(
        id="wn-elephant",
        question="elephant",
        answer="five-toed pachyderm; a large animal with a trunk",
        category=["noun.animal"],
    ),
    QADocument(
        id="wn-trunk",
        question="trunk",
        answer="luggage consisting of a large strong case used when traveling",
        category=["noun.artifact"],
    ),
]
QA_COUNT = 30 + len(EXTRA_DOCS)
CATALOGUE_BATCH = 80  # documents per write request, under the API's bound


@pytest.fixture(scope="session")
def server(
    tmp_path_factory: pytest.TempPathFactory, model_dir: Path, mongo_server: Any, milvus_path: str
) -> Iterator[str]:
    """The composed app on a free port, with the QA and image corpora indexed once."""
    # As `mmsearch serve` sets it: no CloudWatch metric lines in the test log.
    environment = pytest.MonkeyPatch()
    environment.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    settings = Settings(
        home=tmp_path_factory.mktemp("page-home"),
        model_dir=model_dir,
        milvus_uri=milvus_path,
        mongo_uri=mongo_server.uri,
        collection_prefix="page_",
    )
    encoder = TextEncoder.load(model_dir)
    lines = (ROOT / "tests" / "fixtures" / "qa_small.jsonl").read_text().splitlines()
    docs = [QADocument.model_validate_json(line) for line in lines] + EXTRA_DOCS
    assert len(docs) == QA_COUNT
    indexer = Indexer(encoder, open_vector_store(settings), open_document_store(settings))
    indexer.run(QA, collection_name(settings, QA), docs)
    index_images(settings, encoder, stamps())
    port = free_port()
    # As `mmsearch serve` runs it: Host/Origin checks, security headers, timeouts.
    uvicorn_server = local_server(
        create_app(settings, static_dir=ROOT / "frontend"), settings, "127.0.0.1", port
    )
    thread = threading.Thread(target=uvicorn_server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uvicorn_server.started and time.monotonic() < deadline:
        time.sleep(0.1)
    assert uvicorn_server.started, "the local server did not start"
    yield f"http://127.0.0.1:{port}"
    uvicorn_server.should_exit = True
    thread.join(timeout=10)
    environment.undo()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), "install Debian's chromium (make system-deps)"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def new_page(browser: Any, url: str, **options: Any) -> Any:
    """A page in a fresh context (its own history and storage) with dialogs recorded."""
    context = browser.new_context(**{"viewport": {"width": 1100, "height": 900}, **options})
    page = context.new_page()
    page.dialogs = []
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(url)
    return page


def close_page(page: Any) -> None:
    # A routed or lazy fetch still in flight must not outlive (and fail) the context.
    page.context.unroute_all(behavior="ignoreErrors")
    page.context.close()


@pytest.fixture
def page(browser: Any, server: str) -> Iterator[Any]:
    opened = new_page(browser, server)
    yield opened
    close_page(opened)


def shot(page: Any, name: str) -> Path:
    """A full-page screenshot under test-artifacts/screenshots/, once every image has loaded."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    # Every picture loads lazily (image hits' thumbnails, a declared scene's item images):
    # bring each visible one into view, one call at a time so the browser gets a frame to
    # start its load, or the full-page picture waits on an image never asked for.
    for image in page.locator("img[src] >> visible=true").all():
        image.scroll_into_view_if_needed()
    page.wait_for_function(
        "() => [...document.images].filter(i => i.getAttribute('src') && i.checkVisibility())"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def search(page: Any, query: str) -> None:
    """Type `query`, press Enter and wait until the answer for it is on screen."""
    page.fill("#query", query)
    page.keyboard.press("Enter")
    wait_idle(page)


def wait_idle(page: Any) -> None:
    page.wait_for_function(
        "() => document.querySelector('#results').getAttribute('aria-busy') === 'false'"
        " && !/Searching/.test(document.querySelector('#status').textContent)"
        " && document.querySelector('#status').textContent !== ''"
    )


def call(server: str, path: str, body: dict[str, Any]) -> Any:
    """POST `body` as JSON to the page server; the decoded answer."""
    request = urllib.request.Request(
        f"{server}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.load(response)


@contextmanager
def scenes_file(path: Path) -> Iterator[None]:
    """The server reads its scenes from `path` meanwhile (re-read on change)."""
    before = os.environ.get(SCENES_FILE_ENV)
    os.environ[SCENES_FILE_ENV] = str(path)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(SCENES_FILE_ENV, None)
        else:
            os.environ[SCENES_FILE_ENV] = before


def catalogue_rows(server: str) -> list[dict[str, Any]]:
    """test_catalogue_scene's 160 products and a refurbished copy of each (320), pictured with
    the page server's own stamp thumbnails (same origin, as the page's CSP wants)."""
    found = call(server, "/v1/search", {"scene": "t2i", "query": "an animal", "top_k": 40})
    pictures = [h["document"]["thumbnail_url"] for h in found["hits"]]
    assert len(pictures) >= 10
    rows = []
    for n, product in enumerate(products()):
        rows.append({**product, "image": pictures[n % len(pictures)]})
        refurbished = {
            "id": f"r{product['id']}",
            "title": f"Refurbished {product['title']}",
            "price": round(product["price"] * 0.6, 2),
        }
        rows.append({**rows[-1], **refurbished})
    return rows


@pytest.fixture(scope="session")
def catalogue_written(
    server: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, list[dict[str, Any]]]:
    """A scenes file with the packaged scenes plus the catalogue (configuration, no code), and
    the catalogue's documents written once through `POST /v1/documents:batchUpsert`."""
    path = tmp_path_factory.mktemp("page-scenes") / "scenes.yaml"
    path.write_text(PACKAGED_SCENES.read_text() + CATALOGUE_YAML.split("scenes:\n", 1)[1])
    rows = catalogue_rows(server)
    with scenes_file(path):
        for start in range(0, len(rows), CATALOGUE_BATCH):
            batch = rows[start : start + CATALOGUE_BATCH]
            body = {"scene": "catalogue", "documents": batch}
            assert call(server, "/v1/documents:batchUpsert", body)["written"] == len(batch)
    return path, rows


@pytest.fixture(scope="module")
def catalogue(catalogue_written: tuple[Path, list[dict[str, Any]]]) -> Iterator[list[Any]]:
    """The catalogue declared for the page server while this module runs; its documents."""
    path, rows = catalogue_written
    with scenes_file(path):
        yield rows
