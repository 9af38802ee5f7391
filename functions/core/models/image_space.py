"""The image space of the image scenes: CLIP when a CLIP export is configured (text and images
in one space), else the tiny-image descriptor (images only: no text-to-image by pixels, so a
query mixing text and an image fuses the caption and pixel lists by rank instead of summing
vectors; functions/search/mixed_query.py)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from functions.core.models.manifest import MANIFEST_FILE
from functions.core.settings import Settings


class ImageSpaceEncoder(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed_images(self, images: Sequence[bytes], batch_size: int = ...) -> np.ndarray:
        """(n, dim) float32, L2-normalised."""
        ...


def clip_model_dir(settings: Settings) -> Path | None:
    """The CLIP export in use: `MMSEARCH_CLIP_MODEL_DIR`, else `home/models/clip` if exported."""
    folder = settings.clip_model_dir or settings.home / "models" / "clip"
    return folder if (folder / MANIFEST_FILE).exists() or settings.clip_model_dir else None


def load_image_space(settings: Settings) -> ImageSpaceEncoder:
    """CLIP if configured (loaded once), else the tiny-image descriptor."""
    from functions.core.models.memory_budget import MemoryBudget

    # One budget per process: every image decoded at once draws from it.
    budget = MemoryBudget(settings.image_memory_budget_bytes)
    folder = clip_model_dir(settings)
    if folder is None:
        from functions.core.models.tiny_image import (
            TinyImageEncoder,  # Pillow: imported when needed
        )

        return TinyImageEncoder(
            settings.max_image_pixels,
            max_decoded_bytes=settings.max_image_decoded_bytes,
            budget=budget,
        )
    from functions.core.models.clip_encoder import ClipEncoder

    return ClipEncoder.load(
        folder,
        threads=settings.encoder_threads,
        max_image_pixels=settings.max_image_pixels,
        max_decoded_bytes=settings.max_image_decoded_bytes,
        budget=budget,
    )


def space_identity(encoder: ImageSpaceEncoder) -> str:
    """Changes when the image vectors would: the CLIP image graph's sha256, or the name."""
    manifest = getattr(encoder, "manifest", None)
    if manifest is not None and manifest.image_model:
        return str(manifest.files.get(manifest.image_model, manifest.name))
    return encoder.name
