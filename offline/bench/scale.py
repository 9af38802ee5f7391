"""Larger corpora for latency-at-scale: real vectors repeated with distinct ids.

Embedding a million texts takes hours on 2 cores, so the 100k and 1M collections reuse the
real embedded corpus: copy k of document d gets id `d#k`, the same text, and the same vector
plus small Gaussian noise (re-normalised), so the index sees distinct, realistically clustered
points. Documents go to MongoDB with insert_many (fresh collections), vectors in 1,000-row
batches as the indexer writes them.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from functions.core.scenes import QA
from functions.core.stores.vector_store import MilvusVectorStore, VectorRecord


def fetch_vectors(store: MilvusVectorStore, collection: str, ids: Sequence[str]) -> np.ndarray:
    """The stored vectors of `ids`, in order."""
    client = store._connect()
    found: dict[str, list[float]] = {}
    for start in range(0, len(ids), 1000):
        chunk = list(ids[start : start + 1000])
        rows = client.get(collection, ids=chunk, output_fields=["id", "vector"], timeout=60)
        found.update({str(r["id"]): r["vector"] for r in rows})
    return np.asarray([found[i] for i in ids], dtype=np.float32)


def build_replicated(
    vectors: MilvusVectorStore,
    mongo_db: Any,
    collection: str,
    documents: Sequence[dict[str, Any]],
    base_vectors: np.ndarray,
    size: int,
    noise: float = 0.02,
    seed: int = 7,
) -> None:
    """Write `size` documents (copies of `documents`) into fresh collections and index them."""
    vectors.drop(collection)
    mongo_db.drop_collection(collection)
    vectors.ensure_collection(collection, base_vectors.shape[1], QA.array_filter_fields)
    # MongoDB writes run beside the Milvus writes (both stores are other processes), one batch
    # in flight, so a failure surfaces at the next batch and memory stays bounded.
    with ThreadPoolExecutor(1) as mongo_writer:
        pending: Future[Any] | None = None
        for records, bodies in _replicas(documents, base_vectors, size, noise, seed):
            vectors.upsert(collection, records)
            if pending is not None:
                pending.result()
            pending = mongo_writer.submit(mongo_db[collection].insert_many, bodies, ordered=False)
        if pending is not None:
            pending.result()
    vectors.build_index(collection)


def _replicas(
    documents: Sequence[dict[str, Any]],
    base_vectors: np.ndarray,
    size: int,
    noise: float,
    seed: int,
    batch: int = 1000,
) -> Iterator[tuple[list[VectorRecord], list[dict[str, Any]]]]:
    """Batches of (vector records, MongoDB documents) for copies 0, 1, … of `documents`."""
    rng = np.random.default_rng(seed)
    for start in range(0, size, batch):
        index = np.arange(start, min(start + batch, size))
        source = index % len(documents)
        copy = index // len(documents)
        matrix = base_vectors[source] + rng.normal(0, noise, (len(index), base_vectors.shape[1]))
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
        ids = [f"{documents[s]['id']}#{c}" for s, c in zip(source, copy, strict=True)]
        pairs = list(zip(ids, source, strict=True))
        yield (
            [
                VectorRecord(
                    i, matrix[row], QA.filter_values(documents[s]), QA.embedding_text(documents[s])
                )
                for row, (i, s) in enumerate(pairs)
            ],
            [{**_body(documents[s]), "_id": i} for i, s in pairs],
        )


def _body(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k != "id"}


def main() -> None:
    """Build one replicated collection; run as its own process, because Milvus Lite lets only
    one process open a data file and the server that is measured next needs it."""
    from pymongo import MongoClient

    from functions.core.settings import Settings
    from functions.core.stores.factory import open_vector_store

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--mongo-uri", required=True)
    parser.add_argument("--corpus", type=Path, required=True, help="The indexed real corpus.")
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--prefix", required=True)
    args = parser.parse_args()
    documents = [json.loads(line) for line in args.corpus.read_text(encoding="utf-8").splitlines()]
    store = open_vector_store(Settings(home=args.home, store_timeout_s=600))
    started = time.perf_counter()
    base = fetch_vectors(store, "mmsearch_qa", [d["id"] for d in documents])
    client: MongoClient[dict[str, Any]] = MongoClient(args.mongo_uri)
    build_replicated(store, client["mmsearch"], f"{args.prefix}qa", documents, base, args.size)
    print(json.dumps({"build_s": round(time.perf_counter() - started, 1)}))


if __name__ == "__main__":
    main()
