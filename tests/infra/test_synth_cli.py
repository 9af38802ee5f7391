"""`make synth`'s command, for real: the pinned CDK CLI runs `python -m infra.app` (cdk.json)
with the docker-free bundles, offline, and every stack comes out clean, with no Docker image
to build (the SageMaker branch is opt-in: `-c sagemaker=true`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CDK = ROOT / "infra" / "node_modules" / ".bin" / "cdk"
STACKS = ("storage", "web", "api", "indexing", "observability")


@pytest.mark.slow
def test_cdk_cli_synthesizes_every_stack_without_warnings(
    tmp_path: Path, lambda_bundles: dict[str, Path]
) -> None:
    if not CDK.exists():
        pytest.fail("the CDK CLI is missing: `make test` installs it (npm ci --prefix infra)")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        "CDK_DISABLE_CLI_TELEMETRY": "true",
    }
    done = subprocess.run(
        [str(CDK), "synth", "--no-notices", "--quiet", "--output", str(tmp_path / "cdk.out")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "WARNING" not in output and "ERROR" not in output, output[-3000:]
    manifest = json.loads((tmp_path / "cdk.out" / "manifest.json").read_text())
    artifacts = manifest["artifacts"].items()
    templates = {n for n, a in artifacts if a["type"] == "aws:cloudformation:stack"}
    assert templates == {f"mmsearch-{name}" for name in STACKS}
    api = json.loads((tmp_path / "cdk.out" / "mmsearch-api.template.json").read_text())
    handlers = {
        r["Properties"]["Handler"]
        for r in api["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function" and "Handler" in r["Properties"]
    }
    assert {"functions.preprocess.handler.handler", "functions.search.handler.handler"} <= handlers
    # `make deploy` builds every Docker asset first: the default needs none (no Docker).
    for assets in (tmp_path / "cdk.out").glob("*.assets.json"):
        assert json.loads(assets.read_text()).get("dockerImages", {}) == {}, assets.name
