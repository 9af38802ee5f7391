"""Lambda entry point: init wires the pipeline once; `handler` serves API Gateway events.

Store connections come from the connection secret when one is configured; models from S3 are
fetched only when preprocess runs in this process (`MMSEARCH_MODEL_S3_URI` set)."""

from functions.core.http.lambda_adapter import lambda_handler
from functions.core.models.model_source import materialize_models
from functions.core.settings import Settings
from functions.core.stores.connection import resolve_connection
from functions.search.health import health_route
from functions.search.service import build_search_service, dependencies, routes

_settings = materialize_models(resolve_connection(Settings()))
handler = lambda_handler(
    [*routes(build_search_service(_settings, *dependencies(_settings))), health_route()],
    _settings.max_body_bytes,
)
