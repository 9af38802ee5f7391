"""The bench's quality row: what `mmsearch eval --beir FOLDER --match all` measures, faster.

`mmsearch eval` (offline/evaluate.py `evaluate_search`) indexes the folder into throwaway
collections, then asks `SearchService.search` each judged query once per match kind (the
scene's first match experiment of that kind, forced with debug; the served rank experiment;
top 100) and scores the hit ids (nDCG@10, Recall@100, MRR@10). This module runs the same
service on the same requests and scores them with the same `score_run`, with two differences
that leave the figures as they are:

- The indexed folder is kept across runs, in its own Milvus Lite file and MongoDB-wire data
  under a key that hashes the folder, the model and every source file the index depends on
  (`cache_key`); a marker written after a complete build makes later runs reuse it. Embedding
  SciFact's 5,183 abstracts (up to 256 tokens each) is most of the step on 2 cores, so the
  vectors are also kept, by text, under a key of the model's files and the encoder's code
  (`VectorCache`): when only other code changed, the rebuild writes the stores and embeds
  nothing.
- The scoring needs hit ids only, so the searches fetch no documents (a fetcher that finds
  none): fetching and summarising (highlighting) 100 abstracts per query, three times per
  query, was three quarters of each search. The first `VERIFY` queries of every kind are
  asked both ways and their ids compared, so a day the documents change the ranking, the run
  says so. A query's vector is computed once and reused by the dense and hybrid passes (the
  encoder is deterministic).

Run as its own process (`python -m offline.bench.quality`): Milvus Lite lets one process open
a data file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
VERIFY = 20  # queries per kind also asked with the documents fetched
PREFIX = "quality_"
# What the indexed collections depend on besides the folder and the model: the scenes, the
# encoder, the stores (schemas, BM25 analyzers) and the indexer.
INDEX_SOURCES = ("functions/core", "indexing")


ENCODER_SOURCES = ("functions/core/models/text_encoder.py",)


def vector_key(model_files: dict[str, str], root: Path = ROOT) -> str:
    """Changes with any file of the exported model (weights, tokenizer) and the encoder code."""
    digest = hashlib.sha256(json.dumps(model_files, sort_keys=True).encode())
    for name in ENCODER_SOURCES:
        digest.update((root / name).read_bytes())
    return digest.hexdigest()[:16]


class VectorCache:
    """An encoder whose vectors of texts already embedded (with the same model and encoder
    code: `vector_key`) come from a file; `save` writes the file. Quacks as the `Indexer`
    needs: `embed`, `dim`, `manifest`."""

    def __init__(self, encoder: Any, path: Path) -> None:
        import numpy as np

        self._encoder = encoder
        self._path = path
        self.dim = encoder.dim
        self.manifest = encoder.manifest
        self._known: dict[str, Any] = {}
        self.embedded = 0
        if path.exists():
            with np.load(path) as stored:
                self._known = dict(zip(stored["keys"].tolist(), stored["vectors"], strict=True))

    @staticmethod
    def _key(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()

    def embed(self, texts: Sequence[str], batch_size: int = 32) -> Any:
        import numpy as np

        keys = [self._key(t) for t in texts]
        firsts: dict[str, int] = {}
        for i, k in enumerate(keys):
            if k not in self._known:
                firsts.setdefault(k, i)
        missing = list(firsts.values())
        if missing:
            vectors = self._encoder.embed([texts[i] for i in missing], batch_size=batch_size)
            self._known.update((keys[i], v) for i, v in zip(missing, vectors, strict=True))
            self.embedded += len(missing)
        return np.stack([self._known[k] for k in keys]) if keys else np.empty((0, self.dim))

    def save(self) -> None:
        import numpy as np

        self._path.parent.mkdir(parents=True, exist_ok=True)
        keys = list(self._known)
        partial = self._path.with_suffix(".partial.npz")
        np.savez(partial, keys=np.asarray(keys), vectors=np.stack([self._known[k] for k in keys]))
        partial.replace(self._path)


class ReusedVectors:
    """A query embedder that embeds each (text, model) once: dense and hybrid ask for the
    same query's vector."""

    def __init__(self, embedder: Any) -> None:
        self._embedder = embedder
        self._vectors: dict[tuple[str, str | None], Any] = {}

    def embed_query(self, text: str, model: str | None = None) -> Any:
        key = (text, model)
        if key not in self._vectors:
            self._vectors[key] = self._embedder.embed_query(text, model)
        return self._vectors[key]

    def embed_image(self, image: bytes) -> Any:
        return self._embedder.embed_image(image)

    def embed_text_for_images(self, text: str) -> Any:
        return self._embedder.embed_text_for_images(text)


class NoDocuments:
    """A document fetcher that finds nothing: hits keep their ids and scores."""

    def fetch(self, scene: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        return {}


def cache_key(folder: Path, model_sha: str, root: Path = ROOT) -> str:
    """Changes with the folder's corpus, the model and any source the index depends on."""
    digest = hashlib.sha256(model_sha.encode() + b"\0")
    digest.update((folder / "corpus.jsonl").read_bytes())
    sources = [p for top in INDEX_SOURCES for p in sorted((root / top).rglob("*")) if p.is_file()]
    for path in sources:
        if path.suffix in (".py", ".yaml", ".json"):
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    digest.update(Path(__file__).read_bytes())
    return digest.hexdigest()[:16]


def measure(
    folder: Path, marker: Path, top_k: int = 100, vectors_dir: Path | None = None
) -> dict[str, Any]:
    """Index `folder` unless `marker` says it is (embedding only texts whose vectors are not
    kept in `vectors_dir`), then score every match kind; the JSON that `mmsearch eval --json`
    prints, with the seconds each part took."""
    from functions.core.http.schemas import Debug, SearchRequest
    from functions.core.models.manifest import ModelManifest
    from functions.core.models.text_encoder import TextEncoder
    from functions.core.scenes import QA
    from functions.core.settings import Settings
    from functions.core.stores.factory import (
        collection_name,
        open_document_store,
        open_vector_store,
    )
    from functions.preprocess.service import Preprocessor
    from functions.search.clients import InProcessDocuments, InProcessEmbedder
    from functions.search.config_source import StaticConfig
    from functions.search.service import SearchService, config_source
    from indexing.corpus import read_corpus
    from indexing.indexer import Indexer
    from offline.evaluate import (
        MATCH_KINDS,
        default_ranker,
        experiment_for,
        read_qrels,
        read_queries,
        score_run,
    )
    from offline.model_push import model_version

    base = Settings()
    # As `mmsearch eval` runs: the batch store timeout, collections of their own.
    settings = base.model_copy(
        update={"store_timeout_s": base.batch_timeout_s, "collection_prefix": PREFIX}
    )
    started = time.perf_counter()
    corpus = read_corpus(folder)
    queries, qrels = read_queries(folder), read_qrels(folder)
    qrels = {q: r for q, r in qrels.items() if q in queries}
    config = config_source(settings).get()
    scene_config = config.scenes[QA.name]
    ranker = default_ranker(scene_config)
    encoder = TextEncoder.load(settings.resolved_model_dir, threads=settings.encoder_threads)
    vectors, documents = open_vector_store(settings), open_document_store(settings)
    collection = collection_name(settings, QA)
    cached = marker.exists()
    embedded = 0
    if not cached:
        kept = vectors_dir or marker.parent
        batch = VectorCache(encoder, kept / f"vectors-{vector_key(encoder.manifest.files)}.npz")
        indexer = Indexer(
            batch,  # type: ignore[arg-type]  # an encoder as far as the indexer asks
            vectors,
            documents,
            encode_batch_size=settings.encode_batch_size,
        )
        indexer.run(QA, collection, corpus.documents, prune=True)
        batch.save()
        embedded = batch.embedded
        marker.write_text(
            json.dumps({"index_s": round(time.perf_counter() - started, 1), "embedded": embedded})
        )
    index_s = time.perf_counter() - started

    embedder = ReusedVectors(
        InProcessEmbedder(Preprocessor(encoder, max_chars=settings.max_query_chars))
    )

    def service(fetcher: Any) -> SearchService:
        return SearchService(
            embedder,
            vectors,
            fetcher,
            collection_for=lambda _: collection,
            max_query_chars=settings.max_query_chars,
            config=StaticConfig(config),
        )

    ids_only, with_documents = service(NoDocuments()), service(InProcessDocuments(documents))
    by_match: dict[str, Any] = {}
    search_s: dict[str, float] = {}
    differing: list[str] = []
    for kind in MATCH_KINDS:
        kind_started = time.perf_counter()
        debug = Debug(experiments={"match": experiment_for(scene_config, kind), "rank": ranker})
        run: dict[str, list[str]] = {}
        for i, query_id in enumerate(qrels):
            request = SearchRequest(
                scene=QA.name, query=queries[query_id], top_k=top_k, debug=debug
            )
            run[query_id] = [hit.id for hit in ids_only.search(request).hits]
            if i < VERIFY and [h.id for h in with_documents.search(request).hits] != run[query_id]:
                differing.append(f"{kind}:{query_id}")
        by_match[kind] = score_run(run, qrels, docs=len(corpus.documents)).as_json()
        search_s[kind] = round(time.perf_counter() - kind_started, 1)
    documents.close()
    manifest = ModelManifest.read(settings.resolved_model_dir)
    first = MATCH_KINDS[0]
    return {
        **by_match[first],
        "match": first,
        "rank": ranker,
        "model": f"{manifest.name}@{model_version(manifest)}",  # as `mmsearch eval` names it
        "by_match": by_match,
        "index_cached": cached,
        "embedded": embedded,  # texts the encoder embedded in this run (0: vectors kept)
        "index_s": round(index_s, 1),
        "first_index_s": json.loads(marker.read_text())["index_s"],
        "search_s": search_s,
        "verified_queries": min(VERIFY, len(qrels)),
        "ids_differ_with_documents": differing,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beir", type=Path, required=True, help="corpus, queries, qrels")
    parser.add_argument("--marker", type=Path, required=True, help="written once indexed")
    parser.add_argument("--top-k", type=int, default=100)
    parser.add_argument("--vectors", type=Path, help="where vectors are kept across builds")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.beir, args.marker, args.top_k, args.vectors)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
