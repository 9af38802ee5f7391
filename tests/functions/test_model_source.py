"""Models in S3: pushed as immutable versions, fetched at init, sha256-checked, cached.

S3 is moto (the one fake); the model, the encoder and the verification are the real ones."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from moto import mock_aws
from typer.testing import CliRunner

from functions.core.errors import ModelUnavailable
from functions.core.models.manifest import MANIFEST_FILE, TOKENIZER_FILE, ModelManifest, sha256_file
from functions.core.models.model_source import S3Folder, fetch_model, materialize_models
from functions.core.models.text_encoder import TextEncoder
from functions.core.settings import Settings
from offline.cli import app
from offline.model_push import VersionConflict, model_version, push_model

BUCKET = "mmsearch-models"
TEXTS = ["how long does shipping take?", "Où est ma commande ?", "refund policy"]


class RecordingS3:
    """The moto S3 client, recording the name and arguments of every call."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args or tuple(kwargs.values())))
            return method(*args, **kwargs)

        return call

    def names(self, operation: str) -> list[str]:
        """The object keys' last parts, for every `operation` call, in order."""
        return [
            str(args[2 if operation == "upload_file" else 1]).rsplit("/", 1)[-1]
            for name, args in self.calls
            if name == operation
        ]


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingS3]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield RecordingS3(client)


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def settings_for(uri: str, cache: Path) -> Settings:
    return Settings(model_s3_uri=uri, model_cache_dir=cache, home=cache.parent / "home")


def test_a_pushed_model_loads_from_s3_and_embeds_exactly_like_the_local_folder(
    s3: RecordingS3, cache: Path, model_dir: Path, encoder: TextEncoder
) -> None:
    pushed = push_model(model_dir, BUCKET, s3=s3)

    settings = materialize_models(settings_for(pushed.uri, cache), s3)

    assert settings.resolved_model_dir.is_relative_to(cache)
    loaded = TextEncoder.load(settings.resolved_model_dir)
    np.testing.assert_array_equal(loaded.embed(TEXTS), encoder.embed(TEXTS))


def test_push_uploads_every_file_then_the_manifest_then_the_latest_pointer(
    s3: RecordingS3, model_dir: Path
) -> None:
    pushed = push_model(model_dir, BUCKET, s3=s3)

    manifest = ModelManifest.read(model_dir)
    assert pushed.version == model_version(manifest)
    assert pushed.uri == f"s3://{BUCKET}/models/{manifest.name}/{pushed.version}/"
    assert s3.names("upload_file") == [*sorted(manifest.files), MANIFEST_FILE]
    assert s3.names("put_object") == ["LATEST"]
    latest = s3.client.get_object(Bucket=BUCKET, Key=f"models/{manifest.name}/LATEST")
    assert json.loads(latest["Body"].read()) == {"version": pushed.version}
    assert f'make deploy CDK_ARGS="-c model_version={pushed.version}"' in pushed.describe()
    assert f"MMSEARCH_MODEL_S3_URI={pushed.uri}" in pushed.describe()


def test_pushing_the_same_files_again_uploads_nothing(s3: RecordingS3, model_dir: Path) -> None:
    first = push_model(model_dir, BUCKET, s3=s3)
    s3.calls.clear()

    again = push_model(model_dir, BUCKET, s3=s3)

    assert again.version == first.version and not again.uploaded
    assert s3.names("upload_file") == []


def test_a_version_is_never_overwritten_by_a_different_model(
    s3: RecordingS3, model_dir: Path, tmp_path: Path
) -> None:
    push_model(model_dir, BUCKET, version="v1", s3=s3)
    other = altered_copy(model_dir, tmp_path / "other")

    with pytest.raises(VersionConflict, match="v1"):
        push_model(other, BUCKET, version="v1", s3=s3)
    assert push_model(other, BUCKET, s3=s3).version != "v1"


def test_push_refuses_a_local_folder_that_fails_its_manifest_before_uploading(
    s3: RecordingS3, model_dir: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    (broken / TOKENIZER_FILE).write_text("{}")

    with pytest.raises(ModelUnavailable, match=TOKENIZER_FILE):
        push_model(broken, BUCKET, s3=s3)
    assert s3.calls == []


def test_init_never_follows_latest_a_uri_must_name_its_version(
    s3: RecordingS3, cache: Path, model_dir: Path, tmp_path: Path
) -> None:
    """One pinned version governs query and index: a pointer moved by a later push changes
    nothing that is deployed, and a URI without a version is refused, not resolved."""
    v1 = push_model(model_dir, BUCKET, version="v1", s3=s3)
    name = ModelManifest.read(model_dir).name
    newer = push_model(altered_copy(model_dir, tmp_path / "v2"), BUCKET, version="v2", s3=s3)
    assert newer.pointer == f"s3://{BUCKET}/models/{name}/LATEST"
    s3.calls.clear()

    local = fetch_model(v1.uri, cache, s3)
    with pytest.raises(ModelUnavailable, match="must name a version folder"):
        fetch_model(f"s3://{BUCKET}/models/{name}", cache, s3)

    assert local == cache / BUCKET / "models" / name / "v1"
    assert ModelManifest.read(local).files == ModelManifest.read(model_dir).files
    assert "LATEST" not in s3.names("get_object")


@pytest.mark.parametrize("version", ["..", ".", "a/b", "../other", "a..b", "-x", "LATEST"])
def test_push_refuses_a_version_that_is_not_one_plain_path_segment(
    s3: RecordingS3, model_dir: Path, version: str
) -> None:
    with pytest.raises(ValueError, match="invalid model version"):
        push_model(model_dir, BUCKET, version=version, s3=s3)
    assert s3.names("upload_file") == []


@pytest.mark.parametrize(
    "uri",
    [
        f"s3://{BUCKET}/models/all-MiniLM-L6-v2/../",
        f"s3://{BUCKET}/models/../../etc/",
        f"s3://{BUCKET}/models//v1/",
        f"s3://{BUCKET}/models/./v1/",
    ],
)
def test_a_uri_with_a_dot_dot_or_empty_segment_is_refused_before_any_s3_call(
    s3: RecordingS3, cache: Path, uri: str
) -> None:
    """The prefix is also a path under the cache: `..` would resolve to the models folder, and
    a refresh would delete other models' copies."""
    with pytest.raises(ModelUnavailable, match="invalid segment"):
        fetch_model(uri, cache, s3)
    assert s3.calls == [] and not cache.exists()


def test_a_manifest_whose_model_file_is_not_among_its_files_is_refused(model_dir: Path) -> None:
    manifest = ModelManifest.read(model_dir).model_dump()
    with pytest.raises(ValueError, match=r"'other\.onnx' is not among"):
        ModelManifest.model_validate({**manifest, "text_model": "other.onnx"})
    with pytest.raises(ValueError, match=r"'image\.onnx' is not among"):
        ModelManifest.model_validate({**manifest, "image_model": "image.onnx"})
    for name in ("../model.onnx", "/etc/passwd", MANIFEST_FILE):
        files = {**manifest["files"], name: "0" * 64}
        with pytest.raises(ValueError, match="outside its folder"):
            ModelManifest.model_validate({**manifest, "files": files})


def test_a_manifest_in_s3_naming_an_unlisted_graph_is_refused_and_nothing_is_cached(
    s3: RecordingS3, cache: Path, model_dir: Path
) -> None:
    pushed = push_model(model_dir, BUCKET, s3=s3)
    manifest = json.loads((model_dir / MANIFEST_FILE).read_text())
    manifest["text_model"] = "elsewhere.onnx"
    key = pushed.folder.key(MANIFEST_FILE)
    s3.client.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(manifest).encode())

    with pytest.raises(ModelUnavailable, match="not a model manifest"):
        fetch_model(pushed.uri, cache, s3)
    assert not [p for p in cache.rglob("*") if p.is_file()]


def test_a_file_altered_in_s3_is_refused_by_name_and_nothing_is_cached(
    s3: RecordingS3, cache: Path, model_dir: Path
) -> None:
    pushed = push_model(model_dir, BUCKET, s3=s3)
    s3.client.put_object(Bucket=BUCKET, Key=pushed.folder.key(TOKENIZER_FILE), Body=b"{}")

    with pytest.raises(ModelUnavailable, match=f"{TOKENIZER_FILE} does not match"):
        materialize_models(settings_for(pushed.uri, cache), s3)
    assert not [p for p in cache.rglob("*") if p.is_file()]


def test_a_file_missing_from_s3_is_named(s3: RecordingS3, cache: Path, model_dir: Path) -> None:
    pushed = push_model(model_dir, BUCKET, s3=s3)
    s3.client.delete_object(Bucket=BUCKET, Key=pushed.folder.key(TOKENIZER_FILE))

    with pytest.raises(ModelUnavailable, match=f"{TOKENIZER_FILE} is missing from S3"):
        fetch_model(pushed.uri, cache, s3)


def test_a_version_with_no_manifest_says_so(s3: RecordingS3, cache: Path) -> None:
    with pytest.raises(ModelUnavailable, match=r"no manifest\.json under .*not readable"):
        fetch_model(f"s3://{BUCKET}/models/nothing/v1/", cache, s3)


def test_a_verified_cached_folder_is_not_downloaded_again(
    s3: RecordingS3, cache: Path, model_dir: Path
) -> None:
    pushed = push_model(model_dir, BUCKET, s3=s3)
    first = fetch_model(pushed.uri, cache, s3)
    s3.calls.clear()

    assert fetch_model(pushed.uri, cache, s3) == first
    assert s3.names("download_file") == []


def test_a_cached_folder_that_fails_verification_is_downloaded_again(
    s3: RecordingS3, cache: Path, model_dir: Path
) -> None:
    pushed = push_model(model_dir, BUCKET, s3=s3)
    local = fetch_model(pushed.uri, cache, s3)
    (local / TOKENIZER_FILE).write_text("{}")
    s3.calls.clear()

    assert fetch_model(pushed.uri, cache, s3) == local
    assert sha256_file(local / TOKENIZER_FILE) == sha256_file(model_dir / TOKENIZER_FILE)
    assert TOKENIZER_FILE in s3.names("download_file")


def test_settings_without_s3_uris_are_returned_untouched(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    assert materialize_models(settings, s3=object()) is settings


@pytest.mark.parametrize("uri", ["bucket/models", "s3://", "s3:///models", "https://x/y"])
def test_only_s3_uris_name_a_model_folder(uri: str) -> None:
    with pytest.raises(ValueError, match="s3://"):
        S3Folder.parse(uri)


def test_the_push_model_command_prints_the_uri_to_deploy_with(
    s3: RecordingS3, model_dir: Path
) -> None:
    result = CliRunner().invoke(
        app, ["push-model", "--model-dir", str(model_dir), "--bucket", BUCKET, "--version", "v7"]
    )

    assert result.exit_code == 0, result.output
    name = ModelManifest.read(model_dir).name
    assert f"MMSEARCH_MODEL_S3_URI=s3://{BUCKET}/models/{name}/v7/" in result.output
    assert '-c model_version=v7"' in result.output


def altered_copy(model_dir: Path, out: Path) -> Path:
    """The model folder with an equivalent but byte-different tokenizer.json (another version)."""
    shutil.copytree(model_dir, out)
    tokenizer = out / TOKENIZER_FILE
    tokenizer.write_text(json.dumps(json.loads(tokenizer.read_text()), indent=1))
    manifest = ModelManifest.read(out)
    manifest.files[TOKENIZER_FILE] = sha256_file(tokenizer)
    manifest.write(out)
    return out
