"""The benchmark suite end to end on a tiny corpus, and the report's goal arithmetic."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from offline.bench.load import percentile
from offline.bench.report import lookup, markdown

ROOT = Path(__file__).resolve().parents[2]
QUICK_KEYS = {
    "encode_docs_per_s",
    "encode_speedup",
    "cold_start_s",
    "import_s",
    "search_ms",
    "stage_p50_ms",
    "qps",
    "index_docs_per_s",
    "overhead_ratio",
    "docs",
    "cores",
}


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([7.0], 95) == 7.0


def test_report_says_by_how_much_a_goal_is_missed() -> None:
    results = {
        "docs": 1000,
        "cores": 2,
        "quick": True,
        "started": "t",
        "cold_start_s": {"preprocess": 1.5},
        "encode_speedup": 1.4,
        "overhead_ratio": 1.2,
        "scale": [
            {
                "docs": 100_000,
                "synthetic": True,
                "search_ms": {"p50": 10, "p95": 12, "p99": 15},
                "match_p50_ms": 2.0,
                "qps": 50.0,
                "server_rss_mb": 900.0,
            }
        ],
    }
    assert lookup(results, "scale@100000.search_ms.p50") == 10
    table = markdown(results)
    assert "| preprocess cold start (s) | 1.5 | ≤ 1 | missed by 0.5 (50%) |" in table
    assert "| encode speedup vs sentence-transformers (CPU) | 1.4 | ≥ 1.3 | met |" in table
    assert "real texts repeated, distinct ids" in table


def test_report_has_a_quality_row_per_match_kind_and_the_time_per_step() -> None:
    metrics = {"ndcg@10": 0.7, "recall@100": 0.9, "mrr@10": 0.6}
    results = {
        "docs": 1000,
        "quality": {
            "dataset": "scifact-train",
            "docs": 5183,
            "queries": 809,
            "rank": "score",
            "by_match": {"dense": metrics, "bm25": metrics, "hybrid": metrics},
        },
        "step_seconds": {"encode": 12.0, "index": 61.5},
    }
    table = markdown(results)
    assert "| quality on scifact-train (5,183 docs, 809 queries; rank: score)" in table
    assert "| hybrid | 0.7 | 0.9 | 0.6 |" in table
    assert "Time per step: encode 12 s, index 61.5 s (sum 73.5 s)." in table


def test_quick_bench_prints_every_required_key_as_its_last_line(
    tmp_path: Path, model_dir: Path
) -> None:
    env = {
        **os.environ,
        "MMSEARCH_HOME": str(tmp_path / "home"),
        "MMSEARCH_MODEL_DIR": str(model_dir),
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "offline.cli",
            "bench",
            "--quick",
            "--json",
            "--docs",
            "300",
            "--out",
            str(tmp_path / "results"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    last = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(last) >= QUICK_KEYS
    assert set(last["cold_start_s"]) == {"preprocess", "search", "summary"}
    assert last["docs"] == 300 and last["search_ms"]["p50"] > 0 and last["qps"]["errors"] == 0
    assert last["qps"]["qps"] > 0 and last["index_report"]["vectors"] == 300
    assert (tmp_path / "results" / "quick.md").read_text().startswith("Run ")
