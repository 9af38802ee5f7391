"""Milvus Lite's channel carries no keepalive pings (functions/core/stores/milvus_client.py):
with pymilvus' 55 s pings, a gRPC server with default settings cuts a call that lasts minutes
("Too many pings"), a million-row index build among them. A server URI keeps them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest

from functions.core.settings import Settings
from functions.core.stores.aliases import open_aliases
from functions.core.stores.milvus_client import KEEPALIVE, milvus_client
from functions.core.stores.vector_store import MilvusVectorStore


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[tuple[str, Any]]]]:
    """Every channel pymilvus opens from here on: (target, options)."""
    seen: list[tuple[str, list[tuple[str, Any]]]] = []
    real = grpc.insecure_channel

    def spy(target: str, options: Any = None, *args: Any, **kwargs: Any) -> Any:
        seen.append((target, list(options or [])))
        return real(target, options, *args, **kwargs)

    monkeypatch.setattr(grpc, "insecure_channel", spy)
    return seen


def _keepalive(options: list[tuple[str, Any]]) -> list[Any]:
    return [value for name, value in options if name == KEEPALIVE]


def test_a_milvus_lite_store_opens_its_socket_without_keepalive(
    tmp_path: Path, opened: list[tuple[str, list[tuple[str, Any]]]]
) -> None:
    store = MilvusVectorStore(str(tmp_path / "fresh.db"))
    store.ensure_collection("ka", 4, ())
    assert store.has_collection("ka")
    store.close()
    lite = [(target, options) for target, options in opened if target.startswith("unix:")]
    assert lite, f"no Milvus Lite channel was opened: {opened}"
    for _target, options in lite:
        assert _keepalive(options) == []
        # The rest of pymilvus' options stay (unlimited message sizes, retries).
        assert ("grpc.enable_retries", 1) in options


def test_the_alias_keeper_opens_its_socket_without_keepalive(
    tmp_path: Path, opened: list[tuple[str, list[tuple[str, Any]]]]
) -> None:
    settings = Settings(home=tmp_path / "home", milvus_uri=str(tmp_path / "aliases.db"))
    open_aliases(settings)
    lite = [options for target, options in opened if target.startswith("unix:")]
    assert lite and all(_keepalive(options) == [] for options in lite)


def test_a_server_uri_keeps_pymilvus_keepalive(
    opened: list[tuple[str, list[tuple[str, Any]]]],
) -> None:
    # Nothing listens there: the channel is opened, then the connection fails.
    with pytest.raises(Exception):  # noqa: B017 - pymilvus' own connect error
        milvus_client("http://127.0.0.1:9", timeout=0.5)
    tcp = [options for target, options in opened if not target.startswith("unix:")]
    assert tcp and all(_keepalive(options) == [55000] for options in tcp)
