"""Issue 15, finding 8: a YAML alias bomb in the pipeline configuration kept parse_config busy
for minutes (over 120 s here for 324 bytes) while holding the lock every search waited on.
Aliases and anchors are refused, the size is bounded, and a reload never blocks a search."""

from __future__ import annotations

import itertools
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from functions.core.pipeline_config import MAX_CONFIG_BYTES, ConfigError, parse_config
from functions.core.settings import Settings
from functions.core.stores.factory import collection_name, open_vector_store
from functions.search import service as search_service
from functions.search.config_source import DEFAULT_CONFIG, FileConfig
from tests.functions.test_api import Call, front_door

DEFAULT_TEXT = DEFAULT_CONFIG.read_text(encoding="utf-8")


def alias_bomb(levels: int = 9) -> str:
    """ "Billion laughs": each level lists the previous one nine times (9**9 strings)."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    names = "abcdefghij"[: levels + 1]
    for before, name in itertools.pairwise(names):
        lines.append(f"{name}: &{name} [{','.join(['*' + before] * 9)}]")
    return "\n".join(lines) + "\n"


def _within(seconds: float, work: Any) -> Any:
    """Run `work()` in a daemon thread; fail (instead of hanging) if it takes longer."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(work()), daemon=True)
    started = time.perf_counter()
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s"
    return result[0], time.perf_counter() - started


def test_an_alias_bomb_is_refused_in_milliseconds() -> None:
    bomb = alias_bomb()
    assert len(bomb) < 500

    def parse() -> str:
        with pytest.raises(ConfigError) as refused:
            parse_config(bomb, "bomb.yaml")
        return str(refused.value)

    message, seconds = _within(10, parse)
    assert "anchors and aliases" in message and "line 1" in message
    assert seconds < 1


def test_anchors_alone_and_oversized_files_are_refused() -> None:
    with pytest.raises(ConfigError, match="anchors and aliases"):
        parse_config(DEFAULT_TEXT.replace("scenes:", "scenes: &all", 1))
    padded = DEFAULT_TEXT + "#" * MAX_CONFIG_BYTES
    with pytest.raises(ConfigError, match=f"the limit is {MAX_CONFIG_BYTES:,}"):
        parse_config(padded)
    assert parse_config(DEFAULT_TEXT).scenes  # the packaged file is well inside the bounds


def _rewrite(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    stamp = time.time() + 5  # a distinct mtime even on coarse-grained file systems
    os.utime(path, (stamp, stamp))


@pytest.fixture(params=["lambda", "http"])
def door(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_a_bad_push_keeps_searches_answering_with_the_last_good_configuration(
    qa_once: Settings,
    door: str,
    tmp_path: Path,
) -> None:
    path = tmp_path / "pipeline.yaml"
    path.write_text(DEFAULT_TEXT, encoding="utf-8")
    source = FileConfig(path, check_every_s=0)  # every search checks the file
    embedder, documents = search_service.dependencies(qa_once)
    service = search_service.SearchService(
        embedder,
        open_vector_store(qa_once),
        documents,
        collection_for=lambda scene: collection_name(qa_once, scene),
        max_query_chars=1000,
        config=source,
    )
    search: Call = front_door(door, search_service.routes(service))
    good = service.config
    _rewrite(path, alias_bomb())
    for _ in range(3):
        (status, body, _), seconds = _within(
            10, lambda: search("POST", "/v1/search", {"query": "refund"})
        )
        assert status == 200 and body["hits"]
        assert seconds < 5
    deadline = time.monotonic() + 5
    while source.last_error is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert source.last_error is not None and "anchors and aliases" in source.last_error
    assert service.config is good
    # A valid push afterwards is taken.
    _rewrite(path, DEFAULT_TEXT.replace("mmr_lambda: 0.8", "mmr_lambda: 0.6"))
    deadline = time.monotonic() + 5
    while service.config is good and time.monotonic() < deadline:
        search("POST", "/v1/search", {"query": "refund"})
        time.sleep(0.01)
    assert service.config.scenes["qa"].rank.experiments["mmr"].params.mmr_lambda == 0.6
    assert source.last_error is None
