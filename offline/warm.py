"""Load the home's collections into Milvus as `mmsearch serve` starts, not at the first search.

After a restart Milvus Lite holds no collection in memory: the first search of each one loads
it (294 s for a million vectors on 2 cores) and is answered 503 until then. Loading starts
here, on a background thread, as the server starts; `/v1/health` lists what is still loading.
A collection that cannot be loaded (Milvus down, dropped meanwhile) is left to the first
search, which answers 503 with its reason as before.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from functions.core.settings import Settings
from functions.core.stores.aliases import LITE_ALIASES

log = logging.getLogger("mmsearch")

LOAD_TIMEOUT_S = 3600.0  # a million vectors took 294 s; the bound only catches a hang


class Warmup:
    """The collections of this home still loading, and the thread that loads them."""

    def __init__(self, settings: Settings, say: Callable[[str], None] = log.info) -> None:
        self._settings = settings
        self._say = say
        self._lock = threading.Lock()
        self._pending: list[str] = []
        self.thread = threading.Thread(target=self._run, name="mmsearch-warmup", daemon=True)

    def start(self) -> Warmup:
        with self._lock:
            self._pending = ["(listing collections)"]
        self.thread.start()
        return self

    def pending(self) -> list[str]:
        """The collections not loaded yet (empty once every one is)."""
        with self._lock:
            return list(self._pending)

    def _run(self) -> None:
        from functions.core.stores.milvus_client import milvus_client

        settings = self._settings
        token = settings.milvus_token.get_secret_value() if settings.milvus_token else ""
        try:
            client = milvus_client(settings.resolved_milvus_uri, token, settings.store_timeout_s)
            names = sorted(
                n
                for n in client.list_collections(timeout=settings.store_timeout_s)
                if n.startswith(settings.collection_prefix) and n != LITE_ALIASES
            )
        except Exception as exc:  # Milvus down: the first search says so
            self._say(f"could not list the collections to load: {exc}")
            names = []
        with self._lock:
            self._pending = list(names)
        for name in names:
            started = time.monotonic()
            try:
                client.load_collection(name, timeout=LOAD_TIMEOUT_S)
                self._say(f"loaded {name} in {time.monotonic() - started:.1f} s")
            except Exception as exc:  # e.g. dropped meanwhile: the first search says why
                self._say(f"not loaded {name}: {str(exc)[:200]}")
            finally:
                with self._lock:
                    self._pending.remove(name)
