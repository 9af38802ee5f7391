"""Filters checked once into a `Filters` object, page tokens, facet counts, and a collection
refused when it cannot hold the declared fields (real Milvus Lite)."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from functions.core.errors import InvalidRequest, SchemaMismatch
from functions.core.http.schemas import SearchRequest
from functions.core.scenes import QA, parse_scenes
from functions.core.stores.filters import compile_filters
from functions.core.stores.vector_store import Match, MilvusVectorStore, VectorRecord
from functions.search.facets import count_facets, facet_fields
from functions.search.paging import encode_token, next_token, page_offset, query_hash

SCENE = parse_scenes(
    """
scenes:
  shop:
    fields:
      title: text
      brand: keyword
      tags: keyword_list
      price: float
      stock: {type: integer, default: 0}
      in_stock: {type: boolean, default: false}
      released_at: {type: datetime, default: "1970-01-01"}
    embed_fields: [title]
    filterable: [brand, tags, price, stock, in_stock, released_at]
    max_results: 120
"""
)["shop"]


def test_filters_become_one_expression_with_typed_values_and_quoted_text() -> None:
    filters = compile_filters(
        SCENE,
        {
            "brand": ['Ac"me', "B\\o"],
            "tags": "red",
            "price": {"gte": 10, "lt": 99.5},
            "in_stock": True,
        },
    )
    assert filters.expression() == (
        '(brand in ["Ac\\"me", "B\\\\o"]) and (in_stock == true) and '
        '(price >= 10.0 and price < 99.5) and (ARRAY_CONTAINS_ANY(tags, ["red"]))'
    )


def test_datetimes_become_epoch_seconds_and_integers_stay_integers() -> None:
    filters = compile_filters(
        SCENE, {"released_at": {"gte": "2024-01-01", "lte": "2024-01-01T01:00:00+01:00"}}
    )
    assert filters.expression() == "(released_at >= 1704067200 and released_at <= 1704067200)"
    assert compile_filters(SCENE, {"stock": [1, 2.0]}).expression() == "(stock in [1, 2])"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"colour": "red"}, "filters.colour: cannot filter"),
        ({"title": "x"}, "filters.title: cannot filter"),
        ({"price": "10"}, "filters.price: expected float"),
        ({"price": True}, "filters.price: expected float"),
        ({"stock": 1.5}, "filters.stock: expected integer"),
        ({"stock": {"gte": 2**63}}, "filters.stock.gte: out of the 64-bit"),
        ({"price": {"from": 1}}, "filters.price: a range takes"),
        ({"price": {}}, "filters.price: a range takes"),
        ({"brand": {"gte": "a"}}, "filters.brand: a range needs a number"),
        ({"in_stock": [True, False]}, "filters.in_stock: one boolean"),
        ({"in_stock": 1}, "filters.in_stock: expected boolean"),
        ({"brand": "a\x00b"}, "filters.brand: values must not contain control"),
        ({"brand": []}, "filters.brand: give 1 to"),
        ({"released_at": "yesterday"}, "filters.released_at: 'yesterday' is not an ISO"),
        ({"price": float("nan")}, "filters.price: must be finite"),
    ],
)
def test_bad_filters_are_refused_naming_the_field(raw: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidRequest, match=f"^{message}"):
        compile_filters(SCENE, raw)


def test_filter_limits_come_from_one_place() -> None:
    with pytest.raises(InvalidRequest, match="filters: at most 2 fields"):
        compile_filters(SCENE, {"brand": "a", "tags": "b", "price": 1.0}, max_fields=2)
    with pytest.raises(InvalidRequest, match=r"filters\.tags: give 1 to 3 values"):
        compile_filters(SCENE, {"tags": ["a", "b", "c", "d"]}, max_values=3)


def test_request_schema_keeps_booleans_and_numbers_apart() -> None:
    request = SearchRequest.model_validate(
        {"filters": {"in_stock": True, "stock": 3, "price": 2.5, "brand": "1"}}
    )
    assert request.filters == {"in_stock": True, "stock": 3, "price": 2.5, "brand": "1"}
    compiled = compile_filters(SCENE, request.filters)
    assert "(in_stock == true)" in compiled.expression()


def test_a_page_token_is_bound_to_its_query_and_bounded_by_the_ceiling() -> None:
    request = SearchRequest(scene="shop", query="kettle", top_k=50)
    filters = compile_filters(SCENE, {"brand": "Acme"})
    token = next_token(request, SCENE, filters, 0)
    assert token is not None
    assert page_offset(request.model_copy(update={"page_token": token}), SCENE, filters) == 50
    # The same query with another filter, facet list or page size: refused.
    other = compile_filters(SCENE, {"brand": "Other"})
    with pytest.raises(InvalidRequest, match="another query"):
        page_offset(request.model_copy(update={"page_token": token}), SCENE, other)
    with pytest.raises(InvalidRequest, match="another query"):
        page_offset(request.model_copy(update={"page_token": token, "top_k": 10}), SCENE, filters)
    # The page after 50..99 would end past max_results 120: no token; a forged one is refused.
    assert next_token(request, SCENE, filters, 50) is None
    forged = encode_token(100, query_hash(request, filters))
    with pytest.raises(InvalidRequest, match="best 120 hits"):
        page_offset(request.model_copy(update={"page_token": forged}), SCENE, filters)
    with pytest.raises(InvalidRequest, match="not a token"):
        page_offset(request.model_copy(update={"page_token": "abc"}), SCENE, filters)


def test_facets_count_each_candidate_once_and_each_list_value() -> None:
    candidates = [
        Match("a", 0.9, {"brand": "X", "tags": ["red", "blue"], "released_at": 0}),
        Match("b", 0.8, {"brand": "Y", "tags": ["red"], "released_at": 86400}),
        Match("a", 0.1, {"brand": "X", "tags": ["red", "blue"], "released_at": 0}),
        Match("c", 0.7, {"brand": "X", "tags": [], "released_at": 0}),
    ]
    counts = count_facets(SCENE, candidates, ["brand", "tags", "released_at"])
    assert [(f.value, f.count) for f in counts["brand"]] == [("X", 2), ("Y", 1)]
    assert [(f.value, f.count) for f in counts["tags"]] == [("red", 2), ("blue", 1)]
    assert counts["released_at"][0].value == "1970-01-01T00:00:00Z"
    with pytest.raises(InvalidRequest, match="cannot count 'title'"):
        facet_fields(SCENE, ["title"])


def test_a_collection_built_for_another_schema_is_refused_with_a_clear_message(
    milvus_path: str,
) -> None:
    store = MilvusVectorStore(milvus_path, timeout_s=10.0)
    name = f"s{uuid.uuid4().hex[:10]}"
    store.ensure_collection(name, 4, SCENE.array_filter_fields, SCENE.scalar_filter_fields)
    assert store.filter_schema(name)["price"] == "DOUBLE"
    doc = SCENE.validate_document(
        {"id": "1", "title": "t", "brand": "A", "price": 3, "tags": ["x", "y"]}
    )
    store.upsert(name, [VectorRecord("1", np.ones(4), SCENE.filter_values(doc), "t")])
    store.build_index(name)
    changed = parse_scenes(
        "scenes:\n  shop:\n    fields: {title: text, price: integer}\n"
        "    embed_fields: [title]\n    filterable: [price]\n"
    )["shop"]
    with pytest.raises(SchemaMismatch, match=r"cannot hold .*price \(integer\).*re-index"):
        store.ensure_collection(name, 4, (), changed.scalar_filter_fields)
    # A search filtering on the changed field says so too, instead of a Milvus error.
    with pytest.raises(SchemaMismatch):
        store.search(name, np.ones(4), 5, compile_filters(changed, {"price": 3}))
    hits = store.search(
        name,
        np.ones(4),
        5,
        compile_filters(SCENE, {"price": {"gte": 3}}),
        output_fields=["tags", "brand"],
    )
    assert [h.id for h in hits] == ["1"]
    # Facets over what Milvus returns (an ARRAY field comes back as a protobuf container).
    counts = count_facets(SCENE, hits, ["tags", "brand"])
    assert [(f.value, f.count) for f in counts["brand"]] == [("A", 1)]
    assert [(f.value, f.count) for f in counts["tags"]] == [("x", 1), ("y", 1)]
    assert QA.fingerprint() != SCENE.fingerprint()
    store.drop(name)
