"""How search reaches preprocess and summary: in-process, or by invoking their Lambdas."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from functions.core import correlation
from functions.core.apigw import http_event, response_json
from functions.core.document_store import DocumentStore
from functions.core.errors import ServiceError, UpstreamUnavailable
from functions.core.scenes import get_scene
from functions.preprocess.service import Preprocessor


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
        return self._documents.get(get_scene(scene).store, ids) if ids else {}


class RemoteServiceError(ServiceError):
    """An error answered by another function, passed through with its status and code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after_s = 2 if status >= 500 else None


class LambdaInvoker:
    """Invokes a function's HTTP route synchronously with an API Gateway v2 event."""

    def __init__(self, client: Any, function_name: str) -> None:
        self._client = client
        self._function = function_name

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
            raise UpstreamUnavailable(f"cannot invoke {self._function}: {exc}") from exc
        if reply.get("FunctionError") or "statusCode" not in payload:
            raise UpstreamUnavailable(f"{self._function} failed: {str(payload)[:300]}")
        data = response_json(payload)
        if payload["statusCode"] >= 400:
            error = (data or {}).get("error", {})
            raise RemoteServiceError(
                payload["statusCode"],
                error.get("code", "upstream_error"),
                error.get("message", f"{self._function} answered {payload['statusCode']}"),
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
