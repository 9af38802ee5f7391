"""Image scenes end to end on the embedded stack: Tux Paint stamps indexed with captions and
pixels, searched by text (t2i) and by an uploaded image (i2i), through the local server."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from functions.composed.app import create_app
from functions.core.models.image_space import load_image_space
from functions.core.models.text_encoder import TextEncoder
from functions.core.scenes import T2I
from functions.core.settings import Settings
from functions.core.stores.factory import collection_name, open_document_store, open_vector_store
from indexing.image_corpus import TUXPAINT_STAMPS, ImageDocument, tuxpaint_corpus
from indexing.image_indexer import ImageIndexer
from indexing.indexer import IndexReport
from indexing.media import LocalMedia

COINS = "symbols/money/us/coins"


def stamps() -> list[ImageDocument]:
    """The six US coins and 34 other stamps (Debian's tuxpaint-stamps-default)."""
    assert TUXPAINT_STAMPS.is_dir(), "install tuxpaint-stamps-default (make system-deps)"
    everything = tuxpaint_corpus(TUXPAINT_STAMPS)
    coins = [d for d in everything if d.id.startswith(f"tux:{COINS}/")]
    animals = [d for d in everything if d.id.startswith("tux:animals/")][:34]
    assert len(coins) == 6 and len(animals) == 34
    return coins + animals


def index_images(
    settings: Settings, encoder: TextEncoder, docs: list[ImageDocument]
) -> IndexReport:
    indexer = ImageIndexer(
        encoder,
        load_image_space(settings),
        open_vector_store(settings),
        open_document_store(settings),
        LocalMedia(settings.home / "media", settings.media_base_url),
        batch_size=16,
    )
    return indexer.run(T2I, collection_name(settings, T2I), docs)


@pytest.fixture(scope="module")
def client(qa_and_images_once: Settings) -> TestClient:
    """The local server over the 40 stamps, indexed once for the module: its tests only read."""
    static = Path(__file__).resolve().parents[2] / "frontend"
    return TestClient(create_app(qa_and_images_once, static_dir=static))


def nickel() -> bytes:
    return (TUXPAINT_STAMPS / COINS / "005nickel.png").read_bytes()


def search(client: TestClient, body: dict[str, Any]) -> tuple[int, Any]:
    response = client.post("/v1/search", json=body)
    return response.status_code, response.json()


def test_reindexing_images_duplicates_nothing_and_media_is_written_once(
    settings: Settings, encoder: TextEncoder
) -> None:
    docs = stamps()
    first = index_images(settings, encoder, docs)
    again = index_images(settings, encoder, docs)
    assert (first.embedded, first.vectors, first.documents) == (40, 40, 40)
    assert (again.embedded, again.skipped_unchanged) == (0, 40)
    assert (again.vectors, again.documents) == (40, 40)
    vectors = open_vector_store(settings)
    assert vectors.count(collection_name(settings, T2I) + "_image") == 40
    assert len(list((settings.home / "media" / "thumbs").iterdir())) <= 40


def test_text_finds_images_by_caption_with_urls_that_serve(client: TestClient) -> None:
    status, body = search(client, {"scene": "t2i", "query": "a five cent coin called a nickel"})
    assert status == 200, body
    assert body["experiments"]["match"] == "caption"
    top = body["hits"][0]
    assert top["id"] == f"tux:{COINS}/005nickel"
    assert set(top["document"]) == {"id", "name", "url", "thumbnail_url", "caption", "tags"}
    assert "nickel" in top["document"]["caption"] and top["document"]["tags"][:2] == [
        "symbols",
        "money",
    ]
    thumbnail = client.get(top["document"]["thumbnail_url"])
    assert thumbnail.status_code == 200
    assert Image.open(io.BytesIO(thumbnail.content)).format == "WEBP"
    assert client.get(top["document"]["url"]).content == nickel()


def test_an_image_finds_itself_first_as_base64_json_and_as_an_upload(client: TestClient) -> None:
    encoded = base64.b64encode(nickel()).decode()
    status, body = search(client, {"scene": "i2i", "query_image": encoded, "top_k": 5})
    assert status == 200, body
    assert body["hits"][0]["id"] == f"tux:{COINS}/005nickel"
    assert body["hits"][0]["score"] > 0.99
    response = client.post(
        "/v1/search",
        data={"scene": "i2i", "top_k": "3"},
        files={"image": ("nickel.png", nickel(), "image/png")},
    )
    assert response.status_code == 200, response.text
    assert response.json()["hits"][0]["id"] == f"tux:{COINS}/005nickel"
    assert len(response.json()["hits"]) == 3


def _png(width: int, height: int, mode: str = "1") -> bytes:
    out = io.BytesIO()
    Image.new(mode, (width, height)).save(out, "PNG")
    return out.getvalue()


def _encoded(image: Image.Image, fmt: str) -> str:
    out = io.BytesIO()
    image.save(out, fmt)
    return base64.b64encode(out.getvalue()).decode()


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"scene": "i2i", "query_image": "bm90IGFuIGltYWdl"}, 422, "not a readable image"),
        ({"scene": "i2i", "query_image": "%%%"}, 422, "base64"),
        ({"scene": "i2i"}, 422, "send query_image"),
        ({"scene": "t2i", "query": "cat", "query_image": "AAAA"}, 422, "not a readable image"),
        ({"scene": "qa", "query": "cat", "query_image": "AAAA"}, 422, "query_image: scene 'qa'"),
        (
            {"scene": "i2i", "query_image": _encoded(Image.new("RGB", (9, 9)), "BMP")},
            422,
            "accepted: JPEG, PNG, WEBP, GIF",
        ),
        (
            {"scene": "i2i", "query_image": base64.b64encode(_png(8000, 6000)).decode()},
            422,
            "limit is 40,000,000",
        ),
        (
            {"scene": "t2i", "query": "a coin", "debug": {"experiments": {"match": "image"}}},
            422,  # this deployment never can: no retry helps
            "needs a CLIP model",
        ),
    ],
)
def test_bad_image_queries_are_clear_errors(
    client: TestClient, body: dict[str, Any], status: int, says: str
) -> None:
    got, answer = search(client, body)
    assert got == status, answer
    assert says in answer["error"]["message"]


def test_bodies_over_the_limit_are_refused_before_parsing(client: TestClient) -> None:
    big = json.dumps({"scene": "i2i", "query_image": "A" * (6 * 2**20)})
    response = client.post("/v1/search", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    response = client.post(
        "/v1/search", data={"scene": "i2i", "colour": "red"}, files={"image": ("x.png", nickel())}
    )
    assert response.status_code == 422
    assert "unknown part 'colour'" in response.json()["error"]["message"]


def test_with_a_clip_export_images_match_by_pixels_and_text_by_clip(
    settings: Settings, encoder: TextEncoder, clip_dir: Path
) -> None:
    clip = settings.model_copy(update={"clip_model_dir": clip_dir})
    docs = stamps()[:12]
    report = index_images(clip, encoder, docs)
    assert report.vectors == 12
    client = TestClient(create_app(clip))
    encoded = base64.b64encode(docs[7].file.read_bytes()).decode()
    status, body = search(client, {"scene": "i2i", "query_image": encoded, "top_k": 3})
    assert status == 200, body
    assert body["hits"][0]["id"] == docs[7].id
    request = {"scene": "t2i", "query": "a dime", "debug": {"experiments": {"match": "hybrid"}}}
    status, body = search(client, request)
    assert status == 200, body
    assert body["experiments"]["match"] == "hybrid" and body["hits"]
