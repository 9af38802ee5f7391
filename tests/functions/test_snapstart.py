"""SnapStart restores: every environment resumed from one snapshot draws its own random numbers,
and a connection secret rotated since the snapshot is read again (Secrets Manager is moto)."""

from __future__ import annotations

import importlib
import json
import random
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from functions.core.http.invoke_events import http_event
from functions.core.settings import Settings
from functions.core.snapstart import LambdaHandler, RestorableHandler

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def restore_twice(snapshot: object, hook: Callable[[], None] | None) -> list[list[float]]:
    """Two environments resumed from the same frozen `random` state, each drawing 4 numbers
    (what anonymous users' A/B points and retry jitter draw), after `hook` if given."""
    draws = []
    for _ in range(2):
        random.setstate(snapshot)  # type: ignore[arg-type]
        if hook is not None:
            hook()
        draws.append([random.random() for _ in range(4)])
    return draws


def echo_init(settings: Settings) -> Callable[[], tuple[Settings, LambdaHandler]]:
    def init() -> tuple[Settings, LambdaHandler]:
        return settings, lambda event, context: {"statusCode": 200, "body": "{}"}

    return init


def test_environments_restored_from_one_snapshot_draw_different_random_numbers(
    tmp_path: Path,
) -> None:
    handler = RestorableHandler(echo_init(Settings(home=tmp_path)))
    snapshot = random.getstate()

    frozen = restore_twice(snapshot, None)
    restored = restore_twice(snapshot, handler.after_restore)

    assert frozen[0] == frozen[1]  # what SnapStart does without the hook
    assert restored[0] != restored[1]


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="us-east-1")


def secret_reading_init(home: Path, name: str, calls: list[str]) -> Callable[[], Any]:
    """An init like the composed handler's: the secret resolved into the settings it serves."""
    from functions.core.stores.connection import resolve_connection

    def init() -> tuple[Settings, LambdaHandler]:
        settings = resolve_connection(Settings(home=home, mongo_secret=name))
        uri = settings.mongo_uri.get_secret_value() if settings.mongo_uri else ""
        calls.append(uri)
        return settings, lambda event, context: {"statusCode": 200, "body": uri}

    return init


def test_a_secret_rotated_since_the_snapshot_is_read_again_after_restore(
    secrets: Any, tmp_path: Path
) -> None:
    name = "mmsearch/mongo-rotated"
    secrets.create_secret(Name=name, SecretString=json.dumps({"mongo_uri": "mongodb://old"}))
    calls: list[str] = []
    handler = RestorableHandler(secret_reading_init(tmp_path, name, calls))
    secrets.put_secret_value(SecretId=name, SecretString=json.dumps({"mongo_uri": "mongodb://new"}))

    handler.after_restore()

    assert handler({}, None)["body"] == "mongodb://new"
    assert calls == ["mongodb://old", "mongodb://new"]


def test_an_unchanged_secret_does_not_rebuild_the_handler(secrets: Any, tmp_path: Path) -> None:
    name = "mmsearch/mongo-unchanged"
    secrets.create_secret(Name=name, SecretString=json.dumps({"mongo_uri": "mongodb://same"}))
    calls: list[str] = []
    handler = RestorableHandler(secret_reading_init(tmp_path, name, calls))

    handler.after_restore()

    assert calls == ["mongodb://same"]


def test_the_preprocess_handler_registers_its_hook_with_the_lambda_runtime(
    monkeypatch: pytest.MonkeyPatch, model_dir: Path, tmp_path: Path
) -> None:
    """The Lambda runtime ships `snapshot_restore_py`; a stand-in records what is registered."""
    registered: list[Callable[[], None]] = []
    runtime = types.ModuleType("snapshot_restore_py")
    runtime.register_after_restore = registered.append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", runtime)
    monkeypatch.setenv("MMSEARCH_MODEL_DIR", str(model_dir))
    monkeypatch.setenv("MMSEARCH_HOME", str(tmp_path))
    monkeypatch.delitem(sys.modules, "functions.preprocess.handler", raising=False)

    module = importlib.import_module("functions.preprocess.handler")

    assert registered == [module.handler.after_restore]
    first, second = restore_twice(random.getstate(), registered[0])
    assert first != second
    answer = module.handler(http_event("POST", "/v1/embed", {"texts": ["refund policy"]}), None)
    assert answer["statusCode"] == 200


def test_without_the_runtime_library_nothing_is_registered_and_the_handler_serves(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", None)  # import fails: a local run
    handler = RestorableHandler(echo_init(Settings(home=tmp_path)))
    assert handler.registered is False
    assert handler({}, None)["statusCode"] == 200
