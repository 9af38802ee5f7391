"""The first two steps: validate the input corpus, then cut it into shards in S3."""

from __future__ import annotations

import hashlib
import json

from functions.core.manifest import ModelManifest
from functions.core.scenes import Scene, get_scene
from functions.core.settings import Settings
from functions.core.stores import collection_name
from functions.core.vector_store import VectorStore, auto_nlist
from indexing.batch.events import (
    MAX_REPORTED_INVALID,
    RUNS_PREFIX,
    InvalidLine,
    RunPlan,
    RunRequest,
    ShardRef,
    Split,
)
from indexing.batch.objects import ObjectStore, parse_s3_uri
from indexing.batch.settings import BatchSettings
from indexing.batch.shard import parse_corpus, shard_body


class InvalidCorpus(Exception):
    """The input holds nothing indexable, or names a scene batch indexing does not cover."""


def text_scene(name: str) -> Scene:
    """The scene named, if batch indexing covers it (text scenes)."""
    scene = get_scene(name)
    if scene.kind != "text":
        raise InvalidCorpus(
            f"scene {name!r} indexes images; batch indexing covers text scenes"
            " (use `mmsearch index-images` for image corpora)"
        )
    return scene


def run_id(data: bytes, alias: str, model: str) -> str:
    """Same corpus, target and model: same run (so a re-run resumes instead of duplicating)."""
    digest = hashlib.sha256(f"{alias}\n{model}\n".encode())
    digest.update(data)
    return digest.hexdigest()[:16]


def model_identity(settings: Settings) -> str:
    """The model's weights digest when its manifest is at hand, else ''."""
    try:
        manifest = ModelManifest.read(settings.resolved_model_dir)
    except (OSError, ValueError):
        return ""
    return manifest.files.get("model.onnx", manifest.name)


def validate(request: RunRequest, objects: ObjectStore, settings: BatchSettings) -> RunPlan:
    """Read and check every line; fail when none is valid, else plan the run."""
    scene = text_scene(request.scene)
    bucket, key = parse_s3_uri(request.input)
    data = objects.read(bucket, key)
    corpus = parse_corpus(data)
    alias = collection_name(settings, scene)
    identity = run_id(data, alias, model_identity(settings))
    out_bucket = settings.batch_bucket or bucket
    prefix = f"{RUNS_PREFIX}{scene.store}/{identity}/"
    invalid = [InvalidLine(line=r.line, reason=r.reason) for r in corpus.invalid]
    if invalid:
        report = "".join(json.dumps(i.model_dump()) + "\n" for i in invalid).encode()
        objects.write(out_bucket, prefix + "invalid.jsonl", report, "application/x-ndjson")
    if not corpus.documents:
        shown = "; ".join(f"line {i.line}: {i.reason}" for i in invalid[:5])
        raise InvalidCorpus(
            f"no valid records in {request.input} ({len(invalid)} invalid lines"
            + (f"; {shown}" if shown else "")
            + ")"
        )
    return RunPlan(
        run_id=identity,
        input=request.input,
        scene=scene.name,
        bucket=out_bucket,
        prefix=prefix,
        alias=alias,
        collection=f"{alias}__run_{identity}",
        valid=len(corpus.documents),
        invalid=len(invalid),
        invalid_lines=invalid[:MAX_REPORTED_INVALID],
        replace_collection=request.replace_collection,
    )


def split(
    plan: RunPlan, objects: ObjectStore, settings: BatchSettings, vectors: VectorStore, dim: int
) -> Split:
    """Write the valid documents as shards plus a manifest, and create the run's collection
    with its index, so shards write into a loaded collection."""
    input_bucket, input_key = parse_s3_uri(plan.input)
    documents = parse_corpus(objects.read(input_bucket, input_key)).documents
    if len(documents) != plan.valid:
        raise InvalidCorpus(f"{plan.input} changed since validation; start a new run")
    sagemaker = plan.valid >= settings.sagemaker_min_docs
    size = settings.sagemaker_shard_docs if sagemaker else settings.shard_docs
    shards = []
    for index, start in enumerate(range(0, len(documents), size)):
        chunk = documents[start : start + size]
        key = f"{plan.prefix}shards/{index:05d}.jsonl"
        objects.write(plan.bucket, key, shard_body(chunk), "application/x-ndjson")
        shards.append(ShardRef(index=index, key=key, docs=len(chunk)))
    manifest_key = plan.prefix + "manifest.json"
    manifest = json.dumps([s.model_dump() for s in shards]).encode()
    objects.write(plan.bucket, manifest_key, manifest, "application/json")
    scene = text_scene(plan.scene)
    vectors.ensure_collection(plan.collection, dim, scene.array_filter_fields)
    vectors.build_index(plan.collection)
    return Split(
        manifest_key=manifest_key,
        shards=len(shards),
        engine="sagemaker" if sagemaker else "lambda",
        shard_docs=size,
    )


def nlist_for(settings: Settings, docs: int) -> Settings:
    """Settings whose IVF list count suits `docs` documents (the run's collection is indexed
    while still empty, so the corpus size must come from the plan)."""
    return settings.model_copy(update={"nlist": settings.nlist or auto_nlist(docs)})
