"""Batch indexing steps against Milvus Lite, the local MongoDB-wire server and moto's S3:
invalid lines are reported by number, shards re-run without duplicates, finalize refuses to
switch on a count mismatch, and readers move from the old collection to the new at once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from functions.core.scenes import QA, T2I
from functions.core.settings import Settings
from functions.core.stores.aliases import AliasConflict, open_aliases
from functions.core.stores.factory import (
    collection_name,
    image_collection,
    open_document_store,
    open_vector_store,
)
from functions.core.stores.vector_store import MilvusVectorStore
from indexing.batch.events import RunPlan, ShardRef, Split
from indexing.batch.handler import Runtime, dispatch
from indexing.batch.objects import InputNotFound
from indexing.batch.plan import InvalidCorpus
from indexing.batch.processing import open_indexer, process_folder
from indexing.batch.settings import BatchSettings
from indexing.batch.shard import shard_body
from indexing.corpus import QADocument
from indexing.indexer import Indexer, IndexVerificationError
from indexing.media import S3Media

BUCKET = "mmsearch-data-test"


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


@pytest.fixture
def runtime(settings: Settings, s3: Any) -> Runtime:
    """Shards of eight documents, so the thirty-document corpus makes four."""
    return Runtime(BatchSettings(**settings.model_dump(), shard_docs=8), s3)


def put_corpus(s3: Any, key: str, lines: list[str]) -> str:
    s3.put_object(Bucket=BUCKET, Key=key, Body="\n".join(lines).encode() + b"\n")
    return f"s3://{BUCKET}/{key}"


def as_lines(docs: list[QADocument]) -> list[str]:
    return [d.model_dump_json() for d in docs]


def plan_run(runtime: Runtime, uri: str, **request: Any) -> tuple[RunPlan, Split]:
    plan = dispatch(runtime, {"step": "validate", "request": {"input": uri, **request}})
    split = dispatch(runtime, {"step": "split", "plan": plan})
    return RunPlan.model_validate(plan), Split.model_validate(split)


def shards(runtime: Runtime, plan: RunPlan, split: Split) -> list[ShardRef]:
    listed = json.loads(runtime.objects.read(plan.bucket, split.manifest_key))
    return [ShardRef.model_validate(s) for s in listed]


def embed(runtime: Runtime, plan: RunPlan, shard: ShardRef) -> dict[str, Any]:
    event = {"step": "embed", "plan": plan.model_dump(), "shard": shard.model_dump()}
    return dispatch(runtime, event)


def finalize(runtime: Runtime, plan: RunPlan, split: Split) -> dict[str, Any]:
    event = {"step": "finalize", "plan": plan.model_dump(), "split": split.model_dump()}
    return dispatch(runtime, event)


def full_run(runtime: Runtime, uri: str, **request: Any) -> tuple[RunPlan, dict[str, Any]]:
    plan, split = plan_run(runtime, uri, **request)
    for shard in shards(runtime, plan, split):
        embed(runtime, plan, shard)
    return plan, finalize(runtime, plan, split)


def test_validate_reports_invalid_lines_with_their_numbers(
    runtime: Runtime, s3: Any, qa_docs: list[QADocument]
) -> None:
    lines = as_lines(qa_docs[:3])
    lines[1:1] = ["{not json", '{"question": "no id"}']
    lines.append(qa_docs[0].model_dump_json())  # a duplicate id
    uri = put_corpus(s3, "corpora/qa.jsonl", lines)
    plan = RunPlan.model_validate(
        dispatch(runtime, {"step": "validate", "request": {"input": uri}})
    )
    assert (plan.valid, plan.invalid) == (3, 3)
    assert [(i.line, i.reason.split(":")[0]) for i in plan.invalid_lines] == [
        (2, "not JSON"),
        (3, "id"),
        (6, "duplicate id 'qa-000' (line 1)"),
    ]
    report = runtime.objects.read(BUCKET, plan.prefix + "invalid.jsonl").decode().splitlines()
    assert [json.loads(r)["line"] for r in report] == [2, 3, 6]


def test_validate_fails_clearly_when_no_line_is_valid(runtime: Runtime, s3: Any) -> None:
    uri = put_corpus(s3, "corpora/bad.jsonl", ["[1, 2]", "{oops"])
    with pytest.raises(
        InvalidCorpus,
        match=r"no valid records .* \(2 invalid lines; line 1: not a JSON object; line 2",
    ):
        dispatch(runtime, {"step": "validate", "request": {"input": uri}})


def test_validate_names_a_missing_input(runtime: Runtime, s3: Any) -> None:
    with pytest.raises(InputNotFound, match=r"corpora/absent\.jsonl"):
        dispatch(
            runtime,
            {"step": "validate", "request": {"input": f"s3://{BUCKET}/corpora/absent.jsonl"}},
        )


def test_the_same_input_plans_the_same_run_and_a_changed_one_another(
    runtime: Runtime, s3: Any, qa_docs: list[QADocument]
) -> None:
    first = put_corpus(s3, "a.jsonl", as_lines(qa_docs))
    again = put_corpus(s3, "b.jsonl", as_lines(qa_docs))
    changed = put_corpus(s3, "c.jsonl", as_lines(qa_docs[1:]))
    ids = [
        dispatch(runtime, {"step": "validate", "request": {"input": uri}})["run_id"]
        for uri in (first, again, changed)
    ]
    assert ids[0] == ids[1] != ids[2]


def test_split_writes_shards_and_a_manifest_and_picks_lambda_for_small_corpora(
    runtime: Runtime, s3: Any, qa_docs: list[QADocument]
) -> None:
    plan, split = plan_run(runtime, put_corpus(s3, "qa.jsonl", as_lines(qa_docs)))
    listed = shards(runtime, plan, split)
    assert (split.engine, split.shards) == ("lambda", 4)
    assert [s.docs for s in listed] == [8, 8, 8, 6]
    first = runtime.objects.read(BUCKET, listed[0].key).decode().splitlines()
    assert [json.loads(line)["id"] for line in first] == [d.id for d in qa_docs[:8]]
    assert open_vector_store(runtime.settings).count(plan.collection) == 0


def test_large_corpora_are_sent_to_sagemaker(
    settings: Settings, s3: Any, qa_docs: list[QADocument]
) -> None:
    tuned = BatchSettings(**settings.model_dump(), sagemaker_min_docs=30, sagemaker_shard_docs=20)
    _, split = plan_run(Runtime(tuned, s3), put_corpus(s3, "qa.jsonl", as_lines(qa_docs)))
    assert (split.engine, split.shards, split.shard_docs) == ("sagemaker", 2, 20)


def test_rerunning_a_shard_duplicates_nothing(
    runtime: Runtime, s3: Any, qa_docs: list[QADocument]
) -> None:
    plan, split = plan_run(runtime, put_corpus(s3, "qa.jsonl", as_lines(qa_docs)))
    first_shard = shards(runtime, plan, split)[0]
    first = embed(runtime, plan, first_shard)
    again = embed(runtime, plan, first_shard)
    assert (first["embedded"], again["embedded"], again["skipped"]) == (8, 0, 8)
    assert open_vector_store(runtime.settings).count(plan.collection) == 8
    assert open_document_store(runtime.settings).count(QA.store) == 8


def test_finalize_refuses_to_switch_when_counts_differ(
    runtime: Runtime, s3: Any, qa_docs: list[QADocument]
) -> None:
    plan, split = plan_run(runtime, put_corpus(s3, "qa.jsonl", as_lines(qa_docs)))
    for shard in shards(runtime, plan, split)[:-1]:  # the last shard never ran
        embed(runtime, plan, shard)
    with pytest.raises(IndexVerificationError, match="holds 24 vectors, expected 30"):
        finalize(runtime, plan, split)
    assert open_aliases(runtime.settings).target(plan.alias) is None


def test_readers_see_the_old_collection_until_the_switch_and_the_new_after(
    runtime: Runtime, s3: Any, qa_docs: list[QADocument]
) -> None:
    settings = runtime.settings
    old_plan, done = full_run(runtime, put_corpus(s3, "v1.jsonl", as_lines(qa_docs[:20])))
    assert (done["vectors"], done["documents"], done["previous"]) == (20, 20, None)
    reader = MilvusVectorStore(settings.resolved_milvus_uri, alias_ttl_s=0)
    alias = collection_name(settings, QA)
    assert reader.count(alias) == 20

    plan, split = plan_run(runtime, put_corpus(s3, "v2.jsonl", as_lines(qa_docs[5:])))
    for shard in shards(runtime, plan, split):
        embed(runtime, plan, shard)
    assert reader.count(alias) == 20  # the new collection is complete, not yet switched
    assert reader.missing_ids(alias, ["qa-000"]) == []

    done = finalize(runtime, plan, split)
    assert (done["previous"], done["pruned"]) == (old_plan.collection, 5)
    assert reader.count(alias) == 25
    assert reader.missing_ids(alias, ["qa-000", "qa-029"]) == ["qa-000"]
    assert not reader.has_collection(old_plan.collection)  # dropped after the switch
    assert open_document_store(settings).count(QA.store) == 25


def test_the_search_path_reads_through_the_alias(
    runtime: Runtime, s3: Any, qa_docs: list[QADocument]
) -> None:
    plan, _ = full_run(runtime, put_corpus(s3, "qa.jsonl", as_lines(qa_docs)))
    vector = runtime.indexer._encoder.embed(["How do I reset my password?"])[0]
    hits = open_vector_store(runtime.settings).search(plan.alias, vector, 3, {})
    assert hits[0].id == "qa-000"
    assert open_aliases(runtime.settings).target(plan.alias) == plan.collection


def test_finalizing_twice_changes_nothing(
    runtime: Runtime, s3: Any, qa_docs: list[QADocument]
) -> None:
    plan, split = plan_run(runtime, put_corpus(s3, "qa.jsonl", as_lines(qa_docs)))
    for shard in shards(runtime, plan, split):
        embed(runtime, plan, shard)
    first = finalize(runtime, plan, split)
    second = finalize(runtime, plan, split)
    assert first == second == {**first, "vectors": 30, "documents": 30, "previous": None}
    assert open_vector_store(runtime.settings).count(plan.collection) == 30


def test_a_collection_named_like_the_alias_is_replaced_only_when_asked(
    runtime: Runtime, s3: Any, indexer: Indexer, qa_docs: list[QADocument]
) -> None:
    settings = runtime.settings
    alias = collection_name(settings, QA)
    indexer.run(QA, alias, qa_docs[:10])  # what `mmsearch index` writes: a real collection
    uri = put_corpus(s3, "qa.jsonl", as_lines(qa_docs))
    with pytest.raises(AliasConflict, match="is a collection, not an alias"):
        full_run(runtime, uri)
    assert open_vector_store(settings).count(alias) == 10  # untouched

    _, done = full_run(runtime, uri, replace_collection=True)
    assert done["replaced_collection"] is True
    assert open_vector_store(settings).count(alias) == 30


def test_the_processing_entry_point_indexes_a_folder_of_shards(
    settings: Settings, tmp_path: Path, qa_docs: list[QADocument]
) -> None:
    folder = tmp_path / "input" / "shard"
    folder.mkdir(parents=True)
    (folder / "00000.jsonl").write_bytes(shard_body(qa_docs[:12]))
    (folder / "00001.jsonl").write_bytes(shard_body(qa_docs[12:]))
    indexer = open_indexer(BatchSettings(**settings.model_dump()))
    collection = collection_name(settings, QA) + "__run_local"
    first = process_folder(indexer, "qa", collection, tmp_path / "input")
    again = process_folder(indexer, "qa", collection, tmp_path / "input")
    assert [(r.docs, r.embedded) for r in first] == [(12, 12), (18, 18)]
    assert [r.embedded for r in again] == [0, 0]
    open_vector_store(settings).build_index(collection)
    assert open_vector_store(settings).count(collection) == 30


# --- image corpora: an index of image objects beside it in S3 ------------------------------

IMAGES = Path(__file__).resolve().parents[1] / "fixtures" / "images"
MEDIA_URL = "https://d111111abcdef8.cloudfront.net/media"


@pytest.fixture
def image_runtime(settings: Settings, s3: Any) -> Runtime:
    """Shards of two images; media into the data bucket's media/ (a media bucket in AWS)."""
    overrides = {"shard_docs": 2, "media_bucket": BUCKET, "media_base_url": MEDIA_URL}
    batch = BatchSettings(**(settings.model_dump() | overrides))
    return Runtime(batch, s3)


def put_images(s3: Any, folder: str, names: dict[str, str]) -> list[str]:
    """Upload fixtures as `folder/files/<name>`; the index lines naming them, captioned."""
    for name in names:
        s3.put_object(
            Bucket=BUCKET, Key=f"{folder}/files/{name}", Body=(IMAGES / name).read_bytes()
        )
    return [
        json.dumps({"id": name, "file": f"files/{name}", "caption": caption, "tags": ["t"]})
        for name, caption in names.items()
    ]


CAPTIONS = {"china.jpg": "a temple", "flower.jpg": "a flower", "camera-web.png": "a web camera"}


def test_an_image_index_is_checked_image_by_image_and_refusals_carry_line_numbers(
    image_runtime: Runtime, s3: Any
) -> None:
    lines = put_images(s3, "imgs", CAPTIONS)
    s3.put_object(Bucket=BUCKET, Key="imgs/files/notes.png", Body=b"plain text")
    lines += [
        json.dumps({"id": "gone", "file": "files/missing.jpg"}),
        json.dumps({"id": "notes", "file": "files/notes.png"}),
        json.dumps({"id": "up", "file": "../elsewhere/x.png"}),
        json.dumps({"id": "china.jpg", "file": "files/flower.jpg"}),
        "{broken",
    ]
    uri = put_corpus(s3, "imgs/images.jsonl", lines)
    plan = RunPlan.model_validate(
        dispatch(image_runtime, {"step": "validate", "request": {"input": uri, "scene": "t2i"}})
    )
    assert (plan.valid, plan.invalid) == (3, 5)
    assert [(i.line, i.reason) for i in plan.invalid_lines] == [
        (4, "file files/missing.jpg: not found"),
        (5, "file files/notes.png: not a readable image (UnidentifiedImageError)"),
        (6, "file ../elsewhere/x.png: not a relative path"),
        (7, "duplicate id 'china.jpg'"),
        (8, "not JSON: Expecting property name enclosed in double quotes"),
    ]


def test_an_image_run_writes_both_vector_spaces_media_and_documents_and_reruns_embed_nothing(
    image_runtime: Runtime, s3: Any, settings: Settings
) -> None:
    uri = put_corpus(s3, "imgs/images.jsonl", put_images(s3, "imgs", CAPTIONS))
    plan, split = plan_run(image_runtime, uri, scene="t2i")
    assert (split.shards, split.engine) == (2, "lambda")
    results = [embed(image_runtime, plan, shard) for shard in shards(image_runtime, plan, split)]
    assert [r["embedded"] for r in results] == [2, 1]
    done = finalize(image_runtime, plan, split)
    assert (done["vectors"], done["documents"]) == (3, 3)
    vectors = open_vector_store(settings)
    assert vectors.count(plan.alias) == vectors.count(image_collection(plan.alias)) == 3
    documents = open_document_store(settings).get(T2I.store, list(CAPTIONS))
    media = S3Media(s3, BUCKET, MEDIA_URL)
    for document in documents.values():
        for field in ("url", "thumbnail_url"):
            head = s3.head_object(Bucket=BUCKET, Key=media.key(document[field]))
            assert head["CacheControl"] == "public, max-age=31536000, immutable"
    assert documents["flower.jpg"]["name"] == "flower"  # the original file name, not a temp one
    assert documents["flower.jpg"]["url"].endswith(".jpg")

    # The media bucket emptied (a destroyed web stack) is refilled by a re-run that embeds
    # nothing (a fresh container: nothing published in this process yet).
    published = s3.list_objects_v2(Bucket=BUCKET, Prefix="media/")["Contents"]
    assert len(published) == 6
    s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": o["Key"]} for o in published]})
    fresh = Runtime(image_runtime.settings, s3)
    again = [embed(fresh, plan, shard) for shard in shards(fresh, plan, split)]
    assert [r["embedded"] for r in again] == [0, 0]
    restored = s3.list_objects_v2(Bucket=BUCKET, Prefix="media/")["Contents"]
    assert sorted(o["Key"] for o in restored) == sorted(o["Key"] for o in published)


def test_a_changed_image_behind_the_same_index_plans_another_run(
    image_runtime: Runtime, s3: Any
) -> None:
    uri = put_corpus(s3, "imgs/images.jsonl", put_images(s3, "imgs", CAPTIONS))
    request = {"step": "validate", "request": {"input": uri, "scene": "t2i"}}
    first = dispatch(image_runtime, request)["run_id"]
    assert dispatch(image_runtime, request)["run_id"] == first
    s3.put_object(
        Bucket=BUCKET, Key="imgs/files/flower.jpg", Body=(IMAGES / "china.jpg").read_bytes()
    )
    assert dispatch(image_runtime, request)["run_id"] != first
