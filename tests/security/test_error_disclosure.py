"""Issue 15, finding 3: errors reveal no internals. A failed invoke answered its ARN, the
assumed role and the other function's stack trace; a Milvus failure its host; Pillow a heap
address; and pymilvus logged its URI with the password. Public messages are fixed per error
code, details go to the log, and credentials are scrubbed from every log line."""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.stub import Stubber

from functions.core import log_scrub
from functions.core.errors import ServiceError
from functions.core.settings import Settings
from functions.preprocess import service as preprocess
from functions.search import service as search
from functions.search.clients import (
    INVOKE_CONNECT_TIMEOUT_S,
    INVOKE_MAX_ATTEMPTS,
    INVOKE_READ_TIMEOUT_S,
    SEARCH_BUDGET_S,
    LambdaDocuments,
    LambdaEmbedder,
    LambdaInvoker,
    RemoteServiceError,
    lambda_client,
)
from tests.functions.test_api import Call, front_door

ACCOUNT = "123456789012"
PRE_ARN = f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:mmsearch-preprocess"
SUM_ARN = f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:mmsearch-summary"
ROLE = f"arn:aws:sts::{ACCOUNT}:assumed-role/mmsearch-search-role/mmsearch-search"
PASSWORD = "S3cretPass"
MILVUS_HOST = "in01-0123abcd.aws-eu-central-1.vectordb.zillizcloud.invalid"
# Anything that must never be answered: ARNs, account, role, stack lines, hosts, addresses.
LEAKS = re.compile(
    rf"arn:aws|{ACCOUNT}|assumed-role|stackTrace|Traceback|File \"|zillizcloud|{PASSWORD}"
    r"|0x[0-9a-f]{6,}|BytesIO|/workspace/|\.py\b"
)


@pytest.fixture(params=["lambda", "http"])
def door(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _assert_public(body: dict[str, Any], code: str) -> None:
    assert body["error"]["code"] == code
    text = json.dumps(body)
    assert not LEAKS.search(text), text


def _stubbed_client(monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Stubber]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = lambda_client()
    return client, Stubber(client)


def _split_search(settings: Settings, client: Any, door: str) -> Call:
    service = search.build_search_service(
        settings,
        LambdaEmbedder(LambdaInvoker(client, PRE_ARN, "preprocess")),
        LambdaDocuments(LambdaInvoker(client, SUM_ARN, "summary")),
    )
    return front_door(door, search.routes(service))


def test_an_invoke_refused_by_iam_answers_no_arn_or_role(
    settings: Settings, door: str, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    client, stub = _stubbed_client(monkeypatch)
    stub.add_client_error(
        "invoke",
        service_error_code="AccessDeniedException",
        service_message=f"User: {ROLE} is not authorized to perform: lambda:InvokeFunction "
        f"on resource: {PRE_ARN} because no identity-based policy allows it",
        http_status_code=403,
    )
    with stub, caplog.at_level(logging.WARNING):
        status, body, headers = _split_search(settings, client, door)(
            "POST", "/v1/search", {"query": "refund"}
        )
    assert status == 503 and int(headers["retry-after"]) > 0
    _assert_public(body, "upstream_unavailable")
    assert ROLE in caplog.text and "AccessDeniedException" in caplog.text  # the log has it all


def test_a_crashed_function_answers_no_stack_trace(
    settings: Settings, door: str, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    client, stub = _stubbed_client(monkeypatch)
    crash = {
        "errorMessage": f"Unable to import module: {PRE_ARN}",
        "errorType": "Runtime.ImportModuleError",
        "stackTrace": ['  File "/var/task/functions/preprocess/handler.py", line 9, in <module>'],
    }
    payload = io.BytesIO(json.dumps(crash).encode())
    stub.add_response(
        "invoke",
        {"StatusCode": 200, "FunctionError": "Unhandled", "Payload": payload},
    )
    with stub, caplog.at_level(logging.WARNING):
        status, body, _ = _split_search(settings, client, door)(
            "POST", "/v1/search", {"query": "refund"}
        )
    assert status == 503
    _assert_public(body, "upstream_unavailable")
    assert "Runtime.ImportModuleError" in caplog.text


def test_an_unreachable_milvus_answers_no_host_and_logs_no_password(
    settings: Settings, door: str, caplog: Any
) -> None:
    uri = f"http://root:{PASSWORD}@{MILVUS_HOST}:19530"
    remote = settings.model_copy(update={"milvus_uri": uri, "store_timeout_s": 1.0})
    with caplog.at_level(logging.DEBUG):
        call = front_door(
            door, search.routes(search.build_search_service(remote, *search.dependencies(remote)))
        )
        status, body, _ = call("POST", "/v1/search", {"query": "refund"})
    assert status == 503
    _assert_public(body, "store_unavailable")
    assert body["error"]["message"] == "Milvus did not answer in time; retry shortly"
    assert MILVUS_HOST in caplog.text  # where it failed is logged...
    assert PASSWORD not in caplog.text  # ...never the password in its URI
    assert all(PASSWORD not in str(r.__dict__) for r in caplog.records)


@pytest.mark.parametrize(
    "data",
    [b"not an image", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, b"GIF89a" + b"\xff" * 30],
    ids=["text", "broken-png", "broken-gif"],
)
def test_an_unreadable_image_answers_no_heap_address(
    settings: Settings, door: str, data: bytes
) -> None:
    call = front_door(door, preprocess.routes(preprocess.build_preprocessor(settings)))
    body_in = {"images": [base64.b64encode(data).decode()], "space": "image"}
    status, body, _ = call("POST", "/v1/embed", body_in)
    assert status == 422
    _assert_public(body, "invalid_request")
    assert body["error"]["message"].startswith("image 0 ")


@pytest.fixture
def pymilvus_records() -> Iterator[list[str]]:
    """Lines as a handler on the pymilvus logger prints them."""
    log_scrub.install()
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    logger = logging.getLogger("pymilvus.milvus_client._utils")
    handler = Keep()
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)


def test_credentials_any_dependency_logs_are_scrubbed(pymilvus_records: list[str]) -> None:
    logger = logging.getLogger("pymilvus.milvus_client._utils")
    logger.error(
        "Failed to create new connection using: %s",
        f"http://root:{PASSWORD}@milvus.example.com:19530",
    )
    logger.error(
        "connect %s", {"uri": "mongodb+srv://app:hunter22@cluster0.example.net", "token": "tk"}
    )
    try:
        raise ConnectionError(f"refused: https://u:{PASSWORD}@example.invalid/?token=abc123")
    except ConnectionError:
        logger.exception("retry failed", extra={"api_key": f"key={PASSWORD}"})
    printed = "\n".join(pymilvus_records)
    for secret in (PASSWORD, "hunter22", "abc123", "'tk'"):
        assert secret not in printed
    assert (
        "http://***@milvus.example.com:19530" in printed and "Traceback" in printed
    )  # the rest is kept


def test_every_5xx_code_has_a_fixed_public_text_naming_no_internals() -> None:
    errors = [
        cls("at http://u:p@db.example.com:19530 10.0.0.7 /workspace/x.py")
        for cls in _all(ServiceError)
    ]
    for error in errors:
        if error.status >= 500:
            assert (
                "10.0.0.7" not in error.public_message and "/workspace" not in error.public_message
            )
        else:
            assert error.public_message == error.message  # a 4xx names the caller's mistake


def _all(cls: type[ServiceError]) -> list[type[ServiceError]]:
    """The error classes of functions.core.errors (each takes one message)."""
    return [cls, *(c for c in cls.__subclasses__() if c.__module__ == cls.__module__)]


def test_a_5xx_passed_on_from_another_function_keeps_only_fixed_text() -> None:
    fixed = RemoteServiceError(
        503, "store_unavailable", "MongoDB did not answer in time; retry shortly"
    )
    assert fixed.public_message == "MongoDB did not answer in time; retry shortly"
    leaky = RemoteServiceError(503, "store_unavailable", f"Milvus at {MILVUS_HOST} failed")
    assert leaky.public_message == "a store did not answer in time; retry shortly"
    odd = RemoteServiceError(500, "weird", f"{PRE_ARN} exploded")
    assert odd.public_message == "internal error; it has been logged"
    refused = RemoteServiceError(422, "invalid_request", "texts: at most 64")
    assert refused.public_message == "texts: at most 64"


def test_lambda_invokes_are_bounded_inside_searchs_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    worst = 2 * INVOKE_MAX_ATTEMPTS * (INVOKE_CONNECT_TIMEOUT_S + INVOKE_READ_TIMEOUT_S)
    assert worst < SEARCH_BUDGET_S
    client = lambda_client(endpoint_url="http://127.0.0.1:9")
    config = client.meta.config
    assert config.connect_timeout == INVOKE_CONNECT_TIMEOUT_S  # botocore's default: 60
    assert config.read_timeout == INVOKE_READ_TIMEOUT_S  # botocore's default: 60
    assert config.retries["total_max_attempts"] == INVOKE_MAX_ATTEMPTS
    with pytest.raises(ValueError, match="over search's 15 s"):
        lambda_client(read_timeout_s=7.0, max_attempts=1)


def test_a_hung_function_is_given_up_on_at_the_read_timeout(
    settings: Settings, door: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Lambda endpoint that accepts the connection and never answers (a stuck invoke)."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    held: list[socket.socket] = []
    accepting = threading.Thread(target=lambda: held.append(server.accept()[0]), daemon=True)
    accepting.start()
    client = lambda_client(
        read_timeout_s=1.0, endpoint_url=f"http://127.0.0.1:{server.getsockname()[1]}"
    )
    call = _split_search(settings, client, door)
    started = time.monotonic()
    status, body, _ = call("POST", "/v1/search", {"query": "refund"})
    elapsed = time.monotonic() - started
    server.close()
    for connection in held:
        connection.close()
    assert status == 503
    _assert_public(body, "upstream_unavailable")
    assert 1.0 <= elapsed < 1.0 * INVOKE_MAX_ATTEMPTS + 2.0  # botocore's default: 60 s, 5 tries
