"""Priority bands on Dramatiq: one queue per band, and a worker that serves them in order.

Dramatiq on Redis keeps each queue first in, first out, and a worker fetches
from every queue it consumes at once. So a run's priority is its queue
(:func:`band_queue`): ``<PODFLOW_QUEUE>.high``, ``<PODFLOW_QUEUE>`` itself for
``normal`` (the queue of every run sent before bands existed, so in-flight
messages and existing deployments keep working) and ``<PODFLOW_QUEUE>.low``. One
actor, ``generate_podcast``, serves all three: Dramatiq routes a message to an
actor by its ``actor_name``, whatever queue it came from.

Separate queues are not enough on their own. A worker prefetches one message
per thread from *each* queue (:mod:`podflow.worker.prefetch`) into one
in-process priority queue ordered by the actor's priority (the same for every
band), then by arrival: when a thread comes free, a normal message fetched while
the high one before it ran is there first, and the next high message is still
in Redis. :class:`BandOrder` closes that gap when a delivery begins: a message
of a lower band yields when a higher band this worker consumes has a message
ready, in Redis (its list) or already fetched by this worker -- in its work
queue, or on the way there: a consumer's fetch takes messages off the list
into the worker's acks set at once, and hands them to the work queue a moment
later, so a message in the acks set that no thread of this worker is processing
counts too. Yielding puts the
message back at the *front* of its own list (:func:`~podflow.worker.messages.put_first`:
it keeps its place among its band) before the delivery ends, so the broker holds
it throughout; the thread then takes the higher one. The cost is one Redis round
trip per delivery of a normal or low message (the lists' lengths and this
worker's acks sets, in one pipeline) -- or none: an answer "nothing
waits above" is reused for :data:`FRESH_S` (20 ms), so a worker starting
hundreds of short runs a second asks Redis at most 50 times a second. A
higher message arriving within that time may let a lower delivery begin, as
one arriving just after the question would; a run lasting minutes begins
seconds apart from the next, and is always asked about afresh.

On RabbitMQ the bands are queues as well (``x-max-priority`` is not used: one
priority queue would not let an operator see or drain a band on its own), but a
delivery does not yield: a message cannot be put back at the head of a RabbitMQ
queue. There a normal message a worker fetched before a high one arrived may
start first, at most one per worker thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import dramatiq
from dramatiq.common import dq_name
from dramatiq.middleware import Middleware

from ..models import PRIORITIES, Priority
from .messages import acks_key, is_redis

__all__ = ["FRESH_S", "BandOrder", "band_of", "band_queue", "band_queues"]

#: how long "no message waits in a higher band" holds for the next delivery (seconds)
FRESH_S = 0.02

#: the suffix of each band's queue after PODFLOW_QUEUE (normal: none)
_SUFFIX: dict[Priority, str] = {"high": ".high", "normal": "", "low": ".low"}


def band_queue(queue_name: str, priority: Priority) -> str:
    """The queue of ``priority``'s band, for PODFLOW_QUEUE ``queue_name``."""
    return queue_name + _SUFFIX[priority]


def band_queues(queue_name: str) -> dict[Priority, str]:
    """Every band's queue, first served first."""
    return {priority: band_queue(queue_name, priority) for priority in PRIORITIES}


def band_of(queue_name: str, message_queue: str) -> Priority | None:
    """The band whose queue ``message_queue`` is (its delay queue included), or None."""
    for priority, name in band_queues(queue_name).items():
        if message_queue in (name, dq_name(name)):
            return priority
    return None


def _copy_of(message: Any) -> str:
    """The name of the enqueued copy a delivery is (its acks set holds that name)."""
    return str(message.options.get("redis_message_id") or message.message_id)


class BandOrder(Middleware):
    """Tells a delivery of a lower band to yield to a higher one waiting (see the module).

    Parameters:
      queue_name: PODFLOW_QUEUE.
      fresh_s: how long an answer "the higher bands' lists are empty" is reused.
      clock: monotonic seconds.
    """

    def __init__(
        self, *, queue_name: str, fresh_s: float = FRESH_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.queue_name = queue_name
        self.fresh_s = fresh_s
        self._clock = clock
        self._worker: dramatiq.Worker | None = None
        #: the higher bands asked about -> when their lists were last found empty
        self._empty_at: dict[tuple[str, ...], float] = {}
        #: per queue, the copies this worker's threads process now (until acknowledged)
        self._processing: dict[str, set[str]] = {}
        #: (queue, number of queues consumed) -> the higher bands' queues consumed
        self._higher_of: dict[tuple[str, int], list[str]] = {}
        self._lock = threading.Lock()

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._worker = worker

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        with self._lock:
            self._processing.setdefault(message.queue_name, set()).add(_copy_of(message))

    def after_ack(self, broker: dramatiq.Broker, message: Any) -> None:
        # from the delivery's start to its acknowledgement it is in the acks set and here
        self._done(message)

    def after_nack(self, broker: dramatiq.Broker, message: Any) -> None:
        self._done(message)

    def _done(self, message: Any) -> None:
        with self._lock:  # a message skipped before this middleware saw it was never added
            self._processing.get(message.queue_name, set()).discard(_copy_of(message))

    def should_yield(self, broker: dramatiq.Broker, message: Any) -> bool:
        """Whether ``message`` (a delivery beginning) should let a message of a
        higher band this worker consumes go first.

        Raises: redis-py's connection errors.
        """
        higher = self._higher(message.queue_name)
        if not higher:
            return False
        if self._fetched_here(higher):
            return True
        if not is_redis(broker):
            return False
        key, asked_at = tuple(higher), self._clock()
        if asked_at - self._empty_at.get(key, float("-inf")) < self.fresh_s:
            return False
        pipe = broker.client.pipeline(transaction=False)
        for name in higher:
            pipe.llen(f"{broker.namespace}:{name}")
            pipe.scard(acks_key(broker, name))
        replies = [int(n) for n in pipe.execute()]
        with self._lock:
            processing = [len(self._processing.get(name, ())) for name in higher]
        # ready in its list, or fetched by this worker and not yet processed by any of its threads
        waiting = any(
            ready > 0 or held > busy
            for ready, held, busy in zip(replies[::2], replies[1::2], processing, strict=True)
        )
        if not waiting:
            self._empty_at[key] = asked_at
        return waiting

    def _higher(self, queue_name: str) -> list[str]:
        """The queues of the bands above ``queue_name``'s that this worker consumes, first
        served first (none for the highest band, or a queue that is no band's); kept per
        queue and number of consumers: Dramatiq adds a worker's consumers (a queue declared
        later) but never removes one, so the same number is the same set."""
        consumers = getattr(self._worker, "consumers", None) or {}
        key = (queue_name, len(consumers))
        higher = self._higher_of.get(key)
        if higher is None:
            band = band_of(self.queue_name, queue_name)
            above = PRIORITIES[: PRIORITIES.index(band)] if band is not None else ()
            higher = [name for name in (band_queue(self.queue_name, p) for p in above) if name in consumers]
            self._higher_of[key] = higher
        return higher

    def _fetched_here(self, queues: list[str]) -> bool:
        """Whether this worker already fetched a message of ``queues`` that waits for a thread."""
        worker = self._worker
        if worker is None:
            return False
        with worker.work_queue.mutex:  # read under the queue's lock: Dramatiq's threads take items meanwhile
            return any(item.message.queue_name in queues for item in worker.work_queue.queue)
