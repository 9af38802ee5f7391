"""The Lambda bundles, built for real once per session (cached under build/lambda), and the
exported model every synthesized app ships."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Template

from functions.core.models.manifest import (
    MODEL_FILE,
    TOKENIZER_FILE,
    ModelManifest,
    Parity,
    sha256_file,
)
from infra.app import build_app
from infra.config import DeployConfig
from infra.model_asset import MODEL_DIR_ENV
from infra.packaging import BUNDLES, BundleName, lambda_bundle


@pytest.fixture(scope="session")
def lambda_bundles() -> dict[BundleName, Path]:
    """{bundle name: bundle folder}; the first build on a machine takes a minute or two."""
    return {name: lambda_bundle(name) for name in BUNDLES}


@pytest.fixture(scope="session", autouse=True)
def deployed_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The exported folder every synthesized app ships (infra.model_asset): a stand-in of a few
    bytes with a valid manifest, like the code stand-in: template tests, and the init code
    tests/infra/test_init_permissions.py runs (sha256 checks, no inference), need its version
    and files, not real weights."""
    folder = stand_in_model(tmp_path_factory.mktemp("deployed-model") / "all-MiniLM-L6-v2")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(MODEL_DIR_ENV, str(folder))
        yield folder


def stand_in_model(folder: Path, name: str = "all-MiniLM-L6-v2") -> Path:
    """A folder that passes `verify_folder`: two small files and their manifest."""
    folder.mkdir(parents=True)
    (folder / MODEL_FILE).write_bytes(b"stand-in graph")
    (folder / TOKENIZER_FILE).write_text("{}")
    ModelManifest(
        name=name,
        source="stand-in for template tests",
        dim=384,
        max_seq_length=256,
        inputs=["input_ids", "attention_mask"],
        opset=17,
        files={n: sha256_file(folder / n) for n in (MODEL_FILE, TOKENIZER_FILE)},
        parity=Parity(reference="none", sentences=0, max_abs_diff=0.0, min_cosine=1.0),
        exported_at="2026-01-01T00:00:00+00:00",
    ).write(folder)
    return folder


# --- the synthesized app, once per variant per session -------------------------------------

# A deployment's own scenes (`-c scenes_file=...`): the packaged qa plus a product catalogue.
CATALOGUE_SCENES = Path(__file__).with_name("catalogue_scenes.yaml")
# Few synths, each covering independent choices: the default deployment (packaged scenes);
# one function with IAM auth in a VPC with the SageMaker branch; split functions with JWT auth
# adopting kept buckets, internal routes following `auth` and the page's origin elsewhere
# (CORS); the last two with a scenes file of their own.
VARIANTS: dict[str, dict[str, Any]] = {
    "split": {},
    "one": {
        "split_functions": False,
        "auth": "iam",
        "vpc_id": "vpc-0123456789abcdef0",
        "subnet_ids": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
        "availability_zones": ["us-east-1a", "us-east-1b"],
        "route_table_ids": ["rtb-0123456789abcdef0"],
        "sagemaker": True,
        "search_reserved_concurrency": 20,
        "model_version": "0123456789ab",
        "scenes_file": str(CATALOGUE_SCENES),
    },
    "jwt": {
        "auth": "jwt",
        "jwt_issuer": "https://issuer.example.com",
        "jwt_audience": ["mmsearch"],
        "existing_buckets": True,
        "private_embed_and_documents": False,
        "web_origin": "https://search.example.com",
        "writes": True,  # the write routes stay IAM-only under JWT auth
        "model_version": "0123456789ab",
        "scenes_file": str(CATALOGUE_SCENES),
    },
}


@dataclass(frozen=True)
class Synth:
    """One synthesized app: its config, each stack's template and the cloud assembly folder."""

    config: DeployConfig
    templates: dict[str, Template]
    outdir: Path


def synthesize(tmp: Path, **config: Any) -> Synth:
    """Every stack of the app, synthesized with cdk-nag on (an unacknowledged finding raises);
    a small code folder stands in for the bundles (tests/infra/test_packaging.py's business)."""
    code_dir = tmp / "code"
    code_dir.mkdir(parents=True, exist_ok=True)
    (code_dir / "handler.py").write_text("def handler(event, context):\n    return event\n")
    deploy = DeployConfig(**config)
    app = App(outdir=str(tmp / "cdk.out"))
    stacks = build_app(app, deploy, code=lambda name: lambda_.Code.from_asset(str(code_dir)))
    app.synth()
    templates = {name: Template.from_stack(stack) for name, stack in stacks.items()}
    return Synth(deploy, templates, tmp / "cdk.out")


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Synth]:
    """{variant: Synth} for every VARIANTS entry (~15 s each on 2 cores), shared by every
    infra test: the templates, cfn-lint and the state machine's ASL validation."""
    return {
        name: synthesize(tmp_path_factory.mktemp(f"synth-{name}"), **config)
        for name, config in VARIANTS.items()
    }
