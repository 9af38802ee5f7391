"""Image corpora in the state machine: a JSON-lines index in S3 naming image objects beside it
(`{"id", "file", "caption", "captions", "tags"}`, `file` relative to the index's folder),
validated, cut into shards and embedded with the CLI's image indexer (caption and image
vectors, originals and thumbnails published to the media bucket)."""

from __future__ import annotations

import hashlib
import posixpath
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from functions.core.scenes import Scene
from indexing.batch.events import RunPlan, ShardRef, ShardResult
from indexing.batch.objects import InputNotFound, ObjectStore
from indexing.batch.shard import ShardIndexer
from indexing.corpus import InvalidRecord
from indexing.image_corpus import ImageDocument, image_problem, parse_image_line
from indexing.image_indexer import ImageIndexer


class ImageShardIndexer(ShardIndexer, ImageIndexer):
    """The CLI's image indexer, writing one shard at a time into a run's two collections.

    Every image of a shard is published, embedded or skipped: the media bucket goes with the
    web stack (`make destroy` empties it) while MongoDB's fingerprints stay, so re-running a
    corpus refills it (two PUTs an image, once per process)."""

    def _body(self, document: ImageDocument) -> dict[str, object]:
        body = super()._body(document)
        self._media.put(self._bytes[document.id])
        return body


@dataclass
class S3ImageCorpus:
    """Valid documents (`file` = the image's key in the corpus bucket), refused lines, and a
    digest of the index and every image's bytes (the run's identity)."""

    documents: list[ImageDocument]
    invalid: list[InvalidRecord]
    digest: str


def read_image_index(
    objects: ObjectStore, bucket: str, key: str, max_pixels: int, *, check_files: bool = True
) -> S3ImageCorpus:
    """Read the index at `bucket/key`; with `check_files`, every image is fetched once and
    refused (with its line number) when missing, unreadable or too large."""
    data = objects.read(bucket, key)
    digest = hashlib.sha256(data)
    folder = posixpath.dirname(key)
    documents: list[ImageDocument] = []
    invalid: list[InvalidRecord] = []
    seen: set[str] = set()
    for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        document = parse_image_line(line)
        if isinstance(document, str):
            invalid.append(InvalidRecord(number, document))
            continue
        image_key = object_key(folder, document.file)
        if image_key is None:
            invalid.append(InvalidRecord(number, f"file {document.file}: not a relative path"))
            continue
        if document.id in seen:
            invalid.append(InvalidRecord(number, f"duplicate id {document.id!r}"))
            continue
        if check_files:
            problem, content = _file_problem(objects, bucket, image_key, max_pixels)
            digest.update(content)
            if problem:
                invalid.append(InvalidRecord(number, f"file {document.file}: {problem}"))
                continue
        seen.add(document.id)
        documents.append(document.model_copy(update={"file": Path(image_key)}))
    return S3ImageCorpus(documents, invalid, digest.hexdigest())


def object_key(folder: str, file: Path) -> str | None:
    """The key of `file` relative to the index's folder; None if it climbs out or is absolute."""
    relative = PurePosixPath(file.as_posix())
    if relative.is_absolute() or ".." in relative.parts:
        return None
    return posixpath.join(folder, str(relative)) if folder else str(relative)


def _file_problem(
    objects: ObjectStore, bucket: str, key: str, max_pixels: int
) -> tuple[str | None, bytes]:
    """Why the image at `key` cannot be indexed (or None), and its content's digest."""
    try:
        data = objects.read(bucket, key)
    except InputNotFound:
        return "not found", b""
    return image_problem(data, max_pixels), hashlib.sha256(data).digest()


def image_shard_body(docs: Sequence[ImageDocument]) -> bytes:
    """A shard as JSON lines (`file` = the image's key)."""
    return b"".join(d.model_dump_json().encode("utf-8") + b"\n" for d in docs)


def read_image_shard(data: bytes) -> list[ImageDocument]:
    """The documents of a shard written by `image_shard_body`."""
    documents = []
    for line in data.decode("utf-8").splitlines():
        if line.strip():
            documents.append(ImageDocument.model_validate_json(line))
    return documents


def embed_image_shard(
    plan: RunPlan,
    shard: ShardRef,
    objects: ObjectStore,
    indexer: ImageShardIndexer,
    scene: Scene,
    corpus_bucket: str,
) -> ShardResult:
    """Fetch one shard and its images from S3 and index them (the Lambda Map's unit of work)."""
    start = time.perf_counter()
    documents = read_image_shard(objects.read(plan.bucket, shard.key))
    with tempfile.TemporaryDirectory(prefix="mmsearch-images-") as folder:
        local = []
        for row, document in enumerate(documents):
            # One folder per image keeps its file name (the document's `name`) without clashes.
            path = Path(folder) / str(row) / document.file.name
            path.parent.mkdir()
            path.write_bytes(objects.read(corpus_bucket, document.file.as_posix()))
            local.append(document.model_copy(update={"file": path}))
        embedded = indexer.index_shard(scene, plan.collection, local)
    return ShardResult(
        index=shard.index,
        docs=len(documents),
        embedded=embedded,
        skipped=len(documents) - embedded,
        seconds=round(time.perf_counter() - start, 3),
    )
