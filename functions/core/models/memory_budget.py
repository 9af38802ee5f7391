"""A process-wide budget of bytes that concurrent image decodes draw from, so a burst of
uploads waits (or is refused with a retry hint) instead of exhausting the function's memory."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from functions.core.errors import ServerBusy

DEFAULT_BUDGET_BYTES = 384 * 2**20
DEFAULT_WAIT_S = 5.0


class MemoryBudget:
    """A weighted semaphore over bytes: `hold(n)` waits until n bytes are free."""

    def __init__(self, capacity: int = DEFAULT_BUDGET_BYTES, wait_s: float = DEFAULT_WAIT_S):
        self.capacity = capacity
        self._wait_s = wait_s
        self._used = 0
        self._peak = 0
        self._free = threading.Condition()

    @property
    def peak(self) -> int:
        """The most bytes ever held at once (for tests and the README's figures)."""
        return self._peak

    @contextmanager
    def hold(self, amount: int) -> Iterator[None]:
        """Hold `amount` bytes for the block; `ServerBusy` when they are not free in time."""
        amount = min(amount, self.capacity)  # callers refuse larger requests before asking
        deadline = time.monotonic() + self._wait_s
        with self._free:
            while self._used + amount > self.capacity:
                left = deadline - time.monotonic()
                if left <= 0 or not self._free.wait(left):
                    if self._used + amount <= self.capacity:
                        break
                    raise ServerBusy("too many images are being decoded at once; retry shortly")
            self._used += amount
            self._peak = max(self._peak, self._used)
        try:
            yield
        finally:
            with self._free:
                self._used -= amount
                self._free.notify_all()
