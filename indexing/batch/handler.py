"""The indexing function: one Lambda handler, dispatching on the step the state machine names.

Errors propagate: the Lambda runtime reports the exception's class name as the error, which
the state machine retries (`StoreUnavailable`) or turns into its failed state (the rest).
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from pydantic import TypeAdapter

from functions.core.encoder import TextEncoder
from functions.core.manifest import ModelManifest
from functions.core.stores import open_document_store, open_vector_store
from indexing.batch.aliases import open_aliases
from indexing.batch.events import (
    EmbedEvent,
    FinalizeEvent,
    SplitEvent,
    StepEvent,
    ValidateEvent,
)
from indexing.batch.finalize import finalize
from indexing.batch.objects import ObjectStore
from indexing.batch.plan import nlist_for, split, text_scene, validate
from indexing.batch.settings import BatchSettings, load_settings
from indexing.batch.shard import ShardIndexer, embed_shard

LOG = logging.getLogger("mmsearch.batch")
EVENTS: TypeAdapter[StepEvent] = TypeAdapter(StepEvent)


class Runtime:
    """What the steps share within one Lambda container: settings, S3, stores, the encoder."""

    def __init__(self, settings: BatchSettings, s3_client: Any) -> None:
        self.settings = settings.model_copy(
            update={"store_timeout_s": max(settings.store_timeout_s, settings.batch_timeout_s)}
        )
        self.objects = ObjectStore(s3_client)

    @functools.cached_property
    def indexer(self) -> ShardIndexer:
        encoder = TextEncoder.load(
            self.settings.resolved_model_dir, threads=self.settings.encoder_threads
        )
        return ShardIndexer(
            encoder,
            open_vector_store(self.settings),
            open_document_store(self.settings),
            encode_batch_size=self.settings.encode_batch_size,
        )


def dispatch(runtime: Runtime, payload: dict[str, Any]) -> dict[str, Any]:
    """Run the step `payload` names and return its JSON-ready result."""
    event = EVENTS.validate_python(payload)
    settings = runtime.settings
    if isinstance(event, ValidateEvent):
        result: Any = validate(event.request, runtime.objects, settings)
    elif isinstance(event, SplitEvent):
        dim = ModelManifest.read(settings.resolved_model_dir).dim
        vectors = open_vector_store(nlist_for(settings, event.plan.valid))
        result = split(event.plan, runtime.objects, settings, vectors, dim)
    elif isinstance(event, EmbedEvent):
        scene = text_scene(event.plan.scene)
        result = embed_shard(event.plan, event.shard, runtime.objects, runtime.indexer, scene)
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


@functools.cache
def runtime() -> Runtime:
    """Built once per container (Lambda init), from `MMSEARCH_*` variables."""
    import boto3

    s3 = boto3.client("s3")
    return Runtime(load_settings(s3), s3)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point for every step of the indexing state machine."""
    return dispatch(runtime(), event)
