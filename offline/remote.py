"""Writing through a running `mmsearch serve`: its discovery file and a client of its write API.

Milvus Lite's file and the local document server's folder admit one process at a time, so
while `mmsearch serve` holds a home, `mmsearch index --mode upsert` and `mmsearch delete`
cannot open the stores themselves. The server therefore announces itself in
`MMSEARCH_HOME/server.json` ({url, pid}); a command that finds it, with that pid alive, sends
its writes to the server's API in batches of the API's own limits.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from functions.core.limits import MAX_DELETE_IDS, MAX_UPSERT_DOCUMENTS

SERVER_FILE = "server.json"
CONNECT_WAIT_S = 10.0  # a server that has just announced itself may not listen yet
REQUEST_TIMEOUT_S = 120.0  # 100 documents embed in about a second; a busy box is slower


class RemoteWriteError(RuntimeError):
    """The server refused a write (`status` 4xx: fix the input) or could not be reached."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@contextlib.contextmanager
def announce(home: Path, host: str, port: int) -> Iterator[Path]:
    """Write the discovery file for a server on `host:port` for as long as it runs."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / SERVER_FILE
    path.write_text(json.dumps({"url": connect_url(host, port), "pid": os.getpid()}))
    try:
        yield path
    finally:
        # Only our own: a second server on the same home may have announced itself since.
        with contextlib.suppress(OSError, ValueError):
            if json.loads(path.read_text()).get("pid") == os.getpid():
                path.unlink()


def connect_url(host: str, port: int) -> str:
    """The URL a client on this machine reaches a server bound to `host:port` by."""
    bare = host.strip("[]")
    if bare in ("0.0.0.0", ""):
        bare = "127.0.0.1"
    elif bare == "::":
        bare = "::1"
    return f"http://[{bare}]:{port}" if ":" in bare else f"http://{bare}:{port}"


def running_server(home: Path) -> str | None:
    """The URL of the server holding `home`, or None when none announced itself or its
    process is gone (a stale file from a killed server)."""
    try:
        announced = json.loads((home / SERVER_FILE).read_text())
        url, pid = str(announced["url"]), int(announced["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return url if pid_alive(pid) else None


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (signal 0 checks without signalling)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


@dataclass
class RemoteTotals:
    """What a series of write calls did, summed."""

    written: int = 0
    unchanged: int = 0
    deleted: int = 0
    missing: int = 0
    seconds: float = 0.0


class RemoteWriter:
    """Batch upserts and deletes through a server's `/v1/documents:*` API."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def upsert(
        self, scene: str, documents: Sequence[dict[str, Any]], progress: Any = None
    ) -> RemoteTotals:
        """Send `documents` in batches of the API's limit; stop at the first refusal."""
        totals = RemoteTotals()
        for start in range(0, len(documents), MAX_UPSERT_DOCUMENTS):
            batch = list(documents[start : start + MAX_UPSERT_DOCUMENTS])
            body = self._post("/v1/documents:batchUpsert", {"scene": scene, "documents": batch})
            totals.written += int(body["written"])
            totals.unchanged += int(body["unchanged"])
            totals.seconds += float(body["seconds"])
            if progress:
                progress(len(batch))
        return totals

    def delete(self, scene: str, ids: Sequence[str]) -> RemoteTotals:
        """Delete `ids` in batches of the API's limit."""
        totals = RemoteTotals()
        for start in range(0, len(ids), MAX_DELETE_IDS):
            chunk = list(ids[start : start + MAX_DELETE_IDS])
            body = self._post("/v1/documents:batchDelete", {"scene": scene, "ids": chunk})
            totals.deleted += int(body["deleted"])
            totals.missing += len(body["missing"])
            totals.seconds += float(body["seconds"])
        return totals

    def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method="POST",
            headers={"content-type": "application/json"},
        )
        deadline = time.monotonic() + CONNECT_WAIT_S
        while True:
            try:
                with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
                    answer: dict[str, Any] = json.loads(response.read())
                    return answer
            except urllib.error.HTTPError as exc:
                raise RemoteWriteError(_error_text(exc), exc.code) from None
            except (urllib.error.URLError, ConnectionError) as exc:
                if time.monotonic() >= deadline:
                    raise RemoteWriteError(
                        f"the server at {self.url} does not answer: {exc}"
                    ) from None
                time.sleep(0.5)


def _error_text(exc: urllib.error.HTTPError) -> str:
    try:
        error = json.loads(exc.read())["error"]
        return f"{exc.code} {error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return f"{exc.code} {exc.reason}"
