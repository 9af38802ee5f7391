"""The indexing function: one Lambda handler, dispatching on the step the state machine names.

Errors propagate: the Lambda runtime reports the exception's class name as the error, which
the state machine retries (`StoreUnavailable`) or turns into its failed state (the rest).
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from pydantic import TypeAdapter

from functions.core.models.image_space import ImageSpaceEncoder, load_image_space
from functions.core.models.manifest import ModelManifest
from functions.core.models.text_encoder import TextEncoder
from functions.core.stores.aliases import open_aliases
from functions.core.stores.factory import image_collection, open_document_store, open_vector_store
from indexing.batch.events import (
    EmbedEvent,
    FinalizeEvent,
    RunPlan,
    ShardResult,
    SplitEvent,
    StepEvent,
    ValidateEvent,
)
from indexing.batch.finalize import finalize
from indexing.batch.images import ImageShardIndexer, embed_image_shard
from indexing.batch.objects import ObjectStore, parse_s3_uri
from indexing.batch.plan import InvalidCorpus, batch_scene, nlist_for, split, validate
from indexing.batch.settings import BatchSettings, load_settings
from indexing.batch.shard import ShardIndexer, embed_shard
from indexing.media import S3Media

LOG = logging.getLogger("mmsearch.batch")
EVENTS: TypeAdapter[StepEvent] = TypeAdapter(StepEvent)


class Runtime:
    """What the steps share within one Lambda container: settings, S3, stores, the encoder."""

    def __init__(self, settings: BatchSettings, s3_client: Any) -> None:
        self.settings = settings.model_copy(
            update={"store_timeout_s": max(settings.store_timeout_s, settings.batch_timeout_s)}
        )
        self.s3 = s3_client
        self.objects = ObjectStore(s3_client)

    @functools.cached_property
    def encoder(self) -> TextEncoder:
        return TextEncoder.load(
            self.settings.resolved_model_dir, threads=self.settings.encoder_threads
        )

    @functools.cached_property
    def image_space(self) -> ImageSpaceEncoder:
        """CLIP when the deployment ships one, else the tiny-image descriptor (as locally)."""
        return load_image_space(self.settings)

    @functools.cached_property
    def indexer(self) -> ShardIndexer:
        return ShardIndexer(
            self.encoder,
            open_vector_store(self.settings),
            open_document_store(self.settings),
            encode_batch_size=self.settings.encode_batch_size,
        )

    @functools.cached_property
    def image_indexer(self) -> ImageShardIndexer:
        bucket = self.settings.media_bucket or self.settings.batch_bucket
        if not bucket:
            raise InvalidCorpus("image runs need MMSEARCH_MEDIA_BUCKET for their media")
        return ImageShardIndexer(
            self.encoder,
            self.image_space,
            open_vector_store(self.settings),
            open_document_store(self.settings),
            S3Media(self.s3, bucket, self.settings.media_base_url),
            encode_batch_size=self.settings.encode_batch_size,
        )

    def collections(self, plan: RunPlan) -> dict[str, int]:
        """The run's vector collections and their dimensions."""
        dims = {plan.collection: ModelManifest.read(self.settings.resolved_model_dir).dim}
        if batch_scene(plan.scene).kind == "image":
            dims[image_collection(plan.collection)] = self.image_space.dim
        return dims


def dispatch(runtime: Runtime, payload: dict[str, Any]) -> dict[str, Any]:
    """Run the step `payload` names and return its JSON-ready result."""
    event = EVENTS.validate_python(payload)
    settings = runtime.settings
    if isinstance(event, ValidateEvent):
        result: Any = validate(event.request, runtime.objects, settings)
    elif isinstance(event, SplitEvent):
        vectors = open_vector_store(nlist_for(settings, event.plan.valid))
        dims = runtime.collections(event.plan)
        result = split(event.plan, runtime.objects, settings, vectors, dims)
    elif isinstance(event, EmbedEvent):
        result = embed(runtime, event)
    else:
        assert isinstance(event, FinalizeEvent)
        result = finalize(
            event.plan,
            event.split,
            runtime.objects,
            open_vector_store(settings),
            open_document_store(settings),
            open_aliases(settings),
        )
    LOG.info("step %s done: %s", event.step, result.model_dump_json(exclude={"invalid_lines"}))
    output: dict[str, Any] = result.model_dump(mode="json")
    return output


def embed(runtime: Runtime, event: EmbedEvent) -> ShardResult:
    """One shard: text documents, or images fetched from the corpus' bucket."""
    plan, shard, objects = event.plan, event.shard, runtime.objects
    scene = batch_scene(plan.scene)
    if scene.kind == "image":
        bucket = parse_s3_uri(plan.input)[0]
        return embed_image_shard(plan, shard, objects, runtime.image_indexer, scene, bucket)
    return embed_shard(plan, shard, objects, runtime.indexer, scene)


@functools.cache
def runtime() -> Runtime:
    """Built once per container (Lambda init), from `MMSEARCH_*` variables."""
    import boto3

    s3 = boto3.client("s3")
    return Runtime(load_settings(s3), s3)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point for every step of the indexing state machine."""
    return dispatch(runtime(), event)
