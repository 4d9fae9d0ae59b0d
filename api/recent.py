"""A value computed at most once per ``ttl_s`` for every request of the process.

The dashboard polls ``GET /api/monitor/overview`` every two seconds from each
open browser; :class:`Recent` makes N browsers cost one overview (its store
reads and broker round trip) per ``ttl_s``. Requests that arrive while it is
being computed wait for that computation instead of starting their own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Recent"]

T = TypeVar("T")


class Recent(Generic[T]):
    """The last value of ``compute``, reused while younger than ``ttl_s`` (thread-safe)."""

    def __init__(self, *, ttl_s: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._value: T | None = None
        self._at = -float("inf")
        #: how many times a value was computed
        self.computed = 0

    def get(self, compute: Callable[[], T]) -> T:
        """The recent value, or ``compute()``'s (its errors propagate; nothing is kept)."""
        with self._lock:
            if self._value is None or self._monotonic() - self._at >= self.ttl_s:
                self._value = compute()
                self._at = self._monotonic()
                self.computed += 1
            return self._value

    def clear(self) -> None:
        """Forget the value: a change made through this process shows at once."""
        with self._lock:
            self._value = None
