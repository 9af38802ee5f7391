"""The last step: index the run's collection, verify both stores, switch the alias, prune."""

from __future__ import annotations

import json

from functions.core.stores.aliases import CollectionAliases, switch_alias
from functions.core.stores.document_store import DocumentStore
from functions.core.stores.factory import image_collection
from functions.core.stores.vector_store import VectorStore
from indexing.batch.events import Finalized, RunPlan, ShardRef, Split
from indexing.batch.images import read_image_shard
from indexing.batch.objects import ObjectStore
from indexing.batch.plan import batch_scene
from indexing.batch.shard import parse_corpus
from indexing.indexer import IndexVerificationError


def run_ids(plan: RunPlan, split: Split, objects: ObjectStore) -> list[str]:
    """Every document id of the run, read back from its shards."""
    listed = json.loads(objects.read(plan.bucket, split.manifest_key))
    scene = batch_scene(plan.scene)
    image_run = scene.kind == "image"
    ids: list[str] = []
    for entry in listed:
        shard = ShardRef.model_validate(entry)
        data = objects.read(plan.bucket, shard.key)
        docs = read_image_shard(data) if image_run else parse_corpus(data, scene).documents
        ids.extend(d.id for d in docs)
    return ids


def run_collections(plan: RunPlan) -> dict[str, str]:
    """{the name readers use: the run's collection behind it}: the caption collection, and for
    an image scene its image-space collection too."""
    names = {plan.alias: plan.collection}
    if batch_scene(plan.scene).kind == "image":
        names[image_collection(plan.alias)] = image_collection(plan.collection)
    return names


def verify_run(
    plan: RunPlan, ids: list[str], vectors: VectorStore, documents: DocumentStore
) -> tuple[int, int]:
    """The run's collections hold exactly `ids` and MongoDB holds each of them; else
    `IndexVerificationError`, and the aliases stay where they were."""
    store = batch_scene(plan.scene).store
    problems = []
    if len(ids) != plan.valid:
        problems.append(f"the shards hold {len(ids)} documents, validation counted {plan.valid}")
    counts = []
    for collection in run_collections(plan).values():
        count = vectors.count(collection)
        counts.append(count)
        if count != len(ids):
            problems.append(f"Milvus {collection!r} holds {count} vectors, expected {len(ids)}")
        if missing := vectors.missing_ids(collection, ids):
            problems.append(
                f"{len(missing)} ids missing from Milvus {collection!r} (e.g. {missing[:3]})"
            )
    count = counts[0]
    stored = documents.fingerprints(store)
    if missing := [i for i in ids if i not in stored]:
        problems.append(f"{len(missing)} ids missing from MongoDB (e.g. {missing[:3]})")
    if problems:
        raise IndexVerificationError(f"run {plan.run_id} not switched: " + "; ".join(problems))
    return count, len(ids)


def finalize(
    plan: RunPlan,
    split: Split,
    objects: ObjectStore,
    vectors: VectorStore,
    documents: DocumentStore,
    aliases: CollectionAliases,
) -> Finalized:
    """Build and load the index, verify, switch the alias, then drop documents that left
    the corpus (after the switch: until then the old collection's readers may fetch them)."""
    ids = run_ids(plan, split, objects)
    collections = run_collections(plan)
    for collection in collections.values():
        vectors.build_index(collection)
    count, _ = verify_run(plan, ids, vectors, documents)
    # The image-space alias first, then the captions': for a moment readers may match new
    # images beside old captions, never a collection that is gone.
    switches = [
        switch_alias(aliases, alias, collection, replace_collection=plan.replace_collection)
        for alias, collection in reversed(collections.items())
    ]
    switched = switches[-1]
    store = batch_scene(plan.scene).store
    keep = set(ids)
    stale = [i for i in documents.fingerprints(store) if i not in keep]
    documents.delete(store, stale)
    stored = documents.count(store)
    if stored != len(ids):
        raise IndexVerificationError(
            f"after the switch MongoDB holds {stored} {store!r} documents, expected {len(ids)}"
        )
    return Finalized(
        alias=plan.alias,
        collection=plan.collection,
        previous=switched.previous,
        vectors=count,
        documents=stored,
        pruned=len(stale),
        replaced_collection=switched.replaced_collection,
    )
