"""The last step: index the run's collection, verify both stores, switch the alias, prune."""

from __future__ import annotations

import json

from functions.core.document_store import DocumentStore
from functions.core.vector_store import VectorStore
from indexing.batch.aliases import CollectionAliases, switch_alias
from indexing.batch.events import Finalized, RunPlan, ShardRef, Split
from indexing.batch.objects import ObjectStore
from indexing.batch.plan import text_scene
from indexing.batch.shard import parse_corpus
from indexing.indexer import IndexVerificationError


def run_ids(plan: RunPlan, split: Split, objects: ObjectStore) -> list[str]:
    """Every document id of the run, read back from its shards."""
    listed = json.loads(objects.read(plan.bucket, split.manifest_key))
    ids: list[str] = []
    for entry in listed:
        shard = ShardRef.model_validate(entry)
        ids.extend(d.id for d in parse_corpus(objects.read(plan.bucket, shard.key)).documents)
    return ids


def verify_run(
    plan: RunPlan, ids: list[str], vectors: VectorStore, documents: DocumentStore
) -> tuple[int, int]:
    """The run's collection holds exactly `ids` and MongoDB holds each of them; else
    `IndexVerificationError`, and the alias stays where it was."""
    store = text_scene(plan.scene).store
    problems = []
    if len(ids) != plan.valid:
        problems.append(f"the shards hold {len(ids)} documents, validation counted {plan.valid}")
    count = vectors.count(plan.collection)
    if count != len(ids):
        problems.append(f"Milvus {plan.collection!r} holds {count} vectors, expected {len(ids)}")
    if missing := vectors.missing_ids(plan.collection, ids):
        problems.append(f"{len(missing)} ids missing from Milvus (e.g. {missing[:3]})")
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
    vectors.build_index(plan.collection)
    count, _ = verify_run(plan, ids, vectors, documents)
    switched = switch_alias(
        aliases, plan.alias, plan.collection, replace_collection=plan.replace_collection
    )
    store = text_scene(plan.scene).store
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
