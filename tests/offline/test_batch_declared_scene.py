"""The Step Functions path on a scene declared in configuration alone (the catalogue of
tests/functions/test_catalogue_scene.py): validate checks each line against the scene's
declared fields, split creates the run's collection with its typed filter fields, the shards
embed, finalize switches the alias, and search filters what the run wrote."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from functions.core.scenes import SCENES_FILE_ENV
from functions.core.settings import Settings
from indexing.batch.handler import Runtime
from indexing.batch.settings import BatchSettings
from tests.functions.test_api import front_door, search_routes
from tests.functions.test_catalogue_scene import CATALOGUE_YAML, products
from tests.offline.test_batch_steps import BUCKET, full_run, put_corpus


@pytest.fixture
def catalogue_runtime(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Runtime]:
    (tmp_path / "scenes.yaml").write_text(CATALOGUE_YAML)
    monkeypatch.setenv(SCENES_FILE_ENV, str(tmp_path / "scenes.yaml"))
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        # nlist 16 with nprobe 32: every list probed, so filtered results are exact.
        batch = BatchSettings(**{**settings.model_dump(), "nlist": 16}, shard_docs=16)
        yield Runtime(batch, s3)


def test_a_declared_scene_runs_through_every_batch_step_and_filters_by_its_fields(
    catalogue_runtime: Runtime,
) -> None:
    rows = products()[:48]
    lines = [json.dumps(p) for p in rows]
    lines.insert(5, json.dumps({**rows[0], "id": "bad-price", "price": "cheap"}))
    uri = put_corpus(catalogue_runtime.s3, "catalogue.jsonl", lines)
    plan, result = full_run(catalogue_runtime, uri, scene="catalogue")
    assert (plan.valid, plan.invalid) == (48, 1)
    assert plan.invalid_lines[0].line == 6 and plan.invalid_lines[0].reason.startswith("price")
    assert result["vectors"] == result["documents"] == 48, result
    search = front_door("lambda", search_routes(catalogue_runtime.settings))
    request: dict[str, Any] = {
        "scene": "catalogue",
        "query": "something for the kitchen",
        "top_k": 50,
        "filters": {"brand": "Cobalt", "price": {"gte": 20, "lte": 150}},
    }
    status, body, _ = search("POST", "/v1/search", request)
    assert status == 200, body
    expected = {p["id"] for p in rows if p["brand"] == "Cobalt" and 20 <= p["price"] <= 150}
    assert expected and {h["id"] for h in body["hits"]} == expected
