"""Image files as the page shows them: the original and a thumbnail, stored once by content
hash under a folder the local server publishes at `/media`, or in AWS as S3 objects under
`media/` that CloudFront serves at `/media/*`."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from PIL import Image, ImageOps

# The page shows images in tiles up to ~160 CSS px wide; 512 stays sharp up to 3x pixel density.
THUMBNAIL_SIDE = 512
SUFFIXES = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif"}
CONTENT_TYPES = {".jpg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}
CONTENT_TYPES |= {".gif": "image/gif", ".bin": "application/octet-stream"}
S3_PREFIX = "media/"  # CloudFront's /media/* behaviour forwards the path as the key
# Content-addressed names never change meaning: browsers and CloudFront may keep them a year.
IMMUTABLE = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class StoredImage:
    sha256: str
    url: str
    thumbnail_url: str
    width: int
    height: int


class MediaStore(Protocol):
    def put(self, data: bytes) -> StoredImage:
        """Publish `data` and its thumbnail (idempotent); where they are served."""
        ...


class LocalMedia:
    """Originals in `root/originals`, thumbnails (WebP, longest side 512) in `root/thumbs`."""

    def __init__(self, root: Path, base_url: str = "/media") -> None:
        self.root = root
        self.base_url = base_url.rstrip("/")

    def put(self, data: bytes) -> StoredImage:
        """Store `data` and its thumbnail (idempotent: same bytes, same files, no rewrite)."""
        digest = hashlib.sha256(data).hexdigest()
        image = Image.open(io.BytesIO(data))
        suffix = SUFFIXES.get(image.format or "", ".bin")
        original = self.root / "originals" / f"{digest}{suffix}"
        thumbnail = self.root / "thumbs" / f"{digest}.webp"
        if not original.exists():
            _write_atomically(original, data)
        if not thumbnail.exists():
            _write_atomically(thumbnail, _thumbnail(image))
        return StoredImage(
            sha256=digest,
            url=f"{self.base_url}/originals/{original.name}",
            thumbnail_url=f"{self.base_url}/thumbs/{thumbnail.name}",
            width=image.width,
            height=image.height,
        )


def _thumbnail(image: Image.Image) -> bytes:
    image = ImageOps.exif_transpose(image)
    has_alpha = "A" in image.getbands() or "transparency" in image.info
    image = image.convert("RGBA" if has_alpha else "RGB")
    image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, "WEBP", quality=82, method=4)
    return out.getvalue()


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


class S3Media:
    """Originals under `<prefix>originals/`, thumbnails under `<prefix>thumbs/` in `bucket`,
    published at `base_url` (CloudFront's `/media/*` in front of that bucket)."""

    def __init__(
        self, client: Any, bucket: str, base_url: str = "/media", prefix: str = S3_PREFIX
    ) -> None:
        self._s3 = client
        self.bucket = bucket
        self.base_url = base_url.rstrip("/")
        self.prefix = prefix
        self._published: dict[str, StoredImage] = {}  # by sha256, in this process

    def put(self, data: bytes) -> StoredImage:
        """Upload `data` and its thumbnail, once per process. Written without looking first
        (content-addressed, so a rewrite is the same bytes): a check would need s3:ListBucket
        to tell a missing key from a denied one."""
        digest = hashlib.sha256(data).hexdigest()
        if digest in self._published:
            return self._published[digest]
        image = Image.open(io.BytesIO(data))
        suffix = SUFFIXES.get(image.format or "", ".bin")
        original, thumbnail = f"originals/{digest}{suffix}", f"thumbs/{digest}.webp"
        self._upload(original, data)
        self._upload(thumbnail, _thumbnail(image))
        stored = StoredImage(
            sha256=digest,
            url=f"{self.base_url}/{original}",
            thumbnail_url=f"{self.base_url}/{thumbnail}",
            width=image.width,
            height=image.height,
        )
        self._published[digest] = stored
        return stored

    def key(self, url: str) -> str:
        """The object key behind a URL this store handed out."""
        if not url.startswith(self.base_url + "/"):
            raise ValueError(f"{url!r} is not under {self.base_url!r}")
        return self.prefix + url.removeprefix(self.base_url + "/")

    def _upload(self, name: str, body: bytes) -> None:
        self._s3.put_object(
            Bucket=self.bucket,
            Key=self.prefix + name,
            Body=body,
            ContentType=CONTENT_TYPES[Path(name).suffix],
            CacheControl=IMMUTABLE,
        )
