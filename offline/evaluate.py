"""Retrieval quality on BEIR folders: nDCG@10, Recall@100, MRR@10 through the real search path."""

from __future__ import annotations

import json
import math
import re
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from functions.core.errors import ServiceError
from functions.core.http.schemas import Debug, SearchRequest
from functions.core.models.text_encoder import TextEncoder
from functions.core.pipeline_config import PipelineConfig, SceneConfig
from functions.core.scenes import QA, get_scene
from functions.core.settings import Settings
from functions.core.stores.factory import (
    collection_name,
    image_collection,
    open_document_store,
    open_vector_store,
)
from functions.preprocess.service import Preprocessor
from functions.search.clients import InProcessDocuments, InProcessEmbedder
from functions.search.config_source import StaticConfig
from functions.search.service import SearchService, config_source
from functions.search.spelling import (
    count_terms,
    save_vocabulary,
    vocabulary_store,
)
from indexing.corpus import QADocument, read_corpus
from indexing.indexer import Indexer
from offline.eval_sets import LabelledSet

Qrels = dict[str, dict[str, int]]
Run = dict[str, list[str]]


@dataclass(frozen=True)
class Metrics:
    ndcg_at_10: float
    recall_at_100: float
    mrr_at_10: float
    queries: int
    docs: int

    def as_json(self) -> dict[str, float | int]:
        values = asdict(self)
        return {
            "ndcg@10": round(values["ndcg_at_10"], 5),
            "recall@100": round(values["recall_at_100"], 5),
            "mrr@10": round(values["mrr_at_10"], 5),
            "queries": self.queries,
            "docs": self.docs,
        }


def read_queries(folder: Path) -> dict[str, str]:
    """BEIR queries.jsonl as {query id: text}."""
    with (folder / "queries.jsonl").open(encoding="utf-8") as fh:
        rows = (json.loads(line) for line in fh if line.strip())
        return {str(r["_id"]): str(r["text"]) for r in rows}


def read_qrels(folder: Path) -> Qrels:
    """BEIR qrels (tsv with a header: query-id, corpus-id, score) as {query: {doc: grade}}."""
    path = folder / "qrels.tsv"
    if not path.exists():
        path = folder / "qrels" / "test.tsv"
    qrels: Qrels = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        parts = line.split("\t")
        if number == 0 and not parts[-1].strip().lstrip("-").isdigit():
            continue
        if len(parts) >= 3 and int(parts[2]) > 0:
            qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    return qrels


def score_run(run: Run, qrels: Qrels, docs: int) -> Metrics:
    """Mean nDCG@10 (linear gain, as trec_eval), Recall@100 and MRR@10 over judged queries."""
    ndcg, recall, mrr = [], [], []
    for query, relevant in qrels.items():
        ranked = run.get(query, [])
        gains = [relevant.get(d, 0) for d in ranked[:10]]
        dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains))
        ideal = sorted(relevant.values(), reverse=True)[:10]
        idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
        ndcg.append(dcg / idcg if idcg else 0.0)
        recall.append(len(set(ranked[:100]) & set(relevant)) / len(relevant))
        first = next((i for i, d in enumerate(ranked[:10]) if d in relevant), None)
        mrr.append(0.0 if first is None else 1.0 / (first + 1))
    n = len(qrels)
    return Metrics(sum(ndcg) / n, sum(recall) / n, sum(mrr) / n, queries=n, docs=docs)


MATCH_KINDS = ("dense", "bm25", "hybrid")


def evaluate_search(
    settings: Settings,
    folder: Path,
    *,
    top_k: int = 100,
    matches: Sequence[str] = ("dense",),
    rank_experiment: str | None = None,
    config: PipelineConfig | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Metrics]:
    """Index `folder` once into throwaway collections, query it through `SearchService` with
    each match kind in `matches` (the scene's first match experiment of that kind) and the
    configured ranker (the rank experiment with most traffic, or `rank_experiment`), drop them.
    Returns {match kind: metrics}."""
    corpus = read_corpus(folder)
    queries, qrels = read_queries(folder), read_qrels(folder)
    qrels = {q: r for q, r in qrels.items() if q in queries}
    config = config or config_source(settings).get()
    scene_config = config.scenes[QA.name]
    forced = [(kind, experiment_for(scene_config, kind)) for kind in matches]
    ranker = rank_experiment or default_ranker(scene_config)
    if ranker not in scene_config.rank.experiments:
        raise ValueError(f"no rank experiment {ranker!r} in the pipeline configuration")
    scratch = settings.model_copy(
        update={"collection_prefix": f"{settings.collection_prefix}eval_{uuid.uuid4().hex[:8]}_"}
    )
    encoder = TextEncoder.load(scratch.resolved_model_dir, threads=scratch.encoder_threads)
    vectors, documents = open_vector_store(scratch), open_document_store(scratch)
    collection = collection_name(scratch, QA)
    results: dict[str, Metrics] = {}
    try:
        indexer = Indexer(encoder, vectors, documents, encode_batch_size=scratch.encode_batch_size)
        done = 0

        def on_batch(n: int) -> None:
            nonlocal done
            done += n
            if progress:
                progress("index", done, len(corpus.documents))

        indexer.run(QA, collection, corpus.documents, on_batch)
        preprocessor = Preprocessor(encoder, max_chars=scratch.max_query_chars)
        service = SearchService(
            InProcessEmbedder(preprocessor),
            vectors,
            InProcessDocuments(documents),
            collection_for=lambda _: collection,
            max_query_chars=scratch.max_query_chars,
            config=StaticConfig(config),
        )
        for kind, experiment in forced:
            debug = Debug(experiments={"match": experiment, "rank": ranker})
            run: Run = {}
            for i, query_id in enumerate(qrels, start=1):
                request = SearchRequest(
                    scene=QA.name, query=queries[query_id], top_k=top_k, debug=debug
                )
                run[query_id] = [hit.id for hit in service.search(request).hits]
                if progress:
                    progress(f"search ({kind})", i, len(qrels))
            results[kind] = score_run(run, qrels, docs=len(corpus.documents))
    finally:
        vectors.drop(collection)
        documents.drop(QA.store)
        documents.close()
    return results


def default_ranker(scene_config: SceneConfig) -> str:
    """The rank experiment with the most traffic (the first of equals)."""
    experiments = scene_config.rank.experiments
    return max(experiments, key=lambda name: experiments[name].ratio)


def experiment_for(scene_config: SceneConfig, kind: str) -> str:
    """The scene's first match experiment of `kind`."""
    for name, experiment in scene_config.match.experiments.items():
        if experiment.params.kind == kind:
            return name
    raise ValueError(f"the pipeline configuration has no match experiment of kind {kind!r}")


def exact_reference_run(
    model_source: str, docs: Sequence[QADocument], queries: Mapping[str, str], top_k: int = 100
) -> Run:
    """The reference: sentence-transformers embeddings and exact cosine search over every doc."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(model_source, device="cpu")
    texts = [QA.embedding_text(d.model_dump()) for d in docs]
    doc_matrix = model.encode(texts, batch_size=32, normalize_embeddings=True)
    ids = list(queries)
    query_matrix = model.encode([queries[i] for i in ids], batch_size=32, normalize_embeddings=True)
    scores = np.asarray(query_matrix) @ np.asarray(doc_matrix).T
    top = np.argsort(-scores, axis=1, kind="stable")[:, :top_k]
    return {q: [docs[j].id for j in top[row]] for row, q in enumerate(ids)}


def evaluate_reference(model_source: str, folder: Path, top_k: int = 100) -> Metrics:
    """Metrics of the sentence-transformers exact-search reference on the same folder."""
    corpus = read_corpus(folder)
    queries, qrels = read_queries(folder), read_qrels(folder)
    qrels = {q: r for q, r in qrels.items() if q in queries}
    run = exact_reference_run(model_source, corpus.documents, {q: queries[q] for q in qrels}, top_k)
    return score_run(run, qrels, docs=len(corpus.documents))


# --- Every mode on every labelled set (issue 16) -------------------------------------------

ScoredRun = dict[str, list[tuple[str, float]]]


@dataclass(frozen=True)
class SetRuns:
    """One labelled set's raw runs (top 100 with scores) per match experiment."""

    labelled: LabelledSet
    runs: dict[str, ScoredRun]
    docs: int
    junk: dict[str, ScoredRun] = field(default_factory=dict)  # unanswerable queries' runs


def index_labelled(
    settings: Settings, labelled: LabelledSet, progress: Callable[[str, int, int], None] | None
) -> tuple[Callable[[bool], None], Callable[[PipelineConfig], SearchService], int]:
    """Index the set's corpus into throwaway collections; returns (drop, service for a
    configuration, documents indexed)."""
    scene = get_scene(labelled.scene)
    encoder = TextEncoder.load(settings.resolved_model_dir, threads=settings.encoder_threads)
    vectors, documents = open_vector_store(settings), open_document_store(settings)
    collection = collection_name(settings, scene)
    corpus: Any
    if scene.kind == "image":
        from functions.core.models.image_space import load_image_space
        from indexing.image_corpus import read_image_corpus
        from indexing.image_indexer import ImageIndexer
        from indexing.media import LocalMedia

        corpus = read_image_corpus(labelled.corpus)
        indexer: Any = ImageIndexer(
            encoder,
            load_image_space(settings),
            vectors,
            documents,
            LocalMedia(settings.home / "media", settings.media_base_url),
            batch_size=64,
            encode_batch_size=settings.encode_batch_size,
        )
    else:
        corpus = read_corpus(labelled.corpus)
        indexer = Indexer(encoder, vectors, documents, encode_batch_size=settings.encode_batch_size)
    done = 0

    def on_batch(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress(f"index {labelled.name}", done, len(corpus.documents))

    indexer.run(scene, collection, corpus.documents, on_batch, prune=True)
    texts = (scene.embedding_text(d.model_dump()) for d in corpus.documents)
    save_vocabulary(documents, scene.store, count_terms(texts))
    preprocessor = Preprocessor(encoder, max_chars=settings.max_query_chars)

    def service(config: PipelineConfig) -> SearchService:
        return SearchService(
            InProcessEmbedder(preprocessor),
            vectors,
            InProcessDocuments(documents),
            collection_for=lambda _: collection,
            max_query_chars=settings.max_query_chars,
            config=StaticConfig(config),  # no vocabulary: corrections would change the queries
        )

    def drop(keep: bool = False) -> None:
        # Results matter more than the scratch collections: a slow drop only warns.
        try:
            if not keep:
                for name in (collection, image_collection(collection)):
                    if vectors.has_collection(name):
                        vectors.drop(name)
                documents.drop(scene.store)
                documents.drop(vocabulary_store(scene.store))
        except ServiceError as exc:
            warnings.warn(
                f"scratch collections of {labelled.name} left behind: {exc}", stacklevel=2
            )
        finally:
            documents.close()

    return drop, service, len(corpus.documents)


def scored_run(
    service: SearchService,
    labelled: LabelledSet,
    experiments: Mapping[str, str],
    top_k: int = 100,
    progress: Callable[[str, int, int], None] | None = None,
) -> ScoredRun:
    """Each judged query through the real search path with `experiments` forced per layer."""
    debug = Debug(experiments=dict(experiments))
    run: ScoredRun = {}
    for i, query_id in enumerate(labelled.qrels, start=1):
        request = SearchRequest(
            scene=labelled.scene, query=labelled.queries[query_id], top_k=top_k, debug=debug
        )
        run[query_id] = [(hit.id, hit.score) for hit in service.search(request).hits]
        if progress:
            progress(f"search {labelled.name} ({experiments.get('match')})", i, len(labelled.qrels))
    return run


def ids_of(run: ScoredRun) -> Run:
    """A scored run as ranked ids."""
    return {q: [d for d, _ in hits] for q, hits in run.items()}


def collect_runs(
    settings: Settings,
    labelled: LabelledSet,
    config: PipelineConfig,
    matches: Sequence[str],
    *,
    rank_experiment: str = "score",
    top_k: int = 100,
    progress: Callable[[str, int, int], None] | None = None,
    keep: bool = False,
    junk: Sequence[str] = (),
) -> SetRuns:
    """Index `labelled` once and run each match experiment in `matches` over its queries.
    With `keep`, the collections are named after the set and kept, so a later run embeds
    only what changed."""
    tag = re.sub(r"\W+", "_", labelled.name) if keep else uuid.uuid4().hex[:8]
    scratch = settings.model_copy(
        update={"collection_prefix": f"{settings.collection_prefix}eval_{tag}_"}
    )
    drop, service_for, docs = index_labelled(scratch, labelled, progress)
    try:
        service = service_for(config)
        runs = {
            name: scored_run(
                service, labelled, {"match": name, "rank": rank_experiment}, top_k, progress
            )
            for name in matches
        }
        unanswerable = LabelledSet(
            labelled.name,
            labelled.scene,
            labelled.corpus,
            {f"junk{i}": q for i, q in enumerate(junk)},
            {f"junk{i}": {} for i in range(len(junk))},
        )
        junk_runs = {
            name: scored_run(service, unanswerable, {"match": name, "rank": rank_experiment}, 10)
            for name in matches
        }
    finally:
        drop(keep)
    return SetRuns(labelled, runs, docs, junk_runs)
