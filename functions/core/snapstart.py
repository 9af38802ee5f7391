"""SnapStart: what a snapshot must not freeze, put right after each restore.

A snapshot is taken once, when a version is published, and every execution environment resumes
from it: without a hook they would all draw the same `random` sequence (anonymous users' A/B
buckets, retry jitter) and keep the connection secrets as they were at publish time.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any

from functions.core.settings import Settings
from functions.core.stores.connection import resolve_connection

log = logging.getLogger("mmsearch")
LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]
Init = Callable[[], tuple[Settings, LambdaHandler]]
CONNECTION_FIELDS = ("milvus_uri", "milvus_token", "mongo_uri", "debug_token")


def register_after_restore(hook: Callable[[], None]) -> bool:
    """Register `hook` with the Lambda runtime's Snapshot Restore for Python library; False
    where it is absent (local runs, tests, functions without SnapStart never restore)."""
    try:
        from snapshot_restore_py import (  # type: ignore[import-not-found,unused-ignore]
            register_after_restore as register,
        )
    except ImportError:
        return False
    register(hook)
    return True


def reseed_random() -> None:
    """A fresh seed from the OS for the `random` module's shared generator."""
    random.seed()


class RestorableHandler:
    """A Lambda handler built by `init` at init; after a SnapStart restore `random` is re-seeded
    and, when a connection secret now holds other values than the snapshot's (rotated), the
    handler is built again so its clients use the current credentials."""

    def __init__(self, init: Init, fetch: Any = None) -> None:
        self._init = init
        self._fetch = fetch  # resolve_connection's, for tests; None: Secrets Manager
        self.settings, self._handler = init()
        self.registered = register_after_restore(self.after_restore)

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        return self._handler(event, context)

    def after_restore(self) -> None:
        """The runtime hook: re-seed, then re-read the secrets (bypassing the cache the
        snapshot holds) and rebuild only if they changed."""
        reseed_random()
        if not (
            self.settings.connection_secret
            or self.settings.milvus_secret
            or self.settings.mongo_secret
            or self.settings.debug_token_secret
        ):
            return
        _clear_secret_cache()
        current = resolve_connection(self.settings, self._fetch)
        if any(_value(current, f) != _value(self.settings, f) for f in CONNECTION_FIELDS):
            log.info("connection secrets changed since the snapshot: rebuilding the handler")
            self.settings, self._handler = self._init()


def _value(settings: Settings, field: str) -> str | None:
    value = getattr(settings, field)
    return (
        str(value.get_secret_value())
        if hasattr(value, "get_secret_value")
        else value and str(value)
    )


def _clear_secret_cache() -> None:
    try:
        from aws_lambda_powertools.utilities.parameters import clear_caches
    except ImportError:  # pragma: no cover - Powertools is in every bundle
        return
    clear_caches()  # type: ignore[no-untyped-call]
