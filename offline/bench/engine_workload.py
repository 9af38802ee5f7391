"""mmsearch's Milvus workload on whichever Milvus Lite engine this interpreter has installed.

Standalone on purpose: it imports only pymilvus, numpy and the standard library, so it runs in
a bare venv holding another engine. It mirrors `functions/core/stores/vector_store.py`
(schema, IVF_FLAT with auto nlist, nprobe 32, 1,000-row upserts, Strong consistency) and
prints one JSON object on its last line.
Usage: `python engine_workload.py --rows N --dim 384 --data-dir DIR --json`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from resource import RUSAGE_CHILDREN, RUSAGE_SELF, getrusage
from typing import Any

import numpy as np

VECTORS, TEXTS = "bench_vectors", "bench_texts"
CATEGORIES = [f"cat{i:02d}" for i in range(40)]
FILTER_CATEGORY = "cat07"
FILTER = f'ARRAY_CONTAINS_ANY(category, ["{FILTER_CATEGORY}"])'
BATCH, LIMIT, NPROBE, CENTRES = 1000, 10, 32, 200
SYLLABLES = [c + v for c in "krtmsnlpvd" for v in "ai"]  # 20 syllables, 2,000 words


def auto_nlist(rows: int) -> int:
    """Same rule as mmsearch: about 4*sqrt(n), a power of two in [16, 4096]."""
    return int(min(4096, max(16, 2 ** round(math.log2(4 * math.sqrt(max(rows, 1)))))))


def clustered_unit_vectors(rng: np.random.Generator, centres: np.ndarray, n: int) -> np.ndarray:
    """Points around random centres (cosine to their centre about 0.7), like topic embeddings."""
    picks = rng.integers(0, len(centres), n)
    noise = rng.standard_normal((n, centres.shape[1])).astype(np.float32)
    points = centres[picks] + noise / math.sqrt(centres.shape[1])
    return np.asarray(points / np.linalg.norm(points, axis=1, keepdims=True), dtype=np.float32)


def make_data(rows: int, dim: int, queries: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((CENTRES, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = clustered_unit_vectors(rng, centres, rows)
    member = np.zeros((rows, len(CATEGORIES)), dtype=bool)
    names = np.array(CATEGORIES)
    for i, count in enumerate(rng.integers(1, 4, rows)):
        member[i, rng.choice(len(CATEGORIES), count, replace=False)] = True
    return {
        "vectors": vectors,
        "queries": clustered_unit_vectors(rng, centres, queries),
        "member": member,
        "labels": [names[m].tolist() for m in member],
        "ids": [f"doc-{i:07d}" for i in range(rows)],
    }


def make_texts(rows: int, queries: int, seed: int) -> tuple[list[str], list[str]]:
    """Zipf-distributed documents over a fixed 2,000-word vocabulary; 2-3 word queries."""
    rng = np.random.default_rng(seed + 1)
    vocab = [a + b + c for a in SYLLABLES for b in SYLLABLES for c in SYLLABLES[:5]]
    weights = 1.0 / np.arange(1, len(vocab) + 1)
    weights /= weights.sum()
    words = rng.choice(len(vocab), (rows, 30), p=weights)
    lengths = rng.integers(12, 31, rows)
    docs = [" ".join(vocab[w] for w in row[:k]) for row, k in zip(words, lengths, strict=True)]
    picks = [rng.integers(20, 1000, rng.integers(2, 4)) for _ in range(queries)]
    return docs, [" ".join(vocab[w] for w in pick) for pick in picks]


def exact_top_k(vectors: np.ndarray, queries: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    scores = queries @ vectors.T
    if mask is not None:
        scores[:, ~mask] = -np.inf
    return np.argsort(-scores, axis=1)[:, :LIMIT]


def recall(found: list[list[str]], truth: np.ndarray, ids: list[str]) -> float:
    """Share of the exact top 10 found, over the queries that ran (a time budget may cut some)."""
    hits = sum(len(set(f) & {ids[j] for j in row}) for f, row in zip(found, truth, strict=False))
    return round(hits / (len(found) * LIMIT), 4)


def latency(name: str, seconds: list[float]) -> dict[str, Any]:
    p50, p95 = np.percentile(np.array(seconds) * 1000.0, [50, 95])
    return {
        f"{name}_p50_ms": round(float(p50), 3),
        f"{name}_p95_ms": round(float(p95), 3),
        f"{name}_queries": len(seconds),
    }


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


class Workload:
    """One engine, one data dir: the vector collection, then the BM25 collection."""

    def __init__(self, args: argparse.Namespace) -> None:
        from pymilvus import MilvusClient

        self.args = args
        uri = str(Path(args.data_dir).resolve() / "milvus.db")
        self.client = MilvusClient(uri=uri, timeout=args.call_timeout)

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        # Every call bounded: pymilvus otherwise retries an unreachable server for minutes.
        return getattr(self.client, method)(*args, timeout=self.args.call_timeout, **kwargs)

    def fill(self, collection: str, n: int, row: Callable[[int], dict[str, Any]]) -> float:
        """Seconds to upsert n rows in 1,000-row batches (as the indexer does) and flush."""
        start = time.perf_counter()
        for first in range(0, n, BATCH):
            self.call("upsert", collection, [row(i) for i in range(first, min(first + BATCH, n))])
        self.call("flush", collection)
        return time.perf_counter() - start

    def searches(self, collection: str, queries: list[Any], **kwargs: Any) -> tuple[Any, Any]:
        """One call per query, as mmsearch makes them, after 3 untimed ones; stops at the budget."""
        for q in queries[:3]:
            self.call("search", collection, [q], limit=LIMIT, **kwargs)
        results, seconds = [], []
        deadline = time.perf_counter() + self.args.phase_budget
        for q in queries:
            if time.perf_counter() > deadline:
                break
            start = time.perf_counter()
            results.append(self.call("search", collection, [q], limit=LIMIT, **kwargs)[0])
            seconds.append(time.perf_counter() - start)
        return results, seconds

    def run_vectors(self, data: dict[str, Any]) -> dict[str, Any]:
        from pymilvus import DataType

        vectors, ids, member = data["vectors"], data["ids"], data["member"]
        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=512)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=vectors.shape[1])
        array = {"element_type": DataType.VARCHAR, "max_capacity": 64, "max_length": 256}
        schema.add_field("category", DataType.ARRAY, **array)
        self.call("create_collection", VECTORS, schema=schema, consistency_level="Strong")

        def row(i: int) -> dict[str, Any]:
            return {"id": ids[i], "vector": vectors[i].tolist(), "category": data["labels"][i]}

        insert_s = self.fill(VECTORS, len(ids), row)
        nlist = auto_nlist(len(ids))
        params = self.client.prepare_index_params()
        # Nested "params": milvus-lite 3.x ignores the flat form (and silently uses nlist 128).
        nested = {"params": {"nlist": nlist}}
        params.add_index("vector", "IVF_FLAT", metric_type="COSINE", params=nested)
        _, index_s = timed(lambda: self.call("create_index", VECTORS, params))
        _, load_s = timed(lambda: self.call("load_collection", VECTORS))
        queries, allowed = data["queries"], member[:, CATEGORIES.index(FILTER_CATEGORY)]
        found: dict[str, Any] = {}
        for name, expression in (("search", ""), ("filtered", FILTER)):
            results, seconds = self.searches(
                VECTORS,
                [q.tolist() for q in queries],
                anns_field="vector",
                filter=expression,
                search_params={"metric_type": "COSINE", "params": {"nprobe": NPROBE}},
            )
            truth = exact_top_k(vectors, queries, allowed if expression else None)
            key = "filtered_recall_at_10" if expression else "recall_at_10"
            found |= latency(name, seconds)
            found[key] = recall([[h["id"] for h in r] for r in results], truth, ids)
            found[f"{name}_mean_hits"] = round(float(np.mean([len(r) for r in results])), 2)
        return {
            "nlist": nlist,
            "nprobe": NPROBE,
            "insert_s": round(insert_s, 3),
            "insert_rows_per_s": round(len(ids) / insert_s, 1),
            "index_s": round(index_s, 3),
            "load_s": round(load_s, 3),
            **found,
            "filter_selectivity": round(float(allowed.mean()), 4),
        }

    def run_bm25(self, docs: list[str], asked: list[str]) -> dict[str, Any]:
        from pymilvus import DataType, Function, FunctionType

        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=512)
        schema.add_field("text", DataType.VARCHAR, max_length=4096, enable_analyzer=True)
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_function(Function("text_bm25", FunctionType.BM25, ["text"], ["sparse"]))
        self.call("create_collection", TEXTS, schema=schema, consistency_level="Strong")
        insert_s = self.fill(TEXTS, len(docs), lambda i: {"id": f"t-{i:07d}", "text": docs[i]})
        params = self.client.prepare_index_params()
        params.add_index("sparse", "SPARSE_INVERTED_INDEX", metric_type="BM25")
        _, index_s = timed(lambda: self.call("create_index", TEXTS, params))
        self.call("load_collection", TEXTS)
        bm25 = {"anns_field": "sparse", "search_params": {"metric_type": "BM25"}}
        results, seconds = self.searches(TEXTS, asked, output_fields=["text"], **bm25)
        tops = [set(hits[0]["entity"]["text"].split()) if hits else set() for hits in results]
        term_hits = sum(bool(set(q.split()) & top) for q, top in zip(asked, tops, strict=False))
        return {
            "rows": len(docs),
            "insert_s": round(insert_s, 3),
            "index_s": round(index_s, 3),
            **latency("search", seconds),
            "top1_has_query_term": round(term_hits / len(tops), 4),
        }

    def close(self) -> None:
        self.client.close()
        try:  # Milvus Lite 2.x runs a child server: stop and reap it so rusage counts it
            from milvus_lite.server_manager import server_manager_instance

            server_manager_instance.release_all()
        except Exception:
            pass


def disk_mb(path: Path) -> float:
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
    return round(size / 2**20, 2)


def versions() -> dict[str, str]:
    return {package: _version(package) for package in ("milvus-lite", "pymilvus", "numpy")}


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:  # a bare venv may lack one: say so in the report
        return "absent"


def engine(found: dict[str, str]) -> str:
    return f"milvus-lite {found['milvus-lite']} / pymilvus {found['pymilvus']}"


def run(args: argparse.Namespace) -> dict[str, Any]:
    data_dir = Path(args.data_dir)
    if data_dir.exists() and any(data_dir.iterdir()):
        raise SystemExit(f"--data-dir {data_dir} must be empty or absent")
    data_dir.mkdir(parents=True, exist_ok=True)
    found = versions()
    report: dict[str, Any] = {
        "engine": engine(found),
        "versions": found,
        "python": sys.version.split()[0],
        "rows": args.rows,
        "dim": args.dim,
        "queries": args.queries,
    }
    started = time.perf_counter()
    data = make_data(args.rows, args.dim, args.queries, args.seed)
    workload = Workload(args)
    try:
        report.update(workload.run_vectors(data))
        del data
        docs, asked = make_texts(args.text_rows or args.rows, args.queries, args.seed)
        try:
            report["bm25"], report["bm25_error"] = workload.run_bm25(docs, asked), None
        except Exception as exc:
            report["bm25"], report["bm25_error"] = None, f"{type(exc).__name__}: {exc}"[:500]
    finally:
        workload.close()
    own, child = (getrusage(who).ru_maxrss / 1024 for who in (RUSAGE_SELF, RUSAGE_CHILDREN))
    report.update(peak_rss_mb=round(own + child, 1), peak_rss_self_mb=round(own, 1))
    report.update(peak_rss_children_mb=round(child, 1), disk_mb=disk_mb(data_dir))
    return report | {"total_s": round(time.perf_counter() - started, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--text-rows", type=int, default=0, help="BM25 rows (default: --rows)")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--call-timeout", type=float, default=600.0, help="seconds per call")
    parser.add_argument("--phase-budget", type=float, default=120.0, help="seconds per search set")
    parser.add_argument("--json", action="store_true", help="one JSON line instead of indented")
    args = parser.parse_args(argv)
    code = 0
    try:
        report = run(args)
    except Exception as exc:
        report, code = {"engine": engine(versions()), "error": f"{type(exc).__name__}: {exc}"}, 1
    print(json.dumps(report) if args.json else json.dumps(report, indent=2), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
