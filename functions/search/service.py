"""The search pipeline: preprocess -> match -> rank -> summary, timed per stage."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any, TypeVar

import numpy as np
from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

from functions.core.errors import ServiceError
from functions.core.http import correlation
from functions.core.http.query_image import decode_image
from functions.core.http.routes import Route
from functions.core.http.schemas import (
    Hit,
    SceneDescription,
    ScenesResponse,
    SearchRequest,
    SearchResponse,
    Spelling,
    Timings,
)
from functions.core.limits import MAX_BODY_BYTES
from functions.core.models.normalize import normalize_text
from functions.core.pipeline_config import (
    LAYERS,
    MatchParams,
    PipelineConfig,
    QpParams,
    SummaryParams,
)
from functions.core.scenes import Scene, current_scenes, get_scene
from functions.core.settings import Settings
from functions.core.stores.factory import (
    collection_name,
    image_collection,
    model_collection,
    open_document_store,
    open_vector_store,
)
from functions.core.stores.filters import Filters
from functions.core.stores.vector_store import VECTOR_FIELD, Match, VectorStore
from functions.search.bucketing import DebugAccess, assign
from functions.search.clients import (
    DocumentFetcher,
    InProcessDocuments,
    InProcessEmbedder,
    LambdaDocuments,
    LambdaEmbedder,
    LambdaInvoker,
    QueryEmbedder,
    lambda_client,
)
from functions.search.config_source import (
    DEFAULT_CONFIG,
    AppConfig,
    ConfigSource,
    FileConfig,
)
from functions.search.default_pipeline import default_scene_config
from functions.search.facets import count_facets, facet_fields
from functions.search.limits import SearchLimits
from functions.search.matching import for_query_script, match_in_space
from functions.search.mixed_query import (
    EmbeddedQuery,
    ImageSpaceProbe,
    composition,
    embed_mixed,
    match_mixed,
    mixed_query,
)
from functions.search.paging import next_token, page_offset
from functions.search.ranking import keeps_order, needed_fields, rank
from functions.search.relevance import RelevanceTables, mode_of
from functions.search.spelling import MIN_COVERAGE, Speller, VocabularySource
from functions.search.summarize import QueryTerms, Terms, summarize

logger = Logger(service="mmsearch-search")
_T = TypeVar("_T")
METRICS_NAMESPACE = "mmsearch"
# A correction is applied when query and correction embed at least this close (cosine).
SAME_MEANING = 0.5


class SearchService:
    """Runs one search request through the layers qp -> match -> rank -> summary, each with
    the experiment the request is bucketed into, timed per stage."""

    def __init__(
        self,
        embedder: QueryEmbedder,
        vectors: VectorStore,
        documents: DocumentFetcher,
        *,
        collection_for: Callable[[Scene], str],
        max_query_chars: int,
        config: ConfigSource | None = None,
        max_image_bytes: int = MAX_BODY_BYTES,
        limits: SearchLimits | None = None,
        degrade_without_documents: bool = False,
        debug: DebugAccess | None = None,
        relevance: RelevanceTables | None = None,
        vocabulary: VocabularySource | None = None,
    ) -> None:
        self._embedder = embedder
        self._vectors = vectors
        self._documents = documents
        self._collection_for = collection_for
        self._max_query_chars = max_query_chars
        self._max_image_bytes = max_image_bytes
        self._config = config or FileConfig(DEFAULT_CONFIG)
        self._limits = limits or SearchLimits()
        self._degrade_without_documents = degrade_without_documents
        self._debug = debug or DebugAccess.from_settings(Settings())
        self._relevance = relevance or RelevanceTables.load()
        self._vocabulary = vocabulary
        self._image_space = ImageSpaceProbe(embedder)

    @property
    def config(self) -> PipelineConfig:
        """The pipeline configuration in force now."""
        return self._config.get()

    def search(self, request: SearchRequest) -> SearchResponse:
        """Answer `request`; raises a `ServiceError` subclass for anything the caller can fix.
        A misspelt query is answered for its correction when that finds closer matches."""
        scene = get_scene(request.scene)
        self._limits.check(request)
        # Checked once: later layers trust these (and page tokens are bound to them).
        filters = self._limits.filters(scene, request.filters)
        facets = facet_fields(scene, request.facets)
        offset = page_offset(request, scene, filters)
        page = _Page(request, filters, facets, offset)
        # One request embeds a text once, however many passes and checks read its vector.
        embedder = _RequestEmbedder(self._embedder)
        response = self._search(request, page, embedder)
        speller = self._speller(request)
        query = normalize_text(request.query, self._max_query_chars) if speller else ""
        suggestion = speller.suggest(query) if speller else None
        if suggestion is not None:
            # The correction replaces words the corpus never uses with ones it does, and a
            # rare word spelt right is one of them: applied only when the encoder reads both
            # as saying the same thing and the correction is no weak match; else suggested.
            # Meaning first: a correction that changes it is never searched for.
            applied = False
            if self._same_meaning(embedder, query, suggestion):
                corrected = self._search(
                    request.model_copy(update={"query": suggestion}), page, embedder
                )
                applied = not corrected.weak_match
                response = corrected if applied else response
            response = response.model_copy(
                update={"spelling": Spelling(suggestion=suggestion, applied=applied)}
            )
            query = suggestion if applied else query
        if speller and speller.coverage(query) < MIN_COVERAGE:
            response.weak_match = True  # mostly words this corpus never uses
        return response

    @staticmethod
    def _same_meaning(embedder: QueryEmbedder, query: str, suggestion: str) -> bool:
        """Whether the text encoder puts a query and its correction close together. On the
        packaged MiniLM, typos and their corrections score 0.57-0.76 (`sientist`, `animel`,
        `dentst`, `recieve a paymnet`), wrong corrections of rare words 0.10-0.46 (`moon
        craters` -> `mood rates`, `stars` -> `stairs`, `quasar` -> `quasi`)."""
        a, b = (embedder.embed_query(text) for text in (query, suggestion))
        return float(np.dot(a, b)) >= SAME_MEANING

    def _speller(self, request: SearchRequest) -> Speller | None:
        """The scene's corpus vocabulary, for a text query (never an error: a store that
        cannot answer means no suggestion)."""
        if self._vocabulary is None or not request.query.strip() or request.query_image:
            return None
        scene = get_scene(request.scene)
        if scene.query != "text":
            return None
        try:
            return self._vocabulary.speller(scene.store)
        except ServiceError as exc:
            logger.warning("vocabulary unavailable: no spelling suggestion", reason=exc.message)
            return None

    def _search(
        self, request: SearchRequest, page: _Page, embedder: _RequestEmbedder
    ) -> SearchResponse:
        start = perf_counter()
        scene = get_scene(request.scene)
        # A declared scene the pipeline configuration does not name runs a default pipeline.
        scene_config = self._config.get().scenes.get(scene.name) or default_scene_config(scene)
        forced = self._debug.forced(request.debug.experiments if request.debug else None)
        # Anonymous requests are bucketed by their query: the same search, the same order.
        chosen = assign(scene_config, request.user_id or f"query:{request.query}", forced)
        qp = scene_config.qp.experiments[chosen["qp"]].params
        matching = scene_config.match.experiments[chosen["match"]].params
        ranking = scene_config.rank.experiments[chosen["rank"]].params
        summary = scene_config.summary.experiments[chosen["summary"]].params
        routed = False  # a Chinese/Japanese query matched lexically: scores not calibrated
        if not request.query_image and not request.negative_query:
            languages = [f.language for f in scene.searched_lexical_fields]
            served, matching = matching, for_query_script(matching, request.query, languages)
            routed = matching is not served
        window = page.offset + request.top_k  # hits up to the end of this page
        prepared = self._prepare(request, scene, qp, matching, embedder)
        query, mixed = prepared.text, prepared.mixed
        if (
            mixed is None
            and not page.facets
            and _one_list(matching, scene)
            and keeps_order(ranking)
        ):
            # Read no further than the page (a dense search for 11 hits costs 15% less than
            # for 100 at 10k documents): no fusion, reranking or facet count reads past it.
            matching = matching.model_copy(update={"candidates": window + 1})
        t_pre = perf_counter()
        embedded_before = embedder.seconds  # lazily embedded from here on: inside `match`
        # A match experiment naming a model searches that model's collection.
        collection = model_collection(self._collection_for(scene), matching.model)
        output_fields = list(dict.fromkeys([*needed_fields(ranking), *page.facets]))
        limit = window + 1  # one more: is there a next page?
        if mixed is None:
            matches = match_in_space(
                self._vectors,
                collection,
                image_collection(collection),
                matching,
                text=query,
                vector=prepared.vector,
                image_vector=prepared.image_vector,
                filters=page.filters,
                limit=limit,
                output_fields=output_fields,
                sparse_fields=[f.sparse for f in scene.searched_lexical_fields],
            )
        else:
            matches = match_mixed(
                mixed,
                self._vectors,
                collection,
                image_collection(collection),
                matching,
                filters=page.filters,
                limit=limit,
                output_fields=output_fields,
                sparse_fields=[f.sparse for f in scene.searched_lexical_fields],
            )
        t_match = perf_counter()
        ranked = rank(matches, ranking, window + 1, lambda i: self._stored_vectors(collection, i))
        more = len(ranked) > window
        ranked = ranked[page.offset : window]
        t_rank = perf_counter()
        documents, degraded = self._fetch_documents(scene.name, [m.id for m in ranked])
        terms = QueryTerms.for_scene(query, scene)
        hits = [self._hit(m, documents.get(m.id), summary, terms) for m in ranked]
        # Relevance is calibrated on the match layer's raw score (rank may rescale it).
        # Mixed scores are not calibrated: relevance 0, and no weak-match verdict.
        raw = {m.id: m.score for m in matches}
        # Calibrated on English queries: scores of mixed or routed queries are not (relevance 0,
        # no weak-match verdict).
        calibrated = mixed is None and not routed
        mode = mode_of(matching) if calibrated else "mixed"
        for hit in hits:
            hit.relevance = self._relevance.relevance(scene.name, mode, raw.get(hit.id, hit.score))
        t_summary = perf_counter()
        # A plain query is embedded inside the match stage, beside the BM25 search (which needs
        # no vector): that time is reported as preprocess, the rest of matching as match.
        embedding = embedder.seconds - embedded_before
        timings = Timings(
            preprocess=_ms(start, t_pre + embedding),
            match=_ms(t_pre + embedding, t_match),
            rank=_ms(t_match, t_rank),
            summary=_ms(t_rank, t_summary),
            total=_ms(start, perf_counter()),
        )
        return SearchResponse(
            scene=scene.name,
            hits=hits,
            timings_ms=timings,
            experiments=chosen,
            degraded=degraded,
            weak_match=calibrated and self._relevance.weak(scene.name, [h.relevance for h in hits]),
            next_page_token=(
                next_token(page.request, scene, page.filters, page.offset) if more else None
            ),
            facets=count_facets(scene, matches, page.facets) if page.facets else None,
            composition=None if mixed is None else composition(mixed, matching.rrf_k),
        )

    def _fetch_documents(self, scene: str, ids: list[str]) -> tuple[dict[str, Any], bool]:
        """The hits' documents, or none and True (degraded) when they cannot be fetched and
        the deployment prefers hits without documents to a 503."""
        try:
            return self._documents.fetch(scene, ids), False
        except ServiceError as exc:
            if exc.status < 500 or not self._degrade_without_documents:
                raise
            logger.warning("documents unavailable: answering hits without them", reason=exc.message)
            return {}, True

    def _prepare(
        self,
        request: SearchRequest,
        scene: Scene,
        qp: QpParams,
        matching: MatchParams,
        embedder: _RequestEmbedder,
    ) -> _Query:
        """The request's query ready for matching: a mixed one (text with an image, or a
        negative text, on an image scene), embedded, or a plain one whose text vectors are
        embedded when the match layer first asks for them (`mixed_query` checked which
        parts were sent)."""
        mixed = mixed_query(request, scene, self._max_query_chars, self._max_image_bytes)
        if mixed is not None:
            takes_text = self._image_space.takes_text()
            embedded = embed_mixed(
                mixed, embedder, matching, takes_text=takes_text, query_prefix=qp.query_prefix
            )
            return _Query(mixed.text, mixed=embedded)
        # A plain query: the text and the vectors the match experiment needs (text space,
        # image space); an image query (scene i2i) has no text.
        if scene.query == "image":
            image = decode_image(request.query_image or "", self._max_image_bytes)
            vector = embedder.embed_image(image)
            return _Query("", image_vector=lambda: vector)
        query = normalize_text(request.query, self._max_query_chars)
        text_vector = image_vector = None
        if matching.space != "image" and matching.kind != "bm25":
            text = qp.query_prefix + query
            text_vector = lambda: embedder.embed_query(text, matching.model)  # noqa: E731
        if matching.space != "text":
            image_vector = lambda: embedder.embed_text_for_images(query)  # noqa: E731
        return _Query(query, text_vector, image_vector)

    def _stored_vectors(self, collection: str, ids: list[str]) -> dict[str, np.ndarray]:
        rows = self._vectors.fetch_fields(collection, ids, [VECTOR_FIELD])
        return {i: np.asarray(r[VECTOR_FIELD], dtype=np.float32) for i, r in rows.items()}

    @staticmethod
    def _hit(
        matched: Match,
        document: dict[str, Any] | None,
        params: SummaryParams,
        terms: Terms,
    ) -> Hit:
        if document is None:
            return Hit(id=matched.id, score=matched.score, document=None)
        shown, marks, snippet = summarize(document, params, terms)
        return Hit(
            id=matched.id, score=matched.score, document=shown, highlights=marks, snippet=snippet
        )


@dataclass(frozen=True)
class _Query:
    """A query ready to match: its text and the match experiment's vectors (each computed on
    first call), or a mixed one."""

    text: str
    vector: Callable[[], np.ndarray] | None = None
    image_vector: Callable[[], np.ndarray] | None = None
    mixed: EmbeddedQuery | None = None


class _RequestEmbedder:
    """The embedder as one request sees it: each text embedded once (the spelling check reads
    the vectors the searches made), and the time spent embedding summed for the timings."""

    def __init__(self, embedder: QueryEmbedder) -> None:
        self._embedder = embedder
        self._vectors: dict[tuple[str, str, str | None], np.ndarray] = {}
        self._lock = threading.Lock()
        self._memo_lock = threading.Lock()
        self.seconds = 0.0

    def timed(self, compute: Callable[[], _T]) -> _T:
        started = perf_counter()
        try:
            return compute()
        finally:
            with self._lock:
                self.seconds += perf_counter() - started

    def _memo(
        self, key: tuple[str, str, str | None], compute: Callable[[], np.ndarray]
    ) -> np.ndarray:
        # Under the lock: two threads of one request asking for the same vector embed it once.
        with self._memo_lock:
            found = self._vectors.get(key)
            if found is None:
                found = self._vectors[key] = self.timed(compute)
            return found

    def embed_query(self, text: str, model: str | None = None) -> np.ndarray:
        return self._memo(("text", text, model), lambda: self._embedder.embed_query(text, model))

    def embed_image(self, image: bytes) -> np.ndarray:
        return self.timed(lambda: self._embedder.embed_image(image))

    def embed_text_for_images(self, text: str) -> np.ndarray:
        return self._memo(("image", text, None), lambda: self._embedder.embed_text_for_images(text))


@dataclass(frozen=True)
class _Page:
    """What `search` checked once for every pass of one request: the filters, the facet
    fields, the page's offset, and the request as sent (page tokens are bound to it)."""

    request: SearchRequest
    filters: Filters
    facets: list[str]
    offset: int


def _one_list(matching: MatchParams, scene: Scene) -> bool:
    """Whether the match experiment answers from one list: dense, or BM25 over one field."""
    if matching.space == "both" or matching.kind == "hybrid":
        return False
    return matching.kind == "dense" or len(scene.searched_lexical_fields) <= 1


def _ms(a: float, b: float) -> float:
    return round((b - a) * 1000, 3)


def emit_metrics(response: SearchResponse, forced: bool = False) -> None:
    """One EMF metric blob per layer: requests and latency by scene, layer and experiment.
    A request that forced its experiments is counted apart: it would skew the comparison.
    Written as CloudWatch's embedded metric format directly, in one write (powertools'
    EphemeralMetrics took 0.7 ms a request for the same four lines)."""
    if is_metrics_disabled():  # POWERTOOLS_METRICS_DISABLED, as powertools reads it
        return
    scene = {"scene": response.scene}
    if forced:
        lines = [_emf(scene, [("ForcedRequests", "Count", 1.0)])]
    else:
        measured = [
            ("Requests", "Count", 1.0),
            ("LatencyMs", "Milliseconds", response.timings_ms.total),
            ("Hits", "Count", float(len(response.hits))),
        ]
        lines = [
            _emf({**scene, "layer": layer, "experiment": experiment}, measured)
            for layer, experiment in response.experiments.items()
        ]
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def _emf(dimensions: dict[str, str], metrics: list[tuple[str, str, float]]) -> str:
    """One line of CloudWatch's embedded metric format: `metrics` (name, unit, value) under
    one dimension set."""
    directive = {
        "Namespace": METRICS_NAMESPACE,
        "Dimensions": [list(dimensions)],
        "Metrics": [{"Name": name, "Unit": unit} for name, unit, _ in metrics],
    }
    blob = {
        "_aws": {"Timestamp": int(time.time() * 1000), "CloudWatchMetrics": [directive]},
        **dimensions,
        **{name: [value] for name, _, value in metrics},
    }
    return json.dumps(blob, separators=(",", ":"))


def build_search_service(
    settings: Settings, embedder: QueryEmbedder, documents: DocumentFetcher
) -> SearchService:
    """Wire the pipeline to the vector store named by `settings`."""
    return SearchService(
        embedder,
        open_vector_store(settings),
        documents,
        collection_for=lambda scene: collection_name(settings, scene),
        max_query_chars=settings.max_query_chars,
        config=config_source(settings),
        max_image_bytes=settings.max_body_bytes,
        limits=SearchLimits.from_settings(settings),
        degrade_without_documents=settings.degrade_without_documents,
        debug=DebugAccess.from_settings(settings),
        relevance=RelevanceTables.load(),
        # The vocabulary lives in the document store, which only an in-process search reads.
        vocabulary=(
            VocabularySource(open_document_store(settings))
            if settings.deployment != "lambda"
            else None
        ),
    )


def config_source(settings: Settings) -> ConfigSource:
    """AppConfig when configured (AWS), else the YAML file, reloaded when it changes."""
    if settings.appconfig_application:
        return AppConfig(
            settings.appconfig_application,
            settings.appconfig_environment,
            settings.appconfig_profile,
            settings.appconfig_max_age_s,
        )
    return FileConfig(settings.pipeline_config or DEFAULT_CONFIG, settings.pipeline_reload_s)


def dependencies(settings: Settings) -> tuple[QueryEmbedder, DocumentFetcher]:
    """Preprocess and summary: other Lambda functions in a split deployment, else in-process."""
    if settings.deployment == "lambda":
        client = lambda_client()  # timeouts bounded inside search's 15 s
        if not settings.preprocess_function or not settings.summary_function:
            raise ValueError(
                "split deployment needs MMSEARCH_PREPROCESS_FUNCTION and _SUMMARY_FUNCTION"
            )
        return (
            LambdaEmbedder(LambdaInvoker(client, settings.preprocess_function, "preprocess")),
            LambdaDocuments(LambdaInvoker(client, settings.summary_function, "summary")),
        )
    from functions.preprocess.service import build_preprocessor

    return (
        InProcessEmbedder(build_preprocessor(settings)),
        InProcessDocuments(open_document_store(settings)),
    )


def routes(service: SearchService) -> list[Route]:
    """Routes of the search function."""

    def search(request: SearchRequest) -> SearchResponse:
        """Search one scene: embed the query, match in Milvus, rank, attach documents."""
        response = service.search(request)
        logger.info(
            "search",
            correlation_id=correlation.current(),
            scene=response.scene,
            experiments=response.experiments,
            top_k=request.top_k,
            hits=len(response.hits),
            filtered=bool(request.filters),
            timings_ms=response.timings_ms.model_dump(),
        )
        emit_metrics(response, forced=bool(request.debug and request.debug.experiments))
        return response

    def scenes() -> ScenesResponse:
        """The configured scenes, each layer's experiments and their traffic ratios."""
        configured = service.config.scenes
        declared = current_scenes()
        return ScenesResponse(
            scenes={
                name: SceneDescription(
                    kind=scene.kind,
                    query=scene.query,
                    filterable=scene.filter_types,
                    max_results=scene.max_results,
                    fields={f: scene.fields[f].type for f in scene.returned or scene.fields},
                    layers={
                        layer: {e: x.ratio for e, x in pipeline.layer(layer).experiments.items()}
                        for layer in LAYERS
                    },
                )
                for name, scene in declared.items()
                for pipeline in [configured.get(name) or default_scene_config(scene)]
            }
        )

    return [
        Route("POST", "/v1/search", SearchRequest, SearchResponse, search, "search", form=True),
        Route("GET", "/v1/scenes", None, ScenesResponse, scenes, "search"),
    ]
