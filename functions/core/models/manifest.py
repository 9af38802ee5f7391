"""The manifest that travels with every exported model folder."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path, PurePosixPath
from typing import Literal

from pydantic import BaseModel, Field, model_validator

MANIFEST_FILE = "manifest.json"
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
TEXT_MODEL_FILE = "text.onnx"
IMAGE_MODEL_FILE = "image.onnx"
# OpenAI CLIP's pixel statistics: CLIPImageProcessor's defaults.
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
# A model name or version is one path segment of an S3 key and of the local cache path: a
# letter or digit first, then letters, digits, `.`, `_`, `-` (never `..`, never `/`).
SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_segment(value: str, what: str = "model version") -> str:
    """`value` when it is a safe single path segment (`SEGMENT`, no `..`), else `ValueError`."""
    if not isinstance(value, str) or not SEGMENT.fullmatch(value) or ".." in value:
        raise ValueError(
            f"invalid {what} {value!r}: letters, digits, '.', '_', '-' (a letter or digit first,"
            " at most 128, no '..')"
        )
    return value


class Parity(BaseModel):
    """How closely the ONNX graph reproduces the reference implementation."""

    reference: str = Field(description="What the ONNX output was compared with.")
    sentences: int
    max_abs_diff: float
    min_cosine: float


class ImageParity(BaseModel):
    """How closely ONNX image features, from our own preprocessing, reproduce the reference."""

    reference: str = Field(description="What the ONNX output was compared with.")
    images: int
    max_abs_diff: float
    min_cosine: float


class ImagePreprocessing(BaseModel):
    """CLIPImageProcessor's parameters, with its key names: bytes to pixel_values at runtime."""

    do_convert_rgb: bool = True
    do_resize: bool = True
    size: dict[str, int] = Field(
        default_factory=lambda: {"shortest_edge": 224},
        description="{shortest_edge[, longest_edge]} or {height, width}.",
    )
    resample: int = Field(3, description="PIL.Image.Resampling value; 3 is BICUBIC.")
    do_center_crop: bool = True
    crop_size: dict[str, int] = Field(default_factory=lambda: {"height": 224, "width": 224})
    do_rescale: bool = True
    rescale_factor: float = 1 / 255
    do_normalize: bool = True
    image_mean: list[float] = Field(default_factory=lambda: list(CLIP_MEAN))
    image_std: list[float] = Field(default_factory=lambda: list(CLIP_STD))


class ModelManifest(BaseModel):
    """Describes an exported encoder: where it came from, its shape and its checked parity.

    A "clip" export holds two graphs: `parity` is then its text tower's, `image_parity` its
    image tower's (measured from image bytes through our own preprocessing)."""

    kind: Literal["text", "clip"] = "text"
    name: str
    source: str = Field(description="Model id or local path it was exported from.")
    revision: str | None = Field(default=None, description="Source revision (commit) if known.")
    dim: int
    max_seq_length: int
    pooling: Literal["mean", "cls", "max", "eos"] = "mean"
    normalize: bool = True
    modules: list[str] | None = Field(
        None,
        description="The sentence-transformers modules inside the text graph, in order "
        "(Transformer, Pooling, Dense..., Normalize); None for a CLIP model's own text tower.",
    )
    inputs: list[str] = Field(description="ONNX graph input names, in order.")
    output: str = "embedding"
    opset: int
    files: dict[str, str] = Field(description="sha256 of every file in the folder but this one.")
    parity: Parity
    exported_at: str
    text_model: str = Field(MODEL_FILE, description="ONNX graph that embeds token ids.")
    image_model: str | None = Field(None, description="ONNX graph that embeds pixel_values.")
    image_input: str = "pixel_values"
    image_preprocessing: ImagePreprocessing | None = None
    image_parity: ImageParity | None = None
    text_source: str | None = Field(
        None,
        description="For a clip export whose text tower is not the CLIP model's own: the "
        "sentence-transformers model (a multilingual CLIP text tower trained into the image "
        "tower's space) that text.onnx and tokenizer.json come from; `source` is the image "
        "tower's.",
    )

    @model_validator(mode="after")
    def _graphs_are_listed_files(self) -> ModelManifest:
        """Every file is a relative path inside the folder, and the graphs it names are among
        its own `files` (so they are downloaded and sha256-checked like the rest)."""
        check_segment(self.name, "model name")
        for name in self.files:
            path = PurePosixPath(name)
            if path.is_absolute() or ".." in path.parts or "\\" in name or name == MANIFEST_FILE:
                raise ValueError(f"manifest lists a file outside its folder: {name!r}")
        for graph in (self.text_model, self.image_model):
            if graph is not None and graph not in self.files:
                raise ValueError(f"model file {graph!r} is not among the manifest's files")
        return self

    def content_version(self) -> str:
        """A short content hash of the listed files: the same files always give the same
        version (what `mmsearch push-model` and the CDK app name a version by default)."""
        listing = "\n".join(f"{name} {digest}" for name, digest in sorted(self.files.items()))
        return hashlib.sha256(listing.encode()).hexdigest()[:12]

    @classmethod
    def read(cls, model_dir: Path) -> ModelManifest:
        """Load `manifest.json` from an exported model folder."""
        return cls.model_validate_json((model_dir / MANIFEST_FILE).read_text(encoding="utf-8"))

    def write(self, model_dir: Path) -> None:
        """Write `manifest.json` into `model_dir`."""
        (model_dir / MANIFEST_FILE).write_text(self.model_dump_json(indent=2), encoding="utf-8")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
