"""Schema migration: a scene whose declared schema its stored collection cannot hold (a new
filterable field, another type) is rebuilt into a new versioned collection while searches go
on answering from the old one; then the alias is switched, the same zero-downtime path batch
indexing finalises with (functions/core/stores/aliases.py), and the old collection dropped.

The documents come from the document store (it holds every document whole). A document whose
embedded text is what the old collection stored keeps its vector (copied, not re-embedded);
the others are embedded again. A failure anywhere before the switch drops the new collection
and leaves the alias, and so every search, on the old one.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from functions.core.errors import StoreUnavailable
from functions.core.scenes import InvalidDocument, Scene, SceneDocument
from functions.core.stores.aliases import CollectionAliases, switch_alias
from functions.core.stores.document_store import DocumentStore
from functions.core.stores.vector_store import TEXT_FIELD, VECTOR_FIELD, VectorStore
from indexing.indexer import Indexer

_VERSION = re.compile(r"__v(\d+)$")
# Stored documents read per call while collecting the corpus.
READ_BATCH = 1000
# Copied vectors checked against a fresh embedding before any is trusted (a stored text equal
# to the new embedded text by coincidence, e.g. a former BM25-only text, must not pass).
SPOT_CHECKS = 8


class MigrationError(RuntimeError):
    """The migration stopped before the switch: the alias still names the old collection."""


@dataclass(frozen=True)
class MigrationReport:
    """What a migration did: from which collection to which, and how each vector was got."""

    scene: str
    alias: str
    previous: str
    collection: str
    documents: int
    copied: int
    embedded: int
    seconds: float


def next_collection(alias: str, current: str) -> str:
    """The versioned collection after `current`: `<alias>__v<n+1>` (`__v1` the first time)."""
    found = _VERSION.search(current)
    return f"{alias}__v{int(found[1]) + 1 if found else 1}"


def serving_collection(aliases: CollectionAliases, alias: str) -> str | None:
    """The collection readers of `alias` get now: its target, the real collection of that
    name, or None when the scene was never indexed."""
    target = aliases.target(alias)
    if target is not None:
        return target
    return alias if aliases.has_collection(alias) else None


def migrate(
    scene: Scene,
    alias: str,
    *,
    encoder: Any,
    vectors: VectorStore,
    documents: DocumentStore,
    aliases: CollectionAliases,
    batch_size: int = 1000,
    progress: Callable[[int], None] | None = None,
    settle_s: float = 2.0,
) -> MigrationReport:
    """Rebuild the scene's collection for its declared schema behind `alias` (the name
    searches use), verify the counts, switch the alias, then drop the old collection."""
    start = time.perf_counter()
    if scene.kind == "image":
        raise MigrationError(f"scene {scene.name!r} holds images: re-index it in full")
    current = serving_collection(aliases, alias)
    if current is None:
        raise MigrationError(f"scene {scene.name!r} has no collection yet: index it first")
    corpus = stored_documents(scene, documents)
    new = next_collection(alias, current)
    if vectors.has_collection(new):
        vectors.drop(new)  # left by a migration that failed: never the one serving
    reuse = _ReusedVectors(encoder)
    indexer = _MigrationIndexer(reuse, vectors, documents, source=current, batch_size=batch_size)
    try:
        report = indexer.run(scene, new, corpus, progress)
        if report.vectors != len(corpus) or report.documents != len(corpus):
            raise MigrationError(
                f"{new!r} holds {report.vectors} vectors for {len(corpus)} documents"
            )
    except Exception as exc:
        _drop_quietly(vectors, new)
        raise MigrationError(
            f"migrating scene {scene.name!r} failed ({type(exc).__name__}: {exc}); the alias "
            f"still names {current!r}, which keeps serving, and {new!r} was dropped"
        ) from exc
    switch_alias(aliases, alias, new, replace_collection=True, settle_s=settle_s)
    return MigrationReport(
        scene=scene.name,
        alias=alias,
        previous=current,
        collection=new,
        documents=len(corpus),
        copied=reuse.copied,
        embedded=reuse.embedded,
        seconds=time.perf_counter() - start,
    )


def stored_documents(scene: Scene, documents: DocumentStore) -> list[SceneDocument]:
    """Every stored document of the scene, checked against its declared schema now (a
    document the new schema refuses stops the migration before anything is built)."""
    ids = sorted(documents.fingerprints(scene.store))
    found: list[SceneDocument] = []
    for start in range(0, len(ids), READ_BATCH):
        chunk = ids[start : start + READ_BATCH]
        bodies = documents.get(scene.store, chunk)
        for document_id in chunk:
            try:
                found.append(scene.document(bodies[document_id]))
            except (InvalidDocument, KeyError) as exc:
                raise MigrationError(
                    f"stored document {document_id!r} does not fit scene {scene.name!r} as "
                    f"declared now ({exc}); fix the scene or the document, nothing was changed"
                ) from None
    return found


def _drop_quietly(vectors: VectorStore, collection: str) -> None:
    with contextlib.suppress(StoreUnavailable):  # else the next migration drops it first
        vectors.drop(collection)


class _ReusedVectors:
    """The encoder as the indexer sees it during a migration: texts whose old vector is
    known come back as that vector, the rest are embedded."""

    def __init__(self, encoder: Any) -> None:
        self._encoder = encoder
        self.known: dict[str, np.ndarray] = {}
        self.copied = 0
        self.embedded = 0
        self.trusted = True  # until a spot check finds a copied vector that differs
        self._checked = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._encoder, name)  # dim, name, manifest

    def embed(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        if not self._checked and self.known:
            self._checked = True
            self._spot_check(texts, batch_size)
        todo = [i for i, t in enumerate(texts) if t not in self.known]
        rows = [self.known.get(t) for t in texts]
        if todo:
            fresh = self._encoder.embed([texts[i] for i in todo], batch_size=batch_size)
            for row, i in enumerate(todo):
                rows[i] = fresh[row]
        self.embedded += len(todo)
        self.copied += len(texts) - len(todo)
        return np.asarray(rows, dtype=np.float32).reshape(len(texts), self._encoder.dim)

    def _spot_check(self, texts: Sequence[str], batch_size: int) -> None:
        sample = [t for t in texts if t in self.known][:SPOT_CHECKS]
        fresh = self._encoder.embed(sample, batch_size=batch_size)
        old = np.asarray([self.known[t] for t in sample], dtype=np.float32)
        if not np.allclose((fresh * old).sum(axis=1), 1.0, atol=1e-3):
            self.known.clear()
            self.trusted = False


class _MigrationIndexer(Indexer):
    """The indexer's own batching, writes and verification, with each batch's old vectors
    offered for reuse where the stored text is the text the new schema embeds."""

    def __init__(self, encoder: _ReusedVectors, *args: Any, source: str, **kwargs: Any) -> None:
        super().__init__(encoder, *args, **kwargs)  # type: ignore[arg-type]
        self._reuse = encoder
        self._source = source

    def _embed(
        self, scene: Scene, collection: str, bodies: list[dict[str, object]], documents: list[Any]
    ) -> Any:
        self._reuse.known = {}
        if self._reuse.trusted:
            ids = [str(b["id"]) for b in bodies]
            try:
                old = self._vectors.fetch_fields(self._source, ids, [VECTOR_FIELD, TEXT_FIELD])
            except StoreUnavailable:
                old = {}  # e.g. an old collection without the stored text: embed them all
            for body in bodies:
                row = old.get(str(body["id"]))
                text = scene.embedding_text(body)
                if row and row.get(TEXT_FIELD) == text and row.get(VECTOR_FIELD) is not None:
                    self._reuse.known[text] = np.asarray(row[VECTOR_FIELD], dtype=np.float32)
        return super()._embed(scene, collection, bodies, documents)
