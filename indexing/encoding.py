"""The batch side's text encoder: on the CPU (the default), or on a GPU through onnxruntime's
CUDA provider (`mmsearch index --device cuda`, the SageMaker processing job on a GPU instance).
Lambda never comes here: its encoder stays on the CPU."""

from __future__ import annotations

from pathlib import Path

from functions.core.models.text_encoder import CUDA_PROVIDER, TextEncoder, execution_providers

# A GPU runs a batch of a few hundred short texts in about the time of a batch of 32, so it
# needs large batches to be busy; on a CPU the configured size (32) stays the better one.
GPU_ENCODE_BATCH = 256


def load_batch_encoder(
    model_dir: Path, device: str = "cpu", *, threads: int = 0, float16: bool = False
) -> TextEncoder:
    """The encoder on `device` (cpu, cuda or auto); `DeviceUnavailable` when cuda is asked
    for and onnxruntime here has no CUDA provider or cannot start it."""
    return TextEncoder.load(
        model_dir,
        threads=threads,
        spin=False,  # batch jobs share the CPU with the stores' writes
        providers=execution_providers(device),
        float16=float16,
    )


def encode_batch_size(encoder: TextEncoder, configured: int) -> int:
    """Texts per encoder call: the configured size on a CPU, at least `GPU_ENCODE_BATCH` on
    a GPU."""
    return max(configured, GPU_ENCODE_BATCH) if on_gpu(encoder) else configured


def on_gpu(encoder: TextEncoder) -> bool:
    """Whether the encoder's session runs on CUDA."""
    return encoder.providers[0] == CUDA_PROVIDER
