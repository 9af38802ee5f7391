"""Load generator, run as its own process against the local server over loopback.

Sequential mode measures latency (one request at a time); concurrent mode keeps `clients`
requests in flight for a bounded time and request count, and measures throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

import httpx


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]


def summarize(latencies_ms: list[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(latencies_ms, 50), 3),
        "p95": round(percentile(latencies_ms, 95), 3),
        "p99": round(percentile(latencies_ms, 99), 3),
    }


def sequential(url: str, queries: list[str], requests: int, top_k: int) -> dict[str, Any]:
    """`requests` searches one after another; end-to-end and per-stage latencies."""
    latencies, stages, errors = [], {}, 0
    with httpx.Client(timeout=30) as client:
        for i in range(requests + 10):
            started = time.perf_counter()
            response = client.post(url, json={"query": queries[i % len(queries)], "top_k": top_k})
            elapsed = (time.perf_counter() - started) * 1000
            if i < 10:  # warm-up
                continue
            if response.status_code != 200:
                errors += 1
                continue
            latencies.append(elapsed)
            for stage, ms in response.json()["timings_ms"].items():
                stages.setdefault(stage, []).append(ms)
    return {
        "search_ms": summarize(latencies),
        "stage_p50_ms": {k: round(statistics.median(v), 3) for k, v in stages.items()},
        "requests": len(latencies),
        "errors": errors,
    }


async def _concurrent(
    url: str, queries: list[str], clients: int, seconds: float, max_requests: int, top_k: int
) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    issued = 0
    deadline = time.perf_counter() + seconds

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors, issued
        while time.perf_counter() < deadline and issued < max_requests:
            query = queries[issued % len(queries)]
            issued += 1
            started = time.perf_counter()
            response = await client.post(url, json={"query": query, "top_k": top_k})
            if response.status_code == 200:
                latencies.append((time.perf_counter() - started) * 1000)
            else:
                errors += 1

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(clients)))
        wall = time.perf_counter() - started
    return {
        "qps": round(len(latencies) / wall, 2),
        "clients": clients,
        "latency_ms": summarize(latencies) if latencies else None,
        "requests": len(latencies),
        "errors": errors,
        "seconds": round(wall, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--queries", type=Path, required=True, help="One query per line.")
    parser.add_argument("--mode", choices=["sequential", "concurrent"], required=True)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--top-k", type=int, default=10)
    args = parser.parse_args()
    queries = [q for q in args.queries.read_text(encoding="utf-8").splitlines() if q.strip()]
    if args.mode == "sequential":
        result = sequential(args.url, queries, args.requests, args.top_k)
    else:
        result = asyncio.run(
            _concurrent(args.url, queries, args.clients, args.seconds, args.requests, args.top_k)
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
