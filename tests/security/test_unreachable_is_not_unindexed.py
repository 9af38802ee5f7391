"""An unreachable Milvus is an outage (503 store_unavailable), never "nothing indexed yet":
gRPC's resolver error ends "Domain name not found", which once read as a missing collection."""

from __future__ import annotations

from typing import Any

import pytest

from functions.core.errors import IndexNotReady, StoreUnavailable
from functions.core.stores.vector_store import MilvusVectorStore


class _Failing:
    """A pymilvus client stand-in whose every call raises the given message."""

    def __init__(self, message: str) -> None:
        self.message = message

    def __getattr__(self, name: str) -> Any:
        def fail(*args: Any, **kwargs: Any) -> Any:
            raise Exception(self.message)

        return fail


def _store(message: str) -> MilvusVectorStore:
    store = MilvusVectorStore("http://milvus.invalid:19530", timeout_s=0.5, retries=0)
    store._client = _Failing(message)
    return store


@pytest.mark.parametrize(
    "message",
    [
        "<_InactiveRpcError: status = StatusCode.UNAVAILABLE, details = DNS resolution failed"
        " for milvus.invalid:19530: C-ares status is not ARES_SUCCESS: Domain name not found>",
        "failed to connect to all addresses; last error: UNKNOWN: Domain name not found",
        "<_MultiThreadedRendezvous: StatusCode.DEADLINE_EXCEEDED: Deadline Exceeded>",
    ],
)
def test_transport_failures_are_store_unavailable(message: str) -> None:
    with pytest.raises(StoreUnavailable):
        _store(message)._call("describe_collection", "qa")


def test_a_missing_collection_is_still_index_not_ready() -> None:
    with pytest.raises(IndexNotReady):
        _store("collection not found[collection=qa]")._call("describe_collection", "qa")
