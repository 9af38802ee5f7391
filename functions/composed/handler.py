"""Lambda entry point when all three functions are deployed as one."""

from functions.composed.service import composed_routes
from functions.core.connection import resolve_connection
from functions.core.lambda_http import lambda_handler
from functions.core.model_source import materialize_models
from functions.core.settings import Settings

_settings = materialize_models(resolve_connection(Settings()))
handler = lambda_handler(composed_routes(_settings)[1], _settings.max_body_bytes)
