"""A deployment's own scenes (`-c scenes_file=...`): checked at synth by the functions' own
loader, shipped in every bundle and the processing image, and named by MMSEARCH_SCENES_FILE
on every function and indexing job, so search, documents and both indexing paths agree."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from functions.core.scenes import SCENES_FILE_ENV, SceneConfigError, SceneRegistry
from infra import packaging
from infra.app import bundled_code
from infra.config import DeployConfig
from infra.packaging import BUNDLES, dependency_key, lambda_bundle, lock_pins, requirements
from infra.processing import processing_image_context
from infra.scenes import BUNDLED_SCENES
from tests.infra.conftest import CATALOGUE_SCENES, Synth

ROOT = Path(__file__).resolve().parents[2]
IN_LAMBDA = f"/var/task/{BUNDLED_SCENES}"
IN_IMAGE = f"/opt/mmsearch/{BUNDLED_SCENES}"
BROKEN = """
scenes:
  catalogue:
    fields:
      title: text
      price: float
    embed_fields: [title]
    filterable: [title]
"""


def current_scenes_of(path: Path) -> object:
    """The scenes a function finds with MMSEARCH_SCENES_FILE naming `path`."""
    return SceneRegistry().scenes(path)


def our_functions(synth: Synth) -> dict[str, dict[str, Any]]:
    """{handler: properties} of every function running our code, in every stack (CDK's own
    custom-resource functions excluded)."""
    found = {}
    for template in synth.templates.values():
        for function in template.find_resources("AWS::Lambda::Function").values():
            props = function["Properties"]
            if props.get("Handler", "").startswith(("functions.", "indexing.")):
                found[props["Handler"]] = props
    return found


def state_machine_definition(synth: Synth) -> dict[str, Any]:
    """The indexing definition with its CloudFormation tokens blanked out."""
    (machine,) = (
        synth.templates["indexing"].find_resources("AWS::StepFunctions::StateMachine").values()
    )
    parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    parsed: dict[str, Any] = json.loads("".join(p if isinstance(p, str) else "T" for p in parts))
    return parsed


@pytest.mark.parametrize("variant", ["one", "jwt"])
def test_every_function_is_told_where_its_bundle_holds_the_deployed_scenes(
    synthesized: dict[str, Synth], variant: str
) -> None:
    functions = our_functions(synthesized[variant])
    expected = {"one": 2, "jwt": 5}[variant]  # composed + indexing; three, documents, indexing
    assert len(functions) == expected
    for handler, props in functions.items():
        assert props["Environment"]["Variables"][SCENES_FILE_ENV] == IN_LAMBDA, handler


def test_the_sagemaker_job_is_told_where_its_image_holds_the_deployed_scenes(
    synthesized: dict[str, Synth],
) -> None:
    states = state_machine_definition(synthesized["one"])["States"]
    job = states["EmbedShardsOnSageMaker"]["ItemProcessor"]["States"]["EmbedShardJob"]
    assert job["Parameters"]["Environment"][SCENES_FILE_ENV] == IN_IMAGE


def test_without_a_scenes_file_the_functions_read_their_packaged_scenes(
    synthesized: dict[str, Synth],
) -> None:
    functions = our_functions(synthesized["split"])
    assert len(functions) == 4
    for handler, props in functions.items():
        assert SCENES_FILE_ENV not in props["Environment"]["Variables"], handler


def empty_dependencies(build_root: Path) -> None:
    """An installed-dependencies cache entry for every bundle, empty: these tests look at our
    files in the bundle (tests/infra/test_packaging.py installs the real wheels)."""
    pins = lock_pins()
    for name in BUNDLES:
        folder = build_root / "deps" / dependency_key(sorted(requirements(name)), pins)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ".complete").write_text("")


def test_every_bundle_and_the_processing_image_carry_the_scenes_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty_dependencies(tmp_path)
    monkeypatch.setattr(
        packaging, "lambda_bundle", functools.partial(lambda_bundle, build_root=tmp_path)
    )
    code = bundled_code(DeployConfig(scenes_file=str(CATALOGUE_SCENES)))
    wanted = CATALOGUE_SCENES.read_bytes()
    for name in BUNDLES:
        folder = Path(code(name).path)  # the asset the app would upload for this bundle
        assert (folder / BUNDLED_SCENES).read_bytes() == wanted, name
        assert folder.name.startswith(f"{name}+scenes-")  # the default bundle is left alone
    plain = lambda_bundle("search", build_root=tmp_path)
    assert not (plain / BUNDLED_SCENES).exists()
    image = processing_image_context(tmp_path / "image", scenes_file=str(CATALOGUE_SCENES))
    assert (image / BUNDLED_SCENES).read_bytes() == wanted
    assert "COPY functions /opt/mmsearch/functions" in (image / "Dockerfile").read_text()

    # The bundle's own loader, run from the bundle as Lambda would, reads the shipped file.
    bundle = Path(code("search").path)
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from functions.core.scenes import *; print(sorted(current_scenes()))",
        ],
        cwd=bundle,
        env={
            **os.environ,
            "PYTHONPATH": str(bundle),
            SCENES_FILE_ENV: str(bundle / BUNDLED_SCENES),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "['catalogue', 'qa']"


def test_a_broken_scenes_file_fails_synth_with_the_loaders_message(tmp_path: Path) -> None:
    broken = tmp_path / "scenes.yaml"
    broken.write_text(BROKEN)
    with pytest.raises(ValidationError, match="filterable: 'title' is text, which cannot filter"):
        DeployConfig.from_context({"scenes_file": str(broken)}.get)
    with pytest.raises(ValidationError, match="cannot read the scene configuration"):
        DeployConfig(scenes_file=str(tmp_path / "missing.yaml"))

    # As `cdk synth -c scenes_file=...` runs the app: the context arrives in CDK_CONTEXT_JSON.
    done = subprocess.run(
        [sys.executable, "-m", "infra.app"],
        cwd=ROOT,
        env={
            **os.environ,
            "CDK_CONTEXT_JSON": json.dumps({"scenes_file": str(broken)}),
            "CDK_OUTDIR": str(tmp_path / "cdk.out"),
            "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    with pytest.raises(SceneConfigError) as loader:  # what the functions would say at init
        current_scenes_of(broken)
    assert done.stderr.splitlines()[-2:] == [
        "invalid deployment configuration:",
        f"  context: {loader.value}",
    ]
    assert not (tmp_path / "cdk.out" / "manifest.json").exists()
