"""One error type per failure a caller can act on, each mapped once to an HTTP status.

Disclosure: a 4xx message names the caller's own mistake and is answered as written; a 5xx
is answered with its class's fixed `public` text, while `message` (hosts, ARNs, paths,
dependency errors) goes to the log only, credentials scrubbed (functions.core.log_scrub).
"""

from __future__ import annotations

STORES = ("Milvus", "MongoDB")


class ServiceError(Exception):
    """Base class: carries the HTTP status, a stable code and an optional retry hint."""

    status: int = 500
    code: str = "internal"
    retry_after_s: int | None = None
    public: str = "internal error; it has been logged"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def public_message(self) -> str:
        """What the caller is told: the message for a 4xx, the fixed text for a 5xx."""
        return self.message if self.status < 500 else self.public


class InvalidRequest(ServiceError):
    """The request is malformed or out of bounds; retrying it unchanged will not help."""

    status = 422
    code = "invalid_request"


class MalformedBody(ServiceError):
    """The body is not parseable JSON."""

    status = 400
    code = "malformed_json"


class DebugNotAllowed(ServiceError):
    """The request forces experiments (debug.experiments) without the debug token."""

    status = 403
    code = "debug_not_allowed"


class UnknownScene(ServiceError):
    """The scene named in the request is not configured."""

    status = 404
    code = "unknown_scene"


class SchemaMismatch(ServiceError):
    """The stored collection was built for another scene schema than the one declared now."""

    status = 409
    code = "schema_mismatch"


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
    public = "a store did not answer in time; retry shortly"

    @property
    def public_message(self) -> str:
        """Which store (not where it is): one of three fixed texts."""
        for store in STORES:
            if self.message.startswith(store):
                return f"{store} did not answer in time; retry shortly"
        return self.public


class ServerBusy(ServiceError):
    """The process is at its memory budget for images; the request may succeed if retried."""

    status = 503
    code = "server_busy"
    retry_after_s = 1
    public = "too many images are being decoded at once; retry shortly"


class UpstreamUnavailable(ServiceError):
    """Another function (preprocess, summary) failed or could not be invoked."""

    status = 503
    code = "upstream_unavailable"
    retry_after_s = 2
    public = "a backend function is unavailable; retry shortly"


class ModelUnavailable(ServiceError):
    """The encoder could not be loaded (missing or corrupt model folder)."""

    status = 503
    code = "model_unavailable"
    retry_after_s = 30
    public = "the model is not available; retry later"


class IndexNotReady(ServiceError):
    """The scene exists but nothing has been indexed for it yet."""

    status = 503
    code = "index_not_ready"
    retry_after_s = 60
    public = "nothing has been indexed for this scene yet; retry later"


class IndexOutdated(ServiceError):
    """A write by id meets a collection of another model or an older schema: a full index run
    (which rebuilds it) must come first; retrying the write will not help."""

    status = 409
    code = "index_outdated"


class UnsupportedByStore(ServiceError):
    """The configured store lacks what the request needs (BM25 on a Milvus before 2.5);
    retrying will not help, another match experiment will."""

    status = 501
    code = "not_supported_by_store"
    public = "this vector store cannot run BM25 (it needs Milvus 2.5 or later); match densely"


def public_text(code: str, answered: str = "") -> str:
    """What to answer for a 5xx `code` another function answered with text `answered`: that
    text when it is one of the fixed public texts, else the code's fixed text."""
    classes: list[type[ServiceError]] = [ServiceError, *ServiceError.__subclasses__()]
    fixed = {c.public for c in classes}
    fixed |= {f"{store} did not answer in time; retry shortly" for store in STORES}
    if answered in fixed:
        return answered
    return next((c.public for c in classes if c.code == code), ServiceError.public)
