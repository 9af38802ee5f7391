"""`mmsearch serve` as a user starts it: it listens on 127.0.0.1 only unless told otherwise,
and grants no cross-origin access (the page is served from the same origin)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from offline.local_mongo import LocalMongoServer, free_port


def listening_addresses(port: int) -> set[str]:
    """Local IPv4/IPv6 addresses (hex, as the kernel writes them) listening on `port`."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, model_dir: Path, mongo_server: LocalMongoServer
) -> Iterator[tuple[str, int]]:
    """`mmsearch serve --port P` with no --host, in its own process."""
    port = free_port()
    home = tmp_path_factory.mktemp("serve-home")
    env = {
        **os.environ,
        "MMSEARCH_HOME": str(home),
        "MMSEARCH_MODEL_DIR": str(model_dir),
        "MMSEARCH_MONGO_URI": mongo_server.uri,
        "MMSEARCH_HEADER_TIMEOUT_S": "1",
    }
    command = [sys.executable, "-m", "offline.cli", "serve", "--port", str(port)]
    log = (home / "serve.log").open("wb")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        assert process.poll() is None, (home / "serve.log").read_text()
        assert time.monotonic() < deadline, "mmsearch serve did not start"
        try:
            if httpx.get(f"{base}/v1/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    yield base, port
    process.terminate()
    process.wait(timeout=30)
    log.close()


def test_the_local_server_listens_on_the_loopback_interface_only_by_default(
    served: tuple[str, int],
) -> None:
    _, port = served
    addresses = listening_addresses(port)
    assert addresses == {"0100007F"}  # 127.0.0.1, nothing on 0.0.0.0 or ::


def test_the_local_server_grants_no_cross_origin_access(served: tuple[str, int]) -> None:
    base, _ = served
    evil = {"origin": "https://evil.example"}
    response = httpx.post(f"{base}/v1/search", json={"query": "refund"}, headers=evil)
    assert "access-control-allow-origin" not in response.headers
    preflight = httpx.options(
        f"{base}/v1/search",
        headers={**evil, "access-control-request-method": "POST"},
    )
    assert preflight.status_code >= 400
    assert "access-control-allow-origin" not in preflight.headers
    assert "access-control-allow-methods" not in preflight.headers


def test_the_local_server_answers_only_its_own_host_names(served: tuple[str, int]) -> None:
    """A DNS-rebinding page reaches 127.0.0.1 under its own name: refused (issue 15, 6)."""
    base, port = served
    assert httpx.get(f"{base}/v1/health").status_code == 200
    assert httpx.get(f"{base}/v1/health", headers={"host": f"localhost:{port}"}).status_code == 200
    rebound = httpx.get(f"{base}/v1/health", headers={"host": f"rebind.example:{port}"})
    assert rebound.status_code == 421
    assert rebound.headers["x-content-type-options"] == "nosniff"


def test_the_local_server_refuses_a_post_without_a_json_content_type(
    served: tuple[str, int],
) -> None:
    base, _ = served
    simple = httpx.post(f"{base}/v1/search", content=b'{"query": "refund"}')
    assert simple.status_code == 415
    assert simple.json()["error"]["code"] == "unsupported_media_type"


def test_the_local_server_closes_a_connection_that_sends_no_request(
    served: tuple[str, int],
) -> None:
    """MMSEARCH_HEADER_TIMEOUT_S=1 reaches the server: an idle connection is closed."""
    _, port = served
    with socket.create_connection(("127.0.0.1", port)) as idle:
        idle.settimeout(10)
        started = time.monotonic()
        assert idle.recv(100) == b""
        assert time.monotonic() - started < 4
