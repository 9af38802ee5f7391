"""The preprocess function: `POST /v1/embed` turns texts into vectors."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from functions.core.encoder import TextEncoder
from functions.core.http import ERROR_RESPONSES, create_api
from functions.core.schemas import EmbedRequest, EmbedResponse
from functions.core.settings import Settings
from functions.preprocess.service import Preprocessor


def router(preprocessor: Preprocessor) -> APIRouter:
    """Routes of the preprocess function."""
    api = APIRouter(tags=["preprocess"], responses=ERROR_RESPONSES)

    @api.post("/v1/embed", response_model=EmbedResponse)
    def embed(request: EmbedRequest) -> EmbedResponse:
        """Embed up to 64 texts with the deployed encoder (L2-normalised vectors)."""
        vectors = preprocessor.embed(request.texts)
        encoder = preprocessor.encoder
        return EmbedResponse(model=encoder.name, dim=encoder.dim, vectors=vectors.tolist())

    return api


def build_preprocessor(settings: Settings) -> Preprocessor:
    """Load the encoder named by `settings` (the expensive, once-per-process step)."""
    encoder = TextEncoder.load(settings.resolved_model_dir, threads=settings.encoder_threads)
    return Preprocessor(
        encoder, max_chars=settings.max_query_chars, batch_size=settings.encode_batch_size
    )


def create_app(settings: Settings, preprocessor: Preprocessor | None = None) -> FastAPI:
    """The preprocess function as an ASGI app."""
    app = create_api("mmsearch preprocess", "Normalise, tokenise and embed text.")
    app.include_router(router(preprocessor or build_preprocessor(settings)))
    return app
