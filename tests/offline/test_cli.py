"""The `mmsearch` command line and the local server, run as a user runs them (subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from offline.local_mongo import free_port
from offline.remote import SERVER_FILE

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "qa_small.jsonl"
SCIFACT = ROOT.parent / "shared" / "data" / "scifact-train"


def mmsearch(
    env: dict[str, str], *args: str, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "offline.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def env(tmp_path: Path, model_dir: Path) -> dict[str, str]:
    """A private MMSEARCH_HOME (so its stores are this test's alone) and the session's model."""
    return {
        **os.environ,
        "MMSEARCH_HOME": str(tmp_path / "home"),
        "MMSEARCH_MODEL_DIR": str(model_dir),
    }


def test_index_twice_reports_no_work_the_second_time(env: dict[str, str]) -> None:
    first = mmsearch(env, "index", "--input", str(FIXTURE))
    assert first.returncode == 0, first.stderr
    assert "30 embedded, 0 unchanged" in first.stderr
    assert "Milvus 30, MongoDB 30" in first.stderr
    second = mmsearch(env, "index", "--input", str(FIXTURE))
    assert second.returncode == 0, second.stderr
    assert "0 embedded, 30 unchanged" in second.stderr


def test_invalid_records_are_reported_with_line_numbers(
    env: dict[str, str], tmp_path: Path
) -> None:
    corpus = tmp_path / "bad.jsonl"
    valid = FIXTURE.read_text().splitlines()
    # Lines 4-6: not JSON, no id, a duplicate of line 1.
    lines = [*valid[:3], "{oops", '{"question": "no id"}', valid[0]]
    corpus.write_text("\n".join(lines) + "\n")
    strict = mmsearch(env, "index", "--input", str(corpus), "--strict")
    assert strict.returncode == 2
    assert "line 4:" in strict.stderr and "line 5:" in strict.stderr and "line 6:" in strict.stderr
    assert "nothing was indexed" in strict.stderr
    lenient = mmsearch(env, "index", "--input", str(corpus))
    assert lenient.returncode == 0, lenient.stderr
    assert "Milvus 3, MongoDB 3" in lenient.stderr


def test_index_with_no_valid_record_fails_and_says_so(env: dict[str, str], tmp_path: Path) -> None:
    corpus = tmp_path / "all-bad.jsonl"
    corpus.write_text('{"question": "no id"}\n{oops\n')
    result = mmsearch(env, "index", "--input", str(corpus))
    assert result.returncode == 2, result.stderr
    assert "2 invalid records" in result.stderr
    # The console wraps its lines at the terminal's width, here inside the long tmp path.
    assert "holds no valid record: nothing was indexed" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr


def test_index_of_a_missing_file_fails_cleanly(env: dict[str, str]) -> None:
    result = mmsearch(env, "index", "--input", "/nonexistent/corpus.jsonl")
    assert result.returncode == 1
    assert "does not exist" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture
def server(env: dict[str, str]) -> Iterator[str]:
    assert mmsearch(env, "index", "--input", str(FIXTURE)).returncode == 0
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "offline.cli", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            process.kill()
            pytest.fail(f"server did not start: {process.stdout.read() if process.stdout else ''}")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)
    # A server that stopped takes its discovery file (offline/remote.py) with it.
    assert not (Path(env["MMSEARCH_HOME"]) / SERVER_FILE).exists()


def test_local_server_serves_page_api_and_docs_on_one_origin(server: str) -> None:
    # Milvus loads the home's collections as the server starts; health lists them until then.
    deadline = time.monotonic() + 60
    while "loading" in httpx.get(f"{server}/v1/health").json():
        assert time.monotonic() < deadline, "the collections never finished loading"
        time.sleep(0.2)
    page = httpx.get(f"{server}/")
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert httpx.get(f"{server}/config.json").json() == {"apiBaseUrl": ""}
    assert httpx.get(f"{server}/docs").status_code == 200
    response = httpx.post(f"{server}/v1/search", json={"query": "who wrote hamlet", "top_k": 3})
    assert response.status_code == 200
    assert response.json()["hits"][0]["id"] == "qa-022"
    bad = httpx.post(
        f"{server}/v1/search", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "malformed_json"


def _beir_slice(target: Path, queries: int = 40, distractors: int = 100) -> Path:
    """A small BEIR folder: the first judged queries, their documents and some distractors."""
    target.mkdir()
    qrels = [row.split("\t") for row in (SCIFACT / "qrels.tsv").read_text().splitlines()[1:]]
    chosen = sorted({q for q, _, _ in qrels}, key=lambda q: int(q))[:queries]
    keep_docs = {d for q, d, _ in qrels if q in chosen}
    corpus = [json.loads(line) for line in (SCIFACT / "corpus.jsonl").read_text().splitlines()]
    picked = [d for d in corpus if d["_id"] in keep_docs] + [
        d for d in corpus if d["_id"] not in keep_docs
    ][:distractors]
    (target / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in picked))
    all_queries = [
        json.loads(line) for line in (SCIFACT / "queries.jsonl").read_text().splitlines()
    ]
    (target / "queries.jsonl").write_text(
        "".join(json.dumps(q) + "\n" for q in all_queries if q["_id"] in chosen)
    )
    rows = ["query-id\tcorpus-id\tscore"] + ["\t".join(r) for r in qrels if r[0] in chosen]
    (target / "qrels.tsv").write_text("\n".join(rows) + "\n")
    return target


@pytest.mark.skipif(not SCIFACT.exists(), reason="needs ../shared/data/scifact-train")
def test_eval_matches_sentence_transformers_exact_search(
    env: dict[str, str], tmp_path: Path
) -> None:
    # 40 judged queries over ~130 abstracts: encoding the corpus twice (ONNX, then PyTorch
    # for the reference) is the whole cost, and the agreement checked does not grow with it.
    folder = _beir_slice(tmp_path / "beir")
    result = mmsearch(
        env, "eval", "--beir", str(folder), "--json", "--reference", "--match", "dense,bm25,hybrid"
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(metrics) >= {"ndcg@10", "recall@100", "mrr@10", "queries", "docs", "reference"}
    assert metrics["match"] == "dense" and metrics["rank"] == "score"
    by_match = metrics["by_match"]
    assert list(by_match) == ["dense", "bm25", "hybrid"]
    assert by_match["dense"]["ndcg@10"] == metrics["ndcg@10"]
    # Different matchers really ran: their rankings, hence their scores, differ.
    assert len({m["ndcg@10"] for m in by_match.values()}) == 3
    assert all(0.2 < m["ndcg@10"] <= 1.0 for m in by_match.values())
    assert metrics["queries"] == 40
    assert 0.3 < metrics["ndcg@10"] <= 1.0
    assert abs(metrics["ndcg@10"] - metrics["reference"]["ndcg@10"]) <= 0.005
    assert abs(metrics["recall@100"] - metrics["reference"]["recall@100"]) <= 0.01
