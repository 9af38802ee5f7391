"""Lambda entry point of the documents (write) function, deployed only with `-c writes=true`
and behind IAM: init resolves the store secrets, fetches the pinned model and opens both
stores once; `handler` serves API Gateway events."""

from functions.core.http.lambda_adapter import lambda_handler
from functions.core.models.model_source import materialize_models
from functions.core.models.text_encoder import TextEncoder
from functions.core.settings import Settings
from functions.core.stores.connection import resolve_connection
from functions.documents.service import build_writer, image_limits, routes

_settings = materialize_models(resolve_connection(Settings()))
_encoder = TextEncoder.load(_settings.resolved_model_dir, threads=_settings.encoder_threads)
# Image scenes are writable where written images can be published: the media bucket.
_images = image_limits(_settings) if _settings.media_bucket else None
handler = lambda_handler(
    routes(build_writer(_settings, _encoder), _images), _settings.max_body_bytes
)
