"""How the bare Dramatiq and Celery tasks report back: a few Redis keys.

Each no-op task increments one counter (``INCR`` is atomic, so concurrent
workers never lose a count); the task that brings it to the batch size, the
last to complete, records the wall-clock time. A latency probe records the
time it started under its own key. One round trip per task (two for the last),
so the bare systems pay as little as possible for being measured.
"""

from __future__ import annotations

import os
import threading
import time

import redis

__all__ = ["client", "finished_at", "record_completion", "record_start", "reset"]

COUNT_KEY = "bench:completed"
DONE_AT_KEY = "bench:completed_at"

_lock = threading.Lock()
_client: redis.Redis | None = None


def client() -> redis.Redis:
    """This process's client for BENCH_REDIS_URL (worker entry points read it
    from the environment, as ``dramatiq podflow.actors`` reads its settings)."""
    global _client
    with _lock:
        if _client is None:
            _client = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
        return _client


def record_completion(r: redis.Redis, target: int) -> None:
    if r.incr(COUNT_KEY) == target:
        r.set(DONE_AT_KEY, repr(time.time()))


def record_start(r: redis.Redis, key: str) -> None:
    r.set(key, repr(time.time()), ex=600)


def reset(r: redis.Redis) -> None:
    r.delete(COUNT_KEY, DONE_AT_KEY)


def finished_at(r: redis.Redis) -> tuple[int, float | None]:
    """(completions so far, wall-clock time of the last one once all are in)."""
    count, done_at = r.mget(COUNT_KEY, DONE_AT_KEY)
    return int(count or 0), None if done_at is None else float(done_at)
