"""GPU batch embedding vs the same machine's CPU, same model, same texts (run on a GPU box).

Usage: python bench/gpu_embed_check.py MODEL_DIR CORPUS_JSONL [--limit N]
Prints one JSON line per configuration: device, dtype, batch, docs, seconds, docs/s.
Offline-only: the model is a local sentence-transformers folder.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from sentence_transformers import SentenceTransformer


def texts_of(corpus: str, limit: int) -> list[str]:
    texts = []
    with open(corpus, encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            texts.append(f"{row.get('title', '')} {row.get('text', '')}".strip())
            if len(texts) == limit:
                break
    return texts


def timed(model: SentenceTransformer, texts: list[str], batch: int) -> float:
    model.encode(texts[: batch * 2], batch_size=batch)  # warm-up: kernels, allocator
    if model.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    model.encode(texts, batch_size=batch, normalize_embeddings=True)
    if model.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("corpus")
    parser.add_argument("--limit", type=int, default=5183)
    args = parser.parse_args()
    texts = texts_of(args.corpus, args.limit)
    runs = [("cpu", torch.float32, 32, min(len(texts), 1000))]
    if torch.cuda.is_available():
        runs += [("cuda", torch.float32, 128, len(texts)), ("cuda", torch.float16, 128, len(texts))]
    for device, dtype, batch, n in runs:
        model = SentenceTransformer(args.model, device=device, model_kwargs={"torch_dtype": dtype})
        seconds = timed(model, texts[:n], batch)
        print(
            json.dumps(
                {
                    "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
                    "cpu_threads": torch.get_num_threads(),
                    "dtype": str(dtype),
                    "batch": batch,
                    "docs": n,
                    "seconds": round(seconds, 3),
                    "docs_per_s": round(n / seconds, 1),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
