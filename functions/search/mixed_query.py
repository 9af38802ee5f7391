"""Queries that mix modalities on the image scenes: a text, an image and a negative text, each
weighted. With CLIP (text and pixels share one space) the parts' normalised vectors are summed
into one query vector and matched once. With the tiny-image descriptor (pixels only, no text
tower) nothing can be summed: the caption list and the pixel list are fused by weighted
reciprocal rank, and the negative text's caption list pushes down the hits it ranks."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from functions.core.errors import InvalidRequest, ServiceError
from functions.core.http.query_image import decode_image
from functions.core.http.schemas import Composition, QueryPart, QueryWeights, SearchRequest
from functions.core.models.normalize import normalize_text
from functions.core.pipeline_config import MatchParams
from functions.core.scenes import Scene
from functions.core.stores.fusion import weighted_rank_fusion
from functions.core.stores.vector_store import SPARSE_FIELD, FilterSpec, Match, VectorStore
from functions.search.clients import QueryEmbedder
from functions.search.matching import match

Part = Literal["text", "image", "negative"]
PROBE_TEXT = "a photo"
# A query's lists are searched side by side; a pool apart from the match layer's, whose tasks
# (a hybrid list's BM25 half) these wait on.
_LISTS = ThreadPoolExecutor(3, thread_name_prefix="mixed")


@dataclass(frozen=True)
class MixedQuery:
    """A request's parts, checked once: normalised texts ("" when absent), the image's bytes
    (None when absent) and the weights."""

    text: str
    image: bytes | None
    negative: str
    weights: QueryWeights

    def parts(self) -> list[tuple[Part, float]]:
        """The parts that count, in order text, image, negative: sent, and weighing above 0."""
        sent: list[tuple[Part, bool, float]] = [
            ("text", bool(self.text), self.weights.text),
            ("image", self.image is not None, self.weights.image),
            ("negative", bool(self.negative), self.weights.negative),
        ]
        return [(part, weight) for part, there, weight in sent if there and weight > 0]

    def text_of(self, part: Part) -> str:
        """The text of the text or negative part."""
        return self.negative if part == "negative" else self.text


def mixed_query(
    request: SearchRequest, scene: Scene, max_chars: int, max_image_bytes: int
) -> MixedQuery | None:
    """The request's mixed query, or None for a plain one (served as before): a text scene
    refuses images, negative texts and weights, and a query with nothing left to search for is
    a 422 naming the field."""
    if scene.kind == "text":
        for name in ("query_image", "negative_query", "weights"):
            if getattr(request, name) is not None:
                raise InvalidRequest(
                    f"{name}: scene {scene.name!r} searches text only; images and mixed "
                    "queries go to the image scenes"
                )
        return None
    has_text, has_image = bool(request.query.strip()), bool(request.query_image)
    if scene.query == "image" and not has_image:
        raise InvalidRequest(f"scene {scene.name!r} searches by image: send query_image")
    if not has_text and not has_image:
        raise InvalidRequest(f"scene {scene.name!r}: send query, query_image or both")
    weights = request.weights or QueryWeights()
    sent = [w for w, there in ((weights.text, has_text), (weights.image, has_image)) if there]
    if not any(w > 0 for w in sent):
        raise InvalidRequest("weights: every part sent (query, query_image) weighs 0")
    if not (has_image and (has_text or scene.query == "text")) and request.negative_query is None:
        return None  # one part alone: ranked as before
    return MixedQuery(
        text=_text("query", request.query, max_chars) if has_text else "",
        image=decode_image(request.query_image or "", max_image_bytes) if has_image else None,
        negative=(
            _text("negative_query", request.negative_query, max_chars)
            if request.negative_query is not None
            else ""
        ),
        weights=weights,
    )


def _text(name: str, text: str, max_chars: int) -> str:
    try:
        return normalize_text(text, max_chars)
    except InvalidRequest as exc:
        raise InvalidRequest(f"{name}: {exc.message}") from None


class ImageSpaceProbe:
    """Whether the image space embeds text too (CLIP), asked once of preprocess through the
    same embedder either door uses: a 422 for a text means pixels only (tiny-image)."""

    def __init__(self, embedder: QueryEmbedder) -> None:
        self._embedder = embedder
        self._takes_text: bool | None = None
        self._lock = threading.Lock()

    def takes_text(self) -> bool:
        with self._lock:
            if self._takes_text is None:
                try:
                    self._embedder.embed_text_for_images(PROBE_TEXT)
                    self._takes_text = True
                except ServiceError as exc:
                    if exc.status != 422:
                        raise  # an outage says nothing about the space; ask again next time
                    self._takes_text = False
            return self._takes_text


@dataclass(frozen=True)
class EmbeddedQuery:
    """A mixed query ready to match: one summed image-space vector (CLIP), or a vector per
    part for its own list (fusion; None where the caption list needs none: BM25)."""

    query: MixedQuery
    text_params: MatchParams
    summed: np.ndarray | None = None
    vectors: dict[Part, np.ndarray | None] = field(default_factory=dict)

    @property
    def method(self) -> Literal["vector_sum", "rank_fusion"]:
        return "vector_sum" if self.summed is not None else "rank_fusion"


def caption_params(params: MatchParams) -> MatchParams:
    """The match experiment's text side (captions): itself in the text space, its dense or
    hybrid caption half otherwise (an image-only experiment: dense over the captions)."""
    if params.space == "text":
        return params
    kind = "dense" if params.space == "image" else params.kind
    return params.model_copy(update={"space": "text", "kind": kind, "model": None})


def embed_mixed(
    query: MixedQuery,
    embedder: QueryEmbedder,
    params: MatchParams,
    *,
    takes_text: bool,
    query_prefix: str = "",
) -> EmbeddedQuery:
    """Embed the parts that count: into the image space and summed (CLIP), else the texts into
    the caption space and the image into the pixel space, each for its own list."""
    text_params = caption_params(params)
    if takes_text:
        summed = np.sum(
            [
                (-weight if part == "negative" else weight)
                * _unit(_in_image_space(query, part, embedder))
                for part, weight in query.parts()
            ],
            axis=0,
        )
        norm = float(np.linalg.norm(summed))
        if norm < 1e-6:
            raise InvalidRequest(
                "weights: the negative text cancels the rest out; nothing is left to search for"
            )
        return EmbeddedQuery(query, text_params, summed=(summed / norm).astype(np.float32))
    vectors: dict[Part, np.ndarray | None] = {}
    for part, _ in query.parts():
        if part == "image":
            vectors[part] = embedder.embed_image(query.image or b"")
        elif text_params.kind != "bm25":
            vectors[part] = embedder.embed_query(
                query_prefix + query.text_of(part), text_params.model
            )
        else:
            vectors[part] = None
    return EmbeddedQuery(query, text_params, vectors=vectors)


def match_mixed(
    embedded: EmbeddedQuery,
    store: VectorStore,
    collection: str,
    image_collection: str,
    params: MatchParams,
    *,
    filters: FilterSpec,
    limit: int,
    output_fields: list[str],
    sparse_fields: Sequence[str] = (SPARSE_FIELD,),
) -> list[Match]:
    """Candidates for a mixed query, best first: one dense match of the summed vector, or the
    weighted reciprocal rank fusion of each part's list (the negative one subtracting); BM25
    scores each analysed text of `sparse_fields`, as a plain query does."""
    limit = max(limit, params.candidates)

    def pixels(vector: np.ndarray) -> list[Match]:
        return store.search(
            image_collection,
            vector,
            limit,
            filters,
            nprobe=params.nprobe,
            ef=params.ef,
            output_fields=output_fields,
        )

    if embedded.summed is not None:
        return pixels(embedded.summed)

    def one(part: Part) -> list[Match]:
        vector = embedded.vectors[part]
        if part == "image":
            assert vector is not None
            return pixels(vector)
        return match(
            store,
            collection,
            embedded.text_params,
            text=embedded.query.text_of(part),
            vector=None if vector is None else (lambda: vector),
            filters=filters,
            limit=limit,
            output_fields=output_fields,
            sparse_fields=sparse_fields,
        )

    parts = embedded.query.parts()
    futures = [_LISTS.submit(one, part) for part, _ in parts]
    # Ties in the order a plain query shows them (the rank layer's): equal captions are common.
    lists = [sorted(f.result(), key=lambda m: (-m.score, m.id)) for f in futures]
    weights = [-w if part == "negative" else w for part, w in parts]
    return weighted_rank_fusion(lists, weights, params.rrf_k)


def composition(embedded: EmbeddedQuery, rrf_k: int) -> Composition:
    """How the query was composed, in the response's words."""
    parts = embedded.query.parts()
    if embedded.summed is not None:
        terms = " ".join(
            f"{'-' if part == 'negative' else '+'} {w:g}*{part}" for part, w in parts
        ).lstrip("+ ")
        return Composition(
            method="vector_sum",
            parts=[QueryPart(part=p, weight=w, searched="image space (CLIP)") for p, w in parts],
            formula=f"v = normalise({terms}), each part's vector normalised first; one dense "
            "match of v over the images' vectors",
        )
    kind = embedded.text_params.kind
    searched = {
        "text": f"captions ({kind})",
        "image": "pixels (image space)",
        "negative": f"captions ({kind}); pushes down the hits it ranks",
    }
    terms = " ".join(
        f"{'-' if part == 'negative' else '+'} {w:g}/({rrf_k} + rank in {part} list)"
        for part, w in parts
    ).lstrip("+ ")
    return Composition(
        method="rank_fusion",
        parts=[QueryPart(part=p, weight=w, searched=searched[p]) for p, w in parts],
        formula=f"score = {terms}; only hits of the text and image lists are ranked (this image "
        "space has no text tower: text and pixels are fused by rank, not summed)",
    )


def _in_image_space(query: MixedQuery, part: Part, embedder: QueryEmbedder) -> np.ndarray:
    if part == "image":
        return embedder.embed_image(query.image or b"")
    return embedder.embed_text_for_images(query.text_of(part))


def _unit(vector: np.ndarray) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector
