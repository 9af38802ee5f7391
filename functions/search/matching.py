"""The match layer: dense ANN, BM25, or both fused (reciprocal rank or weighted scores), and the
weighted rank fusion of a mixed query's lists."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from functions.core.models.normalize import unspaced_share
from functions.core.pipeline_config import MatchParams
from functions.core.stores.fusion import fused_order, reciprocal_rank_fusion
from functions.core.stores.vector_store import SPARSE_FIELD, FilterSpec, Match, VectorStore

# The dense and the BM25 search of a hybrid query run side by side (both wait on Milvus).
_POOL = ThreadPoolExecutor(4, thread_name_prefix="match")


# Analyzers that segment Chinese and Japanese (functions/core/stores/analyzers.py).
CJK_ANALYZERS = frozenset({"chinese", "japanese", "standard"})


def for_query_script(params: MatchParams, query: str, languages: Sequence[str]) -> MatchParams:
    """The match experiment for this query's script. The packaged encoder reads English: a
    Chinese or Japanese query it embeds lands among unrelated texts, so on a dense experiment
    over text, in a scene whose lexical fields segment those languages, such a query matches
    by BM25 (hybrid when it also has other words). Experiments already lexical, image-space
    experiments and `cjk_queries: as_configured` (a multilingual encoder) are left as they are."""
    if (
        params.cjk_queries != "lexical"
        or params.kind != "dense"
        or params.space != "text"
        or not CJK_ANALYZERS.intersection(languages)
    ):
        return params
    share = unspaced_share(query)
    if share == 0.0:
        return params
    return params.model_copy(update={"kind": "bm25" if share == 1.0 else "hybrid"})


def match(
    store: VectorStore,
    collection: str,
    params: MatchParams,
    *,
    text: str,
    vector: Callable[[], np.ndarray] | None,
    filters: FilterSpec,
    limit: int,
    output_fields: Sequence[str] = (),
    sparse_fields: Sequence[str] = (SPARSE_FIELD,),
) -> list[Match]:
    """Candidates for one query, best first. `vector` is called only when dense search runs;
    BM25 scores each analysed text of `sparse_fields` (Scene.searched_lexical_fields), and
    several are fused by reciprocal rank."""
    limit = max(limit, params.candidates)

    def dense() -> list[Match]:
        if vector is None:
            raise ValueError("dense matching needs a query vector")
        return store.search(
            collection,
            vector(),
            limit,
            filters,
            nprobe=params.nprobe,
            ef=params.ef,
            output_fields=output_fields,
        )

    def lexical() -> list[Match]:
        lists = [
            store.search_text(
                collection, text, limit, filters, output_fields=output_fields, sparse_field=name
            )
            for name in sparse_fields
        ]
        found = [hits for hits in lists if hits]
        if len(found) > 1:
            return reciprocal_rank_fusion(found, params.rrf_k)
        # One field matched (an English query on a scene with CJK fields): its BM25 scores as
        # they are, so calibrated relevance reads them as before.
        return found[0] if found else []

    if params.kind == "dense":
        return dense()
    if params.kind == "bm25":
        return lexical()
    if params.fusion == "rrf":
        if vector is None:
            raise ValueError("hybrid matching needs a query vector")
        # One round trip: Milvus runs both searches and fuses them (same formula as ours).
        return store.search_hybrid(
            collection,
            vector(),
            text,
            limit,
            filters,
            candidates=limit,  # each side: at least the hits asked for (deep pages)
            rrf_k=params.rrf_k,
            nprobe=params.nprobe,
            ef=params.ef,
            output_fields=output_fields,
            sparse_fields=sparse_fields,
        )
    lexical_future = _POOL.submit(lexical)
    dense_hits = dense()
    lexical_hits = lexical_future.result()
    return weighted_fusion(dense_hits, lexical_hits, params.dense_weight, params.normalization)


def match_in_space(
    store: VectorStore,
    collection: str,
    image_collection: str,
    params: MatchParams,
    *,
    text: str,
    vector: Callable[[], np.ndarray] | None,
    image_vector: Callable[[], np.ndarray] | None,
    filters: FilterSpec,
    limit: int,
    output_fields: Sequence[str] = (),
    sparse_fields: Sequence[str] = (SPARSE_FIELD,),
) -> list[Match]:
    """`match` in the text space, a dense search in the image space, or both fused (RRF)."""

    def in_text() -> list[Match]:
        return match(
            store,
            collection,
            params,
            text=text,
            vector=vector,
            filters=filters,
            limit=limit,
            output_fields=output_fields,
            sparse_fields=sparse_fields,
        )

    def in_image() -> list[Match]:
        if image_vector is None:
            raise ValueError("image matching needs an image-space vector")
        return store.search(
            image_collection,
            image_vector(),
            max(limit, params.candidates),
            filters,
            nprobe=params.nprobe,
            ef=params.ef,
            output_fields=output_fields,
        )

    if params.space == "text":
        return in_text()
    if params.space == "image":
        return in_image()
    image_future = _POOL.submit(in_image)
    return reciprocal_rank_fusion([in_text(), image_future.result()], params.rrf_k)


def weighted_fusion(
    dense: Sequence[Match],
    lexical: Sequence[Match],
    dense_weight: float,
    normalization: str = "minmax",
) -> list[Match]:
    """Convex combination of normalised scores (Bruch et al. 2023): w * dense + (1 - w) * BM25,
    each list normalised per query by min-max, or by `tmm` (theoretical minimum: -1 for cosine,
    0 for BM25, observed maximum); a document missing from one list gets 0 from it."""
    scores: dict[str, float] = {}
    first: dict[str, Match] = {}
    sides = ((dense, dense_weight, -1.0), (lexical, 1.0 - dense_weight, 0.0))
    for hits, weight, floor in sides:
        values = [h.score for h in hits]
        scaled = (
            min_max(values) if normalization == "minmax" else theoretical_min_max(values, floor)
        )
        for hit, value in zip(hits, scaled, strict=True):
            scores[hit.id] = scores.get(hit.id, 0.0) + weight * value
            first.setdefault(hit.id, hit)
    return fused_order(scores, first)


def theoretical_min_max(values: Sequence[float], floor: float) -> list[float]:
    """(v - floor) / (max - floor): the scoring function's lowest possible value maps to 0."""
    if not values:
        return []
    high = max(values)
    if high - floor < 1e-12:
        return [1.0] * len(values)
    return [max(0.0, (v - floor) / (high - floor)) for v in values]


def min_max(values: Sequence[float]) -> list[float]:
    """Scale to [0, 1]; all-equal values (including a single one) become 1."""
    if not values:
        return []
    low, high = min(values), max(values)
    if high - low < 1e-12:
        return [1.0] * len(values)
    return [(v - low) / (high - low) for v in values]
