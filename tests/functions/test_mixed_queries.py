"""Queries that mix modalities on the image scenes (issue 18): a text with an image, weights,
and a negative text, on 40 indexed Tux Paint stamps. Without CLIP (the tiny-image descriptor)
the caption list and the pixel list are fused by weighted reciprocal rank; with a CLIP export
(a tiny random one here) the parts' vectors are summed into one query. Both are checked
against the formula computed from the plain queries' own answers, through every door and the
split deployment's invokes."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from functions.composed.app import create_app
from functions.composed.asgi_lambda import asgi_lambda_handler
from functions.composed.service import composed_routes
from functions.core.http.invoke_events import http_event, response_json
from functions.core.http.lambda_adapter import lambda_handler
from functions.core.settings import Settings
from functions.core.stores.factory import open_document_store
from functions.preprocess import service as preprocess
from functions.search import service as search
from functions.search.clients import LambdaDocuments, LambdaEmbedder, LambdaInvoker
from functions.summary import service as summary
from offline.local_mongo import LocalMongoServer
from tests.conftest import _encoder
from tests.functions.test_composed_doors import (
    Door,
    _http_door,
    _lambda_door,
    through_every_door,
)
from tests.functions.test_image_search import COINS, index_images, stamps
from tests.functions.test_lambda_boundaries import InProcessLambda

NICKEL = f"tux:{COINS}/005nickel"
PENGUIN = "tux:animals/birds/penguin"
LITTLE_PENGUIN = "tux:animals/birds/little-penguin"
NICKEL_TEXT = "a US 5 cent piece called a nickel"  # words the captions use: no spelling fix
K = 60  # the t2i match experiments' rrf_k


def _stamp(doc_id: str) -> bytes:
    return next(d for d in stamps() if d.id == doc_id).file.read_bytes()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def tiny(qa_and_images_once: Settings) -> Iterator[TestClient]:
    """The one-function app over QA and the 40 stamps, image space tiny-image (no CLIP)."""
    with TestClient(create_app(qa_and_images_once)) as client:
        yield client


@pytest.fixture(scope="module")
def clip_settings(
    tmp_path_factory: pytest.TempPathFactory,
    model_dir: Path,
    mongo_server: LocalMongoServer,
    milvus_path: str,
    clip_dir: Path,
) -> Settings:
    """The 40 stamps indexed with a tiny random CLIP as the image space."""
    settings = Settings(
        home=tmp_path_factory.mktemp("clip-home"),
        model_dir=model_dir,
        clip_model_dir=clip_dir,
        milvus_uri=milvus_path,
        mongo_uri=SecretStr(mongo_server.uri),
        collection_prefix=f"c{uuid.uuid4().hex[:10]}_",
        store_timeout_s=5.0,
    )
    index_images(settings, _encoder(model_dir), stamps())
    return settings


@pytest.fixture(scope="module")
def clip(clip_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(clip_settings)) as client:
        yield client


def post(client: TestClient, body: dict[str, Any]) -> Any:
    response = client.post("/v1/search", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def ids(client: TestClient, body: dict[str, Any]) -> list[str]:
    return [h["id"] for h in post(client, {"top_k": 40, **body})["hits"]]


def fused(lists: list[tuple[list[str], float]]) -> list[str]:
    """The weighted reciprocal rank fusion the API documents: weight / (K + rank) per list; a
    negative weight only pushes down documents the positive lists found."""
    scores: dict[str, float] = {}
    for ranked, weight in sorted(lists, key=lambda pair: pair[1] < 0):
        for rank, doc in enumerate(ranked, start=1):
            if weight > 0 or doc in scores:
                scores[doc] = scores.get(doc, 0.0) + weight / (K + rank)
    return sorted(scores, key=lambda doc: (-scores[doc], doc))


# Without CLIP: fusion of ranked lists.


def test_text_and_image_on_t2i_are_fused_by_rank_of_captions_and_pixels(tiny: TestClient) -> None:
    text = ids(tiny, {"scene": "t2i", "query": NICKEL_TEXT})
    pixels = ids(tiny, {"scene": "i2i", "query_image": _b64(_stamp(PENGUIN))})
    assert text[0] == NICKEL and pixels[0] == PENGUIN
    body = post(
        tiny,
        {"scene": "t2i", "query": NICKEL_TEXT, "query_image": _b64(_stamp(PENGUIN)), "top_k": 40},
    )
    mixed = [h["id"] for h in body["hits"]]
    assert mixed == fused([(text, 1.0), (pixels, 1.0)])
    # Each part pulls up its own best hit: the penguin past the text's, the nickel past the pixels'.
    assert mixed.index(PENGUIN) < text.index(PENGUIN)
    assert mixed.index(NICKEL) < pixels.index(NICKEL)
    assert mixed != text and mixed != pixels
    composition = body["composition"]
    assert composition["method"] == "rank_fusion"
    assert [(p["part"], p["weight"]) for p in composition["parts"]] == [
        ("text", 1.0),
        ("image", 1.0),
    ]
    assert "1/(60 + rank in text list) + 1/(60 + rank in image list)" in composition["formula"]
    assert body["weak_match"] is False and {h["relevance"] for h in body["hits"]} == {0.0}
    assert body["hits"][0]["document"]["url"]


def test_weights_shift_the_fused_ranking_and_a_zero_weight_drops_its_part(
    tiny: TestClient,
) -> None:
    image = _b64(_stamp(PENGUIN))
    text = ids(tiny, {"scene": "t2i", "query": NICKEL_TEXT})
    pixels = ids(tiny, {"scene": "i2i", "query_image": image})
    both = {"scene": "t2i", "query": NICKEL_TEXT, "query_image": image}
    assert ids(tiny, {**both, "weights": {"image": 0}}) == text
    assert ids(tiny, {**both, "weights": {"text": 0}}) == pixels
    leaning_image = ids(tiny, {**both, "weights": {"text": 1, "image": 3}})
    leaning_text = ids(tiny, {**both, "weights": {"text": 3, "image": 1}})
    assert leaning_image == fused([(text, 1.0), (pixels, 3.0)])
    assert leaning_text == fused([(text, 3.0), (pixels, 1.0)])
    # The coins follow the text's weight, the birds near the penguin the image's.
    coins = [d for d in leaning_text[:6] if COINS in d]
    assert len(coins) > len([d for d in leaning_image[:6] if COINS in d])


def test_a_negative_text_pushes_down_the_hits_its_caption_list_ranks(tiny: TestClient) -> None:
    image = _b64(_stamp(PENGUIN))
    query = {"scene": "t2i", "query": "a penguin", "query_image": image}
    before = ids(tiny, query)
    negative = "a little penguin"
    after_body = post(
        tiny, {**query, "negative_query": negative, "weights": {"negative": 2}, "top_k": 40}
    )
    after = [h["id"] for h in after_body["hits"]]
    assert after.index(LITTLE_PENGUIN) > before.index(LITTLE_PENGUIN)
    assert sorted(after) == sorted(before)  # demoted, never dropped nor added
    text = ids(tiny, {"scene": "t2i", "query": "a penguin"})
    pixels = ids(tiny, {"scene": "i2i", "query_image": image})
    unwanted = ids(tiny, {"scene": "t2i", "query": negative})
    assert after == fused([(text, 1.0), (pixels, 1.0), (unwanted, -2.0)])
    parts = after_body["composition"]["parts"]
    assert parts[-1]["part"] == "negative" and "pushes down" in parts[-1]["searched"]


def test_i2i_takes_a_text_refinement_by_the_same_rule_as_t2i(tiny: TestClient) -> None:
    image = _b64(_stamp(NICKEL))
    plain = ids(tiny, {"scene": "i2i", "query_image": image})
    refined = ids(tiny, {"scene": "i2i", "query_image": image, "query": "a penguin"})
    assert refined == ids(tiny, {"scene": "t2i", "query_image": image, "query": "a penguin"})
    assert refined != plain
    assert refined.index(PENGUIN) < plain.index(PENGUIN)


def test_an_image_alone_on_t2i_answers_as_i2i(tiny: TestClient) -> None:
    image = _b64(_stamp(NICKEL))
    assert ids(tiny, {"scene": "t2i", "query_image": image}) == ids(
        tiny, {"scene": "i2i", "query_image": image}
    )


@pytest.mark.parametrize(
    ("experiment", "caption_side"),
    [
        ("caption", "caption"),
        ("caption_hybrid", "caption_hybrid"),
        ("caption_bm25", "caption_bm25"),
        ("image", "caption"),  # pixels only without CLIP: the captions' dense side
        ("hybrid", "caption_hybrid"),
    ],
)
def test_the_text_list_is_the_forced_match_experiments_caption_side(
    tiny: TestClient, experiment: str, caption_side: str
) -> None:
    image, query = _b64(_stamp(PENGUIN)), "a penguin"
    text = ids(
        tiny, {"scene": "t2i", "query": query, "debug": {"experiments": {"match": caption_side}}}
    )
    mixed = {"scene": "t2i", "query": query, "query_image": image}
    forced = {"debug": {"experiments": {"match": experiment}}}
    assert ids(tiny, {**mixed, **forced, "weights": {"image": 0}}) == text
    pixels = ids(tiny, {"scene": "i2i", "query_image": image})
    assert ids(tiny, {**mixed, **forced}) == fused([(text, 1.0), (pixels, 1.0)])


def test_a_mixed_query_pages_and_its_token_is_bound_to_its_weights_and_negative(
    tiny: TestClient,
) -> None:
    query = {
        "scene": "t2i",
        "query": "a penguin",
        "query_image": _b64(_stamp(NICKEL)),
        "negative_query": "a coin",
    }
    every = ids(tiny, query)
    first = post(tiny, {**query, "top_k": 10})
    token = first["next_page_token"]
    second = post(tiny, {**query, "top_k": 10, "page_token": token})
    assert [h["id"] for h in first["hits"] + second["hits"]] == every[:20]
    for changed in ({"weights": {"negative": 1}}, {"negative_query": "a bird"}):
        response = tiny.post(
            "/v1/search", json={**query, **changed, "top_k": 10, "page_token": token}
        )
        assert response.status_code == 422
        assert "issued for another query" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"scene": "qa", "query": "x", "query_image": "AAAA"}, "query_image: scene 'qa'"),
        ({"scene": "qa", "query": "x", "negative_query": "y"}, "negative_query: scene 'qa'"),
        ({"scene": "qa", "query": "x", "weights": {"text": 2}}, "weights: scene 'qa'"),
        ({"scene": "t2i", "query": "  "}, "send query, query_image or both"),
        ({"scene": "t2i", "negative_query": "red"}, "send query, query_image or both"),
        ({"scene": "i2i", "query": "a coin"}, "send query_image"),
        ({"scene": "t2i", "query": "x", "weights": {"text": 0, "image": 0}}, "both weigh 0"),
        ({"scene": "t2i", "query": "x", "weights": {"text": 0}}, "every part sent"),
        ({"scene": "t2i", "query": "x", "weights": {"image": -1}}, "weights.image"),
        ({"scene": "t2i", "query": "x", "weights": {"text": 1e9}}, "weights.text"),
        ({"scene": "t2i", "query": "x", "weights": {"colour": 1}}, "weights.colour"),
        ({"scene": "t2i", "query": "x", "negative_query": " \t"}, "negative_query: text is"),
        ({"scene": "t2i", "query": "x", "query_image": "%%%"}, "base64"),
        ({"scene": "t2i", "query": "x", "query_image": "AAAA"}, "not a readable image"),
    ],
)
def test_mixed_queries_a_scene_cannot_take_are_422s_naming_the_field(
    tiny: TestClient, body: dict[str, Any], says: str
) -> None:
    response = tiny.post("/v1/search", json=body)
    assert response.status_code == 422, response.text
    assert says in response.json()["error"]["message"]


def test_a_form_with_a_file_text_weights_and_negative_answers_as_the_json_body(
    tiny: TestClient,
) -> None:
    fields = {
        "scene": "t2i",
        "query": "a penguin",
        "negative_query": "a little penguin",
        "weights": json.dumps({"image": 0.5, "negative": 1}),
        "top_k": "12",
    }
    response = tiny.post(
        "/v1/search", data=fields, files={"image": ("p.png", _stamp(PENGUIN), "image/png")}
    )
    assert response.status_code == 200, response.text
    as_json = {
        **fields,
        "weights": {"image": 0.5, "negative": 1},
        "top_k": 12,
        "query_image": _b64(_stamp(PENGUIN)),
    }
    assert [h["id"] for h in response.json()["hits"]] == ids(tiny, as_json)[:12]
    assert response.json()["composition"]["parts"][1] == {
        "part": "image",
        "weight": 0.5,
        "searched": "pixels (image space)",
    }


@pytest.fixture(scope="module")
def doors(qa_and_images_once: Settings, tiny: TestClient) -> dict[str, Door]:
    return {
        "fastapi": _http_door(tiny),
        "mangum": _lambda_door(asgi_lambda_handler(create_app(qa_and_images_once))),
        "lambda": _lambda_door(lambda_handler(composed_routes(qa_and_images_once)[1])),
    }


def _form(boundary: str, image: bytes, **fields: str) -> bytes:
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n'
        "Content-Type: image/png\r\n\r\n".encode()
        + image
        + b"\r\n"
    )
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


def test_mixed_queries_answer_alike_through_fastapi_mangum_and_the_lean_dispatcher(
    doors: dict[str, Door],
) -> None:
    request = {
        "scene": "t2i",
        "query": "a penguin",
        "query_image": _b64(_stamp(NICKEL)),
        "negative_query": "a little penguin",
        "weights": {"text": 2, "image": 1, "negative": 1},
        "top_k": 8,
    }
    status, body, _ = through_every_door(doors, "POST", "/v1/search", request)
    assert status == 200 and body["composition"]["method"] == "rank_fusion"
    form = _form("Bnd", _stamp(NICKEL), scene="t2i", query="a penguin", weights='{"text": 2}')
    status, from_form, _ = through_every_door(
        doors, "POST", "/v1/search", form, "multipart/form-data; boundary=Bnd"
    )
    assert status == 200 and len(from_form["hits"]) == 10
    for refused in ({"scene": "qa", "query": "x", "query_image": "AAAA"}, {"scene": "t2i"}):
        status, body, _ = through_every_door(doors, "POST", "/v1/search", refused)
        assert status == 422 and body["error"]["code"] == "invalid_request"


def _split_search(settings: Settings) -> Any:
    """The split deployment's search: preprocess and summary reached by (in-process) invokes."""
    client = InProcessLambda(
        {
            "pre": lambda_handler(preprocess.routes(preprocess.build_preprocessor(settings))),
            "sum": lambda_handler(summary.routes(open_document_store(settings))),
        }
    )
    service = search.build_search_service(
        settings,
        LambdaEmbedder(LambdaInvoker(client, "pre")),
        LambdaDocuments(LambdaInvoker(client, "sum")),
    )
    handler = lambda_handler(search.routes(service))

    def call(body: dict[str, Any]) -> Any:
        response = handler(http_event("POST", "/v1/search", body), None)
        assert response["statusCode"] == 200, response
        return response_json(response)

    return call


def _same_answer(split: Any, local: Any) -> None:
    assert [h["id"] for h in split["hits"]] == [h["id"] for h in local["hits"]]
    assert [h["score"] for h in split["hits"]] == pytest.approx(
        [h["score"] for h in local["hits"]], abs=1e-5
    )
    assert split["composition"] == local["composition"]


def test_the_split_deployment_composes_like_the_one_function_in_both_spaces(
    qa_and_images_once: Settings, tiny: TestClient, clip_settings: Settings, clip: TestClient
) -> None:
    request = {
        "scene": "t2i",
        "query": "a penguin",
        "query_image": _b64(_stamp(NICKEL)),
        "negative_query": "a coin",
        "top_k": 10,
    }
    _same_answer(_split_search(qa_and_images_once)(request), post(tiny, request))
    split = _split_search(clip_settings)(request)
    assert split["composition"]["method"] == "vector_sum"
    _same_answer(split, post(clip, request))


# With CLIP: one summed vector.


def _embed(client: TestClient, body: dict[str, Any]) -> np.ndarray:
    response = client.post("/v1/embed", json={"space": "image", **body})
    assert response.status_code == 200, response.text
    return np.asarray(response.json()["vectors"], dtype=np.float64)


def _stamp_vectors(client: TestClient) -> dict[str, np.ndarray]:
    docs = stamps()
    found: dict[str, np.ndarray] = {}
    for start in range(0, len(docs), 8):
        batch = docs[start : start + 8]
        vectors = _embed(client, {"images": [_b64(d.file.read_bytes()) for d in batch]})
        found.update({d.id: v for d, v in zip(batch, vectors, strict=True)})
    return found


def test_with_clip_the_weighted_parts_are_summed_normalised_and_matched_once(
    clip: TestClient,
) -> None:
    image = _b64(_stamp(PENGUIN))
    request = {
        "scene": "t2i",
        "query": "a photo of a cat",
        "query_image": image,
        "negative_query": "a red car",
        "weights": {"text": 2, "image": 1, "negative": 0.5},
        "top_k": 10,
    }
    body = post(clip, request)
    text, negative = _embed(clip, {"texts": ["a photo of a cat", "a red car"]})
    picture = _embed(clip, {"images": [image]})[0]
    unit = [v / np.linalg.norm(v) for v in (text, picture, negative)]
    expected = 2 * unit[0] + unit[1] - 0.5 * unit[2]
    expected /= np.linalg.norm(expected)
    scores = {d: float(v @ expected) for d, v in _stamp_vectors(clip).items()}
    best = sorted(scores, key=lambda d: -scores[d])[:10]
    assert [h["id"] for h in body["hits"]] == best
    assert [h["score"] for h in body["hits"]] == pytest.approx([scores[d] for d in best], abs=1e-4)
    composition = body["composition"]
    assert composition["method"] == "vector_sum"
    assert "normalise(2*text + 1*image - 0.5*negative)" in composition["formula"]
    assert {p["searched"] for p in composition["parts"]} == {"image space (CLIP)"}


def test_with_clip_a_zero_weight_leaves_the_other_part_as_its_own_query(clip: TestClient) -> None:
    image = _b64(_stamp(PENGUIN))
    both = {"scene": "t2i", "query": "a photo of a dog", "query_image": image, "top_k": 10}
    by_text = post(clip, {**both, "weights": {"image": 0}})["hits"]
    clip_text = {"scene": "t2i", "query": "a photo of a dog", "top_k": 10}
    plain = post(clip, {**clip_text, "debug": {"experiments": {"match": "image"}}})["hits"]
    assert [h["id"] for h in by_text] == [h["id"] for h in plain]
    assert [h["score"] for h in by_text] == pytest.approx([h["score"] for h in plain], abs=1e-5)
    by_image = post(clip, {**both, "weights": {"text": 0}})["hits"]
    i2i = post(clip, {"scene": "i2i", "query_image": image, "top_k": 10})["hits"]
    assert [h["id"] for h in by_image] == [h["id"] for h in i2i]
    mixed = post(clip, both)["hits"]
    assert [h["id"] for h in mixed] not in ([h["id"] for h in plain], [h["id"] for h in i2i])


def test_with_clip_a_negative_text_demotes_the_hit_it_describes_best(clip: TestClient) -> None:
    negative = "the quick brown fox jumps over the lazy dog"
    forced = {"debug": {"experiments": {"match": "image"}}}
    described = post(clip, {"scene": "t2i", "query": negative, **forced})["hits"][0]["id"]
    image = _b64(_stamp(NICKEL))
    before = ids(clip, {"scene": "i2i", "query_image": image})
    after = ids(clip, {"scene": "i2i", "query_image": image, "negative_query": negative})
    assert after.index(described) > before.index(described)


def test_with_clip_parts_that_cancel_out_leave_nothing_to_search_for(clip: TestClient) -> None:
    body = {
        "scene": "t2i",
        "query": "a red car",
        "negative_query": "a red car",
        "weights": {"negative": 1},
    }
    response = clip.post("/v1/search", json=body)
    assert response.status_code == 422
    assert "cancels the rest out" in response.json()["error"]["message"]
