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
