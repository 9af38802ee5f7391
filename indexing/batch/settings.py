"""Batch settings: the shared `Settings` plus where runs write and how corpora are cut."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from functions.core.models.text_encoder import Device
from functions.core.settings import Settings


class BatchSettings(Settings):
    """Read like `Settings` (`MMSEARCH_<FIELD>`); the state machine's function sets these."""

    batch_bucket: str | None = Field(
        None, description="Bucket for run shards and reports; None: the input's bucket."
    )
    shard_docs: int = Field(2_000, ge=1, description="Documents per Lambda shard.")
    sagemaker_min_docs: int = Field(
        200_000, ge=1, description="Corpora at least this large embed on SageMaker."
    )
    sagemaker_shard_docs: int = Field(
        50_000, ge=1, description="Documents per SageMaker shard (one processing job each)."
    )
    encoder_device: Device = Field(
        "cpu",
        description="Where the processing job embeds: cpu, cuda (onnxruntime-gpu on a GPU"
        " instance; refused without it) or auto.",
    )
    encoder_float16: bool = Field(False, description="Embed with float16 weights (GPUs).")
    media_bucket: str | None = Field(
        None,
        description="Bucket for image originals and thumbnails (under media/, served by"
        " CloudFront at media_base_url); None: the batch bucket.",
    )


def load_settings(s3: Any = None) -> BatchSettings:
    """Settings from the environment, with the connection secret and the model from S3
    resolved (once per process: Lambda init or a processing job's start)."""
    from functions.core.models.model_source import materialize_models
    from functions.core.stores.connection import resolve_connection

    settings = materialize_models(resolve_connection(BatchSettings()), s3)
    assert isinstance(settings, BatchSettings)  # model_copy keeps the class
    return settings
