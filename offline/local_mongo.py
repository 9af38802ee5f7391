"""The embedded document store: a MongoDB-wire-protocol server run as a child process.

SecantusDB (PyPI `secantusdb`, GPL-2.0-only, WiredTiger inside) is started through its
command line and reached only over the wire with pymongo, exactly like a cloud MongoDB.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import SecretStr

from functions.core.settings import Settings

SERVER_COMMAND = "secantusd-py"
log = logging.getLogger("mmsearch")
# A server whose mmsearch was killed gets SIGTERM and checkpoints (about 4 s measured on a
# few thousand documents) before it lets go of the data folder.
ORPHAN_WAIT_S = 60.0


class LocalMongoError(RuntimeError):
    """The local server could not be started."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    # Linux: the server gets SIGTERM when the process that started it dies, even by SIGKILL,
    # so a crashed CLI never leaves a server holding the data folder's lock.
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _proc_stat(pid: int) -> list[str] | None:
    """Linux /proc/<pid>/stat fields after the command name, or None if there is no such
    process (a zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else fields


def _parent_of(pid: int) -> int | None:
    fields = _proc_stat(pid)
    return int(fields[1]) if fields else None


def _is_server_of(pid: int, data_dir: Path) -> bool:
    """Whether `pid` is a running local server over `data_dir` (pids get reused)."""
    if _proc_stat(pid) is None:
        return False
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return str(data_dir).encode() in command


def _server_executable() -> str:
    beside_python = Path(sys.executable).with_name(SERVER_COMMAND)
    found = str(beside_python) if beside_python.exists() else shutil.which(SERVER_COMMAND)
    if not found:
        raise LocalMongoError(f"{SERVER_COMMAND} not found: install the `offline` extra")
    return found


class LocalMongoServer:
    """Starts the server on 127.0.0.1 with its data in `data_dir`; stops it on exit."""

    def __init__(self, data_dir: Path, *, port: int | None = None, host: str = "127.0.0.1"):
        self.data_dir = data_dir
        self.host = host
        self.port = port or free_port(host)
        self._process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"{data_dir.name}.log"
        # "<server pid> <owner pid>": lets the next run recognise a server whose owner died.
        self.pid_path = data_dir.parent / f"{data_dir.name}.pid"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def uri(self) -> str:
        return f"mongodb://{self.host}:{self.port}/"

    def start(self, timeout_s: float = 30.0) -> str:
        """Start the server and wait until it answers a ping; returns its URI."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._await_orphan()
        command = [_server_executable(), "--host", self.host, "--port", str(self.port)]
        # Absolute, so a later run from another folder recognises this server (_await_orphan).
        command += ["--storage-path", str(self.data_dir.resolve()), "--log-level", "WARNING"]
        # Without it, writes acknowledged in the last second or so are lost when the server is
        # killed (seen: 150 of 400 indexed documents); a bulk write is one commit, so the fsync
        # costs little (measured: 3,072 documents in 12 bulk inserts, 0.33 s vs 0.36 s).
        command.append("--sync-on-commit")
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        self._wait_ready(timeout_s)
        # Written once the server holds the folder, so it never names a server that failed.
        self.pid_path.write_text(f"{self._process.pid} {os.getpid()}\n")
        return self.uri

    def _await_orphan(self, timeout_s: float = ORPHAN_WAIT_S) -> None:
        """Wait for a server left by a killed mmsearch to release the data folder; refuse
        at once if the server's owner is still running."""
        try:
            server, owner = (int(p) for p in self.pid_path.read_text().split())
        except (OSError, ValueError):
            return
        if not _is_server_of(server, self.data_dir.resolve()):
            return  # exited long ago, or the pid now belongs to another program
        if _parent_of(server) == owner:
            raise LocalMongoError(
                f"{self.data_dir} is in use by process {owner}: is another mmsearch running?"
            )
        log.warning(
            "waiting for the MongoDB server %s of a stopped mmsearch to release %s",
            server,
            self.data_dir,
        )
        deadline = time.monotonic() + timeout_s
        while _is_server_of(server, self.data_dir.resolve()):
            if time.monotonic() > deadline:
                raise LocalMongoError(
                    f"the local MongoDB server {server} left by a stopped mmsearch still holds"
                    f" {self.data_dir} after {timeout_s:.0f} s; stop it (kill {server})"
                )
            time.sleep(0.1)

    def _wait_ready(self, timeout_s: float) -> None:
        from pymongo import MongoClient

        deadline = time.monotonic() + timeout_s
        client: MongoClient[dict[str, object]] = MongoClient(
            self.uri, serverSelectionTimeoutMS=250, connectTimeoutMS=250
        )
        try:
            while time.monotonic() < deadline:
                assert self._process is not None
                if self._process.poll() is not None:
                    hint = ""
                    if "busy" in self._log_tail():
                        hint = f" ({self.data_dir} is in use: is another mmsearch running?)"
                    raise LocalMongoError(f"local MongoDB server exited{hint}: {self._log_tail()}")
                try:
                    client.admin.command("ping")
                    return
                except Exception:
                    time.sleep(0.1)
        finally:
            client.close()
        self.stop()
        raise LocalMongoError(f"local MongoDB server did not answer in {timeout_s:.0f} s")

    def _log_tail(self) -> str:
        lines = self.log_path.read_text(errors="replace").strip().splitlines()
        return " | ".join(lines[-3:]) or "no output"

    def stop(self) -> None:
        """Stop the server gracefully (SIGTERM, then SIGKILL after 10 s)."""
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self.pid_path.unlink(missing_ok=True)

    def __enter__(self) -> LocalMongoServer:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


@contextmanager
def local_stores(settings: Settings) -> Iterator[Settings]:
    """Settings whose MongoDB URI points at a running server: the configured one, or a local one."""
    if settings.mongo_uri is not None:
        yield settings
        return
    with LocalMongoServer(settings.home / "mongo") as server:
        yield settings.model_copy(update={"mongo_uri": SecretStr(server.uri)})
