"""`mmsearch index --mode upsert` and `mmsearch delete`, run as a user runs them: in-process
when no server holds the home, through the running `mmsearch serve`'s API when one does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from offline.remote import SERVER_FILE, announce, connect_url, running_server
from tests.offline import test_cli
from tests.offline.test_cli import FIXTURE, mmsearch

# test_cli's fixtures: a private home, and `mmsearch serve` over the small QA index in it.
env = test_cli.env
server = test_cli.server

OCTOPUS = {
    "id": "new-octopus",
    "question": "How do octopuses change colour?",
    "answer": "Chromatophores in their skin expand and contract under muscle control.",
    "category": ["animals"],
}


def delta_file(tmp_path: Path, *documents: dict[str, object]) -> Path:
    path = tmp_path / "delta.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in documents), encoding="utf-8")
    return path


def ids_file(tmp_path: Path, *ids: str) -> Path:
    path = tmp_path / "ids.txt"
    path.write_text("\n".join(ids) + "\n", encoding="utf-8")
    return path


def last_json(result: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert result.returncode == 0, result.stderr
    report: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


def test_a_delta_and_a_delete_run_in_process_without_a_server(
    env: dict[str, str], tmp_path: Path
) -> None:
    assert mmsearch(env, "index", "--input", str(FIXTURE)).returncode == 0
    first = json.loads(FIXTURE.read_text().splitlines()[0])
    changed = {**first, "answer": "A different answer."}
    delta = delta_file(tmp_path, changed, OCTOPUS)
    report = last_json(mmsearch(env, "index", "--input", str(delta), "--mode", "upsert", "--json"))
    # A delta of 2 over a corpus of 30: no verification failure, only the delta written.
    assert (report["via"], report["written"], report["unchanged"]) == ("local", 2, 0)
    again = last_json(mmsearch(env, "index", "--input", str(delta), "--mode", "upsert", "--json"))
    assert (again["written"], again["unchanged"]) == (0, 2)
    gone = ids_file(tmp_path, "new-octopus", "never-stored")
    report = last_json(mmsearch(env, "delete", "--scene", "qa", "--ids", str(gone), "--json"))
    assert (report["deleted"], report["missing"]) == (1, 1)
    # The full corpus again: 29 unchanged, the changed one restored, nothing left over.
    full = mmsearch(env, "index", "--input", str(FIXTURE))
    assert full.returncode == 0, full.stderr
    assert "1 embedded, 29 unchanged" in full.stderr
    assert "Milvus 30, MongoDB 30" in full.stderr


def test_an_invalid_delta_line_is_reported_and_strict_writes_nothing(
    env: dict[str, str], tmp_path: Path
) -> None:
    delta = tmp_path / "bad.jsonl"
    delta.write_text(json.dumps(OCTOPUS) + '\n{"question": "no id"}\n', encoding="utf-8")
    result = mmsearch(env, "index", "--input", str(delta), "--mode", "upsert", "--strict")
    assert result.returncode == 2
    assert "line 2:" in result.stderr and "nothing was written" in result.stderr
    assert "Traceback" not in result.stderr


def hit_ids(base: str, query: str) -> list[str]:
    response = httpx.post(f"{base}/v1/search", json={"query": query, "top_k": 5}, timeout=30)
    assert response.status_code == 200, response.text
    return [hit["id"] for hit in response.json()["hits"]]


def test_while_serve_holds_the_home_writes_go_through_its_api(
    server: str, env: dict[str, str], tmp_path: Path
) -> None:
    assert "new-octopus" not in hit_ids(server, "octopus skin colour")
    delta = delta_file(tmp_path, OCTOPUS)
    report = last_json(mmsearch(env, "index", "--input", str(delta), "--mode", "upsert", "--json"))
    assert (report["via"], report["written"]) == (server, 1)
    assert hit_ids(server, "octopus skin colour")[0] == "new-octopus"
    gone = ids_file(tmp_path, "new-octopus")
    report = last_json(mmsearch(env, "delete", "--scene", "qa", "--ids", str(gone), "--json"))
    assert (report["via"], report["deleted"]) == (server, 1)
    assert "new-octopus" not in hit_ids(server, "octopus skin colour")
    # A full run cannot share the home: it says what to do instead of failing on a lock.
    full = mmsearch(env, "index", "--input", str(FIXTURE))
    assert full.returncode == 2 and "--mode upsert" in full.stderr, full.stderr
    # A refusal by the server is the CLI's exit 2 with the server's reason.
    refused = mmsearch(env, "delete", "--scene", "nope", "--ids", str(gone))
    assert refused.returncode == 2 and "unknown scene" in refused.stderr


def test_a_stale_discovery_file_is_ignored(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / SERVER_FILE).write_text(json.dumps({"url": "http://127.0.0.1:1", "pid": dead.pid}))
    assert running_server(tmp_path) is None
    (tmp_path / SERVER_FILE).write_text("{not json")
    assert running_server(tmp_path) is None
    with announce(tmp_path, "0.0.0.0", 8123):
        assert running_server(tmp_path) == "http://127.0.0.1:8123"
    assert not (tmp_path / SERVER_FILE).exists()
    assert connect_url("::", 80) == "http://[::1]:80"
