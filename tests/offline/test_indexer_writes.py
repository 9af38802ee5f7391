"""A store write that fails mid-stream stops the run with a clear error, writes nothing after
the failed batch, and a re-run completes with every document stored exactly once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from functions.core.errors import StoreUnavailable
from functions.core.models.text_encoder import TextEncoder
from functions.core.scenes import QA
from functions.core.settings import Settings
from functions.core.stores.factory import collection_name, open_document_store, open_vector_store
from functions.core.stores.vector_store import VectorRecord
from indexing.corpus import QADocument
from indexing.indexer import Indexer, IndexWriteError

BATCH = 8  # 30 documents: batches of 8, 8, 8, 6


class FailingWrites:
    """A real store whose `fail_at`-th write raises once, as a timed-out bulk write does."""

    def __init__(self, store: Any, fail_at: int) -> None:
        self._store = store
        self._fail_at = fail_at
        self.writes = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def _count_write(self) -> None:
        self.writes += 1
        if self.writes == self._fail_at:
            raise StoreUnavailable("bulk write timed out (injected)")


class FailingVectors(FailingWrites):
    def upsert(self, collection: str, records: Sequence[VectorRecord]) -> None:
        self._count_write()
        self._store.upsert(collection, records)


class FailingDocuments(FailingWrites):
    def upsert(self, scene: str, documents: Sequence[Any], *, new: bool = False) -> None:
        if documents:
            self._count_write()
        self._store.upsert(scene, documents, new=new)


def _stored(settings: Settings) -> tuple[int, int]:
    vectors, documents = open_vector_store(settings), open_document_store(settings)
    return vectors.count(collection_name(settings, QA)), documents.count(QA.name)


@pytest.mark.parametrize(
    ("failing", "after_failure"),
    [
        # The third batch's vectors fail: two batches are in both stores.
        ("vectors", (16, 16)),
        # The third batch's documents fail after its vectors were written: MongoDB's promise
        # (the fingerprint) is missing, so the re-run replaces those vectors, never adds them.
        ("documents", (24, 16)),
    ],
)
def test_a_write_failure_mid_stream_stops_the_run_and_a_rerun_completes_exactly_once(
    settings: Settings,
    encoder: TextEncoder,
    qa_docs: list[QADocument],
    failing: str,
    after_failure: tuple[int, int],
) -> None:
    collection = collection_name(settings, QA)
    vectors: Any = open_vector_store(settings)
    documents: Any = open_document_store(settings)
    if failing == "vectors":
        vectors = FailingVectors(vectors, fail_at=3)
    else:
        documents = FailingDocuments(documents, fail_at=3)
    broken = Indexer(encoder, vectors, documents, batch_size=BATCH)
    progress: list[int] = []

    with pytest.raises(IndexWriteError) as failure:
        broken.run(QA, collection, qa_docs, progress.append)

    message = str(failure.value)
    assert "'qa-016'..'qa-023'" in message and "StoreUnavailable" in message
    assert "re-running" in message
    assert progress == [BATCH, BATCH]  # only the stored batches were reported
    assert _stored(settings) == after_failure  # the fourth batch was never written

    healthy = Indexer(
        encoder, open_vector_store(settings), open_document_store(settings), batch_size=BATCH
    )
    report = healthy.run(QA, collection, qa_docs)
    assert report.embedded == 30 - 16 and report.skipped_unchanged == 16
    assert (report.vectors, report.documents) == (30, 30)
    assert _stored(settings) == (30, 30)
    assert open_vector_store(settings).missing_ids(collection, [d.id for d in qa_docs]) == []


def test_the_default_batch_is_one_thousand_documents_per_write(
    settings: Settings, encoder: TextEncoder, qa_docs: list[QADocument]
) -> None:
    vectors = FailingVectors(open_vector_store(settings), fail_at=0)
    indexer = Indexer(encoder, vectors, open_document_store(settings))
    many = [d.model_copy(update={"id": f"{d.id}-{k}"}) for k in range(40) for d in qa_docs]

    report = indexer.run(QA, collection_name(settings, QA), many)

    assert vectors.writes == 2  # 1,200 documents: 1,000 + 200 rows
    assert (report.vectors, report.documents) == (1200, 1200)
