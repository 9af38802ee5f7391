"""Batch indexing: embed documents, upsert vectors into Milvus and documents into MongoDB.

Idempotent and resumable: each document carries a fingerprint (sha256 of its content and
the model), written to MongoDB only after its vector is in Milvus. A re-run skips every
document whose fingerprint matches, so a killed run resumes and an unchanged corpus costs
only the comparison.

Embedding and writing overlap: while one thread writes batch N to both stores, the encoder
(onnxruntime releases the GIL) embeds batch N+1; at most one write is in flight, and a failed
write stops the run before anything after it is written, so a re-run resumes exactly once.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from functions.core.models.text_encoder import TextEncoder
from functions.core.scenes import Scene
from functions.core.stores.document_store import FINGERPRINT, DocumentStore
from functions.core.stores.vector_store import MILVUS_TYPES, VectorRecord, VectorStore

ProgressCallback = Callable[[int], None]

# Documents per batch: embedded together (length-sorted inside it, so little padding) and
# written as one Milvus insert (Milvus Lite: 1,000-row inserts ran 40x faster than 10k-row
# ones, DESIGN.md) and one MongoDB bulk write.
BATCH_DOCS = 1000


@dataclass(frozen=True)
class PreparedBatch:
    """Embedded records and their documents, ready to be written."""

    records: dict[str, list[VectorRecord]]  # by collection
    changed: list[dict[str, object]]
    new: list[dict[str, object]]

    @property
    def size(self) -> int:
        return len(self.changed) + len(self.new)


class IndexVerificationError(RuntimeError):
    """After indexing, the stores do not hold exactly the input's ids."""


class IndexWriteError(RuntimeError):
    """A store write failed mid-run: the batches before it are stored, nothing after it."""


@dataclass(frozen=True)
class IndexReport:
    """What an index run did and what the stores hold afterwards."""

    scene: str
    collection: str
    input_docs: int
    embedded: int
    skipped_unchanged: int
    pruned: int
    vectors: int
    documents: int
    seconds: float

    @property
    def docs_per_s(self) -> float:
        return self.input_docs / self.seconds if self.seconds else 0.0


def _settle(write: Future[int], batch: Sequence[Any], progress: ProgressCallback | None) -> int:
    """Wait for a batch's write; report the batch; return how many documents it wrote. A
    failed write becomes an `IndexWriteError` naming the batch and what a re-run does."""
    try:
        written = write.result()
    except Exception as exc:
        raise IndexWriteError(
            f"writing documents {batch[0].id!r}..{batch[-1].id!r} failed "
            f"({type(exc).__name__}: {exc}); the batches before them are stored and "
            "re-running the same command resumes after them, writing each document once"
        ) from exc
    if progress:
        progress(len(batch))
    return written


def _holds(stored: dict[str, str], scene: Scene) -> bool:
    """Whether a collection's filterable fields (name -> Milvus type) are the scene's."""
    return stored == {f: MILVUS_TYPES[t] for f, t in scene.filter_types.items()}


def fingerprint(document: dict[str, object], model_sha: str) -> str:
    """Changes whenever the document's content or the model changes."""
    payload = json.dumps(document, sort_keys=True, ensure_ascii=False) + model_sha
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class Indexer:
    """Writes one scene's documents into a vector store and a document store."""

    def __init__(
        self,
        encoder: TextEncoder,
        vectors: VectorStore,
        documents: DocumentStore,
        *,
        batch_size: int = BATCH_DOCS,
        encode_batch_size: int = 32,
    ) -> None:
        self._encoder = encoder
        self._vectors = vectors
        self._documents = documents
        self._batch_size = batch_size
        self._encode_batch_size = encode_batch_size
        self._model_sha = encoder.manifest.files.get("model.onnx", encoder.manifest.name)

    def run(
        self,
        scene: Scene,
        collection: str,
        docs: Sequence[Any],
        progress: ProgressCallback | None = None,
        *,
        prune: bool = False,
    ) -> IndexReport:
        """Index `docs` (every batch, including the last partial one), build, verify;
        `prune` then deletes stored documents that are no longer in `docs`. `progress` gets
        each batch's size once that batch is in both stores."""
        start = time.perf_counter()
        collections = self.collections(collection)
        stale = False
        for name, dim in collections.items():
            if not self._vectors.has_collection(name):
                # New (a second model's collection) or dropped: the documents' fingerprints
                # in MongoDB say nothing about vectors that are not there.
                stale = True
            elif not self._vectors.schema_current(name, dim, scene.lexical_fields) or not _holds(
                self._vectors.filter_schema(name), scene
            ):
                # Written by an older version (e.g. without the BM25 text), another model's
                # dimension or another scene schema (filterable fields): rebuild every vector.
                self._vectors.drop(name)
                stale = True
            self._vectors.ensure_collection(
                name,
                dim,
                scene.array_filter_fields,
                scene.scalar_filter_fields,
                scene.lexical_fields,
            )
        stored = self._documents.fingerprints(scene.store)
        if stale:
            stored = dict.fromkeys(stored, "")
        else:
            stored = self._forget_lost_vectors(list(collections), stored)
        embedded = 0
        with ThreadPoolExecutor(1, thread_name_prefix="index-writer") as writer:
            pending: tuple[Future[int], Sequence[Any]] | None = None
            for offset in range(0, len(docs), self._batch_size):
                batch = docs[offset : offset + self._batch_size]
                prepared = self._prepare_batch(scene, collection, batch, stored)
                if pending is not None:
                    embedded += _settle(*pending, progress)
                pending = writer.submit(self._write_batch, scene, prepared), batch
            if pending is not None:
                embedded += _settle(*pending, progress)
        # Pruned after the writes: a run stopped midway leaves more documents, never fewer.
        keep = {d.id for d in docs}
        pruned = self._prune(scene, list(collections), stored, keep) if prune else 0
        ids = [d.id for d in docs]
        counts = []
        for name in collections:
            self._vectors.build_index(name)
            counts.append(self.verify(scene, name, ids))
        vectors, documents = counts[0]
        return IndexReport(
            scene=scene.name,
            collection=collection,
            input_docs=len(docs),
            embedded=embedded,
            skipped_unchanged=len(docs) - embedded,
            pruned=pruned,
            vectors=vectors,
            documents=documents,
            seconds=time.perf_counter() - start,
        )

    def collections(self, collection: str) -> dict[str, int]:
        """The vector collections this indexer writes, with their dimensions."""
        return {collection: self._encoder.dim}

    def _identity(self) -> str:
        """What, besides a document's content, its vectors depend on (the models)."""
        return self._model_sha

    def _body(self, document: Any) -> dict[str, object]:
        """The document as fingerprinted and stored."""
        body: dict[str, object] = document.model_dump()
        return body

    def _embed(
        self, scene: Scene, collection: str, bodies: list[dict[str, object]], documents: list[Any]
    ) -> tuple[dict[str, list[VectorRecord]], list[dict[str, object]]]:
        """Vector records by collection for these (new or changed) documents, and the bodies
        to store."""
        texts = [scene.embedding_text(b) for b in bodies]
        matrix = self._encoder.embed(texts, batch_size=self._encode_batch_size)
        records = [
            VectorRecord(
                str(b["id"]),
                matrix[row],
                scene.filter_values(b),
                scene.bm25_text(b),
                scene.bm25_texts(b),
            )
            for row, b in enumerate(bodies)
        ]
        return {collection: records}, bodies

    def _forget_lost_vectors(
        self, collections: list[str], stored: dict[str, str]
    ) -> dict[str, str]:
        """A fingerprint promises the document's vectors; where a store lost them (a crashed
        server), the fingerprint is dropped so that this run embeds the document again."""
        promised = [i for i, mark in stored.items() if mark]
        lost = {i for name in collections for i in self._vectors.missing_ids(name, promised)}
        return {i: "" if i in lost else mark for i, mark in stored.items()}

    def _prune(
        self, scene: Scene, collections: list[str], stored: dict[str, str], keep: set[str]
    ) -> int:
        # Vectors go first, as on the way in: a document present implies its vector may be.
        gone = sorted(set(stored) - keep)
        if gone:
            for name in collections:
                self._vectors.delete(name, gone)
            self._documents.delete(scene.store, gone)
        return len(gone)

    def _prepare_batch(
        self, scene: Scene, collection: str, batch: Sequence[Any], stored: dict[str, str]
    ) -> PreparedBatch:
        """Embed the documents of `batch` whose stored fingerprint differs (new or changed)."""
        bodies = [self._body(d) for d in batch]
        identity = self._identity() + scene.vector_recipe
        prints = [fingerprint(b, identity) for b in bodies]
        todo = [i for i, d in enumerate(batch) if stored.get(d.id) != prints[i]]
        if not todo:
            return PreparedBatch({}, [], [])
        records, final = self._embed(
            scene, collection, [bodies[i] for i in todo], [batch[i] for i in todo]
        )
        marked = [{**body, FINGERPRINT: prints[i]} for body, i in zip(final, todo, strict=True)]
        changed = [b for b, i in zip(marked, todo, strict=True) if batch[i].id in stored]
        new = [b for b, i in zip(marked, todo, strict=True) if batch[i].id not in stored]
        return PreparedBatch(records, changed, new)

    def _write_batch(self, scene: Scene, prepared: PreparedBatch) -> int:
        if not prepared.size:
            return 0
        # Vectors first: a fingerprint in MongoDB promises the vectors are already in Milvus.
        for name, records in prepared.records.items():
            self._vectors.upsert(name, records)
        self._documents.upsert(scene.store, prepared.changed)
        self._documents.upsert(scene.store, prepared.new, new=True)
        return prepared.size

    def verify(self, scene: Scene, collection: str, ids: Sequence[str]) -> tuple[int, int]:
        """Both stores hold exactly `ids`: every id present and nothing else counted."""
        vectors, documents = self._vectors.count(collection), self._documents.count(scene.store)
        problems = []
        if missing := self._vectors.missing_ids(collection, ids):
            problems.append(f"{len(missing)} ids missing from Milvus (e.g. {missing[:3]})")
        stored = set(self._documents.fingerprints(scene.store))
        if missing := [i for i in ids if i not in stored]:
            problems.append(f"{len(missing)} ids missing from MongoDB (e.g. {missing[:3]})")
        if vectors != len(ids) or documents != len(ids):
            problems.append(
                f"counts differ from the input's {len(ids)}: Milvus {vectors}, MongoDB {documents}"
                " (documents that left the input stay until pruned)"
            )
        if problems:
            raise IndexVerificationError("; ".join(problems))
        return vectors, documents
