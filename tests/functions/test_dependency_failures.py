"""Failing dependencies, injected for real: a TCP proxy in front of the local MongoDB-wire
server and in front of Milvus Lite's socket drops connections or adds latency, and Milvus
Lite's server process is stopped (SIGSTOP). The API answers 503 within the store timeout
(plus a margin) with a clear message, and serves again once the dependency is back."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from functions.core.errors import StoreUnavailable
from functions.core.scenes import QA
from functions.core.settings import Settings
from functions.core.stores.factory import collection_name, open_document_store
from functions.core.stores.retries import RetryPolicy
from functions.core.stores.vector_store import MilvusVectorStore
from indexing.corpus import read_corpus
from indexing.indexer import Indexer
from offline.local_mongo import LocalMongoServer
from tests.conftest import FIXTURES, _encoder
from tests.faults import FaultProxy
from tests.functions.test_api import Call, front_door, search_routes

TIMEOUT_S = 1.0
MARGIN_S = 2.0  # generous: the bound is timeout + margin, not a tight timing
RECOVERY_S = 10.0
QUERY = {"query": "How do I get a refund?", "debug": {"experiments": {"match": "dense"}}}


class Stack:
    """Settings whose stores are reached through fault proxies, and the proxies."""

    def __init__(self, settings: Settings, mongo: FaultProxy, milvus: FaultProxy, pid: int):
        self.settings = settings
        self.mongo = mongo
        self.milvus = milvus
        self.milvus_pid = pid


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, model_dir: Path, mongo_server: LocalMongoServer
) -> Iterator[Stack]:
    """The QA corpus in a Milvus Lite file of its own (so stopping its server affects no other
    test) and in the session's MongoDB; searched through proxies."""
    from milvus_lite.server_manager import server_manager_instance

    db = tmp_path_factory.mktemp("faulty-milvus") / "milvus.db"
    prefix = f"f{uuid.uuid4().hex[:10]}_"
    direct = Settings(
        home=tmp_path_factory.mktemp("home"),
        model_dir=model_dir,
        milvus_uri=str(db),
        mongo_uri=SecretStr(mongo_server.uri),
        collection_prefix=prefix,
    )
    vectors = MilvusVectorStore(str(db))
    Indexer(_encoder(model_dir), vectors, open_document_store(direct)).run(
        QA, collection_name(direct, QA), read_corpus(FIXTURES / "qa_small.jsonl").documents
    )
    socket_path = server_manager_instance.start_and_get_uri(str(db)).removeprefix("unix:")
    pid = server_manager_instance._servers[str(db.resolve())]._p.pid
    mongo = FaultProxy(("127.0.0.1", mongo_server.port))
    milvus = FaultProxy(socket_path)
    settings = direct.model_copy(
        update={
            "milvus_uri": f"http://{milvus.address}",
            "mongo_uri": SecretStr(f"mongodb://{mongo.address}/?directConnection=true"),
            "store_timeout_s": TIMEOUT_S,
            "store_retries": 2,
            "store_retry_backoff_s": 0.05,
        }
    )
    yield Stack(settings, mongo, milvus, pid)
    os.kill(pid, signal.SIGCONT)
    mongo.close()
    milvus.close()


@pytest.fixture(scope="module")
def routes(stack: Stack) -> Any:
    return search_routes(stack.settings)


@pytest.fixture(scope="module")
def degrading_routes(stack: Stack) -> Any:
    return search_routes(stack.settings.model_copy(update={"degrade_without_documents": True}))


@pytest.fixture
def api(stack: Stack, routes: Any, door: str) -> Iterator[Call]:
    call = front_door(door, routes)
    assert_recovers(call)  # healthy before the fault (a previous test's may just be repaired)
    yield call
    stack.mongo.latency_s = stack.milvus.latency_s = 0.0
    os.kill(stack.milvus_pid, signal.SIGCONT)
    for proxy in (stack.mongo, stack.milvus):
        if proxy._listener is None:
            proxy.up()


def search(api: Call) -> tuple[int, Any, dict[str, str], float]:
    started = time.monotonic()
    status, body, headers = api("POST", "/v1/search", QUERY)
    return status, body, headers, time.monotonic() - started


def assert_503_in_time(api: Call, says: str) -> float:
    status, body, headers, seconds = search(api)
    assert status == 503, body
    assert body["error"]["code"] == "store_unavailable"
    assert says in body["error"]["message"] and "127.0.0.1" not in body["error"]["message"]
    assert int(headers["retry-after"]) > 0
    assert seconds < TIMEOUT_S + MARGIN_S
    return seconds


def assert_recovers(api: Call) -> float:
    """Seconds until a search succeeds again; then five more in a row succeed."""
    started = time.monotonic()
    while search(api)[0] != 200:
        assert time.monotonic() - started < RECOVERY_S, "no recovery"
        time.sleep(0.1)
    recovered = time.monotonic() - started
    for _ in range(5):
        status, body, _, _ = search(api)
        assert status == 200 and body["hits"][0]["document"] is not None
    return recovered


def report(fault: str, to_503: float, to_recovery: float) -> None:
    print(f"\n{fault}: 503 after {to_503:.2f} s, serving again {to_recovery:.2f} s after repair")


@pytest.mark.parametrize(("store", "name"), [("mongo", "MongoDB"), ("milvus", "Milvus")])
def test_an_unreachable_store_is_a_503_in_time_and_search_recovers_when_it_is_back(
    stack: Stack, api: Call, store: str, name: str
) -> None:
    proxy: FaultProxy = getattr(stack, store)
    proxy.down()
    to_503 = assert_503_in_time(api, name)
    assert_503_in_time(api, name)  # and again: nothing wedged, no slower the second time
    proxy.up()
    report(f"{name} unreachable", to_503, assert_recovers(api))


@pytest.mark.parametrize(("store", "name"), [("mongo", "MongoDB"), ("milvus", "Milvus")])
def test_a_store_slower_than_the_timeout_is_a_503_in_time_and_search_recovers(
    stack: Stack, api: Call, store: str, name: str
) -> None:
    proxy: FaultProxy = getattr(stack, store)
    proxy.latency_s = 4.0  # far above the 1 s timeout: a wait for it would exceed the bound
    to_503 = assert_503_in_time(api, name)
    proxy.latency_s = 0.0
    report(f"{name} slow", to_503, assert_recovers(api))


def stop(pid: int) -> None:
    """SIGSTOP `pid` and wait until every thread of it is stopped: kill() returns once the
    signal is queued, and a search sent at once was answered 200 in about one run of four."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + 5.0
    tasks = Path(f"/proc/{pid}/task")
    while not all(_stopped(task / "stat") for task in tasks.iterdir()):
        assert time.monotonic() < deadline, f"process {pid} did not stop"
        time.sleep(0.01)


def _stopped(stat: Path) -> bool:
    try:  # the state follows the command name, which is in parentheses
        return stat.read_text().rsplit(")", 1)[1].split()[0] in ("T", "t")
    except FileNotFoundError:  # a thread that ended
        return True


def test_a_hung_milvus_process_is_a_503_in_time_and_search_recovers_when_it_resumes(
    stack: Stack, api: Call
) -> None:
    stop(stack.milvus_pid)
    try:
        to_503 = assert_503_in_time(api, "Milvus")
    finally:
        os.kill(stack.milvus_pid, signal.SIGCONT)
    report("Milvus process stopped", to_503, assert_recovers(api))


def test_with_degrading_allowed_mongodb_down_gives_hits_without_documents_flagged(
    stack: Stack, degrading_routes: Any, api: Call, door: str
) -> None:
    degrading = front_door(door, degrading_routes)
    stack.mongo.down()
    status, body, _, seconds = search(degrading)
    assert status == 200, body
    assert body["degraded"] is True
    assert body["hits"] and all(h["document"] is None for h in body["hits"])
    assert body["hits"][0]["id"] == "qa-004"  # still the right answer, without its document
    assert seconds < TIMEOUT_S + MARGIN_S
    assert search(api)[0] == 503  # the default configuration does not degrade
    stack.mongo.up()
    assert_recovers(degrading)
    status, body, _, _ = search(degrading)
    assert body["degraded"] is False and body["hits"][0]["document"]["id"] == "qa-004"


def test_degrading_never_hides_milvus_being_down(
    stack: Stack, degrading_routes: Any, api: Call, door: str
) -> None:
    stack.milvus.down()
    assert_503_in_time(front_door(door, degrading_routes), "Milvus")
    stack.milvus.up()
    assert_recovers(api)


class Flaky:
    """Fails with `StoreUnavailable` `failures` times, then answers; records each attempt."""

    def __init__(self, failures: int, seconds: float = 0.0) -> None:
        self.failures = failures
        self.seconds = seconds
        self.calls: list[tuple[float, float]] = []  # (monotonic time, seconds left)

    def __call__(self, seconds_left: float) -> str:
        self.calls.append((time.monotonic(), seconds_left))
        time.sleep(self.seconds)
        if len(self.calls) <= self.failures:
            raise StoreUnavailable("down")
        return "ok"


def test_failed_store_calls_are_retried_with_jittered_backoff_up_to_the_retry_count() -> None:
    flaky = Flaky(2)
    assert RetryPolicy(retries=2, backoff_s=0.05, deadline_s=5).run(flaky) == "ok"
    assert len(flaky.calls) == 3
    gaps = [b[0] - a[0] for a, b in zip(flaky.calls, flaky.calls[1:], strict=False)]
    assert all(0 <= gap < 0.05 * 2**n + 0.05 for n, gap in enumerate(gaps))
    with pytest.raises(StoreUnavailable):
        RetryPolicy(retries=1, backoff_s=0.01, deadline_s=5).run(Flaky(2))
    with pytest.raises(StoreUnavailable):
        RetryPolicy(retries=0, backoff_s=0.01, deadline_s=5).run(flaky := Flaky(1))
    assert len(flaky.calls) == 1


def test_retries_never_start_after_the_deadline_and_each_gets_the_time_left() -> None:
    policy = RetryPolicy(retries=10, backoff_s=0.01, deadline_s=0.5)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        policy.run(flaky := Flaky(100, seconds=0.2))
    assert time.monotonic() - started < 0.5 + 0.2 + 0.05
    assert 2 <= len(flaky.calls) <= 3
    lefts = [left for _, left in flaky.calls]
    assert lefts[0] == pytest.approx(0.5, abs=0.02) and lefts == sorted(lefts, reverse=True)


def test_backoff_is_jittered_not_fixed() -> None:
    sleeps = set()
    for _ in range(5):
        flaky = Flaky(1)
        RetryPolicy(retries=1, backoff_s=0.02, deadline_s=5).run(flaky)
        sleeps.add(round(flaky.calls[1][0] - flaky.calls[0][0], 4))
    assert len(sleeps) > 1
