"""Store connections from Secrets Manager: one secret per store, read once at init, never
echoed; the older one-secret layout still reads.

Secrets Manager and S3 are moto (also inside the fresh process that cold-starts handlers: a
moto server would need moto[server]); the model, MongoDB-wire server and handlers are real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import numpy as np
import pytest
from moto import mock_aws

from functions.core.http.invoke_events import http_event
from functions.core.models.manifest import ModelManifest
from functions.core.models.text_encoder import TextEncoder
from functions.core.settings import Settings
from functions.core.stores.connection import ConnectionSecretError, resolve_connection

ROOT = Path(__file__).resolve().parents[2]
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="us-east-1")


def store_secret(client: object, value: str) -> str:
    """A fresh secret name (Powertools caches by name) holding `value`."""
    name = f"mmsearch/connections-{uuid.uuid4().hex[:8]}"
    client.create_secret(Name=name, SecretString=value)  # type: ignore[attr-defined]
    return name


def test_the_secret_fills_the_store_connections(secrets: object, tmp_path: Path) -> None:
    value = {
        "milvus_uri": "https://in01-abc.zillizcloud.com",
        "milvus_token": "db_admin:token-1",
        "mongo_uri": "mongodb+srv://app:pw-1@cluster0.example.net",
    }
    name = store_secret(secrets, json.dumps(value))

    settings = resolve_connection(Settings(home=tmp_path, connection_secret=name))

    assert settings.milvus_uri == value["milvus_uri"]
    assert settings.milvus_token and settings.milvus_token.get_secret_value() == "db_admin:token-1"
    assert settings.mongo_uri and settings.mongo_uri.get_secret_value() == value["mongo_uri"]
    assert "token-1" not in repr(settings) and "pw-1" not in repr(settings)


def test_a_secret_without_milvus_token_leaves_it_unset(secrets: object, tmp_path: Path) -> None:
    name = store_secret(secrets, json.dumps({"milvus_uri": "http://m:19530", "mongo_uri": "x://y"}))

    settings = resolve_connection(Settings(home=tmp_path, connection_secret=name))

    assert settings.milvus_token is None and settings.milvus_uri == "http://m:19530"


def test_settings_without_a_secret_are_returned_untouched(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    assert resolve_connection(settings, fetch=None) is settings


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("mongodb://app:hunter2-leak@db.example.net", "not valid JSON"),
        ('["hunter2-leak"]', "not a JSON object"),
        ('{"milvus_uri": "http://m", "milvus_token": "hunter2-leak"}', "mongo_uri: Field required"),
        ('{"milvus_uri": "", "mongo_uri": "mongodb://hunter2-leak@x"}', "milvus_uri: Value error"),
        (
            '{"milvus_uri": "http://m", "mongo_uri": "m://x", "mongo_url": "hunter2-leak"}',
            "mongo_url: Extra inputs are not permitted",
        ),
    ],
)
def test_a_malformed_secret_is_a_clear_error_that_never_shows_its_values(
    secrets: object, tmp_path: Path, value: str, expected: str
) -> None:
    name = store_secret(secrets, value)

    with pytest.raises(ConnectionSecretError) as raised:
        resolve_connection(Settings(home=tmp_path, connection_secret=name))

    message = str(raised.value)
    assert name in message and expected in message
    # Not in the message, nor anywhere in the traceback Lambda would print.
    assert "hunter2" not in "".join(traceback.format_exception(raised.value))


def test_each_store_reads_its_own_secret(secrets: object, tmp_path: Path) -> None:
    milvus = store_secret(
        secrets, json.dumps({"milvus_uri": "http://m:19530", "milvus_token": "t-1"})
    )
    mongo = store_secret(secrets, json.dumps({"mongo_uri": "mongodb://app:pw-2@db.example.net"}))

    both = resolve_connection(Settings(home=tmp_path, milvus_secret=milvus, mongo_secret=mongo))
    documents_only = resolve_connection(Settings(home=tmp_path, mongo_secret=mongo))

    assert both.milvus_uri == "http://m:19530"
    assert both.milvus_token and both.milvus_token.get_secret_value() == "t-1"
    assert both.mongo_uri and both.mongo_uri.get_secret_value().endswith("@db.example.net")
    assert documents_only.milvus_token is None and documents_only.milvus_uri is None
    assert documents_only.mongo_uri == both.mongo_uri


def test_the_document_store_secret_refuses_to_carry_the_milvus_token(
    secrets: object, tmp_path: Path
) -> None:
    """Summary is granted the MongoDB secret only: a Milvus token put there would reach it."""
    value = {"mongo_uri": "mongodb://db.example.net", "milvus_token": "hunter2-leak"}
    name = store_secret(secrets, json.dumps(value))

    with pytest.raises(ConnectionSecretError, match="milvus_token: Extra inputs") as raised:
        resolve_connection(Settings(home=tmp_path, mongo_secret=name))
    assert "hunter2" not in "".join(traceback.format_exception(raised.value))
    assert "{mongo_uri}" in str(raised.value)


def test_a_missing_secret_is_named(secrets: object, tmp_path: Path) -> None:
    with pytest.raises(ConnectionSecretError, match="mmsearch/absent"):
        resolve_connection(Settings(home=tmp_path, connection_secret="mmsearch/absent"))


COLD_START = """
import json, logging, sys
from pathlib import Path
import boto3
from moto import mock_aws
from offline.model_push import push_model
setup = json.loads(sys.argv[1])
with mock_aws():
    boto3.client("s3").create_bucket(Bucket="models")
    push_model(Path(setup["model_dir"]), "models", s3=boto3.client("s3"))
    boto3.client("secretsmanager").create_secret(
        Name="mmsearch/mongo", SecretString=json.dumps(setup["secret"])
    )
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    from functions.preprocess.handler import handler as preprocess
    from functions.summary.handler import handler as summary
    answers = [preprocess(setup["events"][0], None), summary(setup["events"][1], None)]
print(json.dumps(answers))
"""


def test_handlers_cold_started_from_s3_and_the_secret_answer_without_logging_secrets(
    model_dir: Path, indexed_qa: Settings, encoder: TextEncoder, tmp_path: Path
) -> None:
    canary = uuid.uuid4().hex
    assert indexed_qa.mongo_uri is not None
    secret = {
        "mongo_uri": f"{indexed_qa.mongo_uri.get_secret_value().rstrip('/')}/?appName=a{canary}",
    }
    manifest = ModelManifest.read(model_dir)
    name, version = manifest.name, manifest.content_version()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MMSEARCH_", "AWS_"))},
        **FAKE_CREDENTIALS,
        "MMSEARCH_HOME": str(tmp_path / "home"),
        "MMSEARCH_MODEL_S3_URI": f"s3://models/models/{name}/{version}/",  # as deployed: pinned
        "MMSEARCH_MODEL_CACHE_DIR": str(tmp_path / "models"),
        "MMSEARCH_MONGO_SECRET": "mmsearch/mongo",
        "MMSEARCH_COLLECTION_PREFIX": indexed_qa.collection_prefix,
    }
    events = [
        http_event("POST", "/v1/embed", {"texts": ["how long is delivery"]}),
        http_event("POST", "/v1/documents:batchGet", {"scene": "qa", "ids": ["qa-006", "nope"]}),
    ]
    setup = {"model_dir": str(model_dir), "secret": secret, "events": events}

    done = subprocess.run(
        [sys.executable, "-c", COLD_START, json.dumps(setup)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    embedded, documents = json.loads(done.stdout.strip().splitlines()[-1])
    assert embedded["statusCode"] == 200 and documents["statusCode"] == 200
    vector = np.asarray(json.loads(embedded["body"])["vectors"][0], dtype=np.float32)
    np.testing.assert_array_equal(vector, encoder.embed(["how long is delivery"])[0])
    body = json.loads(documents["body"])
    assert [d["question"] for d in body["documents"]] == ["How long does shipping take?"]
    assert body["missing"] == ["nope"]
    assert list((tmp_path / "models" / "models" / "models" / name).glob("*/model.onnx"))
    assert "mmsearch/mongo" in done.stderr  # init logged where the connections came from
    assert canary not in done.stdout + done.stderr
