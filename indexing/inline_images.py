"""Images that arrive in a write request (`POST /v1/documents:batchUpsert` on an image scene)
rather than as files of a corpus: the bytes travel base64 in the document's `image` field.

They take the image indexer's path unchanged (`ImageIndexer` reads `document.file`), so a
written image gets what an indexed one gets: a caption vector, an image vector, its original
and thumbnail published as media, and a fingerprint that covers its bytes (the same image
sent twice is not written twice; a new image under an old id replaces it)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from functions.core.errors import InvalidRequest
from functions.core.http.query_image import decode_image
from functions.core.models.image_preprocessing import ACCEPTED_FORMATS
from functions.core.scenes import InvalidDocument
from functions.core.stores.vector_store import FILTER_MAX_VALUES, ID_MAX_LENGTH
from indexing.corpus import short_filter_values


@dataclass(frozen=True)
class InlineFile:
    """What `ImageIndexer` reads of a file, for bytes that never were one."""

    stem: str
    data: bytes

    def read_bytes(self) -> bytes:
        return self.data


class InlineImageDocument(BaseModel):
    """One image document of a write: the image scenes' fields, the image itself inline."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    id: str = Field(min_length=1, max_length=ID_MAX_LENGTH)
    file: InlineFile
    caption: str = Field("", max_length=4000)
    captions: dict[str, str] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list, max_length=FILTER_MAX_VALUES)

    @field_validator("tags")
    @classmethod
    def _short_tags(cls, value: list[str]) -> list[str]:
        return short_filter_values(value, "tags")


def inline_image_document(
    body: dict[str, Any], *, max_bytes: int, max_pixels: int
) -> InlineImageDocument:
    """A write body `{"id", "image": base64, "name"?, "caption"?, "captions"?, "tags"?}` as an
    image document, its bytes checked to be an accepted image within the size limits before
    anything is embedded or stored; `InvalidDocument` names the field at fault."""
    raw = dict(body)
    image = raw.pop("image", None)
    if not isinstance(image, str) or not image:
        raise InvalidDocument("image: required, the image's bytes as base64 text")
    name = raw.pop("name", None)
    if name is not None and not isinstance(name, str):
        raise InvalidDocument("name: expected a string")
    try:
        data = decode_image(image, max_bytes)  # too many bytes: 413, as for a query image
    except InvalidDocument:
        raise
    except InvalidRequest as exc:
        raise InvalidDocument(f"image: {exc.message}") from None
    _check_image(data, max_pixels)
    stem = (name or str(raw.get("id", "")))[:200]
    try:
        return InlineImageDocument(file=InlineFile(stem, data), **raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"]) or "document"
        raise InvalidDocument(f"{where}: {error['msg']}") from None


def _check_image(data: bytes, max_pixels: int) -> None:
    """The header only: an accepted format, within the pixel limit (decoding comes later,
    under the image space's memory budget)."""
    try:
        with Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS) as image:
            width, height = image.size
    except Image.DecompressionBombError:
        raise InvalidDocument("image: too large to decode") from None
    except Exception:
        raise InvalidDocument(
            f"image: not a readable image (accepted: {', '.join(ACCEPTED_FORMATS)})"
        ) from None
    if width * height > max_pixels:
        raise InvalidDocument(f"image: {width}x{height} pixels; the limit is {max_pixels:,}")
