"""Lambda entry point: init loads the model once; `handler` serves API Gateway events."""

from functions.core.lambda_http import lambda_handler
from functions.core.settings import Settings
from functions.preprocess.service import build_preprocessor, routes

_settings = Settings()
handler = lambda_handler(
    routes(build_preprocessor(_settings), _settings.max_body_bytes), _settings.max_body_bytes
)
