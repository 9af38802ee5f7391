"""Encoding throughput: our ONNX encoder against sentence-transformers, same texts and threads."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from functions.core.models.text_encoder import TextEncoder


def measure_encode(
    texts: list[str], model_dir: Path, model_source: str, *, batch_size: int = 32, threads: int = 2
) -> dict[str, Any]:
    """Docs/s of each encoder over the same texts, same batch size, same thread count."""
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    encoder = TextEncoder.load(model_dir, threads=threads)
    reference = SentenceTransformer(model_source, device="cpu")
    encoder.embed(texts[:64], batch_size=batch_size)  # warm-up: first runs allocate
    reference.encode(texts[:64], batch_size=batch_size)

    started = time.perf_counter()
    encoder.embed(texts, batch_size=batch_size)
    onnx = len(texts) / (time.perf_counter() - started)
    started = time.perf_counter()
    reference.encode(texts, batch_size=batch_size)
    sentence_transformers = len(texts) / (time.perf_counter() - started)

    single = []
    for text in texts[:200]:
        started = time.perf_counter()
        encoder.embed([text])
        single.append((time.perf_counter() - started) * 1000)
    single.sort()
    return {
        "encode_docs_per_s": {
            "onnx": round(onnx, 1),
            "sentence_transformers": round(sentence_transformers, 1),
        },
        "encode_speedup": round(onnx / sentence_transformers, 3),
        "encode_single_p50_ms": round(single[len(single) // 2], 3),
        "encode_texts": len(texts),
        "encode_batch_size": batch_size,
        "threads": threads,
    }


def cuda_device() -> str | None:
    """The first CUDA device's name, or None when torch sees none (a CPU-only torch included)."""
    try:
        import torch
    except ImportError:
        return None
    return str(torch.cuda.get_device_name(0)) if torch.cuda.is_available() else None


def measure_gpu_encode(texts: list[str], model_dir: Path, model_source: str) -> dict[str, Any]:
    """Batch embedding on the GPU: our encoder as `mmsearch index --device cuda` loads it (float32
    and --float16, the batch size it picks on a GPU) against sentence-transformers in float16,
    same texts, same batch size, same run. {"measured": False, "reason": ...} without a GPU."""
    device = cuda_device()
    if device is None:
        return {"measured": False, "reason": "no GPU"}
    try:
        return {"measured": True, "device": device, **_gpu_rates(texts, model_dir, model_source)}
    except Exception as exc:  # a missing CUDA provider, out of memory: say so, keep the run
        return {"measured": False, "device": device, "reason": f"{type(exc).__name__}: {exc}"}


def _gpu_rates(texts: list[str], model_dir: Path, model_source: str) -> dict[str, Any]:
    import torch
    from sentence_transformers import SentenceTransformer

    from indexing.encoding import GPU_ENCODE_BATCH, load_batch_encoder

    def rate(embed: Any) -> float:
        embed(texts[: 2 * GPU_ENCODE_BATCH])  # warm-up: kernels, allocations
        torch.cuda.synchronize()
        started = time.perf_counter()
        embed(texts)
        torch.cuda.synchronize()
        return round(len(texts) / (time.perf_counter() - started), 1)

    rates: dict[str, float] = {}
    for label, half in (("onnx_float32", False), ("onnx_float16", True)):
        encoder = load_batch_encoder(model_dir, "cuda", float16=half)
        rates[label] = rate(lambda t, e=encoder: e.embed(t, batch_size=GPU_ENCODE_BATCH))
        del encoder
    reference = SentenceTransformer(model_source, device="cuda").half()
    rates["sentence_transformers_float16"] = rate(
        lambda t: reference.encode(t, batch_size=GPU_ENCODE_BATCH, convert_to_numpy=True)
    )
    best = max(("onnx_float32", "onnx_float16"), key=lambda k: rates[k])
    return {
        "texts": len(texts),
        "batch_size": GPU_ENCODE_BATCH,
        "docs_per_s": rates,
        "best": best,
        "vs_sentence_transformers_float16": round(
            rates[best] / rates["sentence_transformers_float16"], 3
        ),
    }
