"""The preprocess function as an ASGI app: `POST /v1/embed` turns texts into vectors."""

from __future__ import annotations

from fastapi import FastAPI

from functions.core.http.fastapi_app import create_api, include_routes
from functions.core.settings import Settings
from functions.preprocess.service import Preprocessor, build_preprocessor, routes


def create_app(settings: Settings, preprocessor: Preprocessor | None = None) -> FastAPI:
    """The preprocess function as an ASGI app."""
    app = create_api("mmsearch preprocess", "Normalise, tokenise and embed text.")
    include_routes(app, routes(preprocessor or build_preprocessor(settings)))
    return app
