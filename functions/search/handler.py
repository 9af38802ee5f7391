"""Lambda entry point: init wires the pipeline once; `handler` serves API Gateway events."""

from functions.core.lambda_http import lambda_handler
from functions.core.settings import Settings
from functions.search.service import build_search_service, dependencies, routes

_settings = Settings()
handler = lambda_handler(
    routes(build_search_service(_settings, *dependencies(_settings))), _settings.max_body_bytes
)
