"""Opens an exported model folder as the encoder its manifest names: text only, or CLIP.

Its own module so that neither encoder imports the other: `clip_encoder` builds on
`text_encoder`, and this module sits above both.
"""

from __future__ import annotations

from pathlib import Path

from functions.core.errors import ModelUnavailable
from functions.core.models.clip_encoder import ClipEncoder
from functions.core.models.manifest import ModelManifest
from functions.core.models.text_encoder import TextEncoder


def load_encoder(model_dir: Path, threads: int = 0) -> TextEncoder | ClipEncoder:
    """The encoder an exported folder holds, by its manifest's kind: text only, or CLIP."""
    try:
        kind = ModelManifest.read(model_dir).kind
    except Exception as exc:
        raise ModelUnavailable(f"cannot load model from {model_dir}: {exc}") from exc
    if kind == "clip":
        return ClipEncoder.load(model_dir, threads=threads)
    return TextEncoder.load(model_dir, threads=threads)
