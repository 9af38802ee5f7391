"""How search reaches preprocess and summary: in-process, or by invoking their Lambdas."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from functions.core.errors import ServiceError, UpstreamUnavailable, public_text
from functions.core.http import correlation
from functions.core.http.invoke_events import http_event, response_json
from functions.core.scenes import get_scene
from functions.core.stores.document_store import DocumentStore

if TYPE_CHECKING:  # the split search bundle carries no encoder (onnxruntime, tokenizers)
    from functions.preprocess.service import Preprocessor


log = logging.getLogger("mmsearch")


class QueryEmbedder(Protocol):
    def embed_query(self, text: str, model: str | None = None) -> np.ndarray:
        """The query's vector (dim,), float32, L2-normalised, by the default text encoder or
        the extra one named `model`."""

    def embed_image(self, image: bytes) -> np.ndarray:
        """A query image's vector in the image space."""

    def embed_text_for_images(self, text: str) -> np.ndarray:
        """A query text's vector in the image space (CLIP's text tower)."""


class DocumentFetcher(Protocol):
    def fetch(self, scene: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Documents of the named scene found among `ids`, keyed by id."""


class InProcessEmbedder:
    """Calls the preprocess code directly (local server, or everything in one Lambda)."""

    def __init__(self, preprocessor: Preprocessor) -> None:
        self._preprocessor = preprocessor

    def embed_query(self, text: str, model: str | None = None) -> np.ndarray:
        vector: np.ndarray = self._preprocessor.embed([text], model)[0]
        return vector

    def embed_image(self, image: bytes) -> np.ndarray:
        vector: np.ndarray = self._preprocessor.embed_images([image])[0]
        return vector

    def embed_text_for_images(self, text: str) -> np.ndarray:
        vector: np.ndarray = self._preprocessor.embed_texts_for_images([text])[0]
        return vector


class InProcessDocuments:
    """Reads the document store directly."""

    def __init__(self, documents: DocumentStore) -> None:
        self._documents = documents

    def fetch(self, scene: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        found = get_scene(scene)
        return self._documents.get(found.store, ids, found.document_fields) if ids else {}


class RemoteServiceError(ServiceError):
    """An error answered by another function, passed through with its status and code; a 5xx
    is answered with the code's fixed text, as the other function answers it."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after_s = 2 if status >= 500 else None
        self.public = public_text(code, message)


# Search answers within 15 s (its Lambda timeout) after calling preprocess, then summary:
# each invoke is bounded by attempts * (connect + read), both together well inside it.
INVOKE_CONNECT_TIMEOUT_S = 1.0
INVOKE_READ_TIMEOUT_S = 5.0
INVOKE_MAX_ATTEMPTS = 1  # no SDK retry: a 503 with Retry-After lets the caller retry
SEARCH_BUDGET_S = 15.0


def lambda_client(
    *,
    connect_timeout_s: float = INVOKE_CONNECT_TIMEOUT_S,
    read_timeout_s: float = INVOKE_READ_TIMEOUT_S,
    max_attempts: int = INVOKE_MAX_ATTEMPTS,
    endpoint_url: str | None = None,
) -> Any:
    """A boto3 Lambda client whose invokes cannot outlive search's budget (botocore's
    defaults, a 60 s read timeout and retries, would); two invokes fit in it."""
    import boto3
    from botocore.config import Config

    worst = 2 * max_attempts * (connect_timeout_s + read_timeout_s)
    if worst >= SEARCH_BUDGET_S:
        raise ValueError(f"two invokes could take {worst:g} s, over search's {SEARCH_BUDGET_S:g} s")
    config = Config(
        connect_timeout=connect_timeout_s,
        read_timeout=read_timeout_s,
        retries={"total_max_attempts": max_attempts, "mode": "standard"},
        tcp_keepalive=True,
    )
    return boto3.client("lambda", config=config, endpoint_url=endpoint_url)


class LambdaInvoker:
    """Invokes a function's HTTP route synchronously with an API Gateway v2 event. Failures
    are logged in full (function, error, payload) and answered with fixed text: an ARN, a
    role or another function's stack trace never reaches the caller."""

    def __init__(self, client: Any, function_name: str, role: str = "backend") -> None:
        self._client = client
        self._function = function_name
        self._role = role  # "preprocess" or "summary": what the log and the caller may name

    def post(self, path: str, body: dict[str, Any]) -> Any:
        event = http_event("POST", path, body, correlation.outgoing_headers())
        try:
            reply = self._client.invoke(
                FunctionName=self._function,
                InvocationType="RequestResponse",
                Payload=json.dumps(event).encode("utf-8"),
            )
            payload = json.loads(reply["Payload"].read())
        except Exception as exc:
            log.warning("cannot invoke %s (%s): %r", self._role, self._function, exc)
            raise UpstreamUnavailable(f"cannot invoke {self._role}") from exc
        if (
            reply.get("FunctionError")
            or not isinstance(payload, dict)
            or "statusCode" not in payload
        ):
            log.warning("%s (%s) failed: %s", self._role, self._function, str(payload)[:2000])
            raise UpstreamUnavailable(f"{self._role} failed")
        data = response_json(payload)
        if payload["statusCode"] >= 400:
            error = (data or {}).get("error", {})
            raise RemoteServiceError(
                payload["statusCode"],
                error.get("code", "upstream_error"),
                str(error.get("message", f"{self._role} answered {payload['statusCode']}"))[:500],
            )
        return data


class LambdaEmbedder:
    """Query vectors from the preprocess Lambda."""

    def __init__(self, invoker: LambdaInvoker) -> None:
        self._invoker = invoker

    def embed_query(self, text: str, model: str | None = None) -> np.ndarray:
        return self._one({"texts": [text], **({"model": model} if model else {})})

    def embed_image(self, image: bytes) -> np.ndarray:
        encoded = base64.b64encode(image).decode("ascii")
        return self._one({"images": [encoded], "space": "image"})

    def embed_text_for_images(self, text: str) -> np.ndarray:
        return self._one({"texts": [text], "space": "image"})

    def _one(self, body: dict[str, Any]) -> np.ndarray:
        data = self._invoker.post("/v1/embed", body)
        return np.asarray(data["vectors"][0], dtype=np.float32)


class LambdaDocuments:
    """Documents from the summary Lambda."""

    def __init__(self, invoker: LambdaInvoker) -> None:
        self._invoker = invoker

    def fetch(self, scene: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not ids:
            return {}
        data = self._invoker.post("/v1/documents:batchGet", {"scene": scene, "ids": list(ids)})
        return {d["id"]: d for d in data["documents"]}
