"""All three functions in one process: the local server (with the page), or one Lambda."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from functions.composed.service import composed_routes
from functions.core.http.fastapi_app import create_api, include_routes
from functions.core.models.image_space import clip_model_dir
from functions.core.settings import Settings


def create_app(
    settings: Settings,
    static_dir: Path | None = None,
    loading: Callable[[], list[str]] | None = None,
) -> FastAPI:
    """The composed API, plus the page from `static_dir` at `/`; `loading` names the
    collections Milvus is still loading (the local server's warm-up), reported by health."""
    preprocessor, routes = composed_routes(settings)
    app = create_api(
        "mmsearch",
        "Multimodal retrieval: embed, search and fetch documents.",
        max_body_bytes=settings.max_body_bytes,
    )
    include_routes(app, routes)

    @app.get("/v1/health", tags=["health"])
    def health() -> dict[str, Any]:
        """Liveness plus the model in use."""
        encoder = preprocessor.encoder
        folder = clip_model_dir(settings)
        image_space = f"CLIP ({folder.name})" if folder else "tiny-image descriptor (no CLIP model)"
        answer: dict[str, Any] = {
            "status": "ok",
            "model": encoder.name,
            "dim": encoder.dim,
            "image_space": image_space,
        }
        if loading is not None and (pending := loading()):
            answer["loading"] = pending  # searches of these answer 503 until they are loaded
        return answer

    if static_dir is not None:
        # Image originals and thumbnails written by `mmsearch index --scene t2i`.
        media = settings.home / "media"
        media.mkdir(parents=True, exist_ok=True)
        app.mount(settings.media_base_url, StaticFiles(directory=media), name="media")
        app.mount("/", StaticFiles(directory=static_dir, html=True), name="frontend")
    return app
