"""Indexing never loses or duplicates: `mmsearch index` killed by SIGKILL and re-run, changed
and removed documents, checked in both stores as a user's processes leave them."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from functions.core.models.manifest import ModelManifest
from functions.core.scenes import QA
from functions.core.settings import Settings
from functions.core.stores.factory import collection_name, open_vector_store
from indexing.corpus import QADocument, read_corpus
from indexing.indexer import Indexer, fingerprint
from offline.local_mongo import LocalMongoServer
from tests.offline.test_cli import FIXTURE, ROOT, env, mmsearch

__all__ = ["env"]  # the fixture: a private MMSEARCH_HOME and the session's model

COLLECTION = "mmsearch_qa"  # the default prefix and the qa scene's store
BATCH = 50
KILL_AFTER_BATCHES = 8
# Enough that the run is surely still going when it is killed (1,100 documents left, seconds
# of work) and the re-run has most of the corpus to finish; the checks do not grow with it.
BIG = 1500


def _write_corpus(path: Path, size: int) -> Path:
    with path.open("w") as fh:
        for i in range(size):
            doc = {"id": f"d{i:05d}", "question": f"question {i}", "answer": f"answer {i % 97}"}
            fh.write(json.dumps({**doc, "category": [f"c{i % 5}"]}) + "\n")
    return path


def _index_process(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "offline.cli", "index", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stderr_lines(process: subprocess.Popen[str]) -> queue.Queue[str | None]:
    """The process' stderr, line by line, readable with a timeout (None at the end)."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _await_line(
    lines: queue.Queue[str | None], pattern: str, timeout_s: float = 300
) -> re.Match[str]:
    """The first stderr line that matches `pattern`; fails if the process ends first."""
    deadline, seen = time.monotonic() + timeout_s, []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            continue
        if line is None:
            pytest.fail(f"ended before a line like {pattern!r}: {''.join(seen)}")
        seen.append(line)
        if match := re.search(pattern, line):
            return match
    pytest.fail(f"no line like {pattern!r} in {timeout_s:.0f} s: {''.join(seen)}")


def _processes_over(folder: Path) -> dict[int, str]:
    """Live processes whose command line names a path under `folder`, by pid."""
    found = {}
    for proc in Path("/proc").iterdir():
        try:
            if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):
            continue
        if str(folder) in command:
            found[int(proc.name)] = command
    return found


@pytest.fixture
def reaper(tmp_path: Path) -> Iterator[None]:
    """Whatever a failed test left running over its folder (stopped servers too) is killed."""
    yield
    for pid in _processes_over(tmp_path):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def stores(env: dict[str, str]) -> Iterator[tuple[Any, Any]]:
    """What `mmsearch` left in MMSEARCH_HOME, opened once it has exited: (Milvus, MongoDB)."""
    from pymilvus import MilvusClient
    from pymongo import MongoClient

    home = Path(env["MMSEARCH_HOME"])
    with LocalMongoServer(home / "mongo") as server:
        mongo: Any = MongoClient(server.uri)
        milvus = MilvusClient(str(home / "milvus" / "milvus.db"))
        try:
            yield milvus, mongo["mmsearch"]["mmsearch_qa"]
        finally:
            milvus.close()
            mongo.close()


def _milvus_ids(milvus: Any) -> list[str]:
    rows = milvus.query(COLLECTION, filter='id != ""', output_fields=["id"], limit=16384)
    return [str(r["id"]) for r in rows]


def _expected_prints(corpus: Path, model_dir: Path) -> dict[str, str]:
    model_sha = ModelManifest.read(model_dir).files["model.onnx"]
    docs = read_corpus(corpus).documents
    # Fingerprints cover the scene's vector recipe too (indexing/indexer.py).
    return {d.id: fingerprint(d.model_dump(), model_sha + QA.vector_recipe) for d in docs}


def _kill_midway(env: dict[str, str], args: list[str], *, servers_too: bool) -> tuple[int, int]:
    """Start indexing, SIGKILL it once KILL_AFTER_BATCHES batches are stored (with its Milvus
    and MongoDB servers if `servers_too`, as a crash would); returns how many documents it
    had stored, and its MongoDB server, held stopped (SIGSTOP) if that was left running."""
    killed = _index_process(env, *args)
    progress, lines = None, _stderr_lines(killed)
    while progress is None or int(progress[1]) < KILL_AFTER_BATCHES * BATCH:
        progress = _await_line(lines, r"stored (\d+)/")
    home = Path(env["MMSEARCH_HOME"])
    orphan = int((home / "mongo.pid").read_text().split()[0])
    servers = list(_processes_over(home))
    assert orphan in servers and len(servers) == 2, servers  # MongoDB's and Milvus Lite's
    # Left running, its server gets SIGTERM when it dies and lets go of the data folder about
    # 2 s later; held stopped, it surely still has the folder when the re-run wants it.
    for pid in servers if servers_too else [orphan]:
        os.kill(pid, signal.SIGKILL if servers_too else signal.SIGSTOP)
    os.kill(killed.pid, signal.SIGKILL)
    assert killed.wait(timeout=30) == -signal.SIGKILL
    return int(progress[1]), orphan


def _rerun_past(env: dict[str, str], args: list[str], orphan: int) -> dict[str, Any]:
    """Index again, let the held server go once the re-run waits for it; the run's report."""
    rerun = _index_process(env, *args, "--json")
    lines = _stderr_lines(rerun)
    _await_line(lines, rf"waiting for the MongoDB server {orphan} ")
    os.kill(orphan, signal.SIGCONT)
    # The SIGTERM that waited out the stop may go to any of its threads, and Python acts on
    # signals in its main thread only, which sleeps on; once the server runs again, the
    # kernel gives a new one to the main thread first (measured: exits 2 s later).
    time.sleep(0.5)
    os.kill(orphan, signal.SIGTERM)
    assert rerun.wait(timeout=600) == 0, "".join(iter(lines.get, None))
    assert rerun.stdout is not None
    report: dict[str, Any] = json.loads(rerun.stdout.read().splitlines()[-1])
    return report


def _assert_stores_hold_exactly(
    corpus: Path, model_dir: Path, request: pytest.FixtureRequest
) -> None:
    """Milvus and MongoDB hold each id of `corpus` once, with its current fingerprint."""
    milvus, documents = request.getfixturevalue("stores")
    expected = _expected_prints(corpus, model_dir)
    vector_ids = _milvus_ids(milvus)
    assert len(vector_ids) == len(set(vector_ids)) == len(expected)
    assert set(vector_ids) == set(expected)
    count = milvus.query(COLLECTION, output_fields=["count(*)"])[0]["count(*)"]
    assert count == len(expected)
    stored_prints = {d["_id"]: d["_fingerprint"] for d in documents.find({}, {"_fingerprint": 1})}
    assert documents.count_documents({}) == len(expected)
    assert stored_prints == expected


@pytest.fixture
def big_corpus(tmp_path: Path) -> tuple[Path, list[str]]:
    """1,500 short documents and the `index` arguments that write them 50 at a time."""
    corpus = _write_corpus(tmp_path / "corpus.jsonl", BIG)
    return corpus, ["--input", str(corpus), "--batch-size", str(BATCH)]


@pytest.mark.slow
@pytest.mark.usefixtures("reaper")
def test_an_indexer_killed_after_some_batches_completes_on_rerun_with_nothing_duplicated(
    env: dict[str, str],
    tmp_path: Path,
    model_dir: Path,
    big_corpus: tuple[Path, list[str]],
    request: pytest.FixtureRequest,
) -> None:
    corpus, args = big_corpus
    stored, orphan = _kill_midway(env, args, servers_too=False)
    assert KILL_AFTER_BATCHES * BATCH <= stored < BIG

    report = _rerun_past(env, args, orphan)
    assert report["skipped_unchanged"] >= stored  # the killed run's batches were kept
    assert report["embedded"] == BIG - report["skipped_unchanged"]
    assert (report["vectors"], report["documents"]) == (BIG, BIG)
    assert _processes_over(tmp_path) == {}  # no server of either run is left behind
    _assert_stores_hold_exactly(corpus, model_dir, request)


@pytest.mark.slow
@pytest.mark.usefixtures("reaper")
def test_indexing_killed_with_its_store_servers_completes_on_rerun_with_nothing_duplicated(
    env: dict[str, str],
    model_dir: Path,
    big_corpus: tuple[Path, list[str]],
    request: pytest.FixtureRequest,
) -> None:
    corpus, args = big_corpus
    stored, _ = _kill_midway(env, args, servers_too=True)

    rerun = mmsearch(env, "index", *args, "--json")
    assert rerun.returncode == 0, rerun.stderr
    report = json.loads(rerun.stdout.splitlines()[-1])
    assert report["skipped_unchanged"] >= stored  # what both stores acknowledged survived
    assert (report["vectors"], report["documents"]) == (BIG, BIG)
    _assert_stores_hold_exactly(corpus, model_dir, request)


def _reindex(env: dict[str, str], path: Path, records: list[dict[str, Any]], *flags: str) -> Any:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return mmsearch(env, "index", "--input", str(path), "--json", *flags)


def test_a_changed_document_is_updated_and_a_new_one_added_on_reindex(
    env: dict[str, str], tmp_path: Path, model_dir: Path, request: pytest.FixtureRequest
) -> None:
    assert mmsearch(env, "index", "--input", str(FIXTURE)).returncode == 0
    records = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    records[3]["answer"] = "A rewritten answer."
    records.append({"id": "new-1", "question": "What is new?", "answer": "This."})

    result = _reindex(env, tmp_path / "next.jsonl", records)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert (report["embedded"], report["skipped_unchanged"]) == (2, 29)
    assert (report["vectors"], report["documents"]) == (31, 31)

    milvus, documents = request.getfixturevalue("stores")
    expected = _expected_prints(tmp_path / "next.jsonl", model_dir)
    assert sorted(_milvus_ids(milvus)) == sorted(expected)
    assert documents.find_one({"_id": records[3]["id"]})["answer"] == "A rewritten answer."
    assert {d["_id"]: d["_fingerprint"] for d in documents.find()} == expected


def test_prune_deletes_documents_that_left_the_input_and_says_how_many(
    env: dict[str, str], tmp_path: Path, model_dir: Path, request: pytest.FixtureRequest
) -> None:
    assert mmsearch(env, "index", "--input", str(FIXTURE)).returncode == 0
    records = [json.loads(line) for line in FIXTURE.read_text().splitlines()][:25]

    kept = _reindex(env, tmp_path / "fewer.jsonl", records)
    assert kept.returncode == 1  # verification: the stores hold 5 ids the input does not
    assert "until pruned" in kept.stderr

    pruned = _reindex(env, tmp_path / "fewer.jsonl", records, "--prune")
    assert pruned.returncode == 0, pruned.stderr
    report = json.loads(pruned.stdout.splitlines()[-1])
    assert (report["pruned"], report["vectors"], report["documents"]) == (5, 25, 25)
    assert "5 pruned" in " ".join(pruned.stderr.split())

    milvus, documents = request.getfixturevalue("stores")
    expected = _expected_prints(tmp_path / "fewer.jsonl", model_dir)
    assert sorted(_milvus_ids(milvus)) == sorted(expected)
    assert {d["_id"]: d["_fingerprint"] for d in documents.find()} == expected


def test_vectors_a_crashed_store_lost_are_embedded_again_by_the_next_run(
    settings: Settings, indexer: Indexer, qa_docs: list[QADocument]
) -> None:
    collection = collection_name(settings, QA)
    indexer.run(QA, collection, qa_docs)
    vectors = open_vector_store(settings)
    lost = [d.id for d in qa_docs[5:8]]
    vectors.delete(collection, lost)  # MongoDB still holds their fingerprints

    report = indexer.run(QA, collection, qa_docs)
    assert (report.embedded, report.vectors, report.documents) == (3, 30, 30)
    assert vectors.missing_ids(collection, lost) == []
