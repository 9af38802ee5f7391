"""`GET /v1/health` of the split search function, which API Gateway routes to it.

The page asks it for the image space in use; only a process holding the encoders knows that
(the composed app answers with it), so the split search function answers liveness alone."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from functions.core.http.routes import Route


class Health(BaseModel):
    """Liveness: init (stores, configuration) succeeded and the function answers."""

    status: Literal["ok"] = "ok"


def health() -> Health:
    """Always ok: a function whose init failed never gets to answer."""
    return Health()


def health_route() -> Route:
    """The route the split search function adds to its own."""
    return Route("GET", "/v1/health", None, Health, health, "health")
