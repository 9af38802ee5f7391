"""The image space without CLIP weights: a "tiny image" descriptor (Torralba, Fergus and
Freeman, 80 million tiny images, 2008): the centre square at 16x16, RGB, centred and
L2-normalised. It finds the same picture, its near copies and similar colour layouts; it
knows nothing of meaning. Used when no CLIP model is configured, and labelled as such."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from functions.core.models.image_preprocessing import (
    DEFAULT_MAX_DECODED_BYTES,
    DEFAULT_MAX_PIXELS,
    ImagePreprocessor,
)
from functions.core.models.manifest import ImagePreprocessing
from functions.core.models.memory_budget import MemoryBudget

SIDE = 16
TINY_IMAGE = "tiny-image-16"


class TinyImageEncoder:
    """`embed_images(list[bytes])` into a 768-d space; the same decoding, limits and
    transparency handling as the CLIP path."""

    name = TINY_IMAGE
    dim = 3 * SIDE * SIDE

    def __init__(
        self,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        *,
        max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES,
        budget: MemoryBudget | None = None,
    ) -> None:
        params = ImagePreprocessing(
            size={"shortest_edge": SIDE},
            resample=4,  # BOX: the mean of each cell, what a thumbnail should be
            crop_size={"height": SIDE, "width": SIDE},
            image_mean=[0.5, 0.5, 0.5],
            image_std=[0.5, 0.5, 0.5],
        )
        self._images = ImagePreprocessor(
            params, max_pixels=max_pixels, max_decoded_bytes=max_decoded_bytes, budget=budget
        )

    def embed_images(self, images: Sequence[bytes], batch_size: int = 64) -> np.ndarray:
        """(n, 768) float32, L2-normalised; a bad image raises InvalidRequest."""
        pixels = self._images.preprocess(images).reshape(len(images), -1)
        pixels -= pixels.mean(axis=1, keepdims=True)  # brightness alone should not match
        norms = np.linalg.norm(pixels, axis=1, keepdims=True)
        vectors: np.ndarray = (pixels / np.maximum(norms, 1e-6)).astype(np.float32)
        return vectors
