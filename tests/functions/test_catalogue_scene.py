"""Done-when of issue 17 (search side): a product catalogue scene added by configuration
alone, indexed with the real indexer (Milvus Lite, the local MongoDB-wire server), filtered by
a price range and a brand, faceted by brand and paged past 100, through both front doors."""

from __future__ import annotations

import os
import random
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from functions.core.scenes import SCENES_FILE_ENV, get_scene
from functions.core.settings import Settings
from functions.core.stores.factory import collection_name, open_document_store, open_vector_store
from indexing.indexer import Indexer
from offline.local_mongo import LocalMongoServer
from tests.conftest import _encoder
from tests.functions.test_api import Call, front_door, search_routes

CATALOGUE_YAML = """
scenes:
  catalogue:
    kind: both
    fields:
      title: {type: text, required: true}
      description: text
      price: float
      brand: keyword
      in_stock: {type: boolean, default: false}
      released_at: datetime
      image: image
    embed_template: "{title}. {description}"
    bm25_fields: [title, description, brand]
    filterable: [price, brand, in_stock, released_at]
    returned: [title, description, price, brand, in_stock, released_at, image]
    max_results: 300
"""
BRANDS = ["Acme", "Borealis", "Cobalt", "Dunmore", "Everly", "Fjord"]
ITEMS = [
    ("kettle", "boils water for tea and coffee"),
    ("toaster", "browns bread and bagels evenly"),
    ("desk lamp", "lights a reading desk with warm light"),
    ("backpack", "carries a laptop and books to school"),
    ("headphones", "play music with noise cancelling"),
    ("running shoes", "cushion every stride on long runs"),
    ("tent", "shelters two campers from rain and wind"),
    ("blender", "crushes ice and mixes smoothies"),
]
ADJECTIVES = ["compact", "sturdy", "lightweight", "premium", "classic", "quiet", "bright"]
COUNT = 160


def products() -> list[dict[str, Any]]:
    """Synthetic but varied products: every brand sells every item, at varied prices."""
    chance = random.Random(17)
    rows = []
    for n in range(COUNT):
        item, use = ITEMS[n % len(ITEMS)]
        brand = BRANDS[(n // len(ITEMS)) % len(BRANDS)]
        adjective = chance.choice(ADJECTIVES)
        released = date(2021, 1, 1) + timedelta(days=chance.randrange(4 * 365))
        rows.append(
            {
                "id": f"p{n:03d}",
                "title": f"{brand} {adjective} {item}",
                "description": f"A {adjective} {item} that {use}. Model {n}.",
                "price": round(chance.uniform(5, 300), 2),
                "brand": brand,
                "in_stock": n % 3 != 0,
                "released_at": released.isoformat(),
                "image": f"https://shop.example/img/p{n:03d}.jpg",
            }
        )
    return rows


@pytest.fixture(scope="module")
def catalogue(
    tmp_path_factory: pytest.TempPathFactory,
    model_dir: Path,
    mongo_server: LocalMongoServer,
    milvus_path: str,
) -> Iterator[Settings]:
    """The catalogue scene declared in a YAML file of the test's own (no code), its 160
    products indexed with the real indexer."""
    folder = tmp_path_factory.mktemp("scenes")
    (folder / "scenes.yaml").write_text(CATALOGUE_YAML)
    before = os.environ.get(SCENES_FILE_ENV)
    os.environ[SCENES_FILE_ENV] = str(folder / "scenes.yaml")
    settings = Settings(
        home=tmp_path_factory.mktemp("home"),
        model_dir=model_dir,
        milvus_uri=milvus_path,
        mongo_uri=SecretStr(mongo_server.uri),
        collection_prefix=f"c{uuid.uuid4().hex[:10]}_",
        store_timeout_s=5.0,
        nlist=16,  # nprobe 32 >= nlist: every list probed, so filtered recall is exact
    )
    scene = get_scene("catalogue")
    indexer = Indexer(
        _encoder(model_dir), open_vector_store(settings), open_document_store(settings)
    )
    report = indexer.run(
        scene, collection_name(settings, scene), [scene.document(p) for p in products()]
    )
    assert (report.vectors, report.documents) == (COUNT, COUNT)
    yield settings
    if before is None:
        os.environ.pop(SCENES_FILE_ENV, None)
    else:
        os.environ[SCENES_FILE_ENV] = before


@pytest.fixture(scope="module", params=["lambda", "http"])
def search(catalogue: Settings, request: pytest.FixtureRequest) -> Call:
    """One search service per front door for the module: its tests only read."""
    return front_door(str(request.param), search_routes(catalogue))


def post(search: Call, body: dict[str, Any]) -> tuple[int, Any]:
    status, answer, _ = search("POST", "/v1/search", {"scene": "catalogue", **body})
    return status, answer


def test_the_catalogue_is_listed_beside_the_packaged_scenes(search: Call) -> None:
    status, body, _ = search("GET", "/v1/scenes", None)
    assert status == 200
    assert body["scenes"]["catalogue"]["kind"] == "both"


def test_a_price_range_and_a_brand_return_exactly_the_matching_products(search: Call) -> None:
    expected = {p["id"] for p in products() if p["brand"] == "Cobalt" and 20 <= p["price"] <= 150}
    assert 3 <= len(expected) <= 50
    status, body = post(
        search,
        {
            "query": "something for the kitchen",
            "top_k": 50,
            "filters": {"brand": "Cobalt", "price": {"gte": 20, "lte": 150}},
        },
    )
    assert status == 200, body
    assert {h["id"] for h in body["hits"]} == expected
    assert all(h["document"]["brand"] == "Cobalt" for h in body["hits"])
    assert all(20 <= h["document"]["price"] <= 150 for h in body["hits"])
    assert body["next_page_token"] is None


def test_datetime_range_boolean_and_any_of_filters_combine(search: Call) -> None:
    rows = products()
    expected = {
        p["id"]
        for p in rows
        if p["brand"] in ("Acme", "Fjord") and p["in_stock"] and p["released_at"] >= "2023-01-01"
    }
    status, body = post(
        search,
        {
            "query": "tent",
            "top_k": 100,
            "filters": {
                "brand": ["Acme", "Fjord"],
                "in_stock": True,
                "released_at": {"gte": "2023-01-01T00:00:00Z"},
            },
        },
    )
    assert status == 200, body
    assert {h["id"] for h in body["hits"]} == expected


def test_facets_count_brands_over_the_matched_candidates(search: Call) -> None:
    rows = [p for p in products() if p["price"] < 60]
    assert len(rows) < 100  # the candidates are the whole filtered set
    status, body = post(
        search,
        {"query": "gift", "top_k": 5, "filters": {"price": {"lt": 60}}, "facets": ["brand"]},
    )
    assert status == 200, body
    counted = {f["value"]: f["count"] for f in body["facets"]["brand"]}
    assert counted == dict(Counter(p["brand"] for p in rows))
    counts = [f["count"] for f in body["facets"]["brand"]]
    assert counts == sorted(counts, reverse=True) and len(body["hits"]) == 5


def test_pages_go_past_100_in_a_stable_order_and_tokens_are_bound_to_their_query(
    search: Call,
) -> None:
    request = {"query": "a useful product", "top_k": 50}
    seen: list[str] = []
    pages = []
    token = None
    for _ in range(3):
        status, body = post(search, {**request, **({"page_token": token} if token else {})})
        assert status == 200, body
        pages.append(body)
        seen += [h["id"] for h in body["hits"]]
        token = body["next_page_token"]
        assert token, (len(pages), len(body["hits"]), body["experiments"])
    assert len(seen) == 150 == len(set(seen))  # hits 101-150 came on page three
    # The same token gives the same page.
    status, again = post(search, {**request, "page_token": pages[1]["next_page_token"]})
    assert [h["id"] for h in again["hits"]] == [h["id"] for h in pages[2]["hits"]]
    # A token is refused for another query, or when made up.
    status, body = post(search, {**request, "query": "x", "page_token": token})
    assert (status, body["error"]["code"]) == (422, "invalid_request")
    assert "page_token" in body["error"]["message"]
    status, body = post(search, {**request, "page_token": "bm90LWEtdG9rZW4"})
    assert status == 422 and "page_token" in body["error"]["message"]


def test_the_scene_ceiling_ends_the_pages(search: Call) -> None:
    request = {"query": "a useful product", "top_k": 100}
    status, first = post(search, request)
    status, second = post(search, {**request, "page_token": first["next_page_token"]})
    assert status == 200 and len(second["hits"]) == 60  # 160 products
    assert second["next_page_token"] is None  # and 200 + 100 > max_results 300 anyway


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        ({"colour": "red"}, "colour"),
        ({"price": "cheap"}, "price"),
        ({"price": {"between": [1, 2]}}, "price"),
        ({"brand": {"gte": "A"}}, "brand"),
        ({"in_stock": "yes"}, "in_stock"),
        ({"released_at": {"gte": "last week"}}, "released_at"),
        ({"title": "Acme"}, "title"),
    ],
)
def test_unknown_fields_and_wrong_types_are_a_422_naming_the_field(
    search: Call, filters: dict[str, Any], field: str
) -> None:
    status, body = post(search, {"query": "kettle", "filters": filters})
    assert (status, body["error"]["code"]) == (422, "invalid_request"), body
    assert f"filters.{field}" in body["error"]["message"]


def test_facets_on_a_field_that_is_not_filterable_is_a_422(search: Call) -> None:
    status, body = post(search, {"query": "kettle", "facets": ["title"]})
    assert status == 422 and "title" in body["error"]["message"]
