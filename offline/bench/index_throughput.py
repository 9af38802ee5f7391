"""Indexing throughput against the encoder's own, in one run on the same texts and threads.

`mmsearch index` runs as a user runs it (a subprocess, a fresh home, the local MongoDB-wire
server); the encoder alone embeds the same documents' embedding texts in the same process
layout, so the ratio says what the stores and the index build cost. On a shared machine the
wall-clock rates swing with the load, so the CPU seconds each side spent (the index's
including its Milvus Lite and MongoDB-wire servers) are reported beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from functions.core.models.text_encoder import TextEncoder
from functions.core.scenes import QA

ROOT = Path(__file__).resolve().parents[2]


def _cpu_s(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def encoder_docs_per_s(
    documents: list[dict[str, Any]], model_dir: Path, *, batch_size: int = 32, threads: int = 0
) -> tuple[float, float]:
    """Docs/s of the encoder alone over the documents' embedding texts (as the indexer embeds
    them: `threads` 0 lets onnxruntime pick, as `mmsearch index` does), and the CPU seconds."""
    encoder = TextEncoder.load(model_dir, threads=threads, spin=False)
    texts = [QA.embedding_text(d) for d in documents]
    encoder.embed(texts[:64], batch_size=batch_size)  # warm-up: first runs allocate
    started, cpu = time.perf_counter(), _cpu_s(resource.RUSAGE_SELF)
    encoder.embed(texts, batch_size=batch_size)
    return len(texts) / (time.perf_counter() - started), _cpu_s(resource.RUSAGE_SELF) - cpu


def index_report(corpus_file: Path, work_dir: Path, model_dir: Path, *extra: str) -> Any:
    """`mmsearch index --json` into a fresh home and MongoDB-wire server; its report, with
    the CPU seconds of the run and its servers (`cpu_s`: model loading and reading included)."""
    from offline.local_mongo import LocalMongoServer

    home, mongo_dir = work_dir / "home", work_dir / "mongo"
    cpu = _cpu_s(resource.RUSAGE_CHILDREN)
    for state in (home, mongo_dir):
        shutil.rmtree(state, ignore_errors=True)
    with LocalMongoServer(mongo_dir) as mongo:
        env = {
            **os.environ,
            "MMSEARCH_HOME": str(home),
            "MMSEARCH_MODEL_DIR": str(model_dir),
            "MMSEARCH_MONGO_URI": mongo.uri,
        }
        args = [sys.executable, "-m", "offline.cli", "index", "--input", str(corpus_file)]
        result = subprocess.run(
            [*args, "--json", "--prune", *extra],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=3600,
        )
    if result.returncode != 0:
        raise RuntimeError(f"mmsearch index failed: {result.stderr[-1500:]}")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    return {**report, "cpu_s": _cpu_s(resource.RUSAGE_CHILDREN) - cpu}


def measure_index_throughput(
    documents: list[dict[str, Any]],
    corpus_file: Path,
    work_dir: Path,
    model_dir: Path,
    *extra: str,
) -> dict[str, Any]:
    """Encoder-alone docs/s (before and after, averaged: the load drifts), `mmsearch index`
    docs/s between them, their ratio (goal >= 0.9) and the CPU seconds of each."""
    load = os.getloadavg()[0]
    before, encoder_cpu = encoder_docs_per_s(documents, model_dir)
    report = index_report(corpus_file, work_dir, model_dir, *extra)
    after, _ = encoder_docs_per_s(documents, model_dir)
    encoder = (before + after) / 2
    return {
        "index_docs": len(documents),
        "encoder_alone_docs_per_s": [round(before, 1), round(after, 1)],
        "index_docs_per_s": report["docs_per_s"],
        "index_to_encoder": round(report["docs_per_s"] / encoder, 3),
        "encoder_cpu_s": round(encoder_cpu, 1),
        "index_cpu_s": round(report["cpu_s"], 1),
        "index_seconds": round(report["seconds"], 1),
        "load_average": [load, os.getloadavg()[0]],
    }


def main() -> None:
    """Measure on `--docs` WordNet glosses (the bench corpus) and print one JSON line."""
    from offline.bench.corpus import bench_corpus

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("index_args", nargs="*", help="Extra `mmsearch index` options.")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    corpus_file, _, documents = bench_corpus(args.work, args.docs)
    print(
        json.dumps(
            measure_index_throughput(
                documents, corpus_file, args.work, args.model, *args.index_args
            )
        )
    )


if __name__ == "__main__":
    main()
