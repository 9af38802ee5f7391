"""Indexing writes every batch, never duplicates, resumes after a crash and verifies the stores."""

from __future__ import annotations

from pathlib import Path

import pytest

from functions.core.scenes import QA
from functions.core.settings import Settings
from functions.core.stores.factory import collection_name, open_document_store, open_vector_store
from indexing.corpus import QADocument, read_corpus
from indexing.indexer import Indexer, IndexVerificationError


def _counts(settings: Settings) -> tuple[int, int]:
    vectors, documents = open_vector_store(settings), open_document_store(settings)
    return vectors.count(collection_name(settings, QA)), documents.count(QA.name)


def test_last_partial_batch_is_written(
    settings: Settings, indexer: Indexer, qa_docs: list[QADocument]
) -> None:
    docs = qa_docs[:19]  # batches of 8: 8 + 8 + 3
    report = indexer.run(QA, collection_name(settings, QA), docs)
    assert (report.vectors, report.documents) == (19, 19)
    assert _counts(settings) == (19, 19)
    assert open_vector_store(settings).missing_ids(collection_name(settings, QA), ["qa-018"]) == []


def test_reindexing_the_same_corpus_changes_nothing(
    settings: Settings, indexer: Indexer, qa_docs: list[QADocument]
) -> None:
    collection = collection_name(settings, QA)
    first = indexer.run(QA, collection, qa_docs)
    second = indexer.run(QA, collection, qa_docs)
    assert first.embedded == 30
    assert second.embedded == 0 and second.skipped_unchanged == 30
    assert _counts(settings) == (30, 30)


def test_a_changed_document_is_reembedded_and_updated(
    settings: Settings, indexer: Indexer, qa_docs: list[QADocument]
) -> None:
    collection = collection_name(settings, QA)
    indexer.run(QA, collection, qa_docs)
    changed = list(qa_docs)
    changed[3] = changed[3].model_copy(update={"answer": "Declined cards: call your bank."})
    report = indexer.run(QA, collection, changed)
    assert report.embedded == 1
    stored = open_document_store(settings).get(QA.name, [changed[3].id])
    assert stored[changed[3].id]["answer"] == "Declined cards: call your bank."
    assert _counts(settings) == (30, 30)


def test_a_changed_embed_template_re_embeds_every_document(
    settings: Settings, indexer: Indexer, qa_docs: list[QADocument]
) -> None:
    # Same documents, same model, another text embedded: every vector is stale. The
    # fingerprint once covered only content and model, so this run kept the old vectors.
    collection = collection_name(settings, QA)
    indexer.run(QA, collection, qa_docs)
    questions_only = QA.model_copy(update={"embed_fields": (), "embed_template": "{question}"})
    report = indexer.run(questions_only, collection, qa_docs)
    assert (report.embedded, report.skipped_unchanged) == (30, 0)
    assert indexer.run(questions_only, collection, qa_docs).embedded == 0
    assert _counts(settings) == (30, 30)


def test_a_run_interrupted_midway_is_completed_by_rerunning(
    settings: Settings, indexer: Indexer, qa_docs: list[QADocument]
) -> None:
    collection = collection_name(settings, QA)

    class Crash(Exception):
        pass

    def crash_after_two_batches(_: int, seen: list[int] = []) -> None:  # noqa: B006
        seen.append(1)
        if len(seen) == 2:
            raise Crash

    with pytest.raises(Crash):
        indexer.run(QA, collection, qa_docs, crash_after_two_batches)
    assert open_document_store(settings).count(QA.name) == 16
    report = indexer.run(QA, collection, qa_docs)
    assert report.embedded == 14
    assert _counts(settings) == (30, 30)


def test_verification_fails_when_a_store_holds_ids_the_input_does_not(
    settings: Settings, indexer: Indexer, qa_docs: list[QADocument]
) -> None:
    collection = collection_name(settings, QA)
    indexer.run(QA, collection, qa_docs)
    with pytest.raises(IndexVerificationError, match="counts differ"):
        indexer.run(QA, collection, qa_docs[:10])


def test_prune_deletes_documents_that_left_the_input_from_both_stores(
    settings: Settings, indexer: Indexer, qa_docs: list[QADocument]
) -> None:
    collection = collection_name(settings, QA)
    indexer.run(QA, collection, qa_docs)
    report = indexer.run(QA, collection, qa_docs[:10], prune=True)
    assert report.pruned == 20 and report.embedded == 0
    assert _counts(settings) == (10, 10)
    assert open_vector_store(settings).missing_ids(collection, ["qa-011"]) == ["qa-011"]


def test_a_collection_from_before_the_text_field_is_rebuilt_with_bm25(
    settings: Settings, indexer: Indexer, qa_docs: list[QADocument]
) -> None:
    from pymilvus import DataType

    collection = collection_name(settings, QA)
    indexer.run(QA, collection, qa_docs[:5])  # documents and fingerprints in MongoDB
    vectors = open_vector_store(settings)
    vectors.drop(collection)
    client = vectors._connect()  # the schema an earlier version wrote: no text, no sparse
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=512)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=384)
    schema.add_field(
        "category",
        DataType.ARRAY,
        element_type=DataType.VARCHAR,
        max_capacity=64,
        max_length=256,
    )
    client.create_collection(collection, schema=schema)
    assert not vectors.schema_current(collection)

    report = indexer.run(QA, collection, qa_docs[:5])
    assert report.embedded == 5  # unchanged fingerprints, but every vector rebuilt
    assert vectors.schema_current(collection)
    assert (report.vectors, report.documents) == (5, 5)
    hits = vectors.search_text(collection, "reset password", 3, {})
    assert hits[0].id == "qa-000"


def test_a_single_category_string_is_read_as_a_one_element_list(tmp_path: Path) -> None:
    corpus = tmp_path / "one.jsonl"
    corpus.write_text(
        '{"id": "a", "question": "q", "category": "science"}\n'
        '{"id": "b", "question": "q", "category": ["science", "art"]}\n'
        '{"id": "c", "question": "q", "category": 7}\n'
    )
    read = read_corpus(corpus)
    assert [d.category for d in read.documents] == [["science"], ["science", "art"]]
    assert [(r.line, r.reason.split(":")[0]) for r in read.invalid] == [(3, "category")]


def test_a_collection_keyed_before_ids_were_encoded_serves_and_is_rebuilt_by_the_next_run(
    settings: Settings, indexer: Indexer, qa_docs: list[QADocument]
) -> None:
    from pymilvus import DataType, Function, FunctionType

    from functions.core.stores.vector_store import ANALYZER

    collection = collection_name(settings, QA)
    indexer.run(QA, collection, qa_docs[:5])
    vectors = open_vector_store(settings)
    vectors.drop(collection)
    client = vectors._connect()  # exactly what the previous version wrote: a 512-byte key
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=512)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=384)
    schema.add_field(
        "category", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=64, max_length=256
    )
    schema.add_field(
        "text", DataType.VARCHAR, max_length=65535, enable_analyzer=True, analyzer_params=ANALYZER
    )
    schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_function(Function("text_bm25", FunctionType.BM25, ["text"], ["sparse"]))
    client.create_collection(collection, schema=schema)
    old = qa_docs[0]
    client.insert(
        collection,
        [
            {
                "id": old.id,
                "vector": indexer._encoder.embed([old.question])[0].tolist(),
                "category": old.category,
                "text": old.question,
            }
        ],
    )
    vectors.build_index(collection)
    assert vectors.search_text(collection, "reset password", 1, {})[0].id == old.id  # serves
    assert not vectors.schema_current(collection)

    report = indexer.run(QA, collection, qa_docs[:5])
    assert report.embedded == 5 and (report.vectors, report.documents) == (5, 5)
    assert vectors.schema_current(collection)
