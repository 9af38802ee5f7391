"""Every MilvusClient this project opens, and the one channel setting it changes.

pymilvus 2.5.18 opens every gRPC channel with keepalive pings every 55 s
(`grpc_handler._setup_grpc_channel`). A gRPC server with default settings, Milvus Lite's
among them, closes a connection that keeps pinging without data (GOAWAY "too_many_pings"),
so a single call that runs for minutes fails with UNAVAILABLE: measured with
`bench/grpc_keepalive_check.py` on a plain gRPC server, a call was cut at 230 s (290 s in a
second run) and answered without keepalive. Building the index of a million rows or loading
it takes that long on two cores, so such calls failed halfway.

Milvus Lite is a child process on a Unix socket: the socket closes when the server dies, no
middlebox drops an idle connection, so its channels need no keepalive at all. Channels to a
Milvus server (TCP) keep pymilvus' options.
"""

from __future__ import annotations

import threading
from typing import Any

KEEPALIVE = "grpc.keepalive_time_ms"

_installed = threading.Lock()


class _GrpcWithoutSocketKeepalive:
    """The `grpc` module as pymilvus' handler sees it: `insecure_channel` to a Unix socket
    drops the keepalive option; everything else is grpc's own."""

    def __init__(self, grpc: Any) -> None:
        self._grpc = grpc

    def __getattr__(self, name: str) -> Any:
        return getattr(self._grpc, name)

    def insecure_channel(self, target: str, options: Any = None, *args: Any, **kwargs: Any) -> Any:
        if options and target.startswith("unix:"):
            options = [option for option in options if option[0] != KEEPALIVE]
        return self._grpc.insecure_channel(target, options, *args, **kwargs)


def without_socket_keepalive() -> None:
    """Make pymilvus open Unix-socket channels (Milvus Lite) without keepalive pings; once
    per process, before any client connects."""
    from pymilvus.client import grpc_handler

    with _installed:
        if not isinstance(grpc_handler.grpc, _GrpcWithoutSocketKeepalive):
            grpc_handler.grpc = _GrpcWithoutSocketKeepalive(grpc_handler.grpc)


def milvus_client(uri: str, token: str = "", timeout: float | None = None) -> Any:
    """A MilvusClient for `uri` (a Milvus Lite file or a server URI)."""
    without_socket_keepalive()
    from pymilvus import MilvusClient

    return MilvusClient(uri=uri, token=token, timeout=timeout)
