"""The benchmark suite: one run measures our stack and the alternatives side by side.

Everything runs as a user would run it: indexing through `mmsearch index`, the API through
`mmsearch serve` over loopback HTTP with the load generated from another process, handler
cold starts in fresh processes. All state lives in a private home under the work folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from offline.bench import cold_start, encode, index_throughput
from offline.local_mongo import LocalMongoServer, free_port

ROOT = Path(__file__).resolve().parents[2]
SCIFACT = ROOT.parent / "shared" / "data" / "scifact-train"
# Threads of every in-process query measurement, ours and txtai's alike.
QUERY_THREADS = 2
INDEX_BATCH = 1000  # documents per write, passed to `mmsearch index` and the encoder alone
Say = Callable[[str], None]


@dataclass(frozen=True)
class BenchPlan:
    """What one run measures."""

    quick: bool
    docs: int
    scale_sizes: tuple[int, ...]
    sequential_requests: int
    concurrent_seconds: float
    encode_texts: int
    peer: bool
    engines: bool
    quality: Path | None = None

    def describe(self) -> dict[str, Any]:
        """What the report needs to tell a full suite from a narrowed one."""
        return {
            "quick": self.quick,
            "docs": self.docs,
            "scale": list(self.scale_sizes),
            "peers": self.peer,
            "engines": self.engines,
            "quality": self.quality.name if self.quality is not None else None,
        }

    @classmethod
    def make(
        cls,
        quick: bool,
        docs: int | None = None,
        scale: tuple[int, ...] | None = None,
        peers: bool = True,
        quality: Path | None = SCIFACT,
    ) -> BenchPlan:
        """The quick or full plan; `scale`, `peers` and `quality` (a BEIR folder scored with
        every match kind, None: skipped) narrow the full one."""
        if quick:
            return cls(True, docs or 10_000, scale or (), 300, 15, 1000, False, False)
        sizes = (100_000, 1_000_000) if scale is None else scale
        return cls(False, docs or 10_000, sizes, 1000, 30, 2000, peers, peers, quality)


@dataclass
class BenchContext:
    """Paths, the shared MongoDB-wire server and the environment every child process gets."""

    work_dir: Path
    home: Path
    model_dir: Path
    mongo: LocalMongoServer
    milvus_uri: str | None = None  # None: Milvus Lite in the home

    def env(self, **extra: str) -> dict[str, str]:
        milvus = {"MMSEARCH_MILVUS_URI": self.milvus_uri} if self.milvus_uri else {}
        return {
            **os.environ,
            "MMSEARCH_HOME": str(self.home),
            "MMSEARCH_MODEL_DIR": str(self.model_dir),
            "MMSEARCH_MONGO_URI": self.mongo.uri,
            **milvus,
            **extra,
        }


def _cli(context: BenchContext, *args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "offline.cli", *args],
        cwd=ROOT,
        env=env or context.env(),
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if result.returncode != 0:
        raise RuntimeError(f"mmsearch {' '.join(args)} failed: {result.stderr[-1500:]}")
    return result.stdout


def _process_tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants (Milvus Lite runs as a child)."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            # Every thread's children: Milvus Lite is spawned from a worker thread.
            children = [
                c
                for task in Path(f"/proc/{current}/task").iterdir()
                for c in (task / "children").read_text().split()
            ]
        except OSError:
            continue
        total += next(
            int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS")
        )
        stack += [int(c) for c in children]
    return round(total / 1024, 1)


@contextmanager
def serving(context: BenchContext, prefix: str | None = None) -> Iterator[tuple[str, int]]:
    """`mmsearch serve` on a free port; yields (base URL, pid) once /v1/health answers."""
    port = free_port()
    extra = {"MMSEARCH_COLLECTION_PREFIX": prefix} if prefix else {}
    process = subprocess.Popen(
        [sys.executable, "-m", "offline.cli", "serve", "--port", str(port)],
        cwd=ROOT,
        env=context.env(**extra),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if process.poll() is not None:
                stderr = process.stderr.read().decode() if process.stderr else ""
                raise RuntimeError(f"server exited: {stderr[-800:]}")
            try:
                if httpx.get(f"{base}/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise RuntimeError("server did not become healthy in 120 s")
        yield base, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=180)  # Milvus Lite releasing a 1M collection took over 60 s
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=60)


def load(url: str, queries_file: Path, mode: str, **options: Any) -> dict[str, Any]:
    """Run the load generator in its own process and return its JSON result."""
    args = [
        sys.executable,
        "-m",
        "offline.bench.load",
        "--url",
        url,
        "--queries",
        str(queries_file),
    ]
    args += ["--mode", mode] + [f"--{k.replace('_', '-')}={v}" for k, v in options.items()]
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"load generator failed: {result.stderr[-800:]}")
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def measure_serving(
    context: BenchContext, plan: BenchPlan, queries_file: Path, prefix: str | None = None
) -> dict[str, Any]:
    """Latency (sequential), throughput (8 clients) and the server's memory, over HTTP."""
    with serving(context, prefix) as (base, pid):
        url = f"{base}/v1/search"
        warm_up_s = warm_up(url)
        latency = load(url, queries_file, "sequential", requests=plan.sequential_requests)
        throughput = load(
            url,
            queries_file,
            "concurrent",
            clients=8,
            seconds=plan.concurrent_seconds,
            requests=100_000,
        )
        rss = _process_tree_rss_mb(pid)
    mongo_rss = _process_tree_rss_mb(context.mongo.pid) if context.mongo.pid else None
    return {
        **latency,
        "qps": throughput,
        "server_rss_mb": rss,
        "mongo_rss_mb": mongo_rss,
        "warm_up_s": warm_up_s,
    }


def warm_up(url: str, deadline_s: float = 1800.0) -> float:
    """One untimed search before the load: the first search after a start loads the collection
    into Milvus (294 s for the 1M row on Milvus Lite, past the load generator's 30 s timeout),
    answered 503 while the store is not ready. Returns its seconds."""
    started = time.monotonic()
    while True:
        try:
            status = httpx.post(url, json={"query": "warm up"}, timeout=deadline_s).status_code
        except httpx.TimeoutException:
            status = 504
        if status == 200:
            return round(time.monotonic() - started, 1)
        if time.monotonic() - started > deadline_s:
            raise RuntimeError(f"the server did not answer a search in {deadline_s:.0f} s")
        time.sleep(1.0)


def run_bench(
    plan: BenchPlan,
    work_dir: Path,
    model_dir: Path,
    say: Say,
    checkpoint: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run every measurement of `plan`; returns the results. `checkpoint` receives the results
    so far before each step, so a failure late in a long run keeps what was measured."""
    from offline.bench.corpus import bench_corpus
    from offline.export import default_model_source

    work_dir.mkdir(parents=True, exist_ok=True)
    home = work_dir / "home"
    # Every run starts from empty stores: a kept home would turn the index measurement into a
    # measurement of skipping unchanged documents.
    for state in (home, work_dir / "mongo"):
        shutil.rmtree(state, ignore_errors=True)
    corpus_file, queries_file, documents = bench_corpus(work_dir, plan.docs)
    results: dict[str, Any] = {
        "docs": plan.docs,
        "cores": os.cpu_count(),
        "quick": plan.quick,
        "plan": plan.describe(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    wall_started = time.perf_counter()

    seconds: dict[str, float] = {}
    results["step_seconds"] = seconds
    current: list[Any] = []

    def step(name: str) -> None:
        now = time.perf_counter()
        if current:
            seconds[current[0]] = round(now - current[1], 1)
        current[:] = [name, now]
        if checkpoint:
            checkpoint(results)
        say(name)

    step("encode: onnx vs sentence-transformers")
    texts = [f"{d['question']} {d['answer']}" for d in documents[: plan.encode_texts]]
    results.update(encode.measure_encode(texts, model_dir, default_model_source()))
    # GPU batch embedding against sentence-transformers float16 (only where CUDA is).
    every_text = [f"{d['question']} {d['answer']}" for d in documents]
    results["gpu_encode"] = encode.measure_gpu_encode(every_text, model_dir, default_model_source())

    with LocalMongoServer(work_dir / "mongo") as mongo:
        context = BenchContext(work_dir, home, model_dir, mongo)
        step(f"index {plan.docs} documents, and the encoder alone on them")
        results.update(_measure_index(context, plan, corpus_file))
        step("cold starts")
        results.update(cold_start.measure_all(context.env(), [d["id"] for d in documents[:10]]))
        step("in-process queries: dense only and the served default")
        results["in_process"] = _measure_in_process(context, queries_file)
        step("serving over HTTP")
        serving_result = measure_serving(context, plan, queries_file)
        results.update(serving_result)
        stages = serving_result["stage_p50_ms"]
        unavoidable = stages["preprocess"] + stages["match"]
        results["overhead_ratio"] = round(serving_result["search_ms"]["p50"] / unavoidable, 3)
        results["scale"] = [{"docs": plan.docs, "synthetic": False, **_scale_row(serving_result)}]
        if plan.quality is not None and (plan.quality / "corpus.jsonl").exists():
            step(f"quality: {plan.quality.name}, dense / bm25 / hybrid")
            results["quality"] = _measure_quality(context, plan.quality)
        for size in plan.scale_sizes:
            step(f"scale: {size} documents")
            results["scale"].append(_measure_scale(context, plan, corpus_file, size, queries_file))
    if plan.peer:
        step("peer: txtai")
        from offline.bench.peer import measure_txtai

        queries = queries_file.read_text().splitlines()
        # Same corpus, model, query texts and thread count as our own measurements.
        results["peer"] = measure_txtai(
            corpus_file,
            queries[:IN_PROCESS_QUERIES],
            Path(default_model_source()),
            work_dir,
            threads=QUERY_THREADS,
        )
    if plan.engines:
        step("Milvus Lite engines at 100k")
        from offline.bench.engines import compare_engines

        results["engines"] = compare_engines(100_000, work_dir)
    step("done")
    seconds.pop("done", None)
    results["wall_s"] = round(time.perf_counter() - wall_started, 1)
    results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return results


IN_PROCESS_QUERIES = 200  # the first queries of the bench's list, for txtai and for us


def _measure_index(context: BenchContext, plan: BenchPlan, corpus_file: Path) -> dict[str, Any]:
    """`mmsearch index` of the real corpus into the empty home, and the encoder alone on the
    same documents (each in its own process, before and after the index run in the full suite:
    the machine's load drifts); the ratio of the two is a goal (>= 0.9)."""
    from functions.core.settings import Settings

    settings = Settings()  # the children's environment holds the same MMSEARCH_* encoder settings
    alone = {"batch_size": settings.encode_batch_size, "threads": settings.encoder_threads}
    options = {**alone, "chunk": INDEX_BATCH}

    def encoder() -> dict[str, Any]:
        return index_throughput.encoder_alone(
            corpus_file, context.model_dir, context.env(), **options
        )

    rates = [] if plan.quick else [encoder()]
    started = time.perf_counter()
    args = ["index", "--input", str(corpus_file), "--json", "--prune"]
    report = json.loads(
        _cli(context, *args, "--batch-size", str(INDEX_BATCH)).strip().splitlines()[-1]
    )
    index_wall_s = round(time.perf_counter() - started, 1)
    rates.append(encoder())
    mean = sum(r["docs_per_s"] for r in rates) / len(rates)
    return {
        "index_docs_per_s": report["docs_per_s"],
        "index_report": report,
        "index_wall_s": index_wall_s,  # the command's own, process start and model load included
        "encoder_alone": {
            **options,
            "docs_per_s": [r["docs_per_s"] for r in rates],
            "cpu_s": [r["cpu_s"] for r in rates],
        },
        "index_to_encoder": round(report["docs_per_s"] / mean, 3),
    }


def _measure_in_process(context: BenchContext, queries_file: Path) -> dict[str, Any]:
    """`in_process.py` in its own process on the home's stores (no server holds them now)."""
    args = [sys.executable, "-m", "offline.bench.in_process", "--queries", str(queries_file)]
    args += ["--count", str(IN_PROCESS_QUERIES)]
    env = context.env(MMSEARCH_QUERY_THREADS=str(QUERY_THREADS))
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"in-process queries failed: {result.stderr[-1500:]}")
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def _measure_quality(context: BenchContext, folder: Path) -> dict[str, Any]:
    """`quality.py` on the folder, indexed once into a cache kept across runs (its own Milvus
    Lite file and MongoDB-wire data, keyed by `quality.cache_key`)."""
    from functions.core.models.manifest import ModelManifest
    from offline.bench.quality import cache_key

    model_sha = ModelManifest.read(context.model_dir).files.get("model.onnx", "")
    cache = context.work_dir / "quality-cache" / f"{folder.name}-{cache_key(folder, model_sha)}"
    milvus = cache / "milvus" / "milvus.db"
    milvus.parent.mkdir(parents=True, exist_ok=True)
    with LocalMongoServer(cache / "mongo") as mongo:
        cached = BenchContext(context.work_dir, context.home, context.model_dir, mongo, str(milvus))
        args = [sys.executable, "-m", "offline.bench.quality", "--beir", str(folder)]
        args += ["--marker", str(cache / "complete.json")]
        args += ["--vectors", str(context.work_dir / "quality-cache")]
        done = subprocess.run(
            args, cwd=ROOT, env=cached.env(), capture_output=True, text=True, timeout=3600
        )
    if done.returncode != 0:
        raise RuntimeError(f"quality on {folder.name} failed: {done.stderr[-1500:]}")
    return {
        "dataset": folder.name,
        "cache": cache.name,
        **json.loads(done.stdout.strip().splitlines()[-1]),
    }


def _scale_row(serving_result: dict[str, Any]) -> dict[str, Any]:
    return {
        "search_ms": serving_result["search_ms"],
        "match_p50_ms": serving_result["stage_p50_ms"]["match"],
        "qps": serving_result["qps"]["qps"],
        "server_rss_mb": serving_result["server_rss_mb"],
        "mongo_rss_mb": serving_result["mongo_rss_mb"],
    }


def scale_cache(context: BenchContext, corpus_file: Path, size: int) -> Path:
    """Where the `size` collection is built and kept across runs: its own Milvus Lite file and
    MongoDB-wire data, under a key that changes with anything the build depends on."""
    from functions.core.models.manifest import ModelManifest
    from offline.bench.scale import cache_key

    # The model's weights (its name and revision), not the bytes of its graph: a re-export of
    # the same weights (another fusion of the graph) embeds within 1e-6 and keeps the build.
    manifest = ModelManifest.read(context.model_dir)
    weights = f"{manifest.name}@{manifest.revision or manifest.files.get('model.onnx', '')}"
    return context.work_dir / "scale-cache" / f"{size}-{cache_key(corpus_file, size, weights)}"


def _measure_scale(
    context: BenchContext, plan: BenchPlan, corpus_file: Path, size: int, queries_file: Path
) -> dict[str, Any]:
    from offline.bench.scale import SYNTHETIC

    prefix = f"scale{size}_"
    cache = scale_cache(context, corpus_file, size)
    milvus = cache / "milvus" / "milvus.db"
    milvus.parent.mkdir(parents=True, exist_ok=True)
    with LocalMongoServer(cache / "mongo") as mongo:
        args = [sys.executable, "-m", "offline.bench.scale", "--home", str(context.home)]
        args += ["--mongo-uri", mongo.uri, "--milvus-uri", str(milvus)]
        args += ["--corpus", str(corpus_file), "--size", str(size), "--prefix", prefix]
        args += ["--marker", str(cache / "complete.json")]
        # A first 1M build took ~60 min on a busy 2-core machine: the bound only catches a hang.
        built = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=4 * 3600)
        if built.returncode != 0:
            raise RuntimeError(f"building the {size} collection failed: {built.stderr[-1500:]}")
        build = json.loads(built.stdout.strip().splitlines()[-1])
        scaled = BenchContext(context.work_dir, context.home, context.model_dir, mongo, str(milvus))
        result = measure_serving(scaled, plan, queries_file, prefix=prefix)
    milvus_mb = sum(f.stat().st_size for f in milvus.parent.rglob("*") if f.is_file()) / 2**20
    marker = cache / "complete.json"
    first_build = json.loads(marker.read_text()).get("build_s") if marker.exists() else None
    return {
        "docs": size,
        "synthetic": True,
        "texts": SYNTHETIC,
        "build_s": build["build_s"],
        "first_build_s": first_build,
        "cached": build["cached"],
        "cache": cache.name,
        "milvus_disk_mb": round(milvus_mb, 1),
        **_scale_row(result),
    }
