"""Lambda entry point: init loads the model once (from S3 if so configured); `handler` serves
API Gateway events."""

from functions.core.lambda_http import lambda_handler
from functions.core.model_source import materialize_models
from functions.core.settings import Settings
from functions.preprocess.service import build_preprocessor, routes

_settings = materialize_models(Settings())
handler = lambda_handler(
    routes(build_preprocessor(_settings), _settings.max_body_bytes), _settings.max_body_bytes
)
