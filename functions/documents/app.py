"""The documents (write) function as an ASGI app: batchUpsert and batchDelete."""

from __future__ import annotations

from fastapi import FastAPI

from functions.core.http.fastapi_app import create_api, include_routes
from functions.core.models.text_encoder import TextEncoder
from functions.core.settings import Settings
from functions.documents.service import build_writer, image_limits, routes


def create_app(settings: Settings, encoder: TextEncoder | None = None) -> FastAPI:
    """The documents function as an ASGI app."""
    app = create_api("mmsearch documents", "Writes by id: upsert and delete documents.")
    encoder = encoder or TextEncoder.load(settings.resolved_model_dir)
    include_routes(app, routes(build_writer(settings, encoder), image_limits(settings)))
    return app
