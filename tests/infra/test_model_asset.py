"""Which model version a deployment serves, decided at synth (infra.model_asset)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from functions.core.models.manifest import ModelManifest
from functions.core.settings import Settings
from infra.config import DeployConfig
from infra.model_asset import MODEL_DIR_ENV, ModelNotExported, local_model_dir, model_release
from tests.infra.conftest import stand_in_model


def test_the_exported_model_ships_as_its_content_hash_version(deployed_model: Path) -> None:
    release = model_release(DeployConfig())

    assert release.local_dir == deployed_model
    assert release.version == ModelManifest.read(deployed_model).content_version()
    assert release.prefix == f"models/all-MiniLM-L6-v2/{release.version}/"
    env = release.environment(DeployConfig())
    assert env["MMSEARCH_MODEL_S3_URI"].endswith(f"/{release.prefix}")
    assert env["MMSEARCH_MODEL_VERSION"] == release.version


def test_synth_without_an_exported_model_says_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(ModelNotExported, match="mmsearch export") as raised:
        model_release(DeployConfig(model_dir=str(tmp_path / "nothing")))
    assert "-c model_version=" in str(raised.value)


def test_a_pinned_version_ships_the_local_folder_only_when_it_is_that_version(
    deployed_model: Path,
) -> None:
    own = ModelManifest.read(deployed_model).content_version()

    assert model_release(DeployConfig(model_version=own)).local_dir == deployed_model
    other = model_release(DeployConfig(model_version="v1"))
    assert other.local_dir is None and other.prefix == "models/all-MiniLM-L6-v2/v1/"


def test_a_pinned_version_needs_no_exported_model(tmp_path: Path) -> None:
    release = model_release(DeployConfig(model_version="v1", model_dir=str(tmp_path / "none")))
    assert release.local_dir is None and release.version == "v1"


@pytest.mark.parametrize("version", ["..", "../other", "a/b", "a..b", "-x"])
def test_a_version_that_is_not_one_plain_segment_stops_the_synth(version: str) -> None:
    with pytest.raises(ValueError, match="invalid model version"):
        model_release(DeployConfig(model_version=version))


def test_latest_is_not_a_version_a_deployment_follows(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="pin a pushed version"):
        model_release(DeployConfig(model_version="latest"))
    assert (
        "model_version"
        not in json.loads((Path(__file__).resolve().parents[2] / "cdk.json").read_text())["context"]
    )


def test_a_folder_holding_another_model_than_model_name_stops_the_synth(tmp_path: Path) -> None:
    folder = stand_in_model(tmp_path / "other", name="other-model")
    with pytest.raises(ModelNotExported, match="-c model_name=other-model"):
        model_release(DeployConfig(model_dir=str(folder)))


def test_make_deploy_exports_the_very_folder_the_app_ships(monkeypatch: pytest.MonkeyPatch) -> None:
    """A newcomer's `make deploy`: the `model` step runs `mmsearch export` with its defaults,
    which write where the app looks when neither -c model_dir nor the test override is set."""
    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    assert re.search(r"^deploy: .*\bmodel\b", makefile, re.M)
    assert re.search(r"^model: .*\n\t\$\(BIN\)/mmsearch export\n", makefile, re.M)
    for name in (MODEL_DIR_ENV, "MMSEARCH_MODEL_DIR", "MMSEARCH_HOME"):
        monkeypatch.delenv(name, raising=False)

    shipped = local_model_dir(DeployConfig())

    assert shipped == Settings().resolved_model_dir  # `mmsearch export`'s default target
    assert shipped == Path(".mmsearch/models/all-MiniLM-L6-v2")
