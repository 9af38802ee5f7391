"""Our query path called in one process, without HTTP: the like-for-like figure beside txtai's.

txtai's workload (`txtai_workload.py`) times `Embeddings.search(query, 10)` in-process: encode,
faiss, and the stored rows from SQLite. This module does the same for mmsearch: it wires the
search service exactly as the composed server does (`functions/composed/service.py`: one
preprocessor, one document store, `build_search_service`) and times `SearchService.search` on
the same queries, top 10, with the same number of warm-up queries and encoder threads, once
forcing the dense match experiment (dense only, as txtai is) and once with the served default
(whatever the pipeline gives traffic: hybrid). Run as its own process
(`python -m offline.bench.in_process`) because Milvus Lite lets one process open a data file.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

TOP_K = 10
WARMUP_QUERIES = 5  # as txtai_workload.py
# name -> the match experiment forced (None: the served default, as a user gets it)
KINDS: dict[str, str | None] = {"dense": "dense", "default": None}


def percentile(values: Sequence[float], q: int) -> float:
    """The q-th percentile, interpolated as txtai_workload.py computes it."""
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def time_queries(
    search: Callable[[str], dict[str, float]], queries: Sequence[str]
) -> dict[str, Any]:
    """Warm up on the first queries (untimed), then time each query; `search` returns the
    response's stage timings (with their `total`). p50 / p95 of the wall time, each stage's
    p50, and the p50 of the time spent outside the timed stages (request validation, spelling
    suggestion, the response model)."""
    for q in queries[:WARMUP_QUERIES]:
        search(q)
    latencies: list[float] = []
    outside: list[float] = []
    stages: dict[str, list[float]] = {}
    for q in queries:
        started = time.perf_counter()
        timings = dict(search(q))
        latencies.append((time.perf_counter() - started) * 1000)
        if "total" in timings:
            outside.append(latencies[-1] - timings.pop("total"))
        for stage, ms in timings.items():
            stages.setdefault(stage, []).append(ms)
    return {
        "p50_ms": round(percentile(latencies, 50), 2),
        "p95_ms": round(percentile(latencies, 95), 2),
        "queries": len(latencies),
        "stage_p50_ms": {k: round(statistics.median(v), 3) for k, v in stages.items()},
        "outside_stages_p50_ms": round(statistics.median(outside), 3) if outside else None,
    }


def measure(queries: Sequence[str]) -> dict[str, Any]:
    """Both kinds over `queries` against the stores the environment names (MMSEARCH_*)."""
    from functions.core.http.schemas import SearchRequest
    from functions.core.settings import Settings
    from functions.core.stores.factory import open_document_store
    from functions.preprocess import service as preprocess
    from functions.search import service as search
    from functions.search.clients import InProcessDocuments, InProcessEmbedder

    settings = Settings()
    preprocessor = preprocess.build_preprocessor(settings)
    documents = open_document_store(settings)
    service = search.build_search_service(
        settings, InProcessEmbedder(preprocessor), InProcessDocuments(documents)
    )
    result: dict[str, Any] = {
        "queries": len(queries),
        "top_k": TOP_K,
        "query_threads": settings.query_threads,
    }
    for name, experiment in KINDS.items():
        body: dict[str, Any] = {"query": "", "top_k": TOP_K}
        if experiment is not None:
            body["debug"] = {"experiments": {"match": experiment}}
        served: dict[str, str] = {}

        def one(query: str, body: dict[str, Any] = body, served: dict[str, str] = served) -> Any:
            response = service.search(SearchRequest.model_validate({**body, "query": query}))
            served.update(response.experiments)
            return response.timings_ms.model_dump()

        result[name] = {**time_queries(one, queries), "experiments": dict(served)}
    documents.close()
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=Path, required=True, help="one query per line")
    parser.add_argument("--count", type=int, default=200, help="the first N queries")
    args = parser.parse_args(argv)
    # Whitespace collapsed, as peer.py writes txtai's query file.
    queries = [" ".join(q.split()) for q in args.queries.read_text(encoding="utf-8").splitlines()]
    queries = [q for q in queries if q][: args.count]
    if len(queries) < 2:
        print("need at least two queries", file=sys.stderr)
        return 2
    print(json.dumps(measure(queries)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
