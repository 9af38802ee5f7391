"""The distributed indexing path at scale, simulated: the synthesized state machine (moto's
Step Functions engine, its Lambda invokes routed to our real handler in-process) indexes
100,000 documents in 50 shards of 2,000 (the deployed `shard_docs` default) into Milvus Lite
and the local MongoDB-wire server, with failures injected:

- a shard's invoke throttled once (`Lambda.TooManyRequestsException`) before it runs;
- a store timing out mid-shard (`StoreUnavailable` on the document write of its second
  batch, after the first batch and the second batch's vectors are written);
- a shard run to success whose response is lost (`Lambda.ServiceException` after the
  handler returned): Step Functions runs it again.

Every one is retried by the definition's own Retry; the run must end with exactly the input's
ids in both stores and the alias switched once. The encoder is a tiny random BERT exported
to ONNX in the test (real graph, real tokenizer, 16 dimensions) so the run measures the
pipeline, not the model: docs/indexing-at-scale.md scales its figures to 10M documents.
Runs in the bench suite only: `MMSEARCH_SCALE_DOCS=100000` (the corpus size) enables it.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_cdk.assertions import Template
from moto import mock_aws
from moto.awslambda_simple.models import LambdaSimpleBackend

from functions.core.errors import StoreUnavailable
from functions.core.scenes import QA
from functions.core.settings import Settings
from functions.core.stores.aliases import open_aliases
from functions.core.stores.factory import open_document_store, open_vector_store
from indexing.batch import finalize as finalize_step
from indexing.batch import handler as batch_handler
from infra.config import DeployConfig
from infra.indexing import LAMBDA_MAP_CONCURRENCY
from tests.infra.test_indexing_state_machine import (
    BUCKET,
    MOTO_CONFIG,
    REGION,
    deploy,
    synthesize,
)

# The bench suite's: 6.5 minutes at 100,000 documents on 2 shared cores, more than a unit
# run should take. `MMSEARCH_SCALE_DOCS=100000 pytest tests/infra/test_indexing_at_scale.py`.
pytestmark = pytest.mark.skipif(
    "MMSEARCH_SCALE_DOCS" not in os.environ,
    reason="bench suite: set MMSEARCH_SCALE_DOCS=100000 (about 7 minutes on 2 cores)",
)
DOCS = int(os.environ.get("MMSEARCH_SCALE_DOCS", "100000"))
SHARD_DOCS = 2_000  # DeployConfig.shard_docs' default
SHARDS = -(-DOCS // SHARD_DOCS)
THROTTLED, TIMED_OUT, LOST = 7 % SHARDS, 23 % SHARDS, 41 % SHARDS  # three distinct shards
REPORT = Path(__file__).resolve().parents[2] / "build" / "indexing-at-scale.json"
WORDS = [
    "account",
    "password",
    "reset",
    "invoice",
    "refund",
    "shipping",
    "order",
    "delivery",
    "address",
    "card",
    "payment",
    "login",
    "email",
    "phone",
    "update",
    "cancel",
    "return",
    "warranty",
    "battery",
    "screen",
    "charger",
    "cable",
    "laptop",
    "printer",
    "router",
    "network",
    "signal",
    "storage",
    "backup",
    "restore",
    "license",
    "install",
    "upgrade",
    "error",
    "crash",
    "slow",
    "fast",
    "price",
    "discount",
    "coupon",
    "store",
    "pickup",
    "tracking",
    "parcel",
    "label",
    "size",
    "colour",
]


@dataclass
class Injected:
    """What was injected and what ran: the handler's calls per shard, each store's writes."""

    attempts: Counter[int] = field(default_factory=Counter)
    completed: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    timed_out: bool = False
    steps: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    milvus_s: float = 0.0
    milvus_rows: int = 0
    mongo_s: float = 0.0
    mongo_rows: int = 0
    switches: list[tuple[str, str]] = field(default_factory=list)
    before_timeout: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


CURRENT = threading.local()  # the shard the current thread's invoke runs


def lambda_fault(code: str, message: str, response_headers: Any) -> bytes:
    """Lambda itself failing the invoke, named as Step Functions names it (`Lambda.<code>`,
    which the definition retries). moto's engine names every Invoke API error of a task
    whose resource is the function ARN plain "Exception", so the fault arrives as a
    function error carrying AWS's name."""
    response_headers["x-amz-function-error"] = "Unhandled"
    return json.dumps({"errorType": f"Lambda.{code}", "errorMessage": message}).encode()


def lambda_runtime(injected: Injected) -> Any:
    """Our handler as the Python runtime runs it (as in test_indexing_state_machine), with
    the invoke-level failures injected by shard index."""

    def invoke(
        self: LambdaSimpleBackend,
        function_name: str,
        qualifier: str | None,
        body: Any,
        headers: Any,
        response_headers: Any,
    ) -> bytes:
        payload = json.loads(body)
        shard = payload["shard"]["index"] if payload.get("step") == "embed" else None
        if shard is not None:
            with injected.lock:
                injected.attempts[shard] += 1
                attempt = injected.attempts[shard]
            if shard == THROTTLED and attempt == 1:
                injected.failures.append(f"shard {shard}: throttled")
                return lambda_fault("TooManyRequestsException", "Rate exceeded", response_headers)
        CURRENT.shard = shard
        try:
            result = batch_handler.handler(payload, None)
        except Exception as exc:
            injected.steps.append((payload.get("step", "?"), {"error": type(exc).__name__}))
            response_headers["x-amz-function-error"] = "Unhandled"
            error = {
                "errorType": type(exc).__name__,
                "errorMessage": str(exc),
                "stackTrace": traceback.format_tb(exc.__traceback__),
            }
            return json.dumps(error).encode()
        finally:
            CURRENT.shard = None
        injected.steps.append((payload["step"], result))
        if shard is not None:
            with injected.lock:
                injected.completed[shard] += 1
                first = injected.completed[shard] == 1
            if shard == LOST and first:
                injected.failures.append(f"shard {shard}: response lost after success")
                return lambda_fault("ServiceException", "Service unavailable", response_headers)
        return json.dumps(result).encode()

    return invoke


class TimedStores:
    """Wraps the indexer's two stores: times each write and, once, makes the document store
    time out on the second batch of shard TIMED_OUT (its first batch and the second batch's
    vectors already written)."""

    def __init__(self, injected: Injected) -> None:
        self.injected = injected
        self.batches: Counter[int] = Counter()

    def vectors(self, store: Any) -> Any:
        original = store.upsert

        def upsert(name: str, records: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(name, records)
            finally:
                with self.injected.lock:
                    self.injected.milvus_s += time.perf_counter() - start
                    self.injected.milvus_rows += len(records)

        store.upsert = upsert
        return store

    def documents(self, store: Any) -> Any:
        original = store.upsert

        def upsert(scene: str, docs: Any, **kwargs: Any) -> Any:
            shard = getattr(CURRENT, "shard", None)
            if shard == TIMED_OUT and docs and not self.injected.timed_out:
                self.batches[shard] += 1
                fail = self.batches[shard] == 2
                self.injected.timed_out = fail
                if not fail:
                    self.injected.before_timeout += len(docs)
                else:
                    self.injected.failures.append(f"shard {shard}: MongoDB timed out mid-shard")
                    raise StoreUnavailable("MongoDB did not answer within the store timeout")
            start = time.perf_counter()
            try:
                return original(scene, docs, **kwargs)
            finally:
                with self.injected.lock:
                    self.injected.mongo_s += time.perf_counter() - start
                    self.injected.mongo_rows += len(docs)

        store.upsert = upsert
        return store


def corpus(n: int) -> list[dict[str, str]]:
    """`n` distinct QA documents of 8-14 words drawn from a small support vocabulary."""
    chance = random.Random(19)
    rows = []
    for i in range(n):
        question = " ".join(chance.choices(WORDS, k=chance.randint(4, 7)))
        answer = " ".join(chance.choices(WORDS, k=chance.randint(4, 7)))
        rows.append({"id": f"doc-{i:06d}", "question": f"{question} {i}?", "answer": answer})
    return rows


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random two-layer BERT (hidden 32, 16-dimensional output) exported to ONNX through
    `mmsearch export`'s own code, parity-checked like a real model."""
    from offline.export import export_text_model
    from tests.offline.tiny_multilingual import build_tiny_sentence_model

    base = tmp_path_factory.mktemp("tiny-encoder")
    source = build_tiny_sentence_model(base / "tiny-16", dense_out=16)
    export_text_model(str(source), base / "onnx", parity_sentences=16)
    return base / "onnx"


@pytest.fixture(scope="module")
def batch_settings(
    tmp_path_factory: pytest.TempPathFactory,
    tiny_encoder: Path,
    mongo_server: Any,
    milvus_path: str,
) -> Iterator[Settings]:
    """The indexing function's environment as deployed by default (shards of 2,000)."""
    env = {
        "MMSEARCH_HOME": str(tmp_path_factory.mktemp("home")),
        "MMSEARCH_MODEL_DIR": str(tiny_encoder),
        "MMSEARCH_MILVUS_URI": milvus_path,
        "MMSEARCH_MONGO_URI": mongo_server.uri,
        "MMSEARCH_COLLECTION_PREFIX": f"scale{uuid.uuid4().hex[:8]}_",
        "MMSEARCH_BATCH_BUCKET": BUCKET,
        "MMSEARCH_SHARD_DOCS": str(SHARD_DOCS),
        "MMSEARCH_ENCODE_BATCH_SIZE": "256",
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        batch_handler.runtime.cache_clear()
        yield Settings()
    batch_handler.runtime.cache_clear()


@pytest.fixture(scope="module")
def run(
    tmp_path_factory: pytest.TempPathFactory, batch_settings: Settings
) -> Iterator[tuple[dict[str, Any], Injected, float]]:
    """One execution of the synthesized definition over the whole corpus, failures injected:
    (the execution, what was injected and measured, wall seconds)."""
    _, template = synthesize(tmp_path_factory.mktemp("indexing"), DeployConfig())
    injected = Injected()
    switch = finalize_step.switch_alias

    def counted_switch(aliases: Any, alias: str, collection: str, **kwargs: Any) -> Any:
        injected.switches.append((alias, collection))
        return switch(aliases, alias, collection, **kwargs)

    with mock_aws(config=MOTO_CONFIG), pytest.MonkeyPatch.context() as patch:
        patch.setattr(LambdaSimpleBackend, "invoke", lambda_runtime(injected))
        patch.setattr(finalize_step, "switch_alias", counted_switch)
        # The function's runtime (its S3 client inside moto), built now so that its two
        # stores can be wrapped.
        batch_handler.runtime.cache_clear()
        indexer = batch_handler.runtime().indexer
        stores = TimedStores(injected)
        stores.vectors(indexer._vectors)
        stores.documents(indexer._documents)
        yield execute(template, injected)


def execute(template: Template, injected: Injected) -> tuple[dict[str, Any], Injected, float]:
    sfn, machine = deploy(template)
    body = "".join(json.dumps(row) + "\n" for row in corpus(DOCS)).encode()
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket=BUCKET, Key="corpora/scale.jsonl", Body=body)
    start = time.perf_counter()
    arn = sfn.start_execution(
        stateMachineArn=machine,
        name=f"scale-{uuid.uuid4().hex[:8]}",
        input=json.dumps({"input": f"s3://{BUCKET}/corpora/scale.jsonl", "scene": "qa"}),
    )["executionArn"]
    deadline = time.monotonic() + 1800
    while (execution := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "the execution did not finish in 30 minutes"
        time.sleep(0.5)
    return dict(execution), injected, time.perf_counter() - start


def test_every_injected_failure_was_retried_by_the_definition(
    run: tuple[dict[str, Any], Injected, float],
) -> None:
    execution, injected, _ = run
    assert execution["status"] == "SUCCEEDED", execution
    assert sorted(injected.failures) == sorted(
        [
            f"shard {THROTTLED}: throttled",
            f"shard {TIMED_OUT}: MongoDB timed out mid-shard",
            f"shard {LOST}: response lost after success",
        ]
    )
    assert injected.attempts[THROTTLED] == 2  # throttled, then run once
    assert injected.attempts[TIMED_OUT] == 2 and injected.completed[TIMED_OUT] == 1
    assert injected.attempts[LOST] == 2 and injected.completed[LOST] == 2  # re-run after success
    untouched = set(range(SHARDS)) - {THROTTLED, TIMED_OUT, LOST}
    assert {injected.attempts[s] for s in untouched} == {1}
    assert len(injected.attempts) == SHARDS >= 50


def test_both_stores_hold_exactly_the_input_once_and_the_alias_switched_once(
    run: tuple[dict[str, Any], Injected, float], batch_settings: Settings
) -> None:
    execution, injected, _ = run
    output = json.loads(execution["output"])
    plan, result = output["plan"], output["result"]
    expected = [row["id"] for row in corpus(DOCS)]
    assert (plan["valid"], output["split"]["shards"]) == (DOCS, SHARDS)
    assert (result["vectors"], result["documents"], result["previous"]) == (DOCS, DOCS, None)

    # Reading back 100,000 rows takes the batch timeout, not a query's 3 s (as the runtime).
    patient = batch_settings.model_copy(update={"store_timeout_s": batch_settings.batch_timeout_s})
    vectors = open_vector_store(patient)
    documents = open_document_store(patient)
    assert vectors.count(plan["alias"]) == DOCS
    assert vectors.missing_ids(plan["alias"], expected) == []  # N rows, all N ids: no extra
    assert documents.count(QA.store) == DOCS
    assert sorted(documents.fingerprints(QA.store)) == expected
    assert injected.switches == [(plan["alias"], plan["collection"])]
    assert open_aliases(batch_settings).target(plan["alias"]) == plan["collection"]

    # The lost shard's second run found its documents stored and embedded none again; the
    # timed-out shard's retry embedded only what had not reached MongoDB.
    embeds = [r for step, r in injected.steps if step == "embed" and "embedded" in r]
    assert [r["embedded"] for r in embeds if r["index"] == LOST] == [SHARD_DOCS, 0]
    assert 0 < injected.before_timeout < SHARD_DOCS
    timed_out = [r["embedded"] for r in embeds if r["index"] == TIMED_OUT]
    assert timed_out == [SHARD_DOCS - injected.before_timeout]
    assert sum(r["embedded"] for r in embeds) == DOCS - injected.before_timeout


def test_the_run_reports_its_rates(run: tuple[dict[str, Any], Injected, float]) -> None:
    """Figures for docs/indexing-at-scale.md, written to build/indexing-at-scale.json."""
    _execution, injected, wall = run
    embeds = [r for step, r in injected.steps if step == "embed" and "seconds" in r]
    steps = {step: r for step, r in injected.steps if step in ("validate", "split", "finalize")}
    figures = {
        "docs": DOCS,
        "shards": SHARDS,
        "shard_docs": SHARD_DOCS,
        "map_concurrency": LAMBDA_MAP_CONCURRENCY,
        "wall_s": round(wall, 1),
        "shard_seconds_sum": round(sum(r["seconds"] for r in embeds), 1),
        "shard_seconds_median": sorted(r["seconds"] for r in embeds)[len(embeds) // 2],
        "milvus_rows": injected.milvus_rows,
        "milvus_s": round(injected.milvus_s, 1),
        "milvus_rows_per_s": round(injected.milvus_rows / max(injected.milvus_s, 1e-9)),
        "mongo_rows": injected.mongo_rows,
        "mongo_s": round(injected.mongo_s, 1),
        "mongo_rows_per_s": round(injected.mongo_rows / max(injected.mongo_s, 1e-9)),
        "steps_seen": sorted(steps),
        "cpus": os.cpu_count(),
    }
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures))
    assert figures["milvus_rows"] >= DOCS and figures["mongo_rows"] >= DOCS
