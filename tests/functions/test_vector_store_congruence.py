"""The vector store against both engines it meets: Milvus Lite (the embedded default) and a real
Milvus server (PyPI `milvus` 2.3.5, the standalone binary, started once per session), and the
two compared answer for answer (qdrant-client's congruence tests). Deployments talk to a
server (self-hosted or Zilliz Cloud): its native aliases and HNSW are exercised here. Only
what Milvus 2.3 lacks is skipped on it, by name: the BM25 function (Milvus 2.5+)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import SecretStr

from functions.core.errors import UnsupportedByStore
from functions.core.scenes import QA
from functions.core.settings import Settings
from functions.core.stores.aliases import open_aliases, switch_alias
from functions.core.stores.factory import open_document_store
from functions.core.stores.vector_store import MilvusVectorStore, VectorRecord
from indexing.corpus import QADocument
from indexing.indexer import Indexer
from offline.local_mongo import LocalMongoServer, free_port
from tests.security.test_ids_special_characters import SPECIAL_IDS

try:
    from milvus import MilvusServer
except ImportError:  # the dev extra installs it; CI must have it
    MilvusServer = None

BACKENDS = ["lite", "server"]
NO_BM25_ON_SERVER = "Milvus 2.3 (the embedded server) has no BM25 function: Milvus 2.5+"
DIM = 8


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Milvus 2.3.5 standalone server on free ports, started once (about 8-15 s)."""
    if MilvusServer is None:
        pytest.skip("PyPI `milvus` (an embedded Milvus server) is absent: install mmsearch[dev]")
    base = tmp_path_factory.mktemp("milvus-server")
    server = MilvusServer(_config_on_free_ports(base), wait_for_started=False)
    server.set_base_dir(str(base / "data"))
    started = time.perf_counter()
    server.start()
    try:
        _wait_healthy(server, base / "data" / "logs", deadline=time.monotonic() + 120)
        print(f"Milvus 2.3.5 started in {time.perf_counter() - started:.1f} s")
        yield f"http://127.0.0.1:{server.listen_port}"
    finally:
        server.stop()


def _config_on_free_ports(base: Path) -> Any:
    """The package's configuration with its embedded etcd on free ports: etcd's own defaults
    (2379, 2380) would clash with any other Milvus or etcd on the machine."""
    import milvus

    client, peer = free_port(), free_port()
    etcd = base / "embed-etcd.yaml"
    etcd.write_text(
        "name: mmsearch-test\n"
        f"listen-client-urls: http://127.0.0.1:{client}\n"
        f"advertise-client-urls: http://127.0.0.1:{client}\n"
        f"listen-peer-urls: http://127.0.0.1:{peer}\n"
        f"initial-advertise-peer-urls: http://127.0.0.1:{peer}\n"
        f"initial-cluster: mmsearch-test=http://127.0.0.1:{peer}\n"
    )
    data = Path(milvus.__file__).parent / "data"
    template = base / "config.yaml.template"
    text = (data / "config.yaml.template").read_text()
    template.write_text(text.replace("etcd:\n", f"etcd:\n  config:\n    path: {etcd}\n", 1))
    config = milvus.MilvusServerConfig(template=str(template), etcd_port=client)
    config.glog_conf_file = str(data / "glog.conf")  # set only for the packaged template
    return config


def _wait_healthy(server: Any, logs: Path, deadline: float) -> None:
    import urllib.request

    url = f"http://127.0.0.1:{server.webservice_port}/healthz"
    while time.monotonic() < deadline:
        if server.server_proc.poll() is not None:
            tail = (logs / "milvus-stdout.log").read_text(errors="replace")[-2000:]
            pytest.fail(f"the Milvus server exited while starting:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if b"OK" in answer.read():
                    return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail("the Milvus server was not healthy within 120 s")


@pytest.fixture(params=BACKENDS)
def uri(request: pytest.FixtureRequest, milvus_path: str) -> str:
    return milvus_path if request.param == "lite" else str(request.getfixturevalue("milvus_server"))


def _store(uri: str, **options: Any) -> MilvusVectorStore:
    return MilvusVectorStore(uri, timeout_s=20, alias_ttl_s=0, **options)


def _name() -> str:
    return f"c{uuid.uuid4().hex[:12]}"


def _records(n: int, seed: int = 7) -> list[VectorRecord]:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, DIM)).astype(np.float32)
    return [
        VectorRecord(
            f"doc-{i:03d}",
            vectors[i],
            {"category": [f"c{i % 4}", 'it\'s "quoted"' if i % 5 == 0 else "plain"]},
            f"document {i} about {['cats', 'dogs', 'birds', 'fish'][i % 4]}",
        )
        for i in range(n)
    ]


def _filled(store: MilvusVectorStore, records: list[VectorRecord]) -> str:
    collection = _name()
    store.ensure_collection(collection, DIM, ["category"])
    store.upsert(collection, records)
    store.build_index(collection)
    return collection


def _exact_top(records: list[VectorRecord], query: np.ndarray, k: int) -> list[str]:
    matrix = np.stack([np.asarray(r.vector) for r in records])
    cosine = matrix @ query / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(query))
    return [records[i].id for i in np.argsort(-cosine)[:k]]


def scenario(store: MilvusVectorStore) -> dict[str, Any]:
    """Every read the service makes, on the same data: the answers two engines must share."""
    records = _records(60)
    collection = _filled(store, records)
    query = np.asarray(records[11].vector) + 0.1
    dense = store.search(collection, query, 10, {})
    filtered = store.search(collection, query, 60, {"category": ['it\'s "quoted"', "c1"]})
    special = [
        VectorRecord(i, records[n].vector, {"category": ["x"]}) for n, i in enumerate(SPECIAL_IDS)
    ]
    store.upsert(collection, special)
    store.delete(collection, [r.id for r in records[:5]] + SPECIAL_IDS[:3])
    store.build_index(collection)
    ids = [r.id for r in records[:8]] + SPECIAL_IDS
    fetched = store.fetch_fields(collection, SPECIAL_IDS[3:6], ["vector", "category"])
    return {
        "dense": [h.id for h in dense],
        "scores": [h.score for h in dense],
        "filtered": sorted(h.id for h in filtered),
        "count": store.count(collection),
        "missing": store.missing_ids(collection, ids),
        "fetched": {
            k: (np.round(v["vector"], 5).tolist(), v["category"]) for k, v in fetched.items()
        },
        "search_special": sorted(
            h.id for h in store.search(collection, query, 100, {"category": ["x"]})
        ),
        "schema_current": store.schema_current(collection, DIM),
        "exact": _exact_top(records, query, 10),
    }


def test_dense_search_filters_and_ids_answer_correctly(uri: str) -> None:
    answers = scenario(_store(uri))
    assert answers["dense"] == answers["exact"]
    assert answers["scores"][0] > 0.9
    expected_filtered = sorted(
        r.id for r in _records(60) if {'it\'s "quoted"', "c1"} & set(r.fields["category"])
    )
    assert answers["filtered"] == expected_filtered
    assert answers["count"] == 60 - 5 + len(SPECIAL_IDS) - 3
    assert answers["missing"] == [f"doc-{i:03d}" for i in range(5)] + SPECIAL_IDS[:3]
    assert sorted(answers["fetched"]) == sorted(SPECIAL_IDS[3:6])
    assert answers["search_special"] == sorted(SPECIAL_IDS[3:])
    assert answers["schema_current"]


def test_milvus_lite_and_the_server_answer_alike(milvus_path: str, milvus_server: str) -> None:
    lite, server = scenario(_store(milvus_path)), scenario(_store(milvus_server))
    assert lite.pop("scores") == pytest.approx(server.pop("scores"), abs=1e-5)
    assert lite == server


def test_an_update_replaces_the_vector_of_an_id_with_any_character(uri: str) -> None:
    store = _store(uri)
    collection = _filled(
        store, [VectorRecord(i, np.ones(DIM), {"category": []}) for i in SPECIAL_IDS]
    )
    changed = [
        VectorRecord(i, np.arange(DIM, dtype=np.float32), {"category": ["new"]})
        for i in SPECIAL_IDS
    ]
    store.upsert(collection, changed)
    store.build_index(collection)
    assert store.count(collection) == len(SPECIAL_IDS)
    fetched = store.fetch_fields(collection, SPECIAL_IDS, ["vector", "category"])
    assert all(v["category"] == ["new"] and v["vector"][1] == 1.0 for v in fetched.values())
    store.delete(collection, SPECIAL_IDS)
    assert store.missing_ids(collection, SPECIAL_IDS) == SPECIAL_IDS
    assert store.count(collection) == 0


@pytest.mark.parametrize("built", [True, False], ids=["indexed_empty", "not_yet_indexed"])
def test_an_empty_collection_has_no_hits_in_every_mode(uri: str, built: bool) -> None:
    store = _store(uri)
    collection = _name()
    store.ensure_collection(collection, DIM, ["category"])
    if built:
        store.build_index(collection)
    query = np.ones(DIM, dtype=np.float32)
    assert store.search(collection, query, 5, {"category": ["a"]}) == []
    if not store.supports_bm25():
        pytest.skip(NO_BM25_ON_SERVER)
    assert store.search_text(collection, "anything", 5, {}) == []
    assert store.search_hybrid(collection, query, "anything", 5, {}, candidates=5) == []


def test_bm25_ranks_by_words_and_hybrid_fuses_both(uri: str) -> None:
    store = _store(uri)
    if not store.supports_bm25():
        pytest.skip(NO_BM25_ON_SERVER)
    records = _records(40)
    collection = _filled(store, records)
    hits = store.search_text(collection, "birds", 10, {})
    assert hits and all("birds" in records[int(h.id[-3:])].text for h in hits)
    fused = store.search_hybrid(
        collection, np.asarray(records[2].vector), "birds", 5, {}, candidates=20
    )
    assert fused[0].id == "doc-002"


def test_a_collection_with_empty_texts_still_answers_hybrid_with_its_dense_hits(uri: str) -> None:
    store = _store(uri)
    if not store.supports_bm25():
        pytest.skip(NO_BM25_ON_SERVER)
    records = [VectorRecord(r.id, r.vector, r.fields, "") for r in _records(20)]
    collection = _filled(store, records)
    query = np.asarray(records[4].vector)
    fused = store.search_hybrid(collection, query, "birds", 5, {}, candidates=10)
    assert [h.id for h in fused] == _exact_top(records, query, 5)
    assert store.search_text(collection, "birds", 5, {}) == []


def test_a_server_without_bm25_refuses_lexical_search_clearly(milvus_server: str) -> None:
    store = _store(milvus_server)
    assert not store.supports_bm25()
    collection = _filled(store, _records(10))
    assert store.schema_current(collection, DIM)  # so re-indexing does not rebuild it
    with pytest.raises(UnsupportedByStore, match=r"BM25 needs Milvus 2\.5"):
        store.search_text(collection, "birds", 5, {})
    with pytest.raises(UnsupportedByStore):
        store.search_hybrid(collection, np.ones(DIM), "birds", 5, {}, candidates=5)


def test_hnsw_with_ef_returns_as_many_hits_as_asked(milvus_server: str, milvus_path: str) -> None:
    # Milvus Lite's local mode has no HNSW (FLAT, IVF_FLAT and AUTOINDEX only): servers only.
    store = _store(milvus_server, index_type="HNSW")
    records = _records(300)
    collection = _filled(store, records)
    client = store._connect()
    assert client.describe_index(collection, "vector")["index_type"] == "HNSW"
    query = np.asarray(records[42].vector)
    narrow = store.search(collection, query, 20, {}, ef=8)  # ef below the hits asked for
    assert len(narrow) == 20 and narrow[0].id == "doc-042"
    wide = store.search(collection, query, 10, {}, ef=200)
    assert [h.id for h in wide] == _exact_top(records, query, 10)


def test_aliases_move_readers_to_a_finished_collection_at_once(uri: str, tmp_path: Path) -> None:
    """The batch finalize step's switch: native aliases on a server, the alias collection on
    Milvus Lite; a reader of the alias sees the old collection, then the new, never neither."""
    settings = Settings(home=tmp_path, milvus_uri=uri)
    aliases, reader = open_aliases(settings), _store(uri)
    alias = f"a{uuid.uuid4().hex[:10]}"
    old = _filled(reader, _records(10))
    new = _filled(reader, _records(25, seed=8))
    assert switch_alias(aliases, alias, old, replace_collection=False).previous is None
    assert aliases.target(alias) == old and reader.count(alias) == 10
    query = np.asarray(_records(10)[3].vector)
    assert reader.search(alias, query, 1, {})[0].id == "doc-003"
    switched = switch_alias(aliases, alias, new, replace_collection=False)
    assert (switched.previous, aliases.target(alias)) == (old, new)
    assert reader.count(alias) == 25 and not reader.has_collection(old)
    assert switch_alias(aliases, alias, new, replace_collection=False).previous is None


def test_the_indexer_and_the_batch_steps_run_against_a_server(
    milvus_server: str,
    mongo_server: LocalMongoServer,
    model_dir: Path,
    tmp_path: Path,
    qa_docs: list[QADocument],
) -> None:
    import boto3
    from moto import mock_aws

    from indexing.batch.handler import Runtime
    from indexing.batch.settings import BatchSettings
    from tests.conftest import _encoder
    from tests.offline.test_batch_steps import BUCKET, full_run, put_corpus

    settings = Settings(
        home=tmp_path,
        model_dir=model_dir,
        milvus_uri=milvus_server,
        mongo_uri=SecretStr(mongo_server.uri),
        collection_prefix=f"s{uuid.uuid4().hex[:10]}_",
        store_timeout_s=20,
    )
    vectors, documents = _store(milvus_server, index_type="HNSW"), open_document_store(settings)
    indexer = Indexer(_encoder(model_dir), vectors, documents, batch_size=8)
    collection = f"{settings.collection_prefix}direct"
    first = indexer.run(QA, collection, qa_docs)
    again = indexer.run(QA, collection, qa_docs)
    assert (first.embedded, first.vectors, again.embedded, again.vectors) == (30, 30, 0, 30)

    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        runtime = Runtime(BatchSettings(**settings.model_dump(), shard_docs=8), s3)
        lines = [d.model_dump_json() for d in qa_docs]
        plan, done = full_run(runtime, put_corpus(s3, "v1.jsonl", lines))
        assert (done["vectors"], done["documents"], done["previous"]) == (30, 30, None)
        plan2, done2 = full_run(runtime, put_corpus(s3, "v2.jsonl", lines[:20]))
    assert (done2["previous"], done2["vectors"], done2["pruned"]) == (plan.collection, 20, 10)
    client = _store(milvus_server)._connect()
    assert client.describe_alias(plan2.alias)["collection_name"] == plan2.collection
    vector = _encoder(model_dir).embed(["How do I reset my password?"])[0]
    assert _store(milvus_server).search(plan2.alias, vector, 1, {})[0].id == "qa-000"
