"""Larger corpora for latency-at-scale: the real corpus, then synthetic documents with
realistic term statistics and real-plus-noise vectors.

The first documents are the real embedded corpus. Every further document gets a distinct
text sampled from a word-level bigram model of real texts (every WordNet gloss, SciFact and
climate-fever; `corpus.BigramModel`, fixed seed), so BM25's posting lists grow as a real
corpus's would (copies of 10k texts made every list 100x denser at 1M). Embedding a million
texts takes hours on 2 cores, so a synthetic document's vector is the vector of real document
`index % n` plus small Gaussian noise (re-normalised): the text and the vector do not match.
Documents go to MongoDB with insert_many (fresh collections), vectors in 1,000-row batches.
A build is cached under a key that hashes everything it depends on (`cache_key`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from functions.core.scenes import QA
from functions.core.stores.vector_store import MilvusVectorStore, VectorRecord
from offline.bench import corpus
from offline.bench.corpus import BigramModel, distinct_samples

SYNTHETIC = "bigram"  # the scale rows' label for how their texts were made
SEED = 7
NOISE = 0.02
# Building or loading the index of a million rows takes minutes on 2 cores (606 s once, on a
# busy machine): each store call of a build may take up to an hour.
CALL_TIMEOUT_S = 3600.0


def fetch_vectors(store: MilvusVectorStore, collection: str, ids: Sequence[str]) -> np.ndarray:
    """The stored vectors of `ids`, in order."""
    client = store._connect()
    found: dict[str, list[float]] = {}
    for start in range(0, len(ids), 1000):
        chunk = list(ids[start : start + 1000])
        rows = client.get(collection, ids=chunk, output_fields=["id", "vector"], timeout=60)
        found.update({str(r["id"]): r["vector"] for r in rows})
    return np.asarray([found[i] for i in ids], dtype=np.float32)


def cache_key(corpus_file: Path, size: int, model_sha: str) -> str:
    """Changes with anything a scale build depends on: the real corpus, the size, the model,
    the seed and noise, the texts the bigram models learn from, and this code."""
    digest = hashlib.sha256()
    for part in (str(size), model_sha, str(SEED), str(NOISE), SYNTHETIC):
        digest.update(part.encode() + b"\0")
    wordnet = corpus_file.parent / corpus.WORDNET_ALL
    sources = (corpus_file, wordnet, Path(__file__), Path(corpus.__file__), *model_source_files())
    for path in sources:
        digest.update(path.read_bytes() if path.exists() else b"-")
    return digest.hexdigest()[:16]


def model_source_files() -> list[Path]:
    """The BEIR corpora the bigram models learn from besides WordNet."""
    return [corpus.SHARED_DATA / name / "corpus.jsonl" for name in corpus.MODEL_SOURCES]


def text_models(wordnet: Sequence[dict[str, Any]]) -> tuple[BigramModel, BigramModel]:
    """Bigram models of questions (WordNet lemmas, BEIR titles) and answers (glosses, texts)."""
    folders = [corpus.SHARED_DATA / name for name in corpus.MODEL_SOURCES]
    questions = BigramModel.fit([*corpus.real_texts(wordnet, "question"), *_beir(folders, "title")])
    answers = BigramModel.fit([*corpus.real_texts(wordnet, "answer"), *_beir(folders, "text")])
    return questions, answers


def _beir(folders: Sequence[Path], field: str) -> list[str]:
    return [t for folder in folders for t in corpus.beir_texts(folder, field)]


def build_replicated(
    vectors: MilvusVectorStore,
    mongo_db: Any,
    collection: str,
    documents: Sequence[dict[str, Any]],
    base_vectors: np.ndarray,
    size: int,
    models: tuple[BigramModel, BigramModel],
) -> None:
    """Write `size` documents (the real ones, then synthetic ones) into fresh collections and
    index them."""
    vectors.drop(collection)
    mongo_db.drop_collection(collection)
    vectors.ensure_collection(collection, base_vectors.shape[1], QA.array_filter_fields)
    # MongoDB writes run beside the Milvus writes (both stores are other processes), one batch
    # in flight, so a failure surfaces at the next batch and memory stays bounded.
    with ThreadPoolExecutor(1) as mongo_writer:
        pending: Future[Any] | None = None
        for records, bodies in _replicas(documents, base_vectors, size, models):
            vectors.upsert(collection, records)
            if pending is not None:
                pending.result()
            pending = mongo_writer.submit(mongo_db[collection].insert_many, bodies, ordered=False)
        if pending is not None:
            pending.result()
    vectors.build_index(collection)


def synthetic_documents(
    documents: Sequence[dict[str, Any]],
    start: int,
    stop: int,
    models: tuple[BigramModel, BigramModel],
    rng: np.random.Generator,
    seen: set[int],
) -> list[dict[str, Any]]:
    """Documents `start`..`stop` of the scale corpus: real ones first, then synthetic ones
    (id `syn<index>`, sampled question and answer, the category of real document
    `index % n`); `seen` holds the answers' hashes, so every text is distinct."""
    real = [dict(documents[i]) for i in range(start, min(stop, len(documents)))]
    first = max(start, len(documents))
    if first >= stop:
        return real
    questions, answers = models
    asked = questions.sample(stop - first, rng)
    answered = distinct_samples(answers, stop - first, rng, seen)
    made = [
        {
            "id": f"syn{index:07d}",
            "question": question,
            "answer": answer,
            "category": documents[index % len(documents)].get("category", []),
        }
        for index, question, answer in zip(range(first, stop), asked, answered, strict=True)
    ]
    return real + made


def _replicas(
    documents: Sequence[dict[str, Any]],
    base_vectors: np.ndarray,
    size: int,
    models: tuple[BigramModel, BigramModel],
    batch: int = 1000,
) -> Iterator[tuple[list[VectorRecord], list[dict[str, Any]]]]:
    """Batches of (vector records, MongoDB documents) of the scale corpus."""
    rng = np.random.default_rng(SEED)
    seen = {hash(str(d.get("answer") or "")) for d in documents}
    for start in range(0, size, batch):
        index = np.arange(start, min(start + batch, size))
        source = index % len(documents)
        matrix = base_vectors[source] + rng.normal(0, NOISE, (len(index), base_vectors.shape[1]))
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
        made = synthetic_documents(documents, int(index[0]), int(index[-1]) + 1, models, rng, seen)
        yield (
            [
                VectorRecord(str(d["id"]), matrix[row], QA.filter_values(d), QA.embedding_text(d))
                for row, d in enumerate(made)
            ],
            [{**_body(d), "_id": d["id"]} for d in made],
        )


def _body(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k != "id"}


def main() -> None:
    """Build one scale collection unless `--marker` says this key's build is complete; run as
    its own process, because Milvus Lite lets only one process open a data file and the
    server that is measured next needs it."""
    from pymongo import MongoClient

    from functions.core.settings import Settings
    from functions.core.stores.factory import open_vector_store

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--home", type=Path, required=True, help="Holds the indexed corpus.")
    parser.add_argument("--mongo-uri", required=True, help="Where the documents go.")
    parser.add_argument("--milvus-uri", help="Where the vectors go (default: the home's).")
    parser.add_argument("--corpus", type=Path, required=True, help="The indexed real corpus.")
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--marker", type=Path, help="Written once the build is complete.")
    args = parser.parse_args()
    if args.marker is not None and args.marker.exists():
        print(json.dumps({"build_s": 0.0, "cached": True}))
        return
    documents = [json.loads(line) for line in args.corpus.read_text(encoding="utf-8").splitlines()]
    home = open_vector_store(Settings(home=args.home, store_timeout_s=CALL_TIMEOUT_S))
    started = time.perf_counter()
    base = fetch_vectors(home, "mmsearch_qa", [d["id"] for d in documents])
    target = home
    if args.milvus_uri:
        target = open_vector_store(
            Settings(home=args.home, milvus_uri=args.milvus_uri, store_timeout_s=CALL_TIMEOUT_S)
        )
    wordnet = [json.loads(line) for line in corpus.wordnet_records(args.corpus.parent)]
    client: MongoClient[dict[str, Any]] = MongoClient(args.mongo_uri)
    models = text_models(wordnet)
    build_replicated(
        target, client["mmsearch"], f"{args.prefix}qa", documents, base, args.size, models
    )
    build_s = round(time.perf_counter() - started, 1)
    if args.marker is not None:
        args.marker.write_text(json.dumps({"build_s": build_s, "size": args.size}))
    print(json.dumps({"build_s": build_s, "cached": False}))


if __name__ == "__main__":
    main()
