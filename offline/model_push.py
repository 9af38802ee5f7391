"""`mmsearch push-model`: an exported model folder to S3 as an immutable version.

Files go to `s3://bucket/<prefix>/<name>/<version>/`, the manifest last (a reader that finds
the manifest finds every file it lists), then `<prefix>/<name>/LATEST` names the version: a
record for people and scripts. Deployments never follow it: they pin a version
(`-c model_version=<version>`), which is the same content hash the CDK app gives the model it
ships itself, so pushing a model and deploying it with the app never name one model twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from functions.core.models.manifest import MANIFEST_FILE, ModelManifest, check_segment
from functions.core.models.model_source import S3Folder, read_object, verify_folder

LATEST_FILE = "LATEST"


class VersionConflict(Exception):
    """The version folder already holds a different model: versions are never overwritten."""


@dataclass(frozen=True)
class PushedModel:
    """What `push_model` did."""

    name: str
    version: str
    folder: S3Folder
    files: int
    bytes: int
    uploaded: bool
    pointer: str | None = None

    @property
    def uri(self) -> str:
        """The version's URI: what `MMSEARCH_MODEL_S3_URI` pins a deployment to."""
        return str(self.folder)

    def describe(self) -> str:
        """A few lines for the terminal."""
        done = (
            f"uploaded {self.files} files ({self.bytes / 2**20:.1f} MiB)"
            if self.uploaded
            else "already there, unchanged"
        )
        lines = [f"{self.name} version {self.version}: {done}", f"  {self.uri}"]
        if self.pointer:
            lines.append(f"  {self.pointer} -> {self.version}")
        lines.append(f'deploy with: make deploy CDK_ARGS="-c model_version={self.version}"')
        lines.append(f"(functions elsewhere: MMSEARCH_MODEL_S3_URI={self.uri})")
        return "\n".join(lines)


def model_version(manifest: ModelManifest) -> str:
    """A short content hash: the same files always give the same version."""
    return manifest.content_version()


def push_model(
    model_dir: Path,
    bucket: str,
    *,
    prefix: str = "models",
    version: str | None = None,
    latest: bool = True,
    s3: Any = None,
) -> PushedModel:
    """Upload the verified folder `model_dir` as `version` (default: its content hash) and,
    with `latest`, point `LATEST` at it. Raises `VersionConflict` rather than overwrite."""
    manifest = verify_folder(model_dir)
    version = check_segment(version or model_version(manifest))
    if version == LATEST_FILE:
        raise ValueError(f"invalid model version {version!r}: it names the pointer")
    s3 = s3 or _s3_client()
    model_folder = S3Folder.parse(f"s3://{bucket}/{prefix.strip('/')}/{manifest.name}")
    folder = model_folder.child(version)
    existing_bytes = read_object(s3, folder, MANIFEST_FILE)
    existing = ModelManifest.model_validate_json(existing_bytes) if existing_bytes else None
    if existing is not None and existing.files != manifest.files:
        raise VersionConflict(f"{folder} already holds a different model; pick another version")
    names = sorted(manifest.files)
    if existing is None:
        for name in [*names, MANIFEST_FILE]:  # the manifest last
            s3.upload_file(str(model_dir / name), bucket, folder.key(name))
    if latest:
        s3.put_object(
            Bucket=bucket,
            Key=model_folder.key(LATEST_FILE),
            Body=json.dumps({"version": version}).encode(),
            ContentType="application/json",
        )
    return PushedModel(
        name=manifest.name,
        version=version,
        folder=folder,
        files=len(names) + 1,
        bytes=sum((model_dir / n).stat().st_size for n in [*names, MANIFEST_FILE]),
        uploaded=existing is None,
        pointer=f"s3://{bucket}/{model_folder.key(LATEST_FILE)}" if latest else None,
    )


def _s3_client() -> Any:
    import boto3

    return boto3.client("s3")
