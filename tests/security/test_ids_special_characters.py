"""Every id the API accepts indexes, updates and deletes through both stores and both indexing
paths (`mmsearch index` and the batch steps): quotes, backslashes, spaces, `%`, non-Latin
text and emoji included. Milvus Lite 2.5.1 fails an upsert whose key holds `'`, and pymilvus'
`delete(ids=...)` silently deleted nothing for such ids (issue 15, item 13)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from functions.core.scenes import QA
from functions.core.settings import Settings
from functions.core.stores.aliases import open_aliases
from functions.core.stores.factory import collection_name, open_document_store, open_vector_store
from functions.summary import service as summary
from indexing.batch.handler import Runtime
from indexing.corpus import QADocument
from tests.functions.test_api import front_door
from tests.offline.test_batch_steps import full_run, put_corpus, runtime, s3  # noqa: F401

SPECIAL_IDS = [
    "Carbon dioxide in Earth's atmosphere:10",  # the climate-fever id that failed
    "it's 100% 'quoted'",
    'say "hi"',
    "back\\slash\\",
    "  spaces  around  ",
    "50%off",
    "literal%27and%25%5C",  # what the encoding itself produces must survive as an id
    "中文标识",
    "Ελληνικά и кириллица",
    "emoji 😀🚀",
    "😀" * 512,  # the longest id the API accepts, 2,048 UTF-8 bytes
]


def _docs(answer_of: dict[str, str] | None = None) -> list[QADocument]:
    answers = answer_of or {}
    return [
        QADocument(
            id=doc_id,
            question=f"question number {n}",
            answer=answers.get(doc_id, f"answer number {n}"),
            category=[f"c{n % 3}", "it's"],
        )
        for n, doc_id in enumerate(SPECIAL_IDS)
    ]


def _write(path: Path, docs: list[QADocument]) -> Path:
    path.write_text("".join(d.model_dump_json() + "\n" for d in docs), encoding="utf-8")
    return path


def _assert_stores_hold_exactly(settings: Settings, collection: str, ids: list[str]) -> None:
    vectors, documents = open_vector_store(settings), open_document_store(settings)
    assert vectors.count(collection) == len(ids)
    assert vectors.missing_ids(collection, ids) == []
    assert sorted(vectors.fetch_fields(collection, ids, ["category"])) == sorted(ids)
    assert sorted(documents.fingerprints(QA.store)) == sorted(ids)


def _assert_searchable_by_their_ids(settings: Settings, collection: str) -> None:
    from tests.conftest import _encoder

    store = open_vector_store(settings)
    vector = _encoder(settings.resolved_model_dir).embed(["question number 3"])[0]
    every = sorted(SPECIAL_IDS)
    assert sorted(h.id for h in store.search(collection, vector, 50, {"category": ["it's"]})) == (
        every
    )
    assert sorted(h.id for h in store.search_text(collection, "question", 50, {})) == every
    fused = store.search_hybrid(collection, vector, "question", 50, {}, candidates=50)
    assert sorted(h.id for h in fused) == every
    for door in ("lambda", "http"):
        call = front_door(door, summary.routes(open_document_store(settings)))
        status, body, _ = call(
            "POST", "/v1/documents:batchGet", {"scene": "qa", "ids": [*SPECIAL_IDS, "absent'"]}
        )
        assert status == 200, body
        assert [d["id"] for d in body["documents"]] == SPECIAL_IDS
        assert body["missing"] == ["absent'"]


def test_mmsearch_index_indexes_updates_and_prunes_ids_with_any_character(
    settings: Settings, tmp_path: Path
) -> None:
    from offline.cli import _index

    collection = collection_name(settings, QA)
    first = _index(settings, _write(tmp_path / "v1.jsonl", _docs()), "qa", 4, True, False)
    assert (first.embedded, first.vectors, first.documents) == (11, 11, 11)
    _assert_stores_hold_exactly(settings, collection, SPECIAL_IDS)
    _assert_searchable_by_their_ids(settings, collection)

    changed = {SPECIAL_IDS[0]: "Updated: about 420 ppm."}
    departed = {'say "hi"', "back\\slash\\", "emoji 😀🚀"}
    kept = [d for d in _docs(changed) if d.id not in departed]
    second = _index(settings, _write(tmp_path / "v2.jsonl", kept), "qa", 4, True, True)
    assert (second.embedded, second.pruned) == (1, 3)
    _assert_stores_hold_exactly(settings, collection, [d.id for d in kept])
    stored = open_document_store(settings).get(QA.store, [SPECIAL_IDS[0]])
    assert stored[SPECIAL_IDS[0]]["answer"] == "Updated: about 420 ppm."
    assert open_vector_store(settings).missing_ids(collection, sorted(departed)) == sorted(departed)


def test_batch_indexing_indexes_updates_and_prunes_ids_with_any_character(
    runtime: Runtime,  # noqa: F811
    s3: Any,  # noqa: F811
) -> None:
    settings = runtime.settings
    lines = [d.model_dump_json() for d in _docs()]
    plan, done = full_run(runtime, put_corpus(s3, "v1.jsonl", lines))
    assert (done["vectors"], done["documents"]) == (11, 11)
    _assert_stores_hold_exactly(settings, plan.alias, SPECIAL_IDS)
    _assert_searchable_by_their_ids(settings, plan.alias)

    changed = {SPECIAL_IDS[1]: "Updated."}
    departed = {"中文标识"}
    kept = [d for d in _docs(changed) if d.id not in departed]
    plan, done = full_run(runtime, put_corpus(s3, "v2.jsonl", [d.model_dump_json() for d in kept]))
    assert (done["vectors"], done["documents"], done["pruned"]) == (10, 10, 1)
    assert open_aliases(settings).target(plan.alias) == plan.collection
    _assert_stores_hold_exactly(settings, plan.alias, [d.id for d in kept])
    stored = open_document_store(settings).get(QA.store, [SPECIAL_IDS[1]])
    assert stored[SPECIAL_IDS[1]]["answer"] == "Updated."


@pytest.mark.parametrize("doc_id", SPECIAL_IDS[:4])
def test_a_stored_key_never_holds_a_single_quote_and_reads_back_unchanged(doc_id: str) -> None:
    from functions.core.stores.vector_store import document_id, stored_id

    assert "'" not in stored_id(doc_id)
    assert document_id(stored_id(doc_id)) == doc_id
    assert document_id(stored_id(stored_id(doc_id))) == stored_id(doc_id)


def test_a_single_category_string_indexes_as_a_one_element_list(
    settings: Settings, tmp_path: Path
) -> None:
    from offline.cli import _index

    corpus = tmp_path / "one.jsonl"
    corpus.write_text(json.dumps({"id": "sci'1", "question": "q", "category": "science"}) + "\n")
    _index(settings, corpus, "qa", 4, True, False)
    stored = open_document_store(settings).get(QA.store, ["sci'1"])
    assert stored["sci'1"]["category"] == ["science"]
