"""One error type per failure a caller can act on, each mapped once to an HTTP status."""

from __future__ import annotations


class ServiceError(Exception):
    """Base class: carries the HTTP status, a stable code and an optional retry hint."""

    status: int = 500
    code: str = "internal"
    retry_after_s: int | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(ServiceError):
    """The request is malformed or out of bounds; retrying it unchanged will not help."""

    status = 422
    code = "invalid_request"


class MalformedBody(ServiceError):
    """The body is not parseable JSON."""

    status = 400
    code = "malformed_json"


class UnknownScene(ServiceError):
    """The scene named in the request is not configured."""

    status = 404
    code = "unknown_scene"


class PayloadTooLarge(ServiceError):
    """The body exceeds the configured limit."""

    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(ServiceError):
    """The body is declared as something other than JSON (or a multipart search form)."""

    status = 415
    code = "unsupported_media_type"


class StoreUnavailable(ServiceError):
    """Milvus or MongoDB did not answer in time; the request may succeed if retried."""

    status = 503
    code = "store_unavailable"
    retry_after_s = 2


class ServerBusy(ServiceError):
    """The process is at its memory budget for images; the request may succeed if retried."""

    status = 503
    code = "server_busy"
    retry_after_s = 1


class UpstreamUnavailable(ServiceError):
    """Another function (preprocess, summary) failed or could not be invoked."""

    status = 503
    code = "upstream_unavailable"
    retry_after_s = 2


class ModelUnavailable(ServiceError):
    """The encoder could not be loaded (missing or corrupt model folder)."""

    status = 503
    code = "model_unavailable"
    retry_after_s = 30


class IndexNotReady(ServiceError):
    """The scene exists but nothing has been indexed for it yet."""

    status = 503
    code = "index_not_ready"
    retry_after_s = 60


class UnsupportedByStore(ServiceError):
    """The configured store lacks what the request needs (BM25 on a Milvus before 2.5);
    retrying will not help, another match experiment will."""

    status = 501
    code = "not_supported_by_store"
