"""No secret in the repository, and none in what a full local run prints, writes or answers:
store credentials given to `mmsearch` stay out of its output, its logs and its replies."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from pymongo import MongoClient

from offline.local_mongo import LocalMongoServer, free_port
from tests.offline.test_cli import FIXTURE, ROOT, mmsearch

URI_CREDENTIALS = "credentials in a URI"
ASSIGNED = "assigned secret"
SECRET_PATTERNS = {
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "private key": re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"),
    URI_CREDENTIALS: re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s:/@'\"]+:([^\s@/'\"]+)@([^\s/:?'\"]+)"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36}\b"),
    "Slack token": re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    ASSIGNED: re.compile(
        r"(?i)(?:password|passwd|secret|token|api_?key)\w*[\"']?\s*[:=]\s*[\"']"
        r"([A-Za-z0-9+/=_.:-]{20,})[\"']"
    ),
}
# Reserved names (RFC 2606, 6761) cannot be real hosts: tests use them for fake credentials.
EXAMPLE_HOST = re.compile(r"(?:^|\.)(?:example\.(?:com|net|org)|example|test|invalid|localhost)$")
# A password that is filled in at run time: {name}, <name>, ${NAME}, %s.
PLACEHOLDER = re.compile(r"^(?:\{[^}]*\}|<[^>]*>|\$\{?\w+\}?|%s)$")


def secrets_in(text: str) -> list[str]:
    """What in `text` looks like a real secret: kind and a short prefix, never the value."""
    found = []
    for kind, pattern in SECRET_PATTERNS.items():
        for match in pattern.finditer(text):
            if kind == URI_CREDENTIALS and (
                EXAMPLE_HOST.search(match[2]) or PLACEHOLDER.match(match[1])
            ):
                continue
            # A real key mixes letters and digits; names like "mmsearch/connections" do not.
            if kind == ASSIGNED and not (
                re.search(r"\d", match[1]) and re.search("[A-Za-z]", match[1])
            ):
                continue
            found.append(f"{kind} ({match[0][:10]}...)")
    return found


def test_the_scan_finds_each_kind_of_secret_and_passes_reserved_examples() -> None:
    # Built from parts, so that this file itself holds none.
    planted = {
        "AWS access key id": "key = " + "AKIA" + "J7QX2M4RTLW9ZB3K",
        "private key": "-----BEGIN " + "RSA PRIVATE KEY-----",
        URI_CREDENTIALS: "mongodb+srv://app:" + "s3cr3t" + "@cluster0.ab1cd.mongodb.net/",
        "GitHub token": "ghp_" + "a1B2" * 9,
        "Slack token": "xoxb-" + "1234567890-abcdef",
        ASSIGNED: 'MILVUS_TOKEN = "' + "db_admin:" + "Zx9" * 7 + '"',
    }
    for kind, text in planted.items():
        assert [f.split(" (")[0] for f in secrets_in(text)] == [kind], text
    assert secrets_in("mongodb://app:hunter2@db.example.net/ and http://u:p@localhost:1/") == []
    assert secrets_in('f"mongodb://{user}:{password}@10.0.0.7/" "redis://:${PW}@cache"') == []
    assert secrets_in("mongodb://app:{password}x" + "@10.0.0.7/") != []
    assert secrets_in('"MMSEARCH_CONNECTION_SECRET": "mmsearch/connections"') == []


def test_no_tracked_file_holds_a_secret() -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: no tracked files to scan")
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    findings = []
    for name in filter(None, listed.decode().split("\0")):
        path = ROOT / name
        if not path.is_file():
            continue  # deleted in the working tree, not yet committed
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue  # binary
        for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
            findings += [f"{name}:{number}: {f}" for f in secrets_in(line)]
    assert findings == []


@dataclass(frozen=True)
class Credentials:
    """A MongoDB user on a server of its own, and a Milvus token (Milvus Lite ignores it)."""

    server: LocalMongoServer
    user: str
    password: str
    milvus_token: str

    def uri(self, password: str | None = None) -> str:
        secret = self.password if password is None else password
        return f"mongodb://{self.user}:{secret}@127.0.0.1:{self.server.port}/?authSource=admin"

    @property
    def values(self) -> dict[str, str]:
        """Each thing that must never show, by what it is."""
        return {
            "password": self.password,
            "user:password": f"{self.user}:{self.password}",
            "URI": self.uri(),
            "Milvus token": self.milvus_token,
        }


@pytest.fixture
def credentials(tmp_path: Path) -> Iterator[Credentials]:
    with LocalMongoServer(tmp_path / "auth-mongo" / "data") as server:
        user, password = f"app{secrets.token_hex(3)}", secrets.token_urlsafe(24)
        admin: MongoClient[dict[str, object]] = MongoClient(server.uri)
        admin.admin.command("createUser", user, pwd=password, roles=["root"])
        admin.close()
        yield Credentials(server, user, password, secrets.token_urlsafe(24))


def _serve(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [sys.executable, "-m", "offline.cli", "serve", "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)
    base, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{base}/v1/health", timeout=2).status_code == 200:
                return process, base
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    pytest.fail(f"mmsearch serve did not start: {log.read_text()}")


def _searches(base: str) -> list[str]:
    """Bodies of a few searches: plain, filtered, malformed, unknown scene."""
    requests = [
        {"query": "who wrote hamlet", "top_k": 3},
        {"query": "card declined", "filters": {"category": ["payments"]}},
        {"query": "x" * 5000},
        {"query": "anything", "scene": "nope"},
    ]
    bodies = [httpx.post(f"{base}/v1/search", json=r, timeout=30).text for r in requests]
    bodies.append(
        httpx.post(
            f"{base}/v1/search", content=b"{nope", headers={"content-type": "application/json"}
        ).text
    )
    return bodies


@pytest.mark.slow
def test_store_credentials_never_appear_in_output_logs_or_replies(
    tmp_path: Path, model_dir: Path, credentials: Credentials
) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MMSEARCH_")},
        "MMSEARCH_HOME": str(tmp_path / "home"),
        "MMSEARCH_MODEL_DIR": str(model_dir),
        "MMSEARCH_MONGO_URI": credentials.uri(),
        "MMSEARCH_MILVUS_TOKEN": credentials.milvus_token,
    }
    seen: list[str] = []
    indexed = mmsearch(env, "index", "--input", str(FIXTURE))
    assert indexed.returncode == 0, indexed.stderr
    seen += [indexed.stdout, indexed.stderr]

    wrong = secrets.token_urlsafe(24)
    env_wrong = {**env, "MMSEARCH_MONGO_URI": credentials.uri(wrong)}
    refused = mmsearch(env_wrong, "index", "--input", str(FIXTURE))
    assert refused.returncode == 1 and "authentication failed" in refused.stderr
    assert "Traceback" not in refused.stderr and wrong not in refused.stdout + refused.stderr
    seen += [refused.stdout, refused.stderr]

    server, base = _serve(env, tmp_path / "serve.log")
    try:
        seen += _searches(base)
        credentials.server.stop()  # MongoDB goes away: the degraded path logs its errors
        seen += _searches(base)
    finally:
        server.terminate()
        server.wait(timeout=30)

    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "serve.log" for p in files)
    leaks = [
        f"{what} in {where}"
        for where, text in [
            *((f"output {i}", t) for i, t in enumerate(seen)),
            *((str(p.relative_to(tmp_path)), p.read_bytes().decode("latin-1")) for p in files),
        ]
        for what, value in credentials.values.items()
        if value in text
    ]
    assert leaks == []
