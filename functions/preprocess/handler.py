"""Lambda entry point: init loads the model once (from S3 if so configured); `handler` serves
API Gateway events. SnapStart snapshots that init; `RestorableHandler` re-seeds after restore."""

from functions.core.http.lambda_adapter import lambda_handler
from functions.core.models.model_source import materialize_models
from functions.core.settings import Settings
from functions.core.snapstart import LambdaHandler, RestorableHandler
from functions.preprocess.service import build_preprocessor, routes


def init() -> tuple[Settings, LambdaHandler]:
    """The model, then the routes: what the snapshot holds."""
    settings = materialize_models(Settings())
    served = routes(build_preprocessor(settings), settings.max_body_bytes)
    return settings, lambda_handler(served, settings.max_body_bytes)


handler = RestorableHandler(init)
