"""CLIP encoder on onnxruntime + tokenizers + Pillow: texts and images into one vector space."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from functions.core.errors import ModelUnavailable
from functions.core.models.image_preprocessing import (
    DEFAULT_MAX_DECODED_BYTES,
    DEFAULT_MAX_PIXELS,
    ImagePreprocessor,
)
from functions.core.models.memory_budget import MemoryBudget
from functions.core.models.text_encoder import ExportedEncoder, TextEncoder, open_session


class ClipEncoder(ExportedEncoder):
    """Embeds texts and images with an exported CLIP folder (text.onnx, image.onnx,
    tokenizer.json, manifest.json); both come out L2-normalised in the same space."""

    def __init__(
        self, text: TextEncoder, image_session: ort.InferenceSession, images: ImagePreprocessor
    ) -> None:
        self.manifest = text.manifest
        self._text = text
        self._image_session = image_session
        self._images = images

    @classmethod
    def load(
        cls,
        model_dir: Path,
        *,
        threads: int = 0,
        verify: bool = False,
        spin: bool = True,
        max_image_pixels: int = DEFAULT_MAX_PIXELS,
        max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES,
        budget: MemoryBudget | None = None,
    ) -> ClipEncoder:
        """Load once per process; images over `max_image_pixels` are refused undecoded."""
        text = TextEncoder.load(model_dir, threads=threads, verify=verify, spin=spin)
        manifest = text.manifest
        if manifest.image_model is None or manifest.image_preprocessing is None:
            raise ModelUnavailable(f"{model_dir} holds a {manifest.kind} model, not a CLIP model")
        try:
            session = open_session(model_dir / manifest.image_model, threads=threads, spin=spin)
            images = ImagePreprocessor(
                manifest.image_preprocessing,
                max_pixels=max_image_pixels,
                max_decoded_bytes=max_decoded_bytes,
                budget=budget,
            )
        except Exception as exc:  # onnxruntime raises its own pybind exception types
            raise ModelUnavailable(f"cannot load model from {model_dir}: {exc}") from exc
        return cls(text, session, images)

    def embed_texts(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Return an (n, dim) float32 array of L2-normalised text embeddings, in input order."""
        return self._text.embed(texts, batch_size)

    def embed_images(self, images: Sequence[bytes], batch_size: int = 16) -> np.ndarray:
        """Return an (n, dim) float32 array of L2-normalised image embeddings, in input order.

        Images are decoded one batch at a time, so memory stays bounded; a bad one raises
        InvalidRequest naming its position."""
        out = np.empty((len(images), self.dim), dtype=np.float32)
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size]
            pixels = np.stack(
                [self._images.pixel_values(data, start + i) for i, data in enumerate(batch)]
            )
            feeds = {self.manifest.image_input: pixels}
            (vectors,) = self._image_session.run([self.manifest.output], feeds)
            out[start : start + len(pixels)] = vectors
        return out
