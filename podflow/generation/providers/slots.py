"""Concurrency caps: at most N calls in flight to one provider, across processes and hosts.

PODFLOW_LLM_MAX_CONCURRENCY and PODFLOW_TTS_MAX_CONCURRENCY hold across every
worker process and host on the same Redis with :class:`SharedSlots`, built on
Dramatiq's ``ConcurrentRateLimiter`` and its Redis backend; thread mode, where
one process does all the work, uses :class:`LocalSlots`.

Why one limiter per slot. A single ``ConcurrentRateLimiter(limit=N)`` is one
counter whose expiry every acquire and release pushes back: a SIGKILLed
holder's increment would never be given back while other workers keep
calling. So a cap of N is N limiters of size 1 (Dramatiq's distributed mutex),
``<prefix>:<kind>:<url digest>:<i>``: a slot's key is only ever written by its
holder, so the slot of a holder that died expires ``ttl_s`` later
(PODFLOW_HEARTBEAT_TIMEOUT), whatever else is going on.

Calls longer than the TTL. A keeper thread per pool refreshes the TTL of the
slots its process holds every ``refresh_s`` (PODFLOW_HEARTBEAT_INTERVAL), so a
ten-minute LLM reply keeps its slot. A holder that cannot refresh for a whole
TTL (a process frozen that long, or cut off from Redis) loses the slot, like
it loses its run's lease; if another process took the slot meanwhile, the
frozen holder's late release frees it early, and for the length of one call
the cap may be exceeded by one. It heals itself and needs a freeze longer
than the heartbeat timeout.

No Redis (a RabbitMQ broker): the settings refuse a cap without
PODFLOW_LIMITS_URL, rather than silently capping each process on its own.

Slot operations are short Redis round trips (one ``MGET``, then ``SET NX``
on a free slot), made from the provider event loop without awaiting, so a
cancellation can never leave a slot acquired and unrecorded.
"""

from __future__ import annotations

import logging
import random
import threading
from typing import TYPE_CHECKING, Protocol

import redis

if TYPE_CHECKING:  # imported where used: thread mode and the runner load no Dramatiq
    from dramatiq.rate_limits.backends import RedisBackend

__all__ = ["LocalSlots", "SharedSlots", "Slot", "SlotPool", "shared_backend"]

log = logging.getLogger(__name__)

PREFIX = "podflow:slots"


class Slot(Protocol):
    def release(self) -> None:
        """Give the slot back (idempotent)."""


class SlotPool(Protocol):
    """At most ``limit`` slots held at once."""

    name: str
    limit: int

    def try_acquire(self) -> Slot | None:
        """A free slot, or None if all are held. Never waits."""

    def in_use(self) -> int:
        """How many slots are held now (by anyone)."""


# -- in-process -------------------------------------------------------------------------


class _LocalSlot:
    def __init__(self, pool: LocalSlots) -> None:
        self._pool: LocalSlots | None = pool

    def release(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool._give_back()


class LocalSlots:
    """The in-process cap (thread mode): a counter under a lock."""

    def __init__(self, *, name: str, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.name = name
        self.limit = limit
        self._held = 0
        self._lock = threading.Lock()

    def try_acquire(self) -> Slot | None:
        with self._lock:
            if self._held >= self.limit:
                return None
            self._held += 1
        return _LocalSlot(self)

    def in_use(self) -> int:
        return self._held

    def _give_back(self) -> None:
        with self._lock:
            self._held -= 1


# -- across processes (Redis) ---------------------------------------------------------


def shared_backend(url: str) -> RedisBackend:
    """Dramatiq's rate-limiter backend on the Redis at ``url``, with short timeouts:
    a slot operation runs on the provider event loop and must never hang it."""
    from dramatiq.rate_limits.backends import RedisBackend

    client = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0, socket_keepalive=True)
    return RedisBackend(client=client)


class _SharedSlot:
    def __init__(self, pool: SharedSlots, index: int) -> None:
        self._pool: SharedSlots | None = pool
        self.index = index

    def release(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool._give_back(self)


class SharedSlots:
    """A cap shared by every process on one Redis (see the module docstring).

    Parameters:
      backend: Dramatiq's RedisBackend.
      name: the pool's name (an endpoint's ``slot_name``).
      limit: the cap.
      ttl_s: how long a dead holder's slot stays taken (PODFLOW_HEARTBEAT_TIMEOUT).
      refresh_s: how often held slots are refreshed (PODFLOW_HEARTBEAT_INTERVAL).
    """

    def __init__(
        self,
        *,
        backend: RedisBackend,
        name: str,
        limit: int,
        ttl_s: float,
        refresh_s: float,
        prefix: str = PREFIX,
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if refresh_s >= ttl_s:
            raise ValueError("refresh_s must be shorter than ttl_s")
        self.name = name
        self.limit = limit
        self.backend = backend
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self.refresh_s = refresh_s
        self.keys = [f"{prefix}:{name}:{i}" for i in range(limit)]
        from dramatiq.rate_limits import ConcurrentRateLimiter

        self._limiters = [
            ConcurrentRateLimiter(backend, key, limit=1, ttl=self.ttl_ms)  # type: ignore[no-untyped-call,unused-ignore]
            for key in self.keys
        ]
        self._held: dict[int, _SharedSlot] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._keeper: threading.Thread | None = None

    def in_use(self) -> int:
        return sum(1 for value in self.backend.client.mget(self.keys) if value and int(value) > 0)

    def try_acquire(self) -> Slot | None:
        values = self.backend.client.mget(self.keys)
        free = [i for i, value in enumerate(values) if not value or int(value) <= 0]
        random.shuffle(free)  # spread contending processes over the free slots
        for index in free:
            # The limiter's own acquire/release steps: its ``acquire()`` context manager
            # cannot be held across an await and released from elsewhere.
            if self._limiters[index]._acquire():  # type: ignore[no-untyped-call,unused-ignore]
                slot = _SharedSlot(self, index)
                with self._lock:
                    self._held[index] = slot
                self._keep()
                return slot
        return None  # all taken (or taken since the MGET)

    def close(self) -> None:
        """Stop the keeper and close the connection (slots still held expire after ``ttl_s``)."""
        self._stop.set()
        if self._keeper is not None:
            self._keeper.join(self.refresh_s + 5)
        self.backend.client.close()

    def _give_back(self, slot: _SharedSlot) -> None:
        with self._lock:
            self._held.pop(slot.index, None)
        try:
            self._limiters[slot.index]._release()  # type: ignore[no-untyped-call,unused-ignore]
        except redis.RedisError as exc:  # it expires by itself after the TTL
            log.warning("slot %s:%d not released (expires in %d ms): %s", self.name, slot.index, self.ttl_ms, exc)

    def _keep(self) -> None:
        with self._lock:
            if self._keeper is None or not self._keeper.is_alive():
                name = f"podflow-slots-{self.name}"
                self._keeper = threading.Thread(target=self._refresh_loop, name=name, daemon=True)
                self._keeper.start()

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.refresh_s):
            with self._lock:
                held = list(self._held)
            for index in held:
                try:  # +0 keeps the value and sets a fresh TTL
                    self.backend.incr(self.keys[index], 0, maximum=1, ttl=self.ttl_ms)
                except redis.RedisError as exc:
                    log.warning("slot %s:%d not refreshed: %s", self.name, index, exc)
