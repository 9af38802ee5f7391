"""Image corpora: a folder of images (with an optional JSON-lines index of captions and tags),
a JSON-lines file naming image files, and the demo set, Debian's Tux Paint stamps."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from functions.core.limits import FILTER_MAX_VALUES, ID_MAX_LENGTH
from functions.core.models.image_preprocessing import ACCEPTED_FORMATS
from indexing.corpus import InvalidRecord, short_filter_values

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif")
INDEX_NAMES = ("images.jsonl", "index.jsonl")
TUXPAINT_STAMPS = Path("/usr/share/tuxpaint/stamps")


class ImageDocument(BaseModel):
    """One image of the image scenes: the file, its caption (alt text) and tags."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=ID_MAX_LENGTH)
    file: Path
    caption: str = Field("", max_length=4000)
    captions: dict[str, str] = Field(
        default_factory=dict, description="Caption by language tag, e.g. zh_CN."
    )
    tags: list[str] = Field(default_factory=list, max_length=FILTER_MAX_VALUES)

    @field_validator("tags")
    @classmethod
    def _short_tags(cls, value: list[str]) -> list[str]:
        return short_filter_values(value, "tags")


@dataclass
class ImageCorpus:
    documents: list[ImageDocument]
    invalid: list[InvalidRecord]


def read_image_corpus(path: Path) -> ImageCorpus:
    """`path` is a JSON-lines file of `{"id", "file", "caption", "tags"}` (files relative to
    it), or a folder: its `images.jsonl` if present, else every image in it (recursively, id
    = relative path, no caption). Missing files are reported with their line numbers."""
    if path.is_dir():
        index = next((path / n for n in INDEX_NAMES if (path / n).exists()), None)
        if index is None:
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            docs = [ImageDocument(id=str(p.relative_to(path)), file=p) for p in files]
            return ImageCorpus(docs, [])
        path = index
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    documents: list[ImageDocument] = []
    invalid: list[InvalidRecord] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            problem = _parse(line, path.parent, seen, documents)
            if problem:
                invalid.append(InvalidRecord(number, problem))
    return ImageCorpus(documents, invalid)


def _parse(line: str, base: Path, seen: set[str], documents: list[ImageDocument]) -> str | None:
    document = parse_image_line(line)
    if isinstance(document, str):
        return document
    file = document.file if document.file.is_absolute() else base / document.file
    if not file.is_file():
        return f"file {document.file} not found"
    if document.id in seen:
        return f"duplicate id {document.id!r}"
    seen.add(document.id)
    documents.append(document.model_copy(update={"file": file}))
    return None


def parse_image_line(line: str) -> ImageDocument | str:
    """One JSON line as an `ImageDocument` (its file not looked at), or why it is not one."""
    try:
        raw: Any = json.loads(line)
    except json.JSONDecodeError as exc:
        return f"not JSON: {exc.msg}"
    if not isinstance(raw, dict):
        return "not a JSON object"
    if isinstance(raw.get("id"), int):
        raw["id"] = str(raw["id"])
    try:
        return ImageDocument.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"


def check_images(corpus: ImageCorpus, max_pixels: int) -> ImageCorpus:
    """Move images that cannot be served (unreadable, not JPEG/PNG/WebP/GIF, too many pixels)
    from the documents to the invalid records (numbered by their position in the input)."""
    valid, invalid = [], list(corpus.invalid)
    for number, document in enumerate(corpus.documents, start=1):
        problem = image_problem(document.file.read_bytes(), max_pixels)
        if problem:
            invalid.append(InvalidRecord(number, f"{document.file.name}: {problem}"))
        else:
            valid.append(document)
    return ImageCorpus(valid, invalid)


def image_problem(data: bytes, max_pixels: int) -> str | None:
    """Why these bytes are not an acceptable image, or None."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format not in ACCEPTED_FORMATS:
                return f"{image.format} images are not accepted (JPEG, PNG, WebP, GIF)"
            if image.width * image.height > max_pixels:
                return f"{image.width}x{image.height} is over the {max_pixels:,}-pixel limit"
            image.verify()
    except Exception as exc:
        return f"not a readable image ({type(exc).__name__})"
    return None


def tuxpaint_corpus(root: Path = TUXPAINT_STAMPS) -> list[ImageDocument]:
    """Tux Paint's stamps (Debian `tuxpaint-stamps-default`, GPL-2+): every PNG with a
    description; the first line is the English caption, `zh_CN.utf8=` the Chinese one, the
    folders are the tags."""
    documents = []
    for image in sorted(root.rglob("*.png")):
        text = image.with_suffix(".txt")
        if not text.exists():
            continue
        lines = text.read_text(encoding="utf-8", errors="replace").splitlines()
        caption = lines[0].strip() if lines else ""
        captions = {
            key.removesuffix(".utf8"): value.strip()
            for key, _, value in (line.partition("=") for line in lines[1:])
            if key in ("zh_CN.utf8", "zh_TW.utf8", "ja.utf8") and value.strip()
        }
        relative = image.relative_to(root).with_suffix("")
        documents.append(
            ImageDocument(
                id=f"tux:{relative}",
                file=image,
                caption=caption,
                captions=captions,
                tags=[p for p in relative.parent.parts][:FILTER_MAX_VALUES],
            )
        )
    return documents


def write_jsonl(documents: list[ImageDocument], path: Path) -> None:
    """Write `documents` as the JSON lines `read_image_corpus` reads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for document in documents:
            fh.write(document.model_dump_json() + "\n")
