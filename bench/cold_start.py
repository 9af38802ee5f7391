"""Lambda cold starts measured on the bundles: fresh CPython 3.12 processes that see only a
bundle (plus boto3, which Lambda's runtime provides), import a handler and answer one event.

Usage: python bench/cold_start.py --model-dir DIR --runtime BOTO3_DIR [--runs 5]
Prints one JSON line per case, medians over the runs: CPU seconds of the process (user +
system: the work itself, robust to a busy machine), wall seconds from process start to the
first answer, and inside the process the handler module's import+init and the first invoke.
Bytecode is neither read nor written (-B, a bundle ships none), as on Lambda's read-only disk.

Cases:
- composed/mangum: the one function as deployed (functions.composed.handler: FastAPI via Mangum);
- composed/lean: the same routes through the lean dispatcher (what it served before);
- search/split: the split search function's handler, as deployed;
- search/split+encoder: the same plus `import functions.preprocess.service`, which its module
  imported at top level before the cut (onnxruntime, tokenizers), in the bundle that has them.
Stores are never reached: GET /v1/scenes reads the pipeline configuration only, and the
Milvus and MongoDB clients connect lazily.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import time
from pathlib import Path

from infra.packaging import lambda_bundle

PYTHON = os.environ.get("MMSEARCH_TEST_PYTHON312", "python3.12")
LEAN = (
    "from functions.composed.service import composed_routes\n"
    "from functions.core.http.lambda_adapter import lambda_handler\n"
    "from functions.core.settings import Settings\n"
    "s = Settings()\n"
    "handler = lambda_handler(composed_routes(s)[1], s.max_body_bytes)\n"
)
CASES = {
    "composed/mangum": ("composed", "from functions.composed.handler import handler\n"),
    "composed/lean": ("composed", LEAN),
    "search/split": ("search", "from functions.search.handler import handler\n"),
    "search/split+encoder": (
        "composed",
        "import functions.preprocess.service\nfrom functions.search.handler import handler\n",
    ),
}
PROBE = """
import json, sys, time
t0 = time.perf_counter()
{init}t1 = time.perf_counter()
from functions.core.http.invoke_events import http_event
reply = handler(http_event("GET", "/v1/scenes"), None)
t2 = time.perf_counter()
assert reply["statusCode"] == 200, reply
print(json.dumps({{"init_s": t1 - t0, "invoke_s": t2 - t1}}))
"""


def one_run(bundle: Path, runtime: Path, init: str, env: dict[str, str]) -> dict[str, float]:
    prelude = f"import sys; sys.path[:0] = [{str(bundle)!r}, {str(runtime)!r}]\n"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [PYTHON, "-I", "-B", "-c", prelude + PROBE.format(init=init)],
        capture_output=True,
        text=True,
        env=env,
        cwd=bundle,
        check=False,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    inner: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    # CPU seconds (user + system): what the process itself cost, whatever else ran beside it.
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, **inner}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True, type=Path)
    parser.add_argument("--runtime", required=True, type=Path, help="boto3 for Python 3.12")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": "/tmp",
        "MMSEARCH_HOME": "/tmp/mmsearch-cold-start",
        "MMSEARCH_MODEL_DIR": str(args.model_dir),
        "MMSEARCH_MILVUS_URI": "http://127.0.0.1:9",  # never connected: lazy clients
        "MMSEARCH_MONGO_URI": "mongodb://127.0.0.1:9",
        "MMSEARCH_DEPLOYMENT": "lambda",
        "MMSEARCH_PREPROCESS_FUNCTION": "mmsearch-preprocess",
        "MMSEARCH_SUMMARY_FUNCTION": "mmsearch-summary",
        "AWS_LAMBDA_FUNCTION_NAME": "mmsearch-cold-start",  # as inside Lambda
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    for case, (bundle_name, init) in CASES.items():
        case_env = dict(env)
        if case.startswith("composed"):  # in-process: no functions to invoke
            for name in ("DEPLOYMENT", "PREPROCESS_FUNCTION", "SUMMARY_FUNCTION"):
                case_env.pop(f"MMSEARCH_{name}")
        bundle = lambda_bundle(bundle_name)  # type: ignore[arg-type]
        one_run(bundle, args.runtime, init, case_env)  # warm the page cache, not the process
        runs = [one_run(bundle, args.runtime, init, case_env) for _ in range(args.runs)]
        print(
            json.dumps(
                {
                    "case": case,
                    "runs": len(runs),
                    **{
                        f"median_{k}": round(statistics.median(r[k] for r in runs), 3)
                        for k in ("cpu_s", "wall_s", "init_s", "invoke_s")
                    },
                    "cpu_s": [round(r["cpu_s"], 3) for r in runs],
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
