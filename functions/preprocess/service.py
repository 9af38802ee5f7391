"""Query preprocessing: normalise, tokenise and embed."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from functions.core.encoder import TextEncoder
from functions.core.routes import Route
from functions.core.schemas import EmbedRequest, EmbedResponse
from functions.core.settings import Settings
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


def build_preprocessor(settings: Settings) -> Preprocessor:
    """Load the encoder named by `settings` (the expensive, once-per-process step)."""
    encoder = TextEncoder.load(settings.resolved_model_dir, threads=settings.encoder_threads)
    return Preprocessor(
        encoder, max_chars=settings.max_query_chars, batch_size=settings.encode_batch_size
    )


def routes(preprocessor: Preprocessor) -> list[Route]:
    """Routes of the preprocess function."""

    def embed(request: EmbedRequest) -> EmbedResponse:
        """Embed up to 64 texts with the deployed encoder (L2-normalised vectors)."""
        vectors = preprocessor.embed(request.texts)
        encoder = preprocessor.encoder
        return EmbedResponse(model=encoder.name, dim=encoder.dim, vectors=vectors.tolist())

    return [Route("POST", "/v1/embed", EmbedRequest, EmbedResponse, embed, "preprocess")]
