"""Writes by id: upsert or delete a few documents of a scene without re-indexing the corpus.

The same code paths as a full index run (`indexing.indexer.Indexer`): the same fingerprints
(an unchanged document costs a comparison, so a repeated batch is a no-op), vectors into
Milvus before documents into MongoDB (a stored fingerprint promises its vectors). What
differs is the scope: only the batch's own ids are read, no collection-wide verification
(the collection holds more than the delta), and each batch ends with a flush so that it is
searchable when the call returns.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from functions.core.errors import IndexOutdated, InvalidRequest, SchemaMismatch
from functions.core.scenes import Scene
from functions.core.stores.factory import image_collection
from indexing.indexer import Indexer


def migrate_hint(scene: Scene, problem: str) -> str:
    """A schema mismatch's message with the command that resolves it without downtime."""
    return (
        f"scene {scene.name!r} changed its schema: {problem}. Run `mmsearch migrate --scene "
        f"{scene.name}` to rebuild it into a new collection and switch to it while searches "
        "go on (or re-index it in full), then write again"
    )


@dataclass(frozen=True)
class WriteReport:
    """What one write did."""

    scene: str
    written: int  # new or changed documents, embedded and stored
    unchanged: int  # same fingerprint as stored: nothing written
    deleted: int
    missing: list[str]  # ids asked to be deleted that were not stored
    seconds: float


class DocumentWriter:
    """Upserts and deletes documents of any scene by id through an `Indexer`'s code paths."""

    def __init__(
        self,
        indexer: Indexer,
        collection_for: Callable[[Scene], str],
        *,
        image_indexer: Callable[[], Indexer] | None = None,
    ) -> None:
        self._indexer = indexer
        self._collection_for = collection_for
        # Image scenes: built at their first write (loads the image space, opens the media).
        self._image_factory = image_indexer
        self._image_indexer: Indexer | None = None
        # One write at a time per process: two batches racing over one id could both take it
        # for new; documents are replaced, never inserted blind, so concurrent processes
        # (Lambda instances) stay correct too.
        self._lock = threading.Lock()

    def upsert(self, scene: Scene, documents: Sequence[Any]) -> WriteReport:
        """Embed and store `documents` (validated models with an `id`, unique) whose content
        changed; flush; searchable on return."""
        start = time.perf_counter()
        collection = self._collection_for(scene)
        with self._lock:
            indexer = self._indexer_for(scene)
            collections = self._ensure(indexer, scene, collection)
            ids = [d.id for d in documents]
            stored = indexer._documents.fingerprints(scene.store, ids)
            if stored:
                stored = indexer._forget_lost_vectors(list(collections), stored)
            prepared = indexer._prepare_batch(scene, collection, documents, stored)
            if prepared.size:
                # Vectors first, as the indexer writes them; documents replaced by id (never a
                # blind insert: another writer may have stored the id meanwhile).
                for name, records in prepared.records.items():
                    indexer._vectors.upsert(name, records)
                indexer._documents.upsert(scene.store, prepared.changed + prepared.new)
                for name in collections:
                    indexer._vectors.build_index(name)  # flush; the index exists after the first
        return WriteReport(
            scene=scene.name,
            written=prepared.size,
            unchanged=len(documents) - prepared.size,
            deleted=0,
            missing=[],
            seconds=time.perf_counter() - start,
        )

    def delete(self, scene: Scene, ids: Sequence[str]) -> WriteReport:
        """Remove `ids` from every collection of the scene, then from MongoDB; deleting an id
        that is not stored is no error (it is listed in `missing`)."""
        start = time.perf_counter()
        collection = self._collection_for(scene)
        indexer = self._indexer
        unique = list(dict.fromkeys(ids))
        with self._lock:
            stored = indexer._documents.fingerprints(scene.store, unique)
            wanted = list(indexer.collections(collection))
            if scene.kind == "image":  # a plain Indexer does not know the image-space collection
                wanted = list(dict.fromkeys([*wanted, image_collection(collection)]))
            names = [n for n in wanted if indexer._vectors.has_collection(n)]
            # Every id, not only those MongoDB holds: a vector orphaned by a crashed write goes too.
            for name in names:
                indexer._vectors.delete(name, unique)
            indexer._documents.delete(scene.store, unique)
            for name in names:
                indexer._vectors.build_index(name)  # flush the deletes
        return WriteReport(
            scene=scene.name,
            written=0,
            unchanged=0,
            deleted=len(stored),
            missing=[i for i in unique if i not in stored],
            seconds=time.perf_counter() - start,
        )

    def close(self) -> None:
        """Close the document store's client (Milvus clients share the process's connection)."""
        close = getattr(self._indexer._documents, "close", None)
        if close is not None:
            close()

    def _indexer_for(self, scene: Scene) -> Indexer:
        """The text indexer, or for an image scene the image indexer (caption and image
        vectors, media), which a writer without one refuses."""
        if scene.kind != "image":
            return self._indexer
        if self._image_indexer is None:
            if self._image_factory is None:
                raise InvalidRequest(f"scene {scene.name!r} holds images: this writer has none")
            self._image_indexer = self._image_factory()
        return self._image_indexer

    def _ensure(self, indexer: Indexer, scene: Scene, collection: str) -> dict[str, int]:
        """The scene's collections, created when this is the scene's first write."""
        collections = indexer.collections(collection)
        vectors = indexer._vectors
        for name, dim in collections.items():
            if vectors.has_collection(name) and not vectors.schema_current(
                name, dim, scene.lexical_fields
            ):
                raise IndexOutdated(
                    f"scene {scene.name!r} was indexed by another model or an older version: "
                    "run a full `mmsearch index` of it before writing by id"
                )
            # Creates the first write's collection; refuses (409 schema_mismatch) one whose
            # filterable fields are not the scene's declared ones.
            try:
                vectors.ensure_collection(
                    name,
                    dim,
                    scene.array_filter_fields,
                    scene.scalar_filter_fields,
                    scene.lexical_fields,
                )
            except SchemaMismatch as exc:
                raise SchemaMismatch(migrate_hint(scene, exc.message)) from None
        return collections
