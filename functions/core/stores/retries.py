"""Retries of store calls: a few attempts, full-jitter exponential backoff, one deadline.

A store call and its retries together stay within the store timeout, so a caller hears 503
in about `store_timeout_s` whether the dependency is down (fast failures, retried) or hung
(one slow attempt, not retried past the deadline).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from functions.core.errors import StoreUnavailable

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """`retries` more attempts after the first, each after a random sleep in
    [0, backoff_s * 2**n) (AWS's "full jitter"), none starting after `deadline_s`."""

    retries: int = 2
    backoff_s: float = 0.1
    deadline_s: float = 3.0

    def run(self, attempt: Callable[[float], T]) -> T:
        """`attempt(seconds_left)` until it returns or raises something other than
        `StoreUnavailable`; the last `StoreUnavailable` is raised when attempts run out."""
        deadline = time.monotonic() + self.deadline_s
        for n in range(self.retries + 1):
            left = deadline - time.monotonic()
            try:
                return attempt(max(left, 0.001))
            except StoreUnavailable:
                sleep = random.uniform(0, self.backoff_s * 2**n)
                if n == self.retries or time.monotonic() + sleep >= deadline:
                    raise
                time.sleep(sleep)
        raise AssertionError("unreachable")  # the loop returns or raises
