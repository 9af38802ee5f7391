"""Batch embedding picks its device: cpu by default, cuda through onnxruntime's CUDA provider
(refused with a clear message where there is none), auto; float16 weights optional."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from pydantic import ValidationError

from functions.core.models.text_encoder import (
    CPU_PROVIDER,
    CUDA_PROVIDER,
    DeviceUnavailable,
    TextEncoder,
    execution_providers,
)
from functions.core.settings import Settings
from indexing.batch.processing import open_indexer
from indexing.batch.settings import BatchSettings
from indexing.encoding import GPU_ENCODE_BATCH, encode_batch_size, load_batch_encoder
from infra.processing import processing_device
from tests.offline.test_cli import FIXTURE, env, mmsearch

__all__ = ["env"]  # the fixture: a private MMSEARCH_HOME and the session's model

HAS_CUDA = CUDA_PROVIDER in ort.get_available_providers()
no_cuda_here = pytest.mark.skipif(HAS_CUDA, reason="this onnxruntime has a CUDA provider")


def test_cpu_is_the_default_device_and_keeps_the_configured_batch(model_dir: Path) -> None:
    encoder = load_batch_encoder(model_dir)
    assert encoder.providers == [CPU_PROVIDER]
    assert encode_batch_size(encoder, 32) == 32


def test_auto_takes_cuda_only_where_onnxruntime_has_it() -> None:
    expected = [CUDA_PROVIDER, CPU_PROVIDER] if HAS_CUDA else [CPU_PROVIDER]
    assert execution_providers("auto") == expected


def test_an_unknown_device_is_refused() -> None:
    with pytest.raises(ValueError, match="expected one of cpu, cuda, auto"):
        execution_providers("gpu")


@no_cuda_here
def test_cuda_without_a_cuda_provider_is_refused_naming_the_fix(model_dir: Path) -> None:
    with pytest.raises(DeviceUnavailable, match=r"no CUDAExecutionProvider.*onnxruntime-gpu"):
        load_batch_encoder(model_dir, "cuda")


@pytest.mark.skipif(not HAS_CUDA, reason="needs onnxruntime-gpu and a GPU")
def test_cuda_embeds_like_the_cpu_in_large_batches(model_dir: Path) -> None:
    gpu, cpu = load_batch_encoder(model_dir, "cuda"), load_batch_encoder(model_dir)
    texts = [json.loads(line)["answer"] for line in FIXTURE.read_text().splitlines()]
    assert encode_batch_size(gpu, 32) == GPU_ENCODE_BATCH
    cosines = (gpu.embed(texts) * cpu.embed(texts)).sum(axis=1)
    assert cosines.min() > 0.9999


def test_float16_weights_embed_within_a_rounding_of_float32(
    model_dir: Path, encoder: TextEncoder
) -> None:
    half = load_batch_encoder(model_dir, "cpu", float16=True)
    texts = [json.loads(line)["answer"] for line in FIXTURE.read_text().splitlines()]
    vectors = half.embed(texts)
    assert vectors.dtype == np.float32  # inputs and outputs keep their types
    assert (vectors * encoder.embed(texts)).sum(axis=1).min() > 0.999


@no_cuda_here
def test_index_with_device_cuda_exits_with_the_reason_and_writes_nothing(
    env: dict[str, str],
) -> None:
    result = mmsearch(env, "index", "--input", str(FIXTURE), "--device", "cuda")
    assert result.returncode == 1
    message = " ".join((result.stdout + result.stderr).split())
    assert "no CUDAExecutionProvider" in message and "onnxruntime-gpu" in message
    assert "indexed" not in message


@no_cuda_here
def test_the_processing_job_passes_its_device_through(settings: Settings) -> None:
    batch = BatchSettings(**{**settings.model_dump(), "encoder_device": "cuda"})
    with pytest.raises(DeviceUnavailable, match="onnxruntime-gpu"):
        open_indexer(batch)
    with pytest.raises(ValidationError):
        BatchSettings(**{**settings.model_dump(), "encoder_device": "gpu"})


def test_processing_jobs_on_gpu_instances_embed_with_cuda() -> None:
    assert processing_device("ml.g5.xlarge") == "cuda"
    assert processing_device("ml.p4d.24xlarge") == "cuda"
    assert processing_device("ml.m5.xlarge") == "cpu"
