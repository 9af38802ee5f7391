"""Query preprocessing: normalise, tokenise and embed."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from functions.core.encoder import TextEncoder
from functions.core.text import normalize_text


class Preprocessor:
    """Turns raw query texts into normalised vectors with the loaded encoder."""

    def __init__(self, encoder: TextEncoder, *, max_chars: int, batch_size: int = 32) -> None:
        self.encoder = encoder
        self._max_chars = max_chars
        self._batch_size = batch_size

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) vectors for `texts`; raises `InvalidRequest` for empty or over-long text."""
        clean = [normalize_text(t, self._max_chars) for t in texts]
        return self.encoder.embed(clean, batch_size=self._batch_size)
