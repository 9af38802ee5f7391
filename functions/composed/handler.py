"""Lambda entry point when all three functions are deployed as one (`split_functions=false`):
the composed FastAPI app, served through Mangum.

Init (models, store clients, FastAPI) runs once, when SnapStart snapshots the published
version; the split functions keep the lean dispatcher, whose cold start pays no FastAPI. The
snapshot holds the store secrets and `random`'s state: `RestorableHandler` re-seeds after each
restore and rebuilds when a secret was rotated since the snapshot."""

from functions.composed.app import create_app
from functions.composed.asgi_lambda import asgi_lambda_handler
from functions.core.models.model_source import materialize_models
from functions.core.settings import Settings
from functions.core.snapstart import LambdaHandler, RestorableHandler
from functions.core.stores.connection import resolve_connection


def init() -> tuple[Settings, LambdaHandler]:
    """Secrets, model, then the composed app behind Mangum."""
    settings = materialize_models(resolve_connection(Settings()))
    return settings, asgi_lambda_handler(create_app(settings))


handler = RestorableHandler(init)
