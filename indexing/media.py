"""Image files as the page shows them: the original and a thumbnail, stored once by content
hash under a folder the local server publishes at `/media` (S3 behind CloudFront in AWS)."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

THUMBNAIL_SIDE = 256
SUFFIXES = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif"}


@dataclass(frozen=True)
class StoredImage:
    sha256: str
    url: str
    thumbnail_url: str
    width: int
    height: int


class LocalMedia:
    """Originals in `root/originals`, thumbnails (WebP, longest side 256) in `root/thumbs`."""

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
