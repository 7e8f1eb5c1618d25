"""Retry with exponential backoff and jitter for transient store errors."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from triton_llm.errors import TransientStoreError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """``retries`` extra attempts; the n-th wait is ``backoff * 2**n`` (capped) times a 0.5-1.0 jitter."""

    retries: int = 5
    backoff: float = 0.5
    max_wait: float = 20.0

    def wait(self, attempt: int) -> float:
        """Seconds to sleep before retry number ``attempt`` (0-based)."""
        return min(self.max_wait, self.backoff * 2**attempt) * random.uniform(0.5, 1.0)


def with_retries(fn: Callable[[], T], *, policy: RetryPolicy, what: str) -> T:
    """Call ``fn``; retry it on :class:`TransientStoreError` up to ``policy.retries`` times.

    Raises:
        TransientStoreError: still failing after the last retry; the message says how often.
    """
    attempt = 0
    while True:
        try:
            return fn()
        except TransientStoreError as e:
            if attempt >= policy.retries:
                raise TransientStoreError(
                    f"{what} failed after {attempt + 1} attempt(s): {e.message}",
                    key=e.key,
                    path=e.path,
                    hint=e.hint or "the store is unreachable or overloaded; retry later",
                ) from e
            time.sleep(policy.wait(attempt))
            attempt += 1
