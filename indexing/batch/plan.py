"""The first two steps: validate the input corpus, then cut it into shards in S3."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any

from functions.core.errors import UnknownScene
from functions.core.models.image_space import clip_model_dir
from functions.core.models.manifest import ModelManifest
from functions.core.scenes import Scene, get_scene
from functions.core.settings import Settings
from functions.core.stores.factory import collection_name
from functions.core.stores.vector_store import VectorStore, auto_nlist
from indexing.batch.events import (
    MAX_REPORTED_INVALID,
    RUNS_PREFIX,
    InvalidLine,
    RunPlan,
    RunRequest,
    ShardRef,
    Split,
)
from indexing.batch.images import image_shard_body, read_image_index, read_image_shard
from indexing.batch.objects import ObjectStore, parse_s3_uri
from indexing.batch.settings import BatchSettings
from indexing.batch.shard import parse_corpus, shard_body


class InvalidCorpus(Exception):
    """The input holds nothing indexable, or names a scene this step does not cover."""


def batch_scene(name: str) -> Scene:
    """The scene named (text scenes index JSON lines of documents, image scenes an index of
    image objects); an unknown name is `InvalidCorpus`."""
    try:
        return get_scene(name)
    except UnknownScene as exc:
        raise InvalidCorpus(str(exc)) from None


def text_scene(name: str) -> Scene:
    """The scene named, if it is a text scene (what the SageMaker branch embeds)."""
    scene = batch_scene(name)
    if scene.kind == "image":
        raise InvalidCorpus(f"scene {name!r} indexes images: its shards embed on Lambda")
    return scene


def run_id(data: bytes, alias: str, model: str) -> str:
    """Same corpus, target and model: same run (so a re-run resumes instead of duplicating)."""
    digest = hashlib.sha256(f"{alias}\n{model}\n".encode())
    digest.update(data)
    return digest.hexdigest()[:16]


def model_identity(settings: Settings, scene: Scene | None = None) -> str:
    """The model's weights digest when its manifest is at hand, else ''; for an image scene
    the image space's too (CLIP's export, or none: the tiny-image descriptor)."""
    try:
        manifest = ModelManifest.read(settings.resolved_model_dir)
    except (OSError, ValueError):
        return ""
    identity = manifest.files.get("model.onnx", manifest.name)
    if scene is not None and scene.kind == "image":
        clip = clip_model_dir(settings)
        identity += "|" + (str(clip) if clip else "tiny-image")
    return identity


def validate(request: RunRequest, objects: ObjectStore, settings: BatchSettings) -> RunPlan:
    """Read and check every line (and, for images, every image); fail when none is valid,
    else plan the run."""
    scene = batch_scene(request.scene)
    bucket, key = parse_s3_uri(request.input)
    documents: list[Any]
    if scene.kind == "image":
        images = read_image_index(objects, bucket, key, settings.max_image_pixels)
        content, documents, refused = images.digest.encode(), images.documents, images.invalid
    else:
        content = objects.read(bucket, key)
        corpus = parse_corpus(content, scene)
        documents, refused = list(corpus.documents), corpus.invalid
    alias = collection_name(settings, scene)
    identity = run_id(content, alias, model_identity(settings, scene))
    out_bucket = settings.batch_bucket or bucket
    prefix = f"{RUNS_PREFIX}{scene.store}/{identity}/"
    invalid = [InvalidLine(line=r.line, reason=r.reason) for r in refused]
    if invalid:
        report = "".join(json.dumps(i.model_dump()) + "\n" for i in invalid).encode()
        objects.write(out_bucket, prefix + "invalid.jsonl", report, "application/x-ndjson")
    if scene.kind == "image" and documents:
        valid = image_shard_body(documents)
        objects.write(out_bucket, valid_images_key(prefix), valid, "application/x-ndjson")
    if not documents:
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
        valid=len(documents),
        invalid=len(invalid),
        invalid_lines=invalid[:MAX_REPORTED_INVALID],
        replace_collection=request.replace_collection,
    )


def split(
    plan: RunPlan,
    objects: ObjectStore,
    settings: BatchSettings,
    vectors: VectorStore,
    dims: dict[str, int],
) -> Split:
    """Write the valid documents as shards plus a manifest, and create the run's collections
    (`dims`: each one's dimension) with their indexes, so shards write into loaded ones."""
    scene = batch_scene(plan.scene)
    input_bucket, input_key = parse_s3_uri(plan.input)
    if scene.kind == "image":
        # What validate accepted, images checked: reading them all again would double its cost.
        documents: list[Any] = read_image_shard(objects.read(plan.bucket, valid_images_key(plan)))
        body: Callable[[Sequence[Any]], bytes] = image_shard_body
    else:
        documents = list(parse_corpus(objects.read(input_bucket, input_key), scene).documents)
        body = shard_body
    if len(documents) != plan.valid:
        raise InvalidCorpus(f"{plan.input} changed since validation; start a new run")
    # SageMaker's processing jobs embed text shards; image runs stay on Lambda.
    sagemaker = scene.kind != "image" and plan.valid >= settings.sagemaker_min_docs
    size = settings.sagemaker_shard_docs if sagemaker else settings.shard_docs
    shards = []
    for index, start in enumerate(range(0, len(documents), size)):
        chunk = documents[start : start + size]
        key = f"{plan.prefix}shards/{index:05d}.jsonl"
        objects.write(plan.bucket, key, body(chunk), "application/x-ndjson")
        shards.append(ShardRef(index=index, key=key, docs=len(chunk)))
    manifest_key = plan.prefix + "manifest.json"
    manifest = json.dumps([s.model_dump() for s in shards]).encode()
    objects.write(plan.bucket, manifest_key, manifest, "application/json")
    for name, dim in dims.items():
        vectors.ensure_collection(
            name, dim, scene.array_filter_fields, scene.scalar_filter_fields, scene.lexical_fields
        )
        vectors.build_index(name)
    return Split(
        manifest_key=manifest_key,
        shards=len(shards),
        engine="sagemaker" if sagemaker else "lambda",
        shard_docs=size,
    )


def valid_images_key(plan_or_prefix: RunPlan | str) -> str:
    """Where validate leaves the image documents it accepted, for split to cut."""
    prefix = plan_or_prefix if isinstance(plan_or_prefix, str) else plan_or_prefix.prefix
    return prefix + "images.jsonl"


def nlist_for(settings: Settings, docs: int) -> Settings:
    """Settings whose IVF list count suits `docs` documents (the run's collection is indexed
    while still empty, so the corpus size must come from the plan)."""
    return settings.model_copy(update={"nlist": settings.nlist or auto_nlist(docs)})
