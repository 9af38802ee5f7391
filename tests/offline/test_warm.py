"""`mmsearch serve` loads the home's collections as it starts (offline/warm.py), and health
lists those still loading, instead of the first search of each paying for the load (294 s
for a million vectors) and being answered 503 until then."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from functions.composed.app import create_app
from functions.core.settings import Settings
from functions.core.stores.milvus_client import milvus_client
from functions.core.stores.vector_store import MilvusVectorStore, VectorRecord
from offline.warm import Warmup


def _indexed(uri: str, name: str) -> None:
    store = MilvusVectorStore(uri, timeout_s=30)
    store.ensure_collection(name, 4, ())
    rng = np.random.default_rng(0)
    store.upsert(name, [VectorRecord(f"d{i}", rng.standard_normal(4), {}) for i in range(20)])
    store.build_index(name)


def _state(uri: str, name: str) -> str:
    return str(milvus_client(uri, timeout=30).get_load_state(name)["state"])


def test_warmup_loads_released_collections_of_its_prefix_only(tmp_path: Path) -> None:
    uri = str(tmp_path / "warm.db")
    for name in ("p_qa", "p_t2i", "other_qa"):
        _indexed(uri, name)
    client = milvus_client(uri, timeout=30)
    for name in ("p_qa", "p_t2i", "other_qa"):
        client.release_collection(name)
    assert "NotLoad" in _state(uri, "p_qa")
    said: list[str] = []
    settings = Settings(home=tmp_path / "home", milvus_uri=uri, collection_prefix="p_")
    warmup = Warmup(settings, said.append).start()
    warmup.thread.join(timeout=120)
    assert not warmup.thread.is_alive()
    assert warmup.pending() == []
    assert "Loaded" in _state(uri, "p_qa") and "Loaded" in _state(uri, "p_t2i")
    assert "NotLoad" in _state(uri, "other_qa")  # another home's prefix: not ours to load
    assert sorted(line.split(" in ")[0] for line in said) == ["loaded p_qa", "loaded p_t2i"]


def test_an_unreachable_milvus_is_left_to_the_first_search(tmp_path: Path) -> None:
    said: list[str] = []
    settings = Settings(
        home=tmp_path / "home", milvus_uri="http://127.0.0.1:9", store_timeout_s=0.5
    )
    warmup = Warmup(settings, said.append).start()
    warmup.thread.join(timeout=30)
    assert not warmup.thread.is_alive()
    assert warmup.pending() == []
    assert len(said) == 1 and said[0].startswith("could not list the collections to load: ")


def test_health_lists_the_collections_still_loading(settings: Settings) -> None:
    pending = ["mmsearch_qa"]
    with TestClient(create_app(settings, loading=lambda: list(pending))) as api:
        assert api.get("/v1/health").json()["loading"] == ["mmsearch_qa"]
        pending.clear()
        health = api.get("/v1/health").json()
        assert health["status"] == "ok" and "loading" not in health
