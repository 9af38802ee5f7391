"""Issue 15, findings 4 and 10: documents:batchGet serves only the scene's declared fields,
and reads many ids in bounded `$in` lists (one list of 1,000 took ~0.9-2.5 s on the local
server), through both front doors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pymongo import monitoring

from functions.core.scenes import T2I
from functions.core.settings import Settings
from functions.core.stores.document_store import READ_CHUNK
from functions.core.stores.factory import open_document_store
from functions.summary import service as summary
from tests.functions.test_api import Call, front_door


class InLists(monitoring.CommandListener):
    """Records the length of every `_id: {$in: [...]}` list a find sends."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.lengths: list[int] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find" and event.database_name == self.database:
            selector = event.command.get("filter", {}).get("_id", {})
            if isinstance(selector, dict) and "$in" in selector:
                self.lengths.append(len(selector["$in"]))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
def in_lists(settings: Settings) -> Iterator[InLists]:
    listener = InLists(settings.mongo_database)
    monitoring.register(listener)  # seen by clients created from now on
    yield listener
    monitoring._LISTENERS.command_listeners.remove(listener)


def _image(i: int) -> dict[str, Any]:
    return {
        "id": f"img-{i:04d}",
        "name": f"stamp {i}",
        "url": f"/media/{i}.png",
        "thumbnail_url": f"/media/thumbs/{i}.webp",
        "caption": "a red bicycle",
        "tags": ["bike"],
        # Stored by indexing for its own bookkeeping; not part of what a scene shows.
        "sha256": "ab" * 32,
        "width": 640,
        "height": 480,
        "source_path": "/home/someone/private/stamps/bike.png",
    }


@pytest.fixture
def documents(settings: Settings, door: str, in_lists: InLists) -> Call:
    store = open_document_store(settings)
    store.upsert(T2I.store, [_image(i) for i in range(1000)], new=True)
    return front_door(door, summary.routes(store))


@pytest.fixture(params=["lambda", "http"])
def door(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_batch_get_serves_only_the_scenes_declared_fields(documents: Call) -> None:
    status, body, _ = documents(
        "POST", "/v1/documents:batchGet", {"scene": "t2i", "ids": ["img-0007", "nope"]}
    )
    assert status == 200
    (document,) = body["documents"]
    assert set(document) <= set(T2I.document_fields)
    assert document["id"] == "img-0007"
    assert document["caption"] == "a red bicycle"
    for leaked in ("sha256", "width", "height", "source_path"):
        assert leaked not in document
    assert body["missing"] == ["nope"]


def test_batch_get_of_1000_ids_reads_in_bounded_in_lists(
    documents: Call, in_lists: InLists
) -> None:
    ids = [f"img-{i:04d}" for i in range(999, -1, -1)]
    status, body, _ = documents("POST", "/v1/documents:batchGet", {"scene": "t2i", "ids": ids})
    assert status == 200
    assert [d["id"] for d in body["documents"]] == ids  # in the order asked
    assert in_lists.lengths, "no $in read was seen"
    assert max(in_lists.lengths) <= READ_CHUNK
    assert sum(in_lists.lengths) == 1000
