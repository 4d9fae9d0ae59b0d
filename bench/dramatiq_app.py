"""Bare Dramatiq, for comparison: ``dramatiq bench.dramatiq_app:broker``.

A RedisBroker with Dramatiq's default middleware (what a plain Dramatiq user
runs), on BENCH_REDIS_URL, and two actors on the ``bench`` queue that only
report back through :mod:`bench.completions`. The broker is named on the
command line rather than made Dramatiq's global one, so importing this module
(to send) changes nothing else in the importing process.
"""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from .completions import client, record_completion, record_start

__all__ = ["QUEUE", "broker", "noop", "stamp"]

QUEUE = "bench"

broker = RedisBroker(url=os.environ["BENCH_REDIS_URL"])


@dramatiq.actor(queue_name=QUEUE, max_retries=0, broker=broker)
def noop(target: int) -> None:
    """One completion of a batch of ``target``."""
    record_completion(client(), target)


@dramatiq.actor(queue_name=QUEUE, max_retries=0, broker=broker)
def stamp(key: str) -> None:
    """Record when a latency probe started."""
    record_start(client(), key)
