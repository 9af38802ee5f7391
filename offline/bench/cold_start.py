"""Cold start of each Lambda handler: a fresh Python process, import, init, first answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

# Runs in the child: import the code the handler imports (its service module and the Lambda
# front door), import the handler module (Lambda init: model, clients), answer one API Gateway
# v2 event. Times are absolute, compared with the parent's.
_CHILD = """
import json, sys, time
import importlib
name, body = sys.argv[1], json.loads(sys.argv[2])
importlib.import_module(f"functions.{name}.service")
importlib.import_module("functions.core.http.lambda_adapter")
t_import = time.time()
handler = importlib.import_module(f"functions.{name}.handler").handler
t_init = time.time()
from functions.core.http.invoke_events import http_event
response = handler(http_event("POST", body.pop("path"), body), None)
t_answer = time.time()
print(json.dumps({"t_import": t_import, "t_init": t_init, "t_answer": t_answer,
                  "status": response["statusCode"]}))
"""

FIRST_CALLS: dict[str, dict[str, Any]] = {
    "preprocess": {"path": "/v1/embed", "texts": ["a large animal with a trunk"]},
    "search": {"path": "/v1/search", "query": "a large animal with a trunk", "top_k": 10},
    "summary": {"path": "/v1/documents:batchGet", "scene": "qa", "ids": ["x"]},
}


def measure_cold_start(name: str, env: dict[str, str], summary_ids: list[str]) -> dict[str, float]:
    """Seconds from process spawn to: import done, init done, first answer (status checked)."""
    body = dict(FIRST_CALLS[name])
    if name == "summary":
        body["ids"] = summary_ids
    started = time.time()
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, name, json.dumps(body)],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{name} cold start failed: {result.stderr[-800:]}")
    marks = json.loads(result.stdout.strip().splitlines()[-1])
    if marks["status"] != 200:
        raise RuntimeError(f"{name} first call answered {marks['status']}")
    return {
        "import_s": round(marks["t_import"] - started, 3),
        "init_s": round(marks["t_init"] - marks["t_import"], 3),
        "cold_start_s": round(marks["t_answer"] - started, 3),
    }


def measure_all(env: dict[str, str], summary_ids: list[str], repeats: int = 3) -> dict[str, Any]:
    """Median over `repeats` fresh processes for each of the three functions."""
    out: dict[str, Any] = {"cold_start_s": {}, "import_s": {}, "init_s": {}}
    for name in FIRST_CALLS:
        runs = sorted(
            (measure_cold_start(name, env, summary_ids) for _ in range(repeats)),
            key=lambda r: r["cold_start_s"],
        )
        median = runs[len(runs) // 2]
        for key in out:
            out[key][name] = median[key]
    return out
