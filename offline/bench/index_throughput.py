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

from functions.core.scenes import QA
from indexing.encoding import load_batch_encoder
from indexing.indexer import BATCH_DOCS

ROOT = Path(__file__).resolve().parents[2]


def _cpu_s(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def encoder_docs_per_s(
    documents: list[dict[str, Any]],
    model_dir: Path,
    *,
    batch_size: int = 32,
    threads: int = 0,
    chunk: int = BATCH_DOCS,
) -> tuple[float, float]:
    """Docs/s of the encoder alone over the documents' embedding texts, embedded as the
    indexer embeds them: the encoder `mmsearch index` loads on a CPU (`threads` 0 lets
    onnxruntime pick, no spinning), `chunk` documents per `embed` call (the indexer's write
    batch, length-sorted inside), `batch_size` texts per inference; and the CPU seconds."""
    encoder = load_batch_encoder(model_dir, "cpu", threads=threads)
    texts = [QA.embedding_text(d) for d in documents]
    encoder.embed(texts[:64], batch_size=batch_size)  # warm-up: first runs allocate
    started, cpu = time.perf_counter(), _cpu_s(resource.RUSAGE_SELF)
    for offset in range(0, len(texts), chunk):
        encoder.embed(texts[offset : offset + chunk], batch_size=batch_size)
    return len(texts) / (time.perf_counter() - started), _cpu_s(resource.RUSAGE_SELF) - cpu


def encoder_alone(
    corpus_file: Path, model_dir: Path, env: dict[str, str], *, batch_size: int, threads: int,
    chunk: int = BATCH_DOCS,
) -> dict[str, Any]:  # fmt: skip
    """`encoder_docs_per_s` in a fresh process (as `mmsearch index` runs in one, with no
    other model loaded beside it): {"docs_per_s", "cpu_s", "docs"}."""
    args = [sys.executable, "-m", "offline.bench.index_throughput", "--encoder-only"]
    args += ["--corpus", str(corpus_file), "--model", str(model_dir)]
    args += ["--batch-size", str(batch_size), "--threads", str(threads), "--chunk", str(chunk)]
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise RuntimeError(f"encoder alone failed: {result.stderr[-1500:]}")
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


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
    """Measure on `--docs` WordNet glosses (the bench corpus) and print one JSON line; with
    `--encoder-only`, the encoder alone on `--corpus` (the runner's child process)."""
    from offline.bench.corpus import bench_corpus

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--work", type=Path)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--encoder-only", action="store_true")
    parser.add_argument("--corpus", type=Path, help="--encoder-only: JSON lines documents.")
    parser.add_argument("--batch-size", type=int, default=32, help="Texts per inference.")
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime threads; 0: auto.")
    parser.add_argument("--chunk", type=int, default=BATCH_DOCS, help="Texts per embed call.")
    parser.add_argument("index_args", nargs="*", help="Extra `mmsearch index` options.")
    args = parser.parse_args()
    if args.encoder_only:
        if args.corpus is None:
            parser.error("--encoder-only needs --corpus")
        lines = args.corpus.read_text(encoding="utf-8").splitlines()
        documents = [json.loads(line) for line in lines if line.strip()]
        rate, cpu = encoder_docs_per_s(
            documents, args.model, batch_size=args.batch_size, threads=args.threads,
            chunk=args.chunk,
        )  # fmt: skip
        print(
            json.dumps(
                {"docs_per_s": round(rate, 1), "cpu_s": round(cpu, 1), "docs": len(documents)}
            )
        )
        return
    if args.work is None:
        parser.error("--work is required")
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
