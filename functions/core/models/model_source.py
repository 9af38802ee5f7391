"""Exported model folders from S3: downloaded once at init into a local cache, sha256-checked.

Layout written by `mmsearch push-model` and by the CDK app's model deployment:
`s3://bucket/<prefix>/<name>/<version>/{manifest.json, model.onnx, ...}`. A URI names one
version folder: init never follows a pointer (a `LATEST` object may exist for people), so
what a published version serves is fixed when it is deployed, and a missing key, which S3
answers with 403 to a role without `s3:ListBucket`, is reported as missing or unreadable.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from functions.core.errors import ModelUnavailable
from functions.core.models.manifest import MANIFEST_FILE, ModelManifest, check_segment

if TYPE_CHECKING:
    from functions.core.settings import Settings

log = logging.getLogger("mmsearch")


@dataclass(frozen=True)
class S3Folder:
    """A "folder" in S3: a bucket and a key prefix ending in "/" (or empty)."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, uri: str) -> S3Folder:
        """`s3://bucket/some/prefix[/]` as a folder; anything else is a `ValueError`, and so
        is a prefix segment that is not a plain name (`..`, `.`, empty): the prefix is also a
        path under the local model cache."""
        if not uri.startswith("s3://") or not uri[5:].split("/", 1)[0]:
            raise ValueError(f"not an s3:// URI: {uri!r}")
        bucket, _, key = uri[5:].partition("/")
        key = key.strip("/")
        for segment in key.split("/") if key else []:
            check_segment(segment, f"segment of {uri!r}")
        return cls(bucket, f"{key}/" if key else "")

    def key(self, name: str) -> str:
        return self.prefix + name

    def child(self, name: str) -> S3Folder:
        return S3Folder(self.bucket, f"{self.prefix}{name.strip('/')}/")

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def materialize_models(settings: Settings, s3: Any = None) -> Settings:
    """Settings whose model folders are local copies of `model_s3_uri` / `clip_model_s3_uri`
    (unchanged when neither is set). Called once per process, at init."""
    update: dict[str, Path] = {}
    if settings.model_s3_uri:
        s3 = s3 or _s3_client()
        update["model_dir"] = fetch_model(settings.model_s3_uri, settings.model_cache_dir, s3)
    if settings.clip_model_s3_uri:
        s3 = s3 or _s3_client()
        update["clip_model_dir"] = fetch_model(
            settings.clip_model_s3_uri, settings.model_cache_dir, s3
        )
    return settings.model_copy(update=update) if update else settings


def fetch_model(uri: str, cache_dir: Path, s3: Any) -> Path:
    """The verified local copy of the version folder at `uri`, downloaded unless a verified
    copy is already in `cache_dir`. Raises `ModelUnavailable` naming any missing or altered
    file."""
    try:
        folder = S3Folder.parse(uri)
    except ValueError as exc:
        raise ModelUnavailable(str(exc)) from None
    local = cache_dir / folder.bucket / folder.prefix
    if (local / MANIFEST_FILE).exists():
        try:
            verify_folder(local)
            return local
        except ModelUnavailable:
            log.warning("cached model %s failed verification; downloading again", local)
    staging = local.with_name(f".{local.name}.{os.getpid()}.partial")
    try:
        _download(folder, staging, s3)
        verify_folder(staging)
        shutil.rmtree(local, ignore_errors=True)
        staging.rename(local)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("model %s ready in %s", folder, local)
    return local


def verify_folder(model_dir: Path) -> ModelManifest:
    """The folder's manifest, after checking that every file it lists is there and matches
    its sha256; raises `ModelUnavailable` naming the first file that does not."""
    # The encoder's check: imported here so callers without models never load onnxruntime.
    from functions.core.models.text_encoder import _verify_files

    try:
        manifest = ModelManifest.read(model_dir)
    except Exception as exc:
        raise ModelUnavailable(f"{model_dir / MANIFEST_FILE} is missing or invalid: {exc}") from exc
    missing = [name for name in manifest.files if not (model_dir / name).is_file()]
    if missing:
        raise ModelUnavailable(f"{model_dir / missing[0]} is missing (listed in its manifest)")
    _verify_files(model_dir, manifest)
    return manifest


def _download(folder: S3Folder, dest: Path, s3: Any) -> None:
    """The manifest, then every file it lists; a file absent from S3 is named in the error."""
    manifest_bytes = read_object(s3, folder, MANIFEST_FILE)
    if manifest_bytes is None:
        raise ModelUnavailable(
            f"no {MANIFEST_FILE} under {folder} (missing, or not readable by this role): the URI"
            " must name a version folder <prefix>/<name>/<version>/ that holds a model"
        )
    dest.mkdir(parents=True)
    (dest / MANIFEST_FILE).write_bytes(manifest_bytes)
    try:
        manifest = ModelManifest.read(dest)
    except Exception as exc:
        raise ModelUnavailable(f"{folder}{MANIFEST_FILE} is not a model manifest: {exc}") from exc
    for name in manifest.files:
        target = dest / name
        if not target.resolve().is_relative_to(dest.resolve()):
            raise ModelUnavailable(f"{folder}{MANIFEST_FILE} lists a file outside it: {name!r}")
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            s3.download_file(folder.bucket, folder.key(name), str(target))
        except Exception as exc:
            if _is_not_found(exc) or _is_denied(exc):
                raise ModelUnavailable(
                    f"{folder}{name} is missing from S3 (or not readable)"
                ) from None
            raise


def read_object(s3: Any, folder: S3Folder, name: str) -> bytes | None:
    """An object's bytes, or None when it is absent. S3 answers a missing key with 403 to a
    principal without `s3:ListBucket` (the functions' roles), so 403 reads as absent too;
    callers say "missing or not readable", which is all such a principal can know."""
    try:
        body: bytes = s3.get_object(Bucket=folder.bucket, Key=folder.key(name))["Body"].read()
    except Exception as exc:
        if _is_not_found(exc) or _is_denied(exc):
            return None
        raise
    return body


def _error_code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def _is_not_found(exc: Exception) -> bool:
    return _error_code(exc) in {"NoSuchKey", "404", "NotFound"}


def _is_denied(exc: Exception) -> bool:
    return _error_code(exc) in {"AccessDenied", "403", "Forbidden"}


def _s3_client() -> Any:
    import boto3  # only deployments with models in S3 pay for boto3's import

    return boto3.client("s3")
