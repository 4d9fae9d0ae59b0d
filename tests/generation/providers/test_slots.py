"""Concurrency caps: in process, and across processes on a real redis-server (Dramatiq's ConcurrentRateLimiter)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import redis

from podflow.generation.providers.slots import LocalSlots, SharedSlots, shared_backend
from tests.execution import wait_for


def test_local_slots_hold_at_most_the_limit_and_come_back_when_released() -> None:
    pool = LocalSlots(name="tts:x", limit=2)
    first, second = pool.try_acquire(), pool.try_acquire()
    assert first is not None and second is not None and pool.try_acquire() is None
    assert pool.in_use() == 2
    first.release()
    first.release()  # idempotent: a slot is given back once
    assert pool.in_use() == 1 and pool.try_acquire() is not None


@pytest.fixture
def pools(redis_url: str) -> Iterator[list[SharedSlots]]:
    """Two pools on one Redis: as two worker processes see the same cap."""
    made = [
        SharedSlots(backend=shared_backend(redis_url), name="tts:test", limit=3, ttl_s=1.0, refresh_s=0.1)
        for _ in range(2)
    ]
    yield made
    for pool in made:
        pool.close()


def test_shared_slots_hold_across_pools_on_the_same_redis(pools: list[SharedSlots]) -> None:
    a, b = pools
    held = [a.try_acquire(), b.try_acquire(), a.try_acquire()]
    assert all(held) and b.try_acquire() is None and a.try_acquire() is None
    assert a.in_use() == b.in_use() == 3
    held[1].release()  # type: ignore[union-attr]
    assert a.try_acquire() is not None and b.try_acquire() is None


def test_contending_threads_never_hold_more_than_the_limit(pools: list[SharedSlots]) -> None:
    peak, lock, holding = [0], threading.Lock(), [0]

    def work(pool: SharedSlots) -> None:
        for _ in range(20):
            slot = pool.try_acquire()
            if slot is None:
                time.sleep(0.001)
                continue
            with lock:
                holding[0] += 1
                peak[0] = max(peak[0], holding[0])
            time.sleep(0.002)
            with lock:
                holding[0] -= 1
            slot.release()

    threads = [threading.Thread(target=work, args=(pools[i % 2],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert 1 < peak[0] <= 3
    assert pools[0].in_use() == 0


def test_a_holder_that_stops_refreshing_loses_its_slot_after_the_ttl(pools: list[SharedSlots]) -> None:
    a, b = pools
    assert all(a.try_acquire() for _ in range(3))
    a.close()  # the holder dies: nothing refreshes or releases its slots
    died = time.monotonic()
    wait_for(lambda: b.in_use() == 0, timeout=3, interval=0.02, what="the dead holder's slots to expire")
    assert time.monotonic() - died <= 1.0 + 0.2  # the TTL, plus the polling
    assert all(b.try_acquire() for _ in range(3))


def test_a_live_holder_keeps_its_slot_longer_than_the_ttl(pools: list[SharedSlots]) -> None:
    a, b = pools
    slot = a.try_acquire()
    assert slot is not None
    time.sleep(2.0)  # twice the TTL: the keeper refreshed it every 0.1 s
    assert b.in_use() == 1
    slot.release()
    assert b.in_use() == 0


def test_slot_keys_are_one_per_slot_under_the_pool_name(pools: list[SharedSlots], redis_url: str) -> None:
    assert pools[0].try_acquire() is not None
    client = redis.Redis.from_url(redis_url)
    keys = sorted(k.decode() for k in client.keys("podflow:slots:*"))
    assert len(keys) == 1 and keys[0].startswith("podflow:slots:tts:test:")
    assert 0 < client.pttl(keys[0]) <= 1000
    client.close()
