"""The manifest that travels with every exported model folder."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

MANIFEST_FILE = "manifest.json"
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"


class Parity(BaseModel):
    """How closely the ONNX graph reproduces the reference implementation."""

    reference: str = Field(description="What the ONNX output was compared with.")
    sentences: int
    max_abs_diff: float
    min_cosine: float


class ModelManifest(BaseModel):
    """Describes an exported encoder: where it came from, its shape and its checked parity."""

    kind: Literal["text"] = "text"
    name: str
    source: str = Field(description="Model id or local path it was exported from.")
    revision: str | None = Field(default=None, description="Source revision (commit) if known.")
    dim: int
    max_seq_length: int
    pooling: Literal["mean", "cls"] = "mean"
    normalize: bool = True
    inputs: list[str] = Field(description="ONNX graph input names, in order.")
    output: str = "embedding"
    opset: int
    files: dict[str, str] = Field(description="sha256 of every file in the folder but this one.")
    parity: Parity
    exported_at: str

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
