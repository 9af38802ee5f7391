"""The engine benchmark: its workload on the project's own Milvus Lite, and its report table.

The milvus-lite 3.x venv is never built here (minutes of pip); `compare_engines` builds it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from functions.core.stores.vector_store import auto_nlist
from offline.bench import engine_workload
from offline.bench.engines import engines_table, run_workload


@pytest.fixture(scope="module")
def project_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    data_dir = tmp_path_factory.mktemp("engine") / "data"
    return run_workload(Path(sys.executable), 3000, data_dir, queries=50, timeout_s=600)


def test_workload_reports_the_pinned_engine_without_error(project_report: dict[str, Any]) -> None:
    assert "error" not in project_report, project_report.get("error")
    assert project_report["engine"] == "milvus-lite 2.5.1 / pymilvus 2.5.18"
    assert project_report["rows"] == 3000
    assert project_report["nlist"] == auto_nlist(3000)
    assert project_report["nprobe"] == 32


def test_workload_finds_the_exact_neighbours_on_a_small_set(project_report: dict[str, Any]) -> None:
    assert 0.9 <= project_report["recall_at_10"] <= 1.0
    assert 0.9 <= project_report["filtered_recall_at_10"] <= 1.0
    assert project_report["search_mean_hits"] == 10
    assert 0.0 < project_report["filter_selectivity"] < 0.2


def test_workload_times_every_phase(project_report: dict[str, Any]) -> None:
    assert project_report["insert_rows_per_s"] > 0
    assert project_report["index_s"] > 0
    for name in ("search", "filtered"):
        assert 0 < project_report[f"{name}_p50_ms"] <= project_report[f"{name}_p95_ms"]
        assert project_report[f"{name}_queries"] == 50
    assert project_report["peak_rss_mb"] > project_report["peak_rss_self_mb"] > 0
    assert project_report["disk_mb"] > 0


def test_workload_runs_bm25_full_text_search_on_the_pinned_engine(
    project_report: dict[str, Any],
) -> None:
    assert project_report["bm25_error"] is None
    bm25 = project_report["bm25"]
    assert bm25["rows"] == 3000
    assert bm25["search_p50_ms"] > 0
    assert bm25["top1_has_query_term"] >= 0.9


def test_workload_uses_the_same_nlist_rule_as_the_vector_store() -> None:
    for rows in (1, 100, 3000, 10_000, 100_000, 10**6, 10**8):
        assert engine_workload.auto_nlist(rows) == auto_nlist(rows)


def test_run_workload_turns_a_missing_interpreter_into_an_error_entry(tmp_path: Path) -> None:
    result = run_workload(tmp_path / "no-python", 10, tmp_path / "data", label="ghost")
    assert result["engine"] == "ghost"
    assert result["error"]


def test_engines_table_shows_one_row_per_engine_and_failed_engines_as_errors() -> None:
    ok: dict[str, Any] = {
        "engine": "milvus-lite 2.5.1 / pymilvus 2.5.18",
        "queries": 200,
        "insert_rows_per_s": 11765.4,
        "index_s": 3.21,
        "search_p50_ms": 2.104,
        "search_p95_ms": 3.5,
        "filtered_p50_ms": 1.9,
        "filtered_queries": 40,
        "recall_at_10": 0.9765,
        "filtered_recall_at_10": 1.0,
        "bm25": {"search_p50_ms": 1.25},
        "peak_rss_mb": 912.4,
        "disk_mb": 301.25,
    }
    no_bm25 = {**ok, "engine": "other", "bm25": None, "filtered_queries": 200}
    failed = {"engine": "milvus-lite 3.2.2 / pymilvus 3.0.2", "error": "boom | at\nline 2"}
    lines = engines_table([ok, no_bm25, failed]).splitlines()
    assert lines[0].startswith("| engine | insert rows/s | index s | search p50 / p95 ms |")
    assert len(lines) == 5
    assert all(line.count(" | ") == lines[0].count(" | ") for line in (lines[2], lines[3]))
    assert "| 11,765 | 3.21 | 2.10 / 3.50 | 1.90 (40 of 200 q) | 0.977 | 1.000 | 1.25 |" in lines[2]
    assert "| 912 | 301.2 |" in lines[2]
    assert "| unsupported |" in lines[3]
    assert "(40 of 200 q)" not in lines[3]
    assert "error: boom \\| at line 2" in lines[4]
