"""Why long Milvus Lite calls failed: one slow unary call on a gRPC server with default
settings, from a channel with pymilvus' options (keepalive every 55 s) and from one without.

Usage: python bench/grpc_keepalive_check.py [--seconds 300]

Prints one JSON line per channel: whether the call answered, after how many seconds, and the
error. Measured 2026-12-03 with grpcio 1.85.3: a 660 s call was cut at 230.0 s ("Too many
pings", UNAVAILABLE) with keepalive and answered without; a 300 s call, cut at 290.0 s and
answered. A call past ~5 minutes shows the cut; both channels run at once, so it takes
--seconds of wall time, idle.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc

PYMILVUS_OPTIONS = [("grpc.enable_retries", 1), ("grpc.keepalive_time_ms", 55000)]


def serve(socket: str, seconds: float) -> grpc.Server:
    """A gRPC server with default settings whose one method sleeps `seconds`."""

    def slow(_request: bytes, _context: Any) -> bytes:
        time.sleep(seconds)
        return b"done"

    server = grpc.server(futures.ThreadPoolExecutor(4))
    methods = {"Slow": grpc.unary_unary_rpc_method_handler(slow)}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("t.T", methods),))
    server.add_insecure_port(socket)
    server.start()
    return server


def call(socket: str, seconds: float, keepalive: bool, out: list[dict[str, Any]]) -> None:
    options = PYMILVUS_OPTIONS if keepalive else PYMILVUS_OPTIONS[:1]
    channel = grpc.insecure_channel(socket, options=options)
    started = time.monotonic()
    row: dict[str, Any] = {"keepalive_ms": 55000 if keepalive else None}
    try:
        channel.unary_unary("/t.T/Slow")(b"x", timeout=seconds + 60)
        row.update(answered=True)
    except grpc.RpcError as exc:
        row.update(answered=False, error=f"{exc.code().name}: {exc.details()}")
    row["seconds"] = round(time.monotonic() - started, 1)
    out.append(row)
    print(json.dumps(row), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="how long the call takes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        rows: list[dict[str, Any]] = []
        servers, threads = [], []
        for keepalive in (True, False):
            socket = f"unix:{Path(folder) / ('on' if keepalive else 'off')}.sock"
            servers.append(serve(socket, args.seconds))
            thread = threading.Thread(target=call, args=(socket, args.seconds, keepalive, rows))
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join()
        for server in servers:
            server.stop(grace=None)


if __name__ == "__main__":
    main()
