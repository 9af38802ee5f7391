"""Image documents through the write API (`POST /v1/documents:batchUpsert` on an image scene):
the image travels base64 in the document and takes the image indexer's path (caption and
image vectors, media, fingerprints), through both front doors, against real Milvus Lite and
the local MongoDB-wire server."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from functions.core.models.text_encoder import TextEncoder
from functions.core.settings import Settings
from functions.core.stores.factory import open_document_store
from functions.documents import service as writes
from functions.summary import service as summary
from tests.functions.test_api import Call, front_door, search_routes
from tests.functions.test_image_search import stamps

UPSERT = "/v1/documents:batchUpsert"
DELETE = "/v1/documents:batchDelete"


@pytest.fixture
def api(settings: Settings, encoder: TextEncoder, door: str) -> Call:
    """Writes (image scenes on), search and batchGet over this test's own empty collections."""
    documents = open_document_store(settings)
    writer = writes.build_writer(settings, encoder, documents)
    routes = (
        writes.routes(writer, writes.image_limits(settings))
        + search_routes(settings)
        + summary.routes(documents)
    )
    return front_door(door, routes)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def stamp_documents(count: int) -> list[dict[str, Any]]:
    """Real Tux Paint stamps (the six coins first) as write bodies."""
    return [
        {
            "id": d.id,
            "name": d.file.stem,
            "caption": d.caption,
            "captions": d.captions,
            "tags": d.tags,
            "image": b64(d.file.read_bytes()),
        }
        for d in stamps()[:count]
    ]


def search_ids(api: Call, body: dict[str, Any]) -> list[str]:
    status, answer, _ = api("POST", "/v1/search", {"top_k": 5, **body})
    assert status == 200, answer
    return [hit["id"] for hit in answer["hits"]]


def test_written_images_are_searchable_by_caption_and_by_pixels_when_the_call_returns(
    api: Call, settings: Settings
) -> None:
    batch = stamp_documents(12)
    status, body, _ = api("POST", UPSERT, {"scene": "t2i", "documents": batch})
    assert (status, body["written"], body["unchanged"]) == (200, 12, 0), body
    target = batch[7]
    # By caption text (t2i) and by the image itself (i2i): the vectors of both spaces exist.
    assert target["id"] in search_ids(api, {"scene": "t2i", "query": target["caption"]})
    assert search_ids(api, {"scene": "i2i", "query_image": target["image"]})[0] == target["id"]
    # The stored document points at published media, as an indexed image's does.
    _, got, _ = api("POST", "/v1/documents:batchGet", {"scene": "t2i", "ids": [target["id"]]})
    document = got["documents"][0]
    assert document["url"].startswith("/media/originals/")
    original = settings.home / "media" / "originals" / Path(document["url"]).name
    assert original.read_bytes() == base64.b64decode(target["image"])


def test_the_same_images_twice_write_nothing_and_a_new_image_replaces_the_old(
    api: Call,
) -> None:
    batch = stamp_documents(4)
    api("POST", UPSERT, {"scene": "t2i", "documents": batch})
    status, body, _ = api("POST", UPSERT, {"scene": "t2i", "documents": batch})
    assert (status, body["written"], body["unchanged"]) == (200, 0, 4)
    # Same id, same caption, other pixels: the fingerprint covers the bytes, so it is rewritten
    # and the image space finds the new picture under the old id.
    other = stamp_documents(20)[15]
    replaced = {**batch[0], "image": other["image"]}
    status, body, _ = api("POST", UPSERT, {"scene": "t2i", "documents": [replaced]})
    assert (status, body["written"]) == (200, 1)
    assert search_ids(api, {"scene": "i2i", "query_image": other["image"]})[0] == batch[0]["id"]


def _png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("1", (width, height)).save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"image": None}, "documents[1].image: required"),
        ({"image": "not base64!"}, "documents[1].image: query_image is not valid base64"),
        ({"image": b64(b"plain text, not an image")}, "documents[1].image: not a readable"),
        ({"image": b64(_png(9000, 9000))}, "documents[1].image: 9000x9000 pixels"),
        ({"colour": "red"}, "documents[1].colour"),
        ({"tags": "x" * 1000}, "documents[1].tags"),
    ],
)
def test_a_bad_image_document_is_a_422_naming_it_and_nothing_is_written(
    api: Call, change: dict[str, Any], message: str
) -> None:
    good, bad = stamp_documents(2)
    bad = {k: v for k, v in {**bad, **change}.items() if v is not None}
    status, body, _ = api("POST", UPSERT, {"scene": "t2i", "documents": [good, bad]})
    assert status == 422, body
    assert body["error"]["message"].startswith(message), body
    _, got, _ = api("POST", "/v1/documents:batchGet", {"scene": "t2i", "ids": [good["id"]]})
    assert got["documents"] == []


def test_deleted_images_leave_both_spaces(api: Call) -> None:
    batch = stamp_documents(6)
    api("POST", UPSERT, {"scene": "t2i", "documents": batch})
    gone = batch[2]
    status, body, _ = api("POST", DELETE, {"scene": "t2i", "ids": [gone["id"]]})
    assert (status, body["deleted"]) == (200, 1)
    assert gone["id"] not in search_ids(api, {"scene": "i2i", "query_image": gone["image"]})
    assert gone["id"] not in search_ids(api, {"scene": "t2i", "query": gone["caption"]})


def test_a_writer_that_cannot_publish_images_refuses_image_scenes(
    settings: Settings, encoder: TextEncoder
) -> None:
    # The documents Lambda without a media bucket: text scenes only, and it says how.
    documents = open_document_store(settings)
    handler = front_door("lambda", writes.routes(writes.build_writer(settings, encoder, documents)))
    status, body, _ = handler("POST", UPSERT, {"scene": "t2i", "documents": stamp_documents(1)})
    assert (status, body["error"]["code"]) == (422, "invalid_request")
    assert "mmsearch index --scene t2i" in body["error"]["message"]
