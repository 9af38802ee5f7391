"""GPU batch embedding: our product path against sentence-transformers, same texts, same run.

Usage: python bench/gpu_embed_check.py ST_MODEL_DIR EXPORTED_DIR CORPUS_JSONL [--limit N]

ST_MODEL_DIR is a local sentence-transformers folder, EXPORTED_DIR the same model exported by
`mmsearch export` (what `mmsearch index --device cuda` loads). Prints one JSON line per
configuration (path, device, dtype, batch, docs, seconds, docs/s), then a summary line with
our best GPU rate over sentence-transformers float16's (the goal: >= 1). Our path is timed as
the indexer calls it: `TextEncoder.embed` on whole windows of 1,000 texts (tokenised in
parallel by `encode_batch`, length-sorted, fed in batches). Without a GPU it runs the CPU rows
only and says so.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WINDOW = 1000  # the indexer's batch (indexing.indexer.BATCH_DOCS)


def texts_of(corpus: str, limit: int) -> list[str]:
    texts = []
    with open(corpus, encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            title = row.get("title") or row.get("question") or ""
            body = row.get("text") or row.get("answer") or ""
            texts.append(f"{title} {body}".strip())
            if len(texts) == limit:
                break
    return texts


def timed(embed: Callable[[list[str]], Any], texts: list[str], sync: Callable[[], None]) -> float:
    embed(texts[:256])  # warm-up: kernels, allocator, cuDNN/cuBLAS autotuning
    sync()
    start = time.perf_counter()
    embed(texts)
    sync()
    return time.perf_counter() - start


def ours(exported: Path, device: str, float16: bool, batch: int) -> Callable[[list[str]], Any]:
    from indexing.encoding import load_batch_encoder

    encoder = load_batch_encoder(exported, device, float16=float16)

    def embed(texts: list[str]) -> None:
        for start in range(0, len(texts), WINDOW):
            encoder.embed(texts[start : start + WINDOW], batch_size=batch)

    return embed


def theirs(model: str, device: str, dtype: Any, batch: int) -> Callable[[list[str]], Any]:
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(model, device=device, model_kwargs={"torch_dtype": dtype})
    return lambda texts: st.encode(texts, batch_size=batch, normalize_embeddings=True)


def main() -> None:
    import torch

    from functions.core.models.text_encoder import CUDA_PROVIDER

    parser = argparse.ArgumentParser()
    parser.add_argument("model", help="sentence-transformers folder")
    parser.add_argument("exported", type=Path, help="the same model, exported (mmsearch export)")
    parser.add_argument("corpus")
    parser.add_argument("--limit", type=int, default=5183)
    parser.add_argument("--batch", type=int, default=256, help="GPU batch, both paths")
    args = parser.parse_args()
    texts = texts_of(args.corpus, args.limit)
    cpu_texts = texts[: min(len(texts), 1000)]
    gpu = torch.cuda.is_available()
    import onnxruntime as ort

    ours_on_gpu = gpu and CUDA_PROVIDER in ort.get_available_providers()
    runs: list[tuple[str, str, str, int, list[str], Callable[[list[str]], Any]]] = [
        ("ours", "cpu", "float32", 32, cpu_texts, ours(args.exported, "cpu", False, 32)),
        (
            "sentence-transformers",
            "cpu",
            "float32",
            32,
            cpu_texts,
            theirs(args.model, "cpu", torch.float32, 32),
        ),
    ]
    if gpu:
        b = args.batch
        runs += [
            (
                "sentence-transformers",
                "cuda",
                "float32",
                b,
                texts,
                theirs(args.model, "cuda", torch.float32, b),
            ),
            (
                "sentence-transformers",
                "cuda",
                "float16",
                b,
                texts,
                theirs(args.model, "cuda", torch.float16, b),
            ),
        ]
    if ours_on_gpu:
        b = args.batch
        runs += [
            ("ours", "cuda", "float32", b, texts, ours(args.exported, "cuda", False, b)),
            ("ours", "cuda", "float16", b, texts, ours(args.exported, "cuda", True, b)),
        ]
    sync = torch.cuda.synchronize if gpu else (lambda: None)
    rates: dict[tuple[str, str, str], float] = {}
    for path, device, dtype, batch, chosen, embed in runs:
        seconds = timed(embed, chosen, sync)
        rates[(path, device, dtype)] = len(chosen) / seconds
        row = {
            "path": path,
            "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
            "cpu_threads": torch.get_num_threads(),
            "dtype": dtype,
            "batch": batch,
            "docs": len(chosen),
            "seconds": round(seconds, 3),
            "docs_per_s": round(len(chosen) / seconds, 1),
        }
        print(json.dumps(row), flush=True)
    reference = rates.get(("sentence-transformers", "cuda", "float16"))
    best = max((r for (p, d, _), r in rates.items() if p == "ours" and d == "cuda"), default=None)
    summary: dict[str, Any] = {"gpu": gpu, "ours_on_gpu": ours_on_gpu}
    if reference and best:
        summary["ours_over_st_float16"] = round(best / reference, 3)
    elif gpu:
        summary["note"] = "no CUDAExecutionProvider: install onnxruntime-gpu to time our path"
    else:
        summary["note"] = "no GPU: CPU rows only"
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
