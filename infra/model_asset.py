"""The model a deployment serves: one version, pinned at synth time, shipped with the deployment.

By default the exported folder `mmsearch export` wrote (`make deploy` exports it when missing)
travels as a CDK asset (a zip, no Docker) and a BucketDeployment copies it into the model bucket
under `models/<name>/<version>/`, the version being the same content hash `mmsearch push-model`
computes. Every function that loads the model is told that full version URI, and the versions
SnapStart publishes depend on the deployment: init never finds an empty bucket, never follows a
`LATEST` pointer, and query and index embed with one model. `-c model_version=<v>` pins a
version pushed earlier instead (shipped too when the local folder is that version).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import CfnOutput, Size, Stack
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct

from functions.core.models.manifest import MANIFEST_FILE, check_segment
from functions.core.models.model_source import verify_folder
from functions.core.settings import Settings
from infra.config import DeployConfig
from infra.nag import acknowledge_bucket_deployment, arn_pattern
from infra.storage import bucket_name

# Where the infra looks for the exported folder when `-c model_dir` is not given, before the
# folder `mmsearch export` writes by default (Settings: MMSEARCH_HOME / MMSEARCH_MODEL_DIR).
MODEL_DIR_ENV = "MMSEARCH_DEPLOY_MODEL_DIR"
MODELS_PREFIX = "models"


class ModelNotExported(RuntimeError):
    """No exported model to ship and no pushed version pinned: synth stops with what to do."""


@dataclass(frozen=True)
class ModelRelease:
    """One model version: its name, version, and the local folder shipped with it (if any)."""

    name: str
    version: str
    local_dir: Path | None

    @property
    def prefix(self) -> str:
        """`models/<name>/<version>/` in the model bucket."""
        return f"{MODELS_PREFIX}/{self.name}/{self.version}/"

    def uri(self, config: DeployConfig) -> str:
        """The full version URI the functions load (`MMSEARCH_MODEL_S3_URI`)."""
        return f"s3://{bucket_name(config, 'models')}/{self.prefix}"

    def environment(self, config: DeployConfig) -> dict[str, str]:
        """What a function that loads the model is told."""
        return {"MMSEARCH_MODEL_S3_URI": self.uri(config), "MMSEARCH_MODEL_VERSION": self.version}


def local_model_dir(config: DeployConfig) -> Path:
    """The exported folder to ship: `-c model_dir`, else $MMSEARCH_DEPLOY_MODEL_DIR, else where
    `mmsearch export` writes by default."""
    chosen = config.model_dir or os.environ.get(MODEL_DIR_ENV)
    return Path(chosen) if chosen else Settings().resolved_model_dir


def model_release(config: DeployConfig) -> ModelRelease:
    """The version this deployment serves; raises `ModelNotExported` (or `ModelUnavailable`
    for a folder that fails its manifest) with the command that fixes it."""
    local = local_model_dir(config)
    exported = (local / MANIFEST_FILE).is_file()
    if config.model_version:
        if config.model_version.lower() == "latest":
            raise ValueError(
                "model_version 'latest' is not followed any more (query and index would drift"
                " apart): leave it unset to ship the exported model, or pin a pushed version"
            )
        version = check_segment(config.model_version)
        name = check_segment(config.model_name, "model name")
        ship = exported and _version_of(local, name) == version
        return ModelRelease(name, version, local if ship else None)
    if not exported:
        raise ModelNotExported(
            f"no exported model in {local}: run `mmsearch export` (`make deploy` does), pass"
            " -c model_dir=<exported folder>, or pin a pushed version with"
            " -c model_version=<version> (`mmsearch push-model` prints it)"
        )
    manifest = verify_folder(local)
    if manifest.name != config.model_name:
        raise ModelNotExported(
            f"{local} holds {manifest.name!r}, not model_name {config.model_name!r}:"
            f" pass -c model_name={manifest.name} or another -c model_dir"
        )
    return ModelRelease(manifest.name, manifest.content_version(), local)


def _version_of(local: Path, name: str) -> str | None:
    manifest = verify_folder(local)
    return manifest.content_version() if manifest.name == name else None


def deploy_model(
    scope: Construct, release: ModelRelease, bucket: s3.IBucket
) -> s3deploy.BucketDeployment | None:
    """Copy the release's local folder into `bucket` under its version prefix (None when the
    release names a version pushed earlier). Versions are kept: never pruned nor deleted."""
    CfnOutput(scope, "ModelVersion", value=release.version, description="The served model.")
    if release.local_dir is None:
        return None
    size = sum(p.stat().st_size for p in release.local_dir.rglob("*") if p.is_file())
    deployment = s3deploy.BucketDeployment(
        scope,
        "Model",
        sources=[s3deploy.Source.asset(str(release.local_dir))],
        destination_bucket=bucket,
        destination_key_prefix=release.prefix,
        prune=False,  # other versions stay: published function versions may still read them
        retain_on_delete=True,
        # The handler holds the zip and its extracted files in /tmp, and the CLI's multipart
        # upload buffers in memory: sized to the model, not to CDK's 128 MB / 512 MB defaults.
        memory_limit=1024,
        ephemeral_storage_size=Size.mebibytes(max(512, 3 * size // 2**20)),
    )
    stack = Stack.of(scope)
    acknowledge_bucket_deployment(stack, [f"{arn_pattern(stack, bucket)}/*"])
    return deployment
