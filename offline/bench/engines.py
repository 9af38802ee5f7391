"""Milvus Lite's two engines side by side on mmsearch's own workload.

The project pins milvus-lite 2.5.1 with pymilvus 2.5.18 (a native server); milvus-lite 3.x is a
pure-Python engine over faiss that needs pymilvus 3. The 3.x pair lives in its own venv under
`work_dir`, never in the project's, and both run `engine_workload.py` as a subprocess.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

WORKLOAD = Path(__file__).with_name("engine_workload.py")
LITE3_VENV = "venv-milvus-lite-3"
LITE3_PACKAGES = ("milvus-lite==3.2.2", "pymilvus==3.0.2", "numpy")
LITE3_LABEL = "milvus-lite 3.2.2 / pymilvus 3.0.2"
LITE3_CHECK = (
    "import importlib.metadata as m, pymilvus, numpy; assert m.version('milvus-lite') == '3.2.2'"
)


def compare_engines(rows: int, work_dir: Path, queries: int = 200) -> list[dict[str, Any]]:
    """The workload on the project's engine, then on milvus-lite 3.x; one dict per engine."""
    work_dir.mkdir(parents=True, exist_ok=True)
    project = run_workload(Path(sys.executable), rows, work_dir / "data-project", queries)
    try:
        python = ensure_lite3_venv(work_dir / LITE3_VENV)
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        return [project, {"engine": LITE3_LABEL, "error": f"cannot build its venv: {exc}"}]
    return [project, run_workload(python, rows, work_dir / "data-lite3", queries, LITE3_LABEL)]


def run_workload(
    python: Path,
    rows: int,
    data_dir: Path,
    queries: int = 200,
    label: str = "milvus-lite (project venv)",
    timeout_s: float = 1800.0,
) -> dict[str, Any]:
    """One `engine_workload.py` run in a fresh `data_dir`; failures become an `error` entry."""
    shutil.rmtree(data_dir, ignore_errors=True)
    command = [str(python), str(WORKLOAD), "--rows", str(rows), "--queries", str(queries)]
    command += ["--dim", "384", "--data-dir", str(data_dir), "--json"]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_s, env=_bare_env()
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"engine": label, "error": str(exc)}
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    lines = done.stdout.strip().splitlines()
    try:
        report: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        tail = done.stderr.strip().splitlines()[-3:]
        return {"engine": label, "error": f"exit {done.returncode}: {' / '.join(tail)}"}
    return report


def ensure_lite3_venv(venv: Path) -> Path:
    """The interpreter of a venv holding milvus-lite 3.2.2 and pymilvus 3.0.2, built if needed."""
    python = venv / "bin" / "python"
    if _imports_lite3(python):
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, timeout=300)
    install = [str(python), "-m", "pip", "install", "--quiet", *LITE3_PACKAGES]
    done = subprocess.run(install, capture_output=True, text=True, timeout=1200)
    if done.returncode != 0 or not _imports_lite3(python):
        raise RuntimeError(f"pip install failed: {done.stderr.strip()[-500:]}")
    return python


def _imports_lite3(python: Path) -> bool:
    if not python.exists():
        return False
    check = [str(python), "-c", LITE3_CHECK]
    return subprocess.run(check, capture_output=True, timeout=120, env=_bare_env()).returncode == 0


def _bare_env() -> dict[str, str]:
    # The other venv must see only its own packages, never the project's.
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


COLUMNS = (
    "engine",
    "insert rows/s",
    "index s",
    "search p50 / p95 ms",
    "filtered p50 ms",
    "recall@10",
    "filtered recall@10",
    "BM25 p50 ms",
    "peak RSS MB",
    "disk MB",
)


def engines_table(results: Sequence[Mapping[str, Any]]) -> str:
    """A Markdown table with one row per engine; a failed engine shows its error."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for result in results:
        lines.append("| " + " | ".join(_cells(result)) + " |")
    return "\n".join(lines)


def _cells(r: Mapping[str, Any]) -> list[str]:
    if "error" in r:
        error = " ".join(str(r["error"]).split()).replace("|", "\\|")[:200]
        return [str(r.get("engine", "?")), f"error: {error}", *[""] * (len(COLUMNS) - 2)]
    bm25 = r.get("bm25")
    return [
        str(r["engine"]),
        f"{r['insert_rows_per_s']:,.0f}",
        f"{r['index_s']:.2f}",
        f"{r['search_p50_ms']:.2f} / {r['search_p95_ms']:.2f}",
        f"{r['filtered_p50_ms']:.2f}" + _sampled(r, "filtered"),
        f"{r['recall_at_10']:.3f}",
        f"{r['filtered_recall_at_10']:.3f}",
        f"{bm25['search_p50_ms']:.2f}" if bm25 else "unsupported",
        f"{r['peak_rss_mb']:,.0f}",
        f"{r['disk_mb']:,.1f}",
    ]


def _sampled(r: Mapping[str, Any], name: str) -> str:
    # The workload stops a search set at its time budget: say when it measured fewer queries.
    ran, asked = r.get(f"{name}_queries"), r.get("queries")
    return f" ({ran} of {asked} q)" if ran is not None and ran != asked else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Compare Milvus Lite 2.5 and 3.x engines.")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--work-dir", type=Path, default=Path(".mmsearch/bench"))
    args = parser.parse_args(argv)
    results = compare_engines(args.rows, args.work_dir, args.queries)
    (args.work_dir / "engines.json").write_text(json.dumps(results, indent=2))
    print(engines_table(results))
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
