"""What Lambda code may import, and the split deployment's invoke contract."""

from __future__ import annotations

import ast
import io
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _pytest.logging import LogCaptureFixture

from functions.core.http.invoke_events import http_event, response_json
from functions.core.http.lambda_adapter import LambdaHandler, lambda_handler
from functions.core.settings import Settings
from functions.core.stores.factory import open_document_store
from functions.preprocess import service as preprocess
from functions.search import service as search
from functions.search.clients import LambdaDocuments, LambdaEmbedder, LambdaInvoker
from functions.summary import service as summary

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {"torch", "transformers", "sentence_transformers", "offline"}


def test_functions_source_never_imports_torch_transformers_or_offline() -> None:
    offenders = []
    for path in (ROOT / "functions").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert offenders == []


def test_loading_every_function_module_pulls_in_no_torch_or_transformers() -> None:
    modules = [
        "functions.composed.app",
        "functions.preprocess.app",
        "functions.search.app",
        "functions.summary.app",
        "functions.core.http.lambda_adapter",
    ]
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        + repr(FORBIDDEN)
        + ")))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_lambda_handler_path_imports_no_web_framework() -> None:
    """The handlers import only these modules; FastAPI would add ~0.5 s to every cold start."""
    modules = [
        "functions.core.http.lambda_adapter",
        "functions.preprocess.service",
        "functions.search.service",
        "functions.summary.service",
        "functions.composed.service",
    ]
    heavy = {"fastapi", "starlette", "pydantic_settings", "torch", "transformers"}
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + f"print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r})))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
    handlers = {p.parent.name for p in (ROOT / "functions").glob("*/handler.py")}
    assert handlers == {"preprocess", "search", "summary", "documents", "composed"}
    # The one function (SnapStart: imports paid in the snapshot) serves the FastAPI app
    # through Mangum (issue 14 item 13); every other handler is the lean dispatcher.
    for name in handlers - {"composed"}:
        source = (ROOT / "functions" / name / "handler.py").read_text()
        assert "from functions.core.http.lambda_adapter import lambda_handler" in source
        assert ".app import" not in source
    composed = (ROOT / "functions" / "composed" / "handler.py").read_text()
    assert "asgi_lambda_handler(create_app(settings))" in composed


class InProcessLambda:
    """A boto3 Lambda client whose invoke runs our real handlers in this process."""

    def __init__(self, functions: dict[str, LambdaHandler]) -> None:
        self.functions = functions
        self.calls: list[str] = []
        self.events: list[dict[str, Any]] = []

    def invoke(self, FunctionName: str, InvocationType: str, Payload: bytes) -> dict[str, Any]:
        self.calls.append(FunctionName)
        handler, event = self.functions[FunctionName], json.loads(Payload)
        self.events.append(event)
        # A real invoke runs in another process; here at least another thread.
        with ThreadPoolExecutor(1) as pool:
            response = pool.submit(handler, event, None).result()
        return {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(response).encode())}


def test_split_deployment_search_reaches_preprocess_and_summary_by_invoke(
    indexed_qa: Settings, caplog: LogCaptureFixture
) -> None:
    client = InProcessLambda(
        {
            "pre": lambda_handler(preprocess.routes(preprocess.build_preprocessor(indexed_qa))),
            "sum": lambda_handler(summary.routes(open_document_store(indexed_qa))),
        }
    )
    service = search.build_search_service(
        indexed_qa,
        LambdaEmbedder(LambdaInvoker(client, "pre")),
        LambdaDocuments(LambdaInvoker(client, "sum")),
    )
    handler = lambda_handler(search.routes(service))
    event = http_event("POST", "/v1/search", {"query": "how long is delivery"})
    response = handler(event, None)
    body = response_json(response)
    assert response["statusCode"] == 200
    assert body["hits"][0]["id"] == "qa-006"
    assert body["hits"][0]["document"]["question"] == "How long does shipping take?"
    assert client.calls == ["pre", "sum"]
    # One correlation id: API Gateway's request id, echoed, passed to both functions, logged.
    request_id = event["requestContext"]["requestId"]
    assert response["headers"]["x-correlation-id"] == request_id
    assert {e["headers"]["x-correlation-id"] for e in client.events} == {request_id}
    logged = [getattr(r, "correlation_id", None) for r in caplog.records if r.msg == "search"]
    assert logged == [request_id]

    response = handler(http_event("POST", "/v1/search", {"query": "ok", "top_k": 500}), None)
    assert response["statusCode"] == 422
